package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/referd/referd/attribution"
	"github.com/referd/referd/batch"
	"github.com/referd/referd/cache"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/logging"
	"github.com/referd/referd/promo"
	"github.com/referd/referd/providers"
	_ "github.com/referd/referd/providers/all" // the providers referd ships
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// The pipeline turns stored billing events into what they mean: links for customers
// seen, transactions for payments, refunds for refunds, through the same functions
// as the REST API. It has one path. A batch of events, however they came (the
// tasks that arrive together, a sweep's page, one event replayed), is
//
//  1. read in one statement, each event parsed by its provider (providers.Lookup);
//  2. matched to customers in one statement (store.MatchCustomers), and the
//     promotion codes its payments' discounts name to codes in one more
//     (store.MatchCodes; a provider id referd has not seen asked of the provider's
//     API when there is a promo.Resolver);
//  3. written in one transaction: every event's effects and its outcome
//     (store.FinishProviderEventsTx) commit together, so an event is never done
//     without its effects nor its effects recorded without it being done.
//
// Inside the transaction, the plain payments of known customers, nearly every
// billing event, are recorded together in one statement (ledger.RecordSalesTx).
// Every other event (refunds, links between a payment's ids, payments held for a
// link, customers created from a referral key, payments with a known promotion
// code, discounts seen) is applied on its own, inside a
// savepoint: its own failure rolls back only its own effects. Every effect is keyed
// by the provider's ids, so processing an event again changes nothing.
//
// An event ends processed (with its transaction keys), ignored (nothing to do),
// unattributed (a payment that matches no customer yet: processed again when one
// appears) or failed (with the error), or it waits: a payment held for a link
// (HeldError) stays received.

// ProcessEvent processes the stored event pk: a batch of one.
func ProcessEvent(ctx context.Context, db *store.DB, pk int64) error {
	return ProcessEventWith(ctx, db, pk, nil)
}

// ProcessEventWith is ProcessEvent with the workers' promotion-id resolver (nil: none),
// for a replay that should ask Stripe as the workers do.
func ProcessEventWith(ctx context.Context, db *store.DB, pk int64, resolver promo.Resolver) error {
	return (&processor{db: db, resolver: resolver}).handle(ctx, pk)
}

// processor runs the pipeline for the workers. The tasks that arrive together share
// a batch (lane): one batch is written at a time, and the events that pile up
// meanwhile are the next one. Sales of a program's few busy referrers lock the same
// rows, so two batches in flight would wait for each other; one lane makes the
// largest batches and costs the least per event (BENCHMARKS.md). Programs and their
// integrations are read once a few seconds.
type processor struct {
	db *store.DB
	// resolver asks a provider which code a promotion id it names is; nil: none.
	resolver promo.Resolver
	configs  *cache.Cache[string, programConfig]
	lane     *batch.Group[int64, result]
	log      *slog.Logger // nil: no logs
	written  func()       // called after each batch commits; nil: nothing
}

// batchSize is the most events one batch holds.
const batchSize = 64

func newProcessor(db *store.DB) *processor {
	pr := &processor{db: db, configs: &cache.Cache[string, programConfig]{TTL: 2 * time.Second}}
	pr.lane = batch.New(1, batchSize, pr.run)
	return pr
}

// result is what became of one event of a batch: done (err nil), waiting (err a
// *HeldError), or an error for its task to retry. links are the provider-customer
// links it taught.
type result struct {
	err   error
	links []store.ProviderLink
}

// handle processes the stored event pk with the events processed at the same time,
// then the unattributed payments its links may be about.
func (pr *processor) handle(ctx context.Context, pk int64) error {
	var r result
	if pr.lane == nil {
		rs, err := pr.run(ctx, []int64{pk})
		if err != nil {
			return err
		}
		r = rs[0]
	} else {
		var err error
		if r, err = pr.lane.Do(ctx, pk); err != nil {
			return err
		}
	}
	if r.err != nil {
		return r.err
	}
	return pr.followLinks(ctx, r.links)
}

// handleAll processes the stored events of one task, each as handle does, and says
// what its task should do: retry after an error (events done meanwhile are skipped
// then), wait for the earliest hold (a *HeldError), or nothing. An event that no
// longer exists is nothing to do.
func (pr *processor) handleAll(ctx context.Context, pks []int64) error {
	errs := make([]error, len(pks))
	if len(pks) == 1 {
		errs[0] = pr.handle(ctx, pks[0])
	} else {
		var wg sync.WaitGroup
		for i, pk := range pks {
			wg.Go(func() { errs[i] = pr.handle(ctx, pk) })
		}
		wg.Wait()
	}
	var first *HeldError
	for i, err := range errs {
		var held *HeldError
		switch {
		case err == nil:
		case errors.Is(err, store.ErrNotFound):
			if pr.log != nil {
				pr.log.Warn("a task names a provider event that does not exist", "pk", pks[i])
			}
		case errors.As(err, &held):
			if first == nil || held.Until.Before(first.Until) {
				first = held
			}
		default:
			return err
		}
	}
	if first != nil {
		return first
	}
	return nil
}

// followLinks processes again the unattributed events that may be about the
// provider customers just linked: they may have paid before referd knew who they
// were. Their own outcomes are theirs; only a failed batch is an error.
func (pr *processor) followLinks(ctx context.Context, links []store.ProviderLink) error {
	if len(links) == 0 {
		return nil
	}
	cs := make([]store.AppearedCustomer, len(links))
	for i, l := range links {
		cs[i] = store.AppearedCustomer{ProgramPK: l.ProgramPK, Provider: l.Provider, ProviderCustomerID: l.ProviderCustomerID}
	}
	pks, err := store.UnattributedEventsFor(ctx, pr.db, cs, 100)
	if err != nil || len(pks) == 0 {
		return err
	}
	_, err = pr.run(ctx, pks)
	return err
}

type programConfig struct {
	p        store.Program
	keyField string
}

func (pr *processor) config(ctx context.Context, programPK int64, provider string) (programConfig, error) {
	load := func(ctx context.Context) (programConfig, error) {
		p, err := store.ProgramByPK(ctx, pr.db, programPK)
		if err != nil {
			return programConfig{}, err
		}
		c := programConfig{p: p, keyField: "customer_key"}
		if in, err := store.GetIntegration(ctx, pr.db, p.PK, provider); err == nil {
			c.keyField = in.CustomerKeyField
		}
		return c, nil
	}
	if pr.configs == nil {
		return load(ctx)
	}
	return pr.configs.Get(ctx, fmt.Sprintf("%d|%s", programPK, provider), load)
}

// event is one stored event of a batch, parsed.
type event struct {
	at    int // its place in the batch
	row   *store.ProviderEvent
	p     store.Program
	parts []providers.Event
	match []int // for each part, its query's place in the batch's matches, or -1
	// codeAt is, for each part, the place of its first discount's query in the
	// batch's code matches (one query per discount, in order).
	codeAt []int
	bad    string // why it could not be parsed
}

// code is the promotion code the discounts of part j name (the first found), or the
// zero CodeMatch.
func (ev *event) code(j int, cms []store.CodeMatch) store.CodeMatch {
	for k := range ev.parts[j].Discounts {
		if m := cms[ev.codeAt[j]+k]; m.PK != 0 {
			return m
		}
	}
	return store.CodeMatch{}
}

// plain says whether ev is a plain payment: a payment alone, neither held nor
// linked nor paid with a known promotion code, whose customer is known or certainly
// unknown. m is its match.
func (ev *event) plain(ms []store.CustomerMatch, cms []store.CodeMatch) (e providers.Event, m store.CustomerMatch, ok bool) {
	if ev.bad != "" || len(ev.parts) != 1 || ev.match[0] < 0 {
		return e, m, false
	}
	e, m = ev.parts[0], ms[ev.match[0]]
	ok = e.Kind == providers.Payment && e.Hold == 0 && len(e.Aliases) == 0 && (m.Via != "" || e.ReferralKey == "") &&
		ev.code(0, cms).PK == 0
	return e, m, ok
}

// run processes a batch of stored events and returns each one's result, in order.
// The error is the batch's: nothing of it was written.
func (pr *processor) run(ctx context.Context, pks []int64) ([]result, error) {
	res := make([]result, len(pks))
	rows, err := store.ProviderEventsByPK(ctx, pr.db, pks)
	if err != nil {
		return nil, err
	}
	var evs []*event
	var qs []store.MatchQuery
	var cqs []store.CodeQuery
	for i, row := range batch.InOrder(pks, rows, func(e *store.ProviderEvent) int64 { return e.PK }) {
		switch {
		case row == nil:
			res[i].err = fmt.Errorf("provider event %d: %w", pks[i], store.ErrNotFound)
			continue
		case row.Status.Done():
			continue // a task delivered again, or the sweep got there first: nothing left to do
		}
		cfg, err := pr.config(ctx, row.ProgramPK, row.Provider)
		if err != nil {
			res[i].err = err
			continue
		}
		ev := &event{at: i, row: row, p: cfg.p}
		evs = append(evs, ev)
		parsed, err := parse(row, cfg.keyField)
		if err != nil {
			ev.bad = err.Error()
			continue
		}
		ev.parts = parsed.Events
		ev.match = make([]int, len(ev.parts))
		ev.codeAt = make([]int, len(ev.parts))
		for j, e := range ev.parts {
			ev.match[j] = -1
			if e.Kind == providers.Payment || (e.Kind == providers.CustomerSeen && e.ProviderCustomerID != "") {
				ev.match[j] = len(qs)
				qs = append(qs, attribution.Query(cfg.p, row.Provider, e))
			}
			ev.codeAt[j] = len(cqs)
			for _, d := range e.Discounts {
				cqs = append(cqs, codeQuery(cfg.p, row.Provider, d))
			}
		}
	}
	if len(evs) == 0 {
		return res, nil
	}
	var ms []store.CustomerMatch
	if len(qs) > 0 {
		if ms, err = store.MatchCustomers(ctx, pr.db, qs); err != nil {
			return nil, err
		}
	}
	cms, err := pr.matchCodes(ctx, evs, cqs)
	if err != nil {
		return nil, err
	}
	var outs []store.EventOutcome
	err = pr.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		outs, err = pr.write(ctx, tx, evs, ms, cms, res)
		return err
	})
	if err != nil {
		return nil, err
	}
	if pr.written != nil {
		pr.written()
	}
	for _, ev := range evs {
		pr.logOutcome(ctx, ev, outs)
	}
	return res, nil
}

// write applies the batch's events in tx and records their outcomes there. It sets
// each event's result afresh, for InTx may run it again.
func (pr *processor) write(ctx context.Context, tx *store.Tx, evs []*event, ms []store.CustomerMatch, cms []store.CodeMatch, res []result) ([]store.EventOutcome, error) {
	var outs []store.EventOutcome
	var sales []ledger.SaleRequest
	var saleOf []int // for each sale, its event's outcome in outs
	now := time.Now()
	for _, ev := range evs {
		res[ev.at] = result{}
		out := store.EventOutcome{PK: ev.row.PK, Status: store.EventIgnored, At: now}
		if ev.bad != "" {
			out.Status, out.Error = store.EventFailed, ev.bad
			outs = append(outs, out)
			continue
		}
		if e, m, ok := ev.plain(ms, cms); ok {
			out.DiscountRefs = discountRefs(ev.row.Provider, e)
			switch {
			case m.Via == "":
				out.Status = store.EventUnattributed
				out.CustomerKey, out.ProviderCustomerID, out.Email = e.CustomerKey, e.ProviderCustomerID, e.Email
			case !m.ReferrerPK.Valid:
				// A customer nobody referred: nothing to reward.
				out.Links = links(attribution.LinkFor(ev.p, ev.row.Provider, e, m))
			default:
				// Recorded with the batch's other sales, below.
				sale := paymentSale(ev.row.Provider, e, m.ID, ev.row.RequestID.String)
				out.Status, out.TransactionKeys = store.EventProcessed, []string{sale.Key}
				out.Links = links(attribution.LinkFor(ev.p, ev.row.Provider, e, m))
				sales = append(sales, ledger.SaleRequest{Program: ev.p, Sale: sale})
				saleOf = append(saleOf, len(outs))
			}
			outs = append(outs, out)
			continue
		}
		// Outbox events written for it name the ingest request that brought it.
		ctx := logging.WithRequestID(ctx, ev.row.RequestID.String)
		err := tx.Savepoint(ctx, func() error {
			var err error
			out, err = pr.apply(ctx, tx, ev, ms, cms, out)
			return err
		})
		var held *HeldError
		var invalid *referral.ValidationError
		switch {
		case errors.As(err, &held):
			res[ev.at].err = held // no outcome: it waits, received
			continue
		case errors.As(err, &invalid):
			out = store.EventOutcome{PK: ev.row.PK, Status: store.EventFailed, Error: err.Error(), At: now}
		case errors.Is(err, store.ErrTxLost), ctx.Err() != nil:
			return nil, err // the batch is tried again
		case err != nil:
			// Its own database error, rolled back: its task tries it again, and the
			// batch's other events are not held back by it.
			res[ev.at].err = err
			continue
		}
		outs = append(outs, out)
	}
	if len(sales) > 0 {
		rs, err := ledger.RecordSalesTx(ctx, tx, sales)
		if err != nil {
			return nil, err
		}
		for k, r := range rs {
			var conflict *store.ConflictError
			switch {
			case r.Err == nil, errors.As(r.Err, &conflict):
				// A conflict: another event of the same payment recorded it first (a
				// Checkout session and its charge), saying it differently.
			default:
				out := &outs[saleOf[k]]
				out.Status, out.Error, out.TransactionKeys = store.EventFailed, r.Err.Error(), nil
			}
		}
	}
	byPK := make(map[int64]int, len(evs))
	for _, ev := range evs {
		byPK[ev.row.PK] = ev.at
	}
	for _, out := range outs {
		res[byPK[out.PK]].links = out.Links
	}
	return outs, store.FinishProviderEventsTx(ctx, tx, outs)
}

func links(l *store.ProviderLink) []store.ProviderLink {
	if l == nil {
		return nil
	}
	return []store.ProviderLink{*l}
}

// apply applies each part of the event ev in tx and returns its outcome, started as
// out.
func (pr *processor) apply(ctx context.Context, tx *store.Tx, ev *event, ms []store.CustomerMatch, cms []store.CodeMatch, out store.EventOutcome) (store.EventOutcome, error) {
	for j, e := range ev.parts {
		var m store.CustomerMatch
		if ev.match[j] >= 0 {
			m = ms[ev.match[j]]
		}
		if e.Kind == providers.Payment {
			out.DiscountRefs = append(out.DiscountRefs, discountRefs(ev.row.Provider, e)...)
		}
		st, keys, link, err := pr.applyPart(ctx, tx, ev, e, m, ev.code(j, cms))
		if err != nil {
			return out, err
		}
		out.TransactionKeys = append(out.TransactionKeys, keys...)
		out.Links = append(out.Links, links(link)...)
		if st == store.EventUnattributed {
			out.CustomerKey, out.ProviderCustomerID, out.Email = e.CustomerKey, e.ProviderCustomerID, e.Email
		}
		out.Status = worse(out.Status, st)
	}
	if out.Status != store.EventUnattributed {
		out.CustomerKey, out.ProviderCustomerID, out.Email = "", "", ""
	}
	return out, nil
}

// applyPart applies one provider-neutral event e of the stored event ev, whose
// customer query was answered m and whose discounts name the promotion code code
// (PK 0: none), and says what became of it, the transaction keys it is about, and
// which provider-customer link it taught.
func (pr *processor) applyPart(ctx context.Context, tx *store.Tx, ev *event, e providers.Event, m store.CustomerMatch, code store.CodeMatch) (status store.EventStatus, keys []string, link *store.ProviderLink, err error) {
	p, provider := ev.p, ev.row.Provider
	key := provider + ":" + e.ObjectID
	switch e.Kind {
	case providers.CustomerSeen:
		if e.ProviderCustomerID == "" {
			return store.EventIgnored, nil, nil, nil
		}
		r, err := attribution.Resolve(ctx, tx, m, p, provider, e, false)
		if err != nil || !r.Found {
			return store.EventIgnored, nil, nil, err
		}
		return store.EventProcessed, nil, r.Link, nil
	case providers.Link:
		folded, err := ledger.LinkPaymentTx(ctx, tx, p, key, saleKeys(provider, e.Aliases))
		return store.EventProcessed, folded, nil, err
	case providers.DiscountSeen:
		return pr.discountSeen(ctx, tx, ev, e, code)
	case providers.Payment:
		if len(e.Aliases) > 0 {
			// Linked first: a sale recorded under an alias is folded before this one
			// takes its purchase number.
			if _, err := ledger.LinkPaymentTx(ctx, tx, p, key, saleKeys(provider, e.Aliases)); err != nil {
				return "", nil, nil, err
			}
		}
		if e.Hold > 0 {
			target, err := store.PaymentAliasTarget(ctx, tx, p.PK, key)
			if err != nil {
				return "", nil, nil, err
			}
			if target != "" {
				return store.EventProcessed, []string{target}, nil, nil // counted by the payment it is part of
			}
			if until := ev.row.ReceivedAt.Add(e.Hold); time.Now().Before(until) {
				return "", nil, nil, &HeldError{PK: ev.row.PK, Until: until}
			}
		}
		// A buyer unknown to referd who pays with a known code is created as its
		// owner's referral, as one who carries a referrer's key is.
		r, err := attribution.ResolveByCode(ctx, tx, m, p, provider, e, code.OwnerID)
		if err != nil {
			return "", nil, nil, err
		}
		if !r.Found {
			return store.EventUnattributed, nil, nil, nil
		}
		if !r.Customer.ReferrerPK.Valid && (code.PK == 0 || r.Customer.PK == code.OwnerPK) {
			// A customer nobody referred, paying with no code or their own: nothing
			// to reward.
			return store.EventIgnored, nil, r.Link, nil
		}
		sale := paymentSale(provider, e, r.Customer.ID, ev.row.RequestID.String)
		// The ledger makes a buyer nobody referred the code owner's referral before
		// the sale's rewards, and counts the code's use.
		sale.DiscountCode = code.Code
		if e.Hold > 0 {
			t, linked, err := ledger.RecordHeldSaleTx(ctx, tx, p, sale)
			switch {
			case err != nil:
			case linked != "":
				return store.EventProcessed, []string{linked}, r.Link, nil
			default:
				return store.EventProcessed, []string{t.Key}, r.Link, nil
			}
			return saleOutcome(sale, r.Link, err)
		}
		rs, err := ledger.RecordSalesTx(ctx, tx, []ledger.SaleRequest{{Program: p, Sale: sale}})
		if err != nil {
			return "", nil, nil, err
		}
		return saleOutcome(sale, r.Link, rs[0].Err)
	case providers.Refund:
		key, err := ledger.RefundPaymentTx(ctx, tx, p, ledger.Refund{TransactionKey: key, Key: provider + ":" + e.RefundID,
			Amount: e.Amount, Cumulative: e.Cumulative, WaitForSale: true})
		if err != nil {
			return "", nil, nil, err
		}
		return store.EventProcessed, []string{key}, nil, nil
	}
	return store.EventIgnored, nil, nil, fmt.Errorf("unknown event kind %q", e.Kind)
}

// discountSeen learns what the discount of a DiscountSeen applies (a Stripe
// customer.discount.created), so that payments naming only the discount id find its
// code; payments that named it before and ended ignored or unattributed are queued
// again when it is a known code's.
func (pr *processor) discountSeen(ctx context.Context, tx *store.Tx, ev *event, e providers.Event, code store.CodeMatch) (store.EventStatus, []string, *store.ProviderLink, error) {
	var ds []store.ProviderDiscount
	for _, d := range e.Discounts {
		if d.DiscountID != "" {
			ds = append(ds, store.ProviderDiscount{ProgramPK: ev.p.PK, Provider: ev.row.Provider, DiscountID: d.DiscountID,
				PromotionID: d.PromotionID, Code: d.Code})
		}
	}
	if len(ds) == 0 {
		return store.EventIgnored, nil, nil, nil
	}
	if err := store.LearnDiscounts(ctx, tx, ds); err != nil {
		return "", nil, nil, err
	}
	if code.PK != 0 {
		refs := make([]string, len(ds))
		for i, d := range ds {
			refs[i] = ev.row.Provider + ":" + d.DiscountID
		}
		if _, err := store.QueueDiscountRetries(ctx, tx, ev.p.PK, refs); err != nil {
			return "", nil, nil, err
		}
	}
	return store.EventProcessed, nil, nil, nil
}

// codeQuery is the question a payment's discount d asks to find the program's code.
func codeQuery(p store.Program, provider string, d providers.Discount) store.CodeQuery {
	return store.CodeQuery{ProgramPK: p.PK, Provider: provider, Code: d.Code, PromotionID: d.PromotionID, DiscountID: d.DiscountID}
}

// discountRefs are the refs of the codes and provider ids e's discounts carry, kept
// with its outcome so that a code created later finds it (store.QueueDiscountRetries).
func discountRefs(provider string, e providers.Event) []string {
	var refs []string
	for _, d := range e.Discounts {
		if d.Code != "" {
			refs = append(refs, store.CodeRef(d.Code))
		}
		for _, id := range []string{d.PromotionID, d.DiscountID} {
			if id != "" {
				refs = append(refs, provider+":"+id)
			}
		}
	}
	return refs
}

// matchCodes finds the promotion codes the batch's discounts name, in one statement.
// With a resolver, promotion ids that name no known code are asked of their
// provider's API, and the codes it names looked up in one more.
func (pr *processor) matchCodes(ctx context.Context, evs []*event, cqs []store.CodeQuery) ([]store.CodeMatch, error) {
	if len(cqs) == 0 {
		return nil, nil
	}
	cms, err := store.MatchCodes(ctx, pr.db, cqs)
	if err != nil || pr.resolver == nil {
		return cms, err
	}
	programs := map[int64]store.Program{}
	for _, ev := range evs {
		programs[ev.p.PK] = ev.p
	}
	var again []store.CodeQuery
	var at []int
	for i, q := range cqs {
		if cms[i].PK != 0 || q.Code != "" {
			continue
		}
		var code string
		var ok bool
		var err error
		switch dr, canAsk := pr.resolver.(promo.DiscountResolver); {
		case q.PromotionID != "":
			code, ok, err = pr.resolver.ResolvePromotionCode(ctx, programs[q.ProgramPK], q.Provider, q.PromotionID)
		case q.DiscountID != "" && canAsk:
			// Only a discount id, which no customer.discount.created has explained:
			// ask what the payment it was applied to says of it.
			ev, j := partOf(evs, i)
			if ev == nil {
				continue
			}
			code, ok, err = dr.ResolveDiscount(ctx, programs[q.ProgramPK], q.Provider, ev.parts[j].ObjectID, q.DiscountID)
		default:
			continue
		}
		var lasting interface{ Temporary() bool }
		if errors.As(err, &lasting) && !lasting.Temporary() {
			// The provider refuses for good (a revoked key, say): trying again changes
			// nothing, so the event fails with its answer, for GET /v1/provider_events.
			failAsking(evs, i, err)
			continue
		}
		if err != nil {
			return nil, err // the batch is tried again
		}
		if ok && code != "" {
			again = append(again, store.CodeQuery{ProgramPK: q.ProgramPK, Provider: q.Provider, Code: code})
			at = append(at, i)
		}
	}
	if len(again) == 0 {
		return cms, nil
	}
	more, err := store.MatchCodes(ctx, pr.db, again)
	if err != nil {
		return nil, err
	}
	for k, i := range at {
		cms[i] = more[k]
	}
	return cms, nil
}

// partOf is the event and the part whose discount is code query i (nil when none).
func partOf(evs []*event, i int) (*event, int) {
	for _, ev := range evs {
		for j, part := range ev.parts {
			if i >= ev.codeAt[j] && i < ev.codeAt[j]+len(part.Discounts) {
				return ev, j
			}
		}
	}
	return nil, 0
}

// failAsking fails the event whose discount is code query i: asking the provider's
// API about it failed with err, for good.
func failAsking(evs []*event, i int, err error) {
	if ev, j := partOf(evs, i); ev != nil && ev.bad == "" {
		d := ev.parts[j].Discounts[i-ev.codeAt[j]]
		ev.bad = "asking the provider about discount " + cmp.Or(d.PromotionID, d.DiscountID) + ": " + err.Error()
	}
}

// saleOutcome is what recording sale, with err, made of its event.
func saleOutcome(sale ledger.Sale, link *store.ProviderLink, err error) (store.EventStatus, []string, *store.ProviderLink, error) {
	var conflict *store.ConflictError
	if err != nil && !errors.As(err, &conflict) {
		return "", nil, nil, err
	}
	// With a conflict, another event of the same payment recorded it first (a Checkout
	// session and its charge, an invoice and its session), saying it differently.
	return store.EventProcessed, []string{sale.Key}, link, nil
}

// logOutcome logs what became of ev, with the ingest request's id: one id from the
// webhook that brought the event to the deliveries it causes.
func (pr *processor) logOutcome(ctx context.Context, ev *event, outs []store.EventOutcome) {
	if pr.log == nil {
		return
	}
	for _, out := range outs {
		if out.PK != ev.row.PK {
			continue
		}
		level := slog.LevelDebug
		if out.Status == store.EventFailed || out.Status == store.EventUnattributed {
			level = slog.LevelInfo
		}
		if pr.log.Enabled(ctx, level) {
			ctx := logging.WithRequestID(ctx, ev.row.RequestID.String)
			pr.log.Log(ctx, level, "provider event "+string(out.Status), "pk", out.PK, "error", out.Error, "transactions", out.TransactionKeys)
		}
		return
	}
}

// parse turns a stored event into provider-neutral events with its provider's parser.
func parse(ev *store.ProviderEvent, keyField string) (providers.Parsed, error) {
	prov, ok := providers.Lookup(ev.Provider)
	if !ok {
		return providers.Parsed{}, fmt.Errorf("providers: unknown provider %q", ev.Provider)
	}
	return prov.Parse(ev.Payload, providers.Options{CustomerKeyField: keyField})
}

// paymentSale is the sale a provider's payment records for the customer with this id:
// keyed by the paid object's id, so the same payment always makes the same sale.
func paymentSale(provider string, e providers.Event, customerID, requestID string) ledger.Sale {
	s := ledger.Sale{CustomerID: customerID, Key: provider + ":" + e.ObjectID, Amount: e.Amount, Units: e.Currency,
		ProductID: e.ProductID, Source: provider, Livemode: e.Livemode, RequestID: requestID}
	if e.Subscription {
		s.ProductType = "subscription"
	}
	return s
}

// worse keeps the status that says most: unattributed > processed > ignored.
func worse(a, b store.EventStatus) store.EventStatus {
	rank := map[store.EventStatus]int{store.EventIgnored: 0, store.EventProcessed: 1, store.EventUnattributed: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// HeldError says a stored event waits, unprocessed, until Until: it is a payment that
// may yet turn out to be another payment's (providers.Event.Hold). Its task is
// retried then, without counting as a failure.
type HeldError struct {
	PK    int64
	Until time.Time
}

// Deferred says the task waits on purpose: metrics count it apart from failures.
func (e *HeldError) Deferred() bool { return true }

func (e *HeldError) Error() string {
	return fmt.Sprintf("provider event %d is held until %s", e.PK, e.Until.UTC().Format(time.RFC3339))
}

// saleKeys are a provider's object ids as sale keys.
func saleKeys(provider string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = provider + ":" + id
	}
	return out
}

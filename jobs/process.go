package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/referd/referd/attribution"
	"github.com/referd/referd/batch"
	"github.com/referd/referd/cache"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/logging"
	"github.com/referd/referd/providers"
	_ "github.com/referd/referd/providers/all" // the providers referd ships
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// ProcessEvent turns a stored billing event into what it means: links for customers
// seen, transactions for payments, refunds for refunds, through the same functions as
// the REST API. Every effect is keyed by the provider's ids, so processing an event
// again changes nothing. The event ends processed (with its transaction keys),
// ignored (nothing to do), unattributed (a payment that matches no customer yet:
// retried when one appears, and by the sweep) or failed (with the error).
func ProcessEvent(ctx context.Context, db *store.DB, pk int64) error {
	return (&processor{db: db}).process(ctx, pk)
}

// processor processes stored events. The workers share one. Plain payments of known
// customers go through the payments lane (paymentLane), a batch at a time; the other
// events are processed one by one (process), and even they share what events
// processed at the same time do alike: reading the event, matching its customer,
// recording its outcome and the links it taught (batch.Group), and recording sales
// (a ledger.Batcher). Programs and their integrations are read once a few seconds.
type processor struct {
	db       *store.DB
	sales    *ledger.Batcher
	cache    *cache.Cache[string, programConfig]
	events   *batch.Group[int64, *store.ProviderEvent]
	matches  *batch.Group[store.MatchQuery, store.CustomerMatch]
	outcomes *batch.Group[store.EventOutcome, struct{}]
	lane     *batch.Group[int64, laneResult]
	log      *slog.Logger // nil: no logs
}

// newProcessor returns the workers' shared processor. Each stage runs one batch at a
// time: sales of a program's few busy referrers lock the same rows, so two batches
// in flight wait for each other, and the batch that waits is smaller. One lane, with
// the events that pile up while it writes as its next batch, makes the largest
// batches and costs the least per event (BENCHMARKS.md).
func newProcessor(db *store.DB) *processor {
	pr := &processor{db: db, sales: ledger.NewBatcher(db, 1, 64),
		cache: &cache.Cache[string, programConfig]{TTL: 2 * time.Second},
		events: batch.New(1, 64, func(ctx context.Context, pks []int64) ([]*store.ProviderEvent, error) {
			evs, err := store.ProviderEventsByPK(ctx, db, pks)
			if err != nil {
				return nil, err
			}
			return batch.InOrder(pks, evs, func(e *store.ProviderEvent) int64 { return e.PK }), nil
		}),
		matches: batch.New(1, 64, func(ctx context.Context, qs []store.MatchQuery) ([]store.CustomerMatch, error) {
			return store.MatchCustomers(ctx, db, qs)
		}),
		outcomes: batch.New(1, 64, func(ctx context.Context, outs []store.EventOutcome) ([]struct{}, error) {
			return nil, store.FinishProviderEvents(ctx, db, outs)
		}),
	}
	pr.lane = batch.New(1, 64, pr.paymentLane)
	return pr
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
	if pr.cache == nil {
		return load(ctx)
	}
	return pr.cache.Get(ctx, fmt.Sprintf("%d|%s", programPK, provider), load)
}

func (pr *processor) load(ctx context.Context, pk int64) (store.ProviderEvent, error) {
	if pr.events == nil {
		return store.GetProviderEvent(ctx, pr.db, pk)
	}
	ev, err := pr.events.Do(ctx, pk)
	if err == nil && ev == nil {
		err = fmt.Errorf("provider event %d: %w", pk, store.ErrNotFound)
	}
	if err != nil {
		return store.ProviderEvent{}, err
	}
	return *ev, nil
}

// match is the processor's attribution.Matcher: the queries of events processed
// together go to the database as one.
func (pr *processor) match() attribution.Matcher {
	if pr.matches == nil {
		return attribution.Direct(pr.db)
	}
	return pr.matches.Do
}

func (pr *processor) finish(ctx context.Context, out store.EventOutcome) error {
	out.At = time.Now()
	if pr.log != nil {
		// Logged with the ingest request's id (in ctx): one id from the webhook that
		// brought the event to the deliveries it causes.
		level := slog.LevelDebug
		if out.Status == store.EventFailed || out.Status == store.EventUnattributed {
			level = slog.LevelInfo
		}
		pr.log.Log(ctx, level, "provider event "+string(out.Status), "pk", out.PK, "error", out.Error, "transactions", out.TransactionKeys)
	}
	if pr.outcomes == nil {
		return store.FinishProviderEvents(ctx, pr.db, []store.EventOutcome{out})
	}
	_, err := pr.outcomes.Do(ctx, out)
	return err
}

func (pr *processor) process(ctx context.Context, pk int64) error {
	ev, err := pr.load(ctx, pk)
	if err != nil {
		return err
	}
	// Logs and the outbox events this writes name the ingest request behind it.
	ctx = logging.WithRequestID(ctx, ev.RequestID.String)
	if ev.Status.Done() {
		return nil // a task delivered again, or the sweep got there first: nothing left to do
	}
	cfg, err := pr.config(ctx, ev.ProgramPK, ev.Provider)
	if err != nil {
		return err
	}
	p, keyField := cfg.p, cfg.keyField
	parsed, err := parse(&ev, keyField)
	if err != nil {
		return pr.finish(ctx, store.EventOutcome{PK: pk, Status: store.EventFailed, Error: err.Error()})
	}
	out := store.EventOutcome{PK: pk, Status: store.EventIgnored}
	for _, e := range parsed.Events {
		st, keys, link, err := pr.apply(ctx, p, &ev, e)
		if err != nil {
			var verr *referral.ValidationError
			if errors.As(err, &verr) {
				out.Status, out.Error = store.EventFailed, err.Error()
				return pr.finish(ctx, out)
			}
			return err // a database problem: asynq retries the task
		}
		out.TransactionKeys = append(out.TransactionKeys, keys...)
		if link != nil {
			out.Links = append(out.Links, *link)
		}
		if st == store.EventUnattributed {
			out.CustomerKey, out.ProviderCustomerID, out.Email = e.CustomerKey, e.ProviderCustomerID, e.Email
		}
		out.Status = worse(out.Status, st)
	}
	if out.Status != store.EventUnattributed {
		out.CustomerKey, out.ProviderCustomerID, out.Email = "", "", ""
	}
	if err := pr.finish(ctx, out); err != nil {
		return err
	}
	// A provider customer just linked may have paid before referd knew who it was.
	if len(out.Links) == 0 {
		return nil
	}
	cs := make([]store.AppearedCustomer, len(out.Links))
	for i, l := range out.Links {
		cs[i] = store.AppearedCustomer{ProgramPK: l.ProgramPK, Provider: l.Provider, ProviderCustomerID: l.ProviderCustomerID}
	}
	return pr.retryUnattributed(ctx, cs)
}

// retryUnattributed processes again the unattributed events that may be about these
// customers.
func (pr *processor) retryUnattributed(ctx context.Context, cs []store.AppearedCustomer) error {
	pks, err := store.UnattributedEventsFor(ctx, pr.db, cs, 100)
	if err != nil {
		return err
	}
	for _, pk := range pks {
		if err := pr.process(ctx, pk); err != nil {
			return err
		}
	}
	return nil
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

// apply handles one provider-neutral event of the stored event ev and says what
// became of it, the transaction keys it is about, and which provider-customer link
// it taught.
func (pr *processor) apply(ctx context.Context, p store.Program, ev *store.ProviderEvent, e providers.Event) (status store.EventStatus, keys []string, link *store.ProviderLink, err error) {
	db, provider := pr.db, ev.Provider
	key := provider + ":" + e.ObjectID
	switch e.Kind {
	case providers.CustomerSeen:
		if e.ProviderCustomerID == "" {
			return store.EventIgnored, nil, nil, nil
		}
		m, err := attribution.Resolve(ctx, db, pr.match(), p, provider, e, false)
		if err != nil || !m.Found {
			return store.EventIgnored, nil, nil, err
		}
		return store.EventProcessed, nil, m.Link, nil
	case providers.Link:
		folded, err := ledger.LinkPayment(ctx, db, p, key, saleKeys(provider, e.Aliases))
		return store.EventProcessed, folded, nil, err
	case providers.Payment:
		if len(e.Aliases) > 0 {
			// Linked first: a sale recorded under an alias is folded before this one
			// takes its purchase number.
			if _, err := ledger.LinkPayment(ctx, db, p, key, saleKeys(provider, e.Aliases)); err != nil {
				return "", nil, nil, err
			}
		}
		if e.Hold > 0 {
			target, err := store.PaymentAliasTarget(ctx, db, p.PK, key)
			if err != nil {
				return "", nil, nil, err
			}
			if target != "" {
				return store.EventProcessed, []string{target}, nil, nil // counted by the payment it is part of
			}
			if until := ev.ReceivedAt.Add(e.Hold); time.Now().Before(until) {
				return "", nil, nil, &HeldError{PK: ev.PK, Until: until}
			}
		}
		m, err := attribution.Resolve(ctx, db, pr.match(), p, provider, e, true)
		if err != nil {
			return "", nil, nil, err
		}
		if !m.Found {
			return store.EventUnattributed, nil, nil, nil
		}
		c := m.Customer
		if !c.ReferrerPK.Valid {
			return store.EventIgnored, nil, m.Link, nil // a customer nobody referred: nothing to reward
		}
		sale := paymentSale(provider, e, c.ID, logging.RequestID(ctx))
		var t store.Transaction
		switch {
		case e.Hold > 0:
			var linked string
			t, linked, err = ledger.RecordHeldSale(ctx, db, p, sale)
			if err == nil && linked != "" {
				return store.EventProcessed, []string{linked}, m.Link, nil
			}
		case pr.sales != nil:
			t, _, err = pr.sales.Record(ctx, p, sale)
		default:
			t, _, err = ledger.RecordTransaction(ctx, db, p, sale)
		}
		var conflict *store.ConflictError
		if errors.As(err, &conflict) {
			// Another event of the same payment recorded it first (a Checkout session
			// and its charge, an invoice and its session), saying it differently.
			return store.EventProcessed, []string{sale.Key}, m.Link, nil
		}
		if err != nil {
			return "", nil, nil, err
		}
		return store.EventProcessed, []string{t.Key}, m.Link, nil
	case providers.Refund:
		key, err := ledger.RefundPayment(ctx, db, p, ledger.Refund{TransactionKey: key, Key: provider + ":" + e.RefundID,
			Amount: e.Amount, Cumulative: e.Cumulative, WaitForSale: true})
		if err != nil {
			return "", nil, nil, err
		}
		return store.EventProcessed, []string{key}, nil, nil
	}
	return store.EventIgnored, nil, nil, fmt.Errorf("unknown event kind %q", e.Kind)
}

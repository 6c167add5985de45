package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/referd/referd/money"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/rewards"
	"github.com/referd/referd/store"
)

// Sale is a purchase to record, in plain values: the REST API and the billing
// providers both record through RecordTransaction.
type Sale struct {
	// The buyer: the first given of id, key and email.
	CustomerID, CustomerKey, CustomerEmail string
	Key                                    string // unique per program: retries with the same key change nothing
	Amount                                 int64  // minor units of Units
	Units                                  string // lower-case ISO 4217 code
	Action                                 string // "sale" unless said otherwise
	ProductID, ProductType                 string
	Source                                 string // api, or the name of the provider that sent the payment
	Livemode                               bool
	// CreatedAt is the sale's time when it is not now (imports, backfills): hold_days
	// and max_months count from it. Zero means now; it may not be in the future.
	CreatedAt time.Time
	// NotRewardable records the sale without rewards (Partnero's rewardable: false).
	NotRewardable bool
	// DiscountCode is the promotion code the buyer paid with, as given.
	DiscountCode string
	// DiscountAmount and GrossAmount are minor units of Units, stored and returned as
	// given; nil when not given.
	DiscountAmount, GrossAmount *int64
	// RequestID names the request behind the sale in its outbox events (it is not
	// part of what makes two requests with one key the same).
	RequestID string
}

var actionRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,31}$`)

// fingerprint is what makes two requests with one key the same transaction. The
// optional fields are appended only when given, so a sale without them has the
// fingerprint it had before they existed and its retries still find it the same.
func (s Sale) fingerprint(buyerPK int64) string {
	f := fmt.Sprintf("%d|%s|%d|%s|%q|%q|%s|%t", buyerPK, s.Action, s.Amount, s.Units, s.ProductID, s.ProductType, s.Source, s.Livemode)
	if !s.CreatedAt.IsZero() {
		f += "|at=" + s.CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	if s.NotRewardable {
		f += "|not-rewardable"
	}
	if s.DiscountCode != "" {
		f += fmt.Sprintf("|code=%q", s.DiscountCode)
	}
	if s.DiscountAmount != nil {
		f += fmt.Sprintf("|discount=%d", *s.DiscountAmount)
	}
	if s.GrossAmount != nil {
		f += fmt.Sprintf("|gross=%d", *s.GrossAmount)
	}
	return f
}

// clockSkew is how far in the future a sale's created_at may be: the sender's clock
// may run a little ahead of ours. Such a sale is recorded as of now.
const clockSkew = time.Minute

// earliestSale is the earliest created_at a sale may have.
var earliestSale = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

func (s *Sale) check(verr *referral.ValidationError, prefix string) {
	s.Key = strings.TrimSpace(s.Key)
	switch {
	case s.Key == "":
		verr.Add(prefix+"key", "The key field is required.")
	case len(s.Key) > 255 || strings.ContainsFunc(s.Key, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		verr.Add(prefix+"key", "The key must be at most 255 characters without control characters.")
	}
	if s.Action == "" {
		s.Action = "sale"
	}
	if !actionRE.MatchString(s.Action) {
		verr.Add(prefix+"action", "The action must be a lower-case word such as sale.")
	}
	if s.Amount <= 0 {
		verr.Add(prefix+"amount", "The amount must be greater than 0.")
	}
	if !money.IsCurrency(s.Units) {
		verr.Add(prefix+"amount_units", "The amount_units must be an ISO 4217 currency code.")
	}
	for field, v := range map[string]string{"product_id": s.ProductID, "product_type": s.ProductType} {
		if len(v) > 255 || strings.ContainsRune(v, 0) {
			verr.Add(prefix+field, "The "+field+" must be at most 255 characters.")
		}
	}
	s.DiscountCode = strings.TrimSpace(s.DiscountCode)
	if len(s.DiscountCode) > 255 || strings.ContainsFunc(s.DiscountCode, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		verr.Add(prefix+"discount_code", "The discount_code must be at most 255 characters without control characters.")
	}
	for field, v := range map[string]*int64{"discount_amount": s.DiscountAmount, "gross_amount": s.GrossAmount} {
		if v != nil && *v < 0 {
			verr.Add(prefix+field, "The "+field+" must not be negative.")
		}
	}
	if !s.CreatedAt.IsZero() {
		// As PostgreSQL keeps it, so that what is answered is what is stored.
		s.CreatedAt = s.CreatedAt.UTC().Truncate(time.Microsecond)
		switch {
		case s.CreatedAt.After(time.Now().Add(clockSkew)):
			verr.Add(prefix+"created_at", "The created_at must not be in the future.")
		case s.CreatedAt.Before(earliestSale):
			verr.Add(prefix+"created_at", "The created_at must not be before 1970.")
		}
	}
	if s.Source == "" {
		s.Source = "api"
	}
}

// isSubscription says whether a sale is a subscription payment for the subscription trigger.
func (s Sale) isSubscription() bool { return isSubscription(s.Action, s.ProductType) }

// isSubscription says whether a sale of this action and product type is a
// subscription payment: product_type subscription, or action subscription or renewal.
func isSubscription(action, productType string) bool {
	return productType == "subscription" || action == "subscription" || action == "renewal"
}

// RecordTransaction records a sale and the rewards the program's rules grant for it
// (none when nobody referred the buyer), with their ledger entries and events, in one
// database transaction. A sale whose key was recorded before returns that transaction
// (created=false) if it says the same, and a conflict on key if it does not.
func RecordTransaction(ctx context.Context, db *store.DB, p store.Program, s Sale) (t store.Transaction, created bool, err error) {
	s, rules, err := checkSale(p, s)
	if err != nil {
		return store.Transaction{}, false, err
	}
	r := recordOne(ctx, db, &batchedSale{p: p, rules: rules, s: s})
	return r.t, r.created, r.err
}

// recordOne records one checked sale in a transaction of its own.
func recordOne(ctx context.Context, db *store.DB, bs *batchedSale) batchResult {
	var r batchResult
	err := db.InTx(ctx, func(tx *store.Tx) error {
		rs, err := recordSales(ctx, tx, []*batchedSale{bs})
		if err != nil {
			return err
		}
		r = rs[0]
		return r.err
	})
	if err != nil {
		return batchResult{err: err}
	}
	return r
}

// checkSale validates s and reads the program's reward rules.
func checkSale(p store.Program, s Sale) (Sale, []rewards.Rule, error) {
	verr := &referral.ValidationError{}
	s.check(verr, "")
	if err := verr.Err(); err != nil {
		return s, nil, err
	}
	rules, err := referral.ProgramRules(p)
	return s, rules, err
}

// RecordTransactions records several sales atomically: all of them or none.
func RecordTransactions(ctx context.Context, db *store.DB, p store.Program, sales []Sale) (ts []store.Transaction, created int, err error) {
	verr := &referral.ValidationError{}
	for i := range sales {
		sales[i].check(verr, fmt.Sprintf("transactions.%d.", i))
	}
	if err := verr.Err(); err != nil {
		return nil, 0, err
	}
	rules, err := referral.ProgramRules(p)
	if err != nil {
		return nil, 0, err
	}
	batch := make([]*batchedSale, len(sales))
	for i, s := range sales {
		batch[i] = &batchedSale{p: p, rules: rules, s: s}
	}
	err = db.InTx(ctx, func(tx *store.Tx) error {
		ts, created = nil, 0
		rs, err := recordSales(ctx, tx, batch)
		if err != nil {
			return err
		}
		for i, r := range rs {
			if r.err != nil {
				var ve *referral.ValidationError
				if errors.As(r.err, &ve) {
					return prefixed(ve, fmt.Sprintf("transactions.%d.", i))
				}
				return r.err
			}
			ts = append(ts, r.t)
			if r.created {
				created++
			}
		}
		return nil
	})
	return ts, created, err
}

func prefixed(ve *referral.ValidationError, prefix string) error {
	out := &referral.ValidationError{}
	for f, msgs := range ve.Fields {
		for _, m := range msgs {
			out.Add(prefix+f, m)
		}
	}
	return out
}

// SaleRequest is a program's sale, for RecordSalesTx.
type SaleRequest struct {
	Program store.Program
	Sale    Sale
}

// SaleResult is what became of a SaleRequest: its transaction, whether this call
// created it, or the sale's own error (invalid, an unknown customer, a key reused
// for another sale).
type SaleResult struct {
	Transaction store.Transaction
	Created     bool
	Err         error
}

// RecordSalesTx records sales in the caller's transaction, as RecordTransaction records
// one, in as few statements as it can: the workers record the sales of a batch of
// billing events together with the events' outcomes. A sale's own problem is its
// result's Err; the error returned is a database error, after which tx must roll back.
func RecordSalesTx(ctx context.Context, tx *store.Tx, reqs []SaleRequest) ([]SaleResult, error) {
	out := make([]SaleResult, len(reqs))
	var batch []*batchedSale
	var at []int
	for i, r := range reqs {
		s, rules, err := checkSale(r.Program, r.Sale)
		if err != nil {
			out[i].Err = err
			continue
		}
		batch, at = append(batch, &batchedSale{p: r.Program, rules: rules, s: s}), append(at, i)
	}
	if len(batch) == 0 {
		return out, nil
	}
	rs, err := recordSales(ctx, tx, batch)
	if err != nil {
		return nil, err
	}
	for j, r := range rs {
		out[at[j]] = SaleResult{Transaction: r.t, Created: r.created, Err: r.err}
	}
	return out, nil
}

// batchedSale is a checked sale with its program and reward rules.
type batchedSale struct {
	p     store.Program
	rules []rewards.Rule
	s     Sale
}

type batchResult struct {
	t       store.Transaction
	created bool
	err     error
}

type programKey struct {
	programPK int64
	key       string
}

// recordSales records sales in tx and returns each one's result, in order: the core
// of RecordTransaction, RecordTransactions and the Batcher. A sale's own problem (an
// unknown customer, a key reused for another sale) is its result's error; err is a database error, after which tx must roll back.
//
// Every sale's key is locked and its buyer read in one statement (in program and
// key order), and the sales are written in as few statements as can be (in referrer,
// then buyer, order): a new one starts only where a buyer buys twice, or buys and
// refers. A sale whose key came twice finds the first one's transaction.
func recordSales(ctx context.Context, tx *store.Tx, sales []*batchedSale) ([]batchResult, error) {
	results := make([]batchResult, len(sales))
	byKey := make([]int, len(sales))
	for i := range byKey {
		byKey[i] = i
	}
	sort.SliceStable(byKey, func(x, y int) bool {
		a, b := sales[byKey[x]], sales[byKey[y]]
		if a.p.PK != b.p.PK {
			return a.p.PK < b.p.PK
		}
		return a.s.Key < b.s.Key
	})
	seen := map[programKey]bool{}
	var again, asked []int
	var qs []store.BuyerQuery
	for _, i := range byKey {
		bs := sales[i]
		k := programKey{bs.p.PK, bs.s.Key}
		if seen[k] {
			again = append(again, i)
			continue
		}
		seen[k] = true
		asked = append(asked, i)
		qs = append(qs, store.BuyerQuery{ProgramPK: bs.p.PK, ID: bs.s.CustomerID, Key: bs.s.CustomerKey, Email: bs.s.CustomerEmail, SaleKey: bs.s.Key})
	}
	// Before the buyers are read: a code may make the buyer a referral (codes.go).
	if err := referByCodes(ctx, tx, sales); err != nil {
		return nil, err
	}
	buyers, err := store.FindBuyers(ctx, tx, qs)
	if err != nil {
		return nil, err
	}
	type candidate struct {
		i     int
		buyer store.Buyer
	}
	var cands []candidate
	for j, b := range buyers {
		i, bs := asked[j], sales[asked[j]]
		switch {
		case b.PK == 0:
			results[i].err = referral.Invalid("customer", "The customer does not exist.")
		case b.Existing.Valid && b.Existing.String != bs.s.fingerprint(b.PK):
			results[i].err = &store.ConflictError{Field: "key"}
		case b.Existing.Valid:
			if results[i].t, err = store.GetTransaction(ctx, tx, bs.p.PK, bs.s.Key, false); err != nil {
				return nil, err
			}
		default:
			cands = append(cands, candidate{i, b})
		}
	}
	sort.SliceStable(cands, func(x, y int) bool {
		a, b := cands[x].buyer, cands[y].buyer
		if a.ReferrerPK.Int64 != b.ReferrerPK.Int64 {
			return a.ReferrerPK.Int64 < b.ReferrerPK.Int64
		}
		return a.PK < b.PK
	})
	var group []store.Sale
	var groupOf []int
	buying, referring := map[int64]bool{}, map[int64]bool{}
	write := func() error {
		if err := store.InsertSales(ctx, tx, group); err != nil {
			return err
		}
		for k, ws := range group {
			i := groupOf[k]
			if ws.Waiting {
				if err := applyWaitingRefunds(ctx, tx, sales[i].p, ws.T); err != nil {
					return err
				}
			}
			results[i] = batchResult{t: *ws.T, created: true}
		}
		group, groupOf = group[:0], groupOf[:0]
		clear(buying)
		clear(referring)
		return nil
	}
	bought := map[int64]int{} // sales of each buyer planned so far
	for _, c := range cands {
		b := c.buyer
		if buying[b.PK] || referring[b.PK] || (b.ReferrerPK.Valid && buying[b.ReferrerPK.Int64]) {
			if err := write(); err != nil {
				return nil, err
			}
		}
		ws, err := planSale(sales[c.i], b, b.Purchases+1+bought[b.PK])
		if err != nil {
			return nil, err
		}
		bought[b.PK]++
		buying[b.PK] = true
		if b.ReferrerPK.Valid {
			referring[b.ReferrerPK.Int64] = true
		}
		group, groupOf = append(group, ws), append(groupOf, c.i)
	}
	if len(group) > 0 {
		if err := write(); err != nil {
			return nil, err
		}
	}
	for _, i := range again {
		rs, err := recordSales(ctx, tx, sales[i:i+1])
		if err != nil {
			return nil, err
		}
		results[i] = rs[0]
	}
	if err := recordCodeUses(ctx, tx, sales, results); err != nil {
		return nil, err
	}
	return results, nil
}

// planSale computes what a sale of buyer earns, as its purchase-th purchase, and the
// events it writes. A buyer nobody referred earns nothing: there is no one to reward
// and no referral to reward the buyer for. It writes nothing: InsertSales confirms the number under the
// buyer's lock, or the transaction starts over.
func planSale(bs *batchedSale, buyer store.Buyer, purchase int) (store.Sale, error) {
	p, s := bs.p, bs.s
	now := store.Now()
	at := s.CreatedAt // the sale's time
	if at.IsZero() || at.After(now) {
		at = now
	}
	t := &store.Transaction{
		ProgramPK: p.PK, Key: s.Key, CustomerPK: buyer.PK, ReferrerPK: buyer.ReferrerPK, Action: s.Action,
		Amount: s.Amount, Units: s.Units, ProductID: nullable(s.ProductID), ProductType: nullable(s.ProductType),
		Rewardable: !s.NotRewardable, DiscountCode: nullable(s.DiscountCode), DiscountAmount: nullInt(s.DiscountAmount),
		GrossAmount: nullInt(s.GrossAmount), Source: s.Source, Livemode: s.Livemode, PurchaseNumber: purchase,
		Fingerprint: s.fingerprint(buyer.PK), CreatedAt: at, RequestID: s.RequestID,
		Buyer: store.CustomerRef{PK: buyer.PK, ID: buyer.ID, Key: buyer.Key, Email: buyer.Email, Name: buyer.Name},
	}
	var earned []rewards.Earned
	if buyer.ReferrerPK.Valid {
		t.Referrer = &store.CustomerRef{PK: buyer.ReferrerPK.Int64, ID: buyer.RefID.String, Key: buyer.RefKey.String,
			Email: buyer.RefEmail, Name: buyer.RefName}
	}
	if buyer.ReferrerPK.Valid && t.Rewardable {
		var err error
		earned, err = rewards.ForPurchase(bs.rules, rewards.Purchase{
			Amount: s.Amount, Units: s.Units, Number: purchase, Subscription: s.isSubscription(), At: at, ReferredAt: buyer.CreatedAt,
		})
		if err != nil {
			return store.Sale{}, err
		}
	}
	t.Rewards = newRewards(p, earned, buyer.ReferrerPK.Int64, buyer.PK, sql.NullInt64{}, t.Key, at, now)
	events := make([]store.Event, 0, len(t.Rewards)+1)
	for _, r := range t.Rewards {
		events = append(events, event("reward.created", RewardJSON(r)), rewardedEvent(r, t.Referrer, t.Buyer))
	}
	events = append(events, event("transaction.created", TransactionJSON(*t)))
	return store.Sale{T: t, Rewards: t.Rewards, Events: events, RecordedAt: now}, nil
}

// applyWaitingRefunds applies the refunds that arrived before the sale t, just
// written; t becomes the transaction as they leave it.
func applyWaitingRefunds(ctx context.Context, tx *store.Tx, p store.Program, t *store.Transaction) error {
	got, err := store.GetTransaction(ctx, tx, p.PK, t.Key, true)
	if err != nil {
		return err
	}
	refunds, err := store.WaitingRefunds(ctx, tx, p.PK, got.Key)
	if err != nil {
		return err
	}
	for _, r := range refunds {
		if err := applyRefund(ctx, tx, p, &got, refundDelta(got, r.Amount, r.Cumulative), store.Now()); err != nil {
			return err
		}
		if err := store.MarkRefundApplied(ctx, tx, r.PK); err != nil {
			return err
		}
	}
	*t = got
	return nil
}

func event(name string, v any) store.Event {
	b, _ := json.Marshal(v)
	return store.Event{Event: name, Payload: b}
}

// newRewards turns what the rules earned into rewards, created now: the referrer's go
// to referrerPK, the friend's to referredPK. A held one is available hold_days after
// at, the time of its cause (an imported sale's may be past), and pending until then.
func newRewards(p store.Program, earned []rewards.Earned, referrerPK, referredPK int64, signupPK sql.NullInt64, transactionKey string, at, now time.Time) []store.Reward {
	out := make([]store.Reward, 0, len(earned))
	for _, e := range earned {
		r := store.Reward{
			ProgramPK: p.PK, Key: "rwd_" + referral.RandomString(16), CustomerPK: referrerPK, Recipient: e.Recipient, Rule: e.Rule,
			Trigger: e.Trigger, Type: e.Type, Amount: e.Amount, Units: e.Units, IsCurrency: e.IsCurrency,
			Proportional: e.Proportional, Status: "approved", SignupPK: signupPK,
			AvailableAt: now, CreatedAt: now, TransactionKey: nullable(transactionKey),
		}
		if e.Recipient == "referred" {
			r.CustomerPK = referredPK
		}
		if e.HoldDays > 0 {
			r.AvailableAt = at.AddDate(0, 0, e.HoldDays)
			if r.AvailableAt.After(now) {
				r.Status = "pending"
			}
		}
		out = append(out, r)
	}
	return out
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullInt(v *int64) sql.NullInt64 {
	if v == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: *v, Valid: true}
}

// grantSignup stores the rewards a referred customer's sign-up earned, one by one in
// customer and units order, the order in which every writer locks balances.
func grantSignup(ctx context.Context, tx *store.Tx, p store.Program, earned []rewards.Earned, referrer, referred store.CustomerRef, now time.Time) error {
	rs := newRewards(p, earned, referrer.PK, referred.PK, sql.NullInt64{Int64: referred.PK, Valid: true}, "", now, now)
	sort.SliceStable(rs, func(i, j int) bool { return balanceOrder(&rs[i], &rs[j]) })
	for i := range rs {
		if err := store.InsertReward(ctx, tx, &rs[i], rewardPayload(rs[i])); err != nil {
			return err
		}
		if err := writeRewarded(ctx, tx, rs[i], &referrer, referred); err != nil {
			return err
		}
	}
	return nil
}

// balanceOrder is the order in which every writer locks balance rows: by customer,
// then units.
func balanceOrder(a, b *store.Reward) bool {
	if a.CustomerPK != b.CustomerPK {
		return a.CustomerPK < b.CustomerPK
	}
	return a.Units < b.Units
}

func writeEvent(ctx context.Context, q store.Querier, programPK int64, event string, v any, at time.Time) error {
	payload, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return store.InsertOutbox(ctx, q, programPK, event, string(payload), at)
}

// Refund asks for money back on a transaction.
type Refund struct {
	TransactionKey string
	// Key identifies the refund itself, so a retried refund changes nothing.
	Key string
	// Amount in minor units of the transaction's units; 0 refunds all that is left.
	Amount int64
	// Cumulative says Amount is the total refunded so far on the transaction (Stripe's
	// amount_refunded), not this refund alone: only what exceeds the refunded amount
	// already recorded is refunded.
	Cumulative bool
	// WaitForSale keeps a refund of an unknown transaction until the sale is recorded
	// (billing providers may deliver the refund first); without it such a refund is
	// referral.NotFoundError.
	WaitForSale bool
}

// RefundTransaction refunds (part of) a transaction: refunded_amount rises, that
// share of its proportional rewards is reversed, and a full refund sets deleted_at
// and reverses every reward. A refund whose key was applied before changes nothing.
// The transaction is returned; found is false for a refund left waiting for its sale.
func RefundTransaction(ctx context.Context, db *store.DB, p store.Program, r Refund) (t store.Transaction, found bool, err error) {
	if r.Amount < 0 {
		return store.Transaction{}, false, referral.Invalid("amount", "The refund amount must not be negative.")
	}
	err = db.InTx(ctx, func(tx *store.Tx) error {
		t, found, err = refundTx(ctx, tx, p, r)
		return err
	})
	return t, found, err
}

// refundTx is RefundTransaction in the caller's transaction.
func refundTx(ctx context.Context, tx *store.Tx, p store.Program, r Refund) (t store.Transaction, found bool, err error) {
	if r.Key == "" {
		r.Key = "full:" + r.TransactionKey
	}
	if err := store.LockKey(ctx, tx, p.PK, store.TransactionLock(r.TransactionKey)); err != nil {
		return t, false, err
	}
	t, err = store.GetTransaction(ctx, tx, p.PK, r.TransactionKey, true)
	notFound := store.IsNotFound(err)
	if err != nil && !notFound {
		return t, false, err
	}
	if notFound && !r.WaitForSale {
		return t, false, &referral.NotFoundError{What: "transaction"}
	}
	amount := sql.NullInt64{Int64: r.Amount, Valid: r.Amount > 0}
	inserted, err := store.InsertRefund(ctx, tx, &store.Refund{
		ProgramPK: p.PK, Key: r.Key, TransactionKey: r.TransactionKey, Amount: amount, Cumulative: r.Cumulative,
		Applied: !notFound, CreatedAt: store.Now(),
	})
	if err != nil || notFound {
		return t, false, err
	}
	if !inserted {
		return t, true, nil // this refund was applied before
	}
	return t, true, applyRefund(ctx, tx, p, &t, refundDelta(t, amount, r.Cumulative), store.Now())
}

// refundDelta is what a refund adds to t's refunded amount: amount itself, or for a
// cumulative refund what exceeds what t has refunded already (never negative).
func refundDelta(t store.Transaction, amount sql.NullInt64, cumulative bool) sql.NullInt64 {
	if !cumulative || !amount.Valid {
		return amount
	}
	d := amount.Int64 - t.Refunded
	if d <= 0 {
		return sql.NullInt64{Int64: 0, Valid: true}
	}
	return sql.NullInt64{Int64: d, Valid: true}
}

// applyRefund refunds amount (all that is left when not Valid) of the locked t.
func applyRefund(ctx context.Context, tx *store.Tx, p store.Program, t *store.Transaction, amount sql.NullInt64, now time.Time) error {
	delta := t.Amount - t.Refunded
	if amount.Valid && amount.Int64 < delta {
		delta = amount.Int64
	}
	if delta <= 0 {
		return nil
	}
	t.Refunded += delta
	full := t.Refunded == t.Amount
	rs, err := store.LockRewards(ctx, tx, t.PK)
	if err != nil {
		return err
	}
	// The referrer's counters, then the buyer's, then balances, as everywhere.
	if full {
		if t.ReferrerPK.Valid {
			if err := store.LockCounters(ctx, tx, t.ReferrerPK.Int64); err != nil {
				return err
			}
		}
		live, err := store.EndSale(ctx, tx, t.CustomerPK)
		if err != nil {
			return err
		}
		if live == 0 && t.ReferrerPK.Valid {
			if err := store.AddSuccessful(ctx, tx, p.PK, t.ReferrerPK.Int64, -1); err != nil {
				return err
			}
		}
		t.DeletedAt = sql.NullTime{Time: now, Valid: true}
	}
	order := make([]*store.Reward, len(rs))
	for i := range rs {
		rs[i].TransactionKey = nullable(t.Key)
		order[i] = &rs[i]
	}
	sort.SliceStable(order, func(i, j int) bool { return balanceOrder(order[i], order[j]) })
	for _, r := range order {
		target := int64(0)
		switch {
		case full:
			target = r.Amount
		case r.Proportional:
			target = money.Prorate(r.Amount, t.Refunded, t.Amount)
		}
		if d := target - r.Reversed; d > 0 {
			if err := store.ReverseReward(ctx, tx, r, d, now, rewardPayload); err != nil {
				return err
			}
		}
	}
	t.Rewards = rs
	if err := store.SetRefunded(ctx, tx, t); err != nil {
		return err
	}
	if full {
		return writeEvent(ctx, tx, p.PK, "transaction.deleted", TransactionJSON(*t), now)
	}
	return nil
}

func rewardPayload(r store.Reward) string {
	b, _ := json.Marshal(RewardJSON(r))
	return string(b)
}

// ApproveDueRewards approves held rewards whose hold has passed, in batches, until
// none is left; it returns how many it approved.
func ApproveDueRewards(ctx context.Context, db *store.DB, now time.Time) (int, error) {
	total := 0
	for {
		n, err := store.ApproveDue(ctx, db, now, 500, rewardPayload)
		total += n
		if err != nil || n < 500 {
			return total, err
		}
	}
}

// GetTransaction returns the program's transaction with this key.
func GetTransaction(ctx context.Context, db *store.DB, p store.Program, key string) (store.Transaction, error) {
	t, err := store.GetTransaction(ctx, db, p.PK, key, false)
	if store.IsNotFound(err) {
		return t, &referral.NotFoundError{What: "transaction"}
	}
	return t, err
}

// ListTransactions lists the program's transactions, newest first; customer (the
// buyer's id or key) and key filter them.
func ListTransactions(ctx context.Context, db *store.DB, p store.Program, key, customer string, limit, offset int) ([]store.Transaction, int, error) {
	f := store.TransactionFilter{ProgramPK: p.PK, Key: key, Limit: limit, Offset: offset}
	if customer != "" {
		c, err := store.GetCustomer(ctx, db, p.PK, customer, false)
		if store.IsNotFound(err) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		f.CustomerPK = c.PK
	}
	return store.ListTransactions(ctx, db, f)
}

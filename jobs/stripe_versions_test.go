package jobs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// stripeVersions are the Stripe API versions whose payloads are in
// testdata/stripe/<version>: each directory holds one customer's subscription payment
// (invoice in_…SubInvoice, PaymentIntent pi_…SubPayment, charge ch_…SubCharge, 2000
// usd) and one one-off payment (pi_…OneOffPay, 5000 usd), as that version sends them.
var stripeVersions = []string{"2023-10-16", "2024-06-20", "2025-03-31.basil", "2025-09-30.clover"}

// current says whether the version's charges no longer name their invoice.
func current(version string) bool { return version >= "2025-03-31" }

// The events of one subscription payment, and of one one-off payment.
var (
	subscriptionEvents = []string{"checkout.session.completed.subscription", "invoice.paid", "invoice.payment_succeeded",
		"invoice_payment.paid", "charge.succeeded", "payment_intent.succeeded"}
	oneOffEvents = []string{"checkout.session.completed.payment", "charge.succeeded.oneoff", "payment_intent.succeeded.oneoff"}
)

// versionEnv is a program with a 10% purchase rule, a referrer "ref" and the friend
// "cust_friend" it referred, who pays in the payloads.
type versionEnv struct {
	*processEnv
	version string
	mux     *asynq.ServeMux
}

func newVersionEnv(t *testing.T, version, friendEmail string) *versionEnv {
	e := newProcessEnv(t)
	in := referral.CustomerInput{Key: text("cust_friend"), ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}
	if friendEmail != "" {
		in.Email = &friendEmail
	}
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, in); err != nil {
		t.Fatal(err)
	}
	return &versionEnv{processEnv: e, version: version, mux: jobs.Handlers(e.db, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)}
}

// payload reads testdata/stripe/<version>/<name>.json; ok is false when the version
// has no such event (invoice_payment.paid before basil).
func (e *versionEnv) payload(name string) (body []byte, ok bool) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "stripe", e.version, name+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return b, true
}

// store stores the named events as ingest would, and returns them.
func (e *versionEnv) store(names []string, edit func(map[string]any)) []store.ProviderEvent {
	e.t.Helper()
	var evs []store.ProviderEvent
	for _, name := range names {
		body, ok := e.payload(name)
		if !ok {
			continue
		}
		if edit != nil {
			var v map[string]any
			if err := json.Unmarshal(body, &v); err != nil {
				e.t.Fatal(err)
			}
			edit(v)
			body, _ = json.Marshal(v)
		}
		var env struct{ ID, Type string }
		if err := json.Unmarshal(body, &env); err != nil {
			e.t.Fatal(err)
		}
		evs = append(evs, store.ProviderEvent{ProgramPK: e.p.PK, Provider: "stripe", EventID: env.ID, Type: env.Type,
			Payload: body, ReceivedAt: store.Now()})
	}
	if _, err := store.InsertProviderEvents(e.ctx, e.db, evs); err != nil {
		e.t.Fatal(err)
	}
	// A delivery stored before (a retry) is the event already stored.
	for i := range evs {
		if err := e.db.Get(&evs[i].PK, `SELECT pk FROM provider_events WHERE program_pk = $1 AND event_id = $2`, e.p.PK, evs[i].EventID); err != nil {
			e.t.Fatal(err)
		}
	}
	return evs
}

// run runs every event's task twice at once, all events concurrently, through the
// workers' handlers. Tasks of payments in their hold fail with a HeldError, as asynq
// would see them; run then lets the hold pass (the events are made an hour old) and
// runs those tasks again, as asynq's retry would.
func (e *versionEnv) run(evs []store.ProviderEvent) {
	e.t.Helper()
	var mu sync.Mutex
	var held []store.ProviderEvent
	var wg sync.WaitGroup
	for _, ev := range evs {
		for range 2 {
			wg.Go(func() {
				task, _ := jobs.ProcessEventTask(ev.PK)
				err := e.mux.ProcessTask(e.ctx, task)
				var h *jobs.HeldError
				switch {
				case errors.As(err, &h):
					mu.Lock()
					if !slices.ContainsFunc(held, func(x store.ProviderEvent) bool { return x.PK == ev.PK }) {
						held = append(held, ev)
					}
					mu.Unlock()
				case err != nil:
					e.t.Errorf("task of %s: %v", ev.EventID, err)
				}
			})
		}
	}
	wg.Wait()
	if len(held) == 0 {
		return
	}
	for _, ev := range held {
		if _, err := e.db.Exec(`UPDATE provider_events SET received_at = received_at - interval '1 hour' WHERE pk = $1`, ev.PK); err != nil {
			e.t.Fatal(err)
		}
	}
	e.run(held)
}

func shuffled[T any](r *rand.Rand, s []T) []T {
	s = slices.Clone(s)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// ids are a version's object ids, as testdata/stripe/README.md lists them.
func ids(version string) (invoice, subPI, oneOffPI string) {
	v := map[string]string{"2023-10-16": "2310", "2024-06-20": "2406", "2025-03-31.basil": "2503", "2025-09-30.clover": "2509"}[version]
	return "stripe:in_1Ref" + v + "SubInvoice", "stripe:pi_3Ref" + v + "SubPayment", "stripe:pi_3Ref" + v + "OneOffPay"
}

// live are the keys of the program's transactions that are not folded, in order.
func (e *versionEnv) live() []string {
	var keys []string
	if err := e.db.Select(&keys, `SELECT key FROM transactions WHERE program_pk = $1 AND folded_into IS NULL ORDER BY key`, e.p.PK); err != nil {
		e.t.Fatal(err)
	}
	return keys
}

func (e *versionEnv) transaction(key string) store.Transaction {
	e.t.Helper()
	t, err := ledger.GetTransaction(e.ctx, e.db, e.p, key)
	if err != nil {
		e.t.Fatalf("transaction %s: %v", key, err)
	}
	return t
}

// checkNoPending fails for an event the workers left unprocessed.
func (e *versionEnv) checkNoPending() {
	e.t.Helper()
	var left []string
	if err := e.db.Select(&left, `SELECT event_id || ' ' || status FROM provider_events WHERE status IN ('received', 'failed')`); err != nil {
		e.t.Fatal(err)
	}
	if len(left) > 0 {
		e.t.Errorf("events left: %v", left)
	}
}

// checkSums fails unless every balance is the sum of its ledger, every reward
// total the sum of its customer's rewards less what was reversed, and every reward
// announced by exactly one customer.rewarded event naming its recipient (rewards a
// renumbered sale earns included).
func (e *versionEnv) checkSums() {
	e.t.Helper()
	var bad []string
	if err := e.db.Select(&bad, `
		SELECT 'balance ' || b.customer_pk || ' ' || b.units FROM balances b
		WHERE (b.amount, b.pending) <> (SELECT coalesce(sum(amount), 0), coalesce(sum(pending), 0) FROM ledger l
			WHERE l.customer_pk = b.customer_pk AND l.units = b.units)
		UNION ALL
		SELECT 'reward total ' || t.customer_pk || ' ' || t.units FROM reward_totals t
		WHERE t.total <> (SELECT coalesce(sum(amount - reversed), 0) FROM rewards w WHERE w.customer_pk = t.customer_pk AND w.units = t.units)
		UNION ALL
		SELECT 'customer.rewarded events of reward ' || w.key FROM rewards w JOIN customers c ON c.pk = w.customer_pk
		WHERE (SELECT count(*) FROM outbox o WHERE o.event = 'customer.rewarded' AND o.payload->>'key' = w.key
			AND o.payload->'customer'->>'key' = c.key) <> 1`); err != nil {
		e.t.Fatal(err)
	}
	if len(bad) > 0 {
		e.t.Errorf("running sums that differ from what they sum, or rewards without their one event: %v", bad)
	}
}

// dropKey removes the customer key wherever the payload carries it.
func dropKey(v map[string]any) {
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			delete(x, "customer_key")
			if _, ok := x["client_reference_id"]; ok {
				x["client_reference_id"] = nil
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(v)
}

// TestStripeVersionsAttribution finds the paying friend of an invoice by each place
// a version carries who paid: the subscription's metadata (subscription_details
// before basil, parent.subscription_details since), the invoice's own metadata, the
// customer linked by a Checkout session's client_reference_id, and the email.
func TestStripeVersionsAttribution(t *testing.T) {
	t.Parallel()
	for _, version := range stripeVersions {
		cases := []struct {
			name   string
			email  string
			first  []string // processed before the invoice
			edit   func(map[string]any)
			status store.EventStatus
		}{
			{name: "subscription metadata"},
			{name: "invoice metadata", edit: func(v map[string]any) {
				dropKey(v)
				v["data"].(map[string]any)["object"].(map[string]any)["metadata"] = map[string]any{"customer_key": "cust_friend"}
			}},
			{name: "checkout session link", first: []string{"checkout.session.completed.subscription"}, edit: dropKey},
			{name: "email", email: "friend@example.com", edit: dropKey},
			{name: "nobody", edit: dropKey, status: "unattributed"},
		}
		for _, c := range cases {
			t.Run(version+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				e := newVersionEnv(t, version, c.email)
				e.run(e.store(c.first, nil))
				ev := e.store([]string{"invoice.paid"}, c.edit)[0]
				e.run([]store.ProviderEvent{ev})
				invoice, _, _ := ids(version)
				got, err := store.GetProviderEvent(e.ctx, e.db, ev.PK)
				if err != nil {
					t.Fatal(err)
				}
				if c.status != "" {
					if got.Status != c.status || len(e.live()) != 0 {
						t.Fatalf("event %s with %v, transactions %v; want %s and none", got.Status, got.TransactionKeys, e.live(), c.status)
					}
					return
				}
				if got.Status != "processed" || !slices.Equal(got.TransactionKeys, []string{invoice}) {
					t.Fatalf("event %s with %v (%s), want processed with %s", got.Status, got.TransactionKeys, got.Error.String, invoice)
				}
				tx := e.transaction(invoice)
				if tx.Buyer.Key != "cust_friend" || tx.Amount != 2000 || tx.Units != "usd" || tx.ProductType.String != "subscription" ||
					!strings.HasPrefix(tx.ProductID.String, "prod_") {
					t.Errorf("transaction %+v", tx)
				}
				if b := e.balance("ref"); b != 200 {
					t.Errorf("referrer balance %d, want 200", b)
				}
			})
		}
	}
}

// TestStripeVersionsOneSalePerPayment delivers every event of a payment, each twice
// at once and all concurrently, in shuffled orders, with its refunds among them
// (before or after the sale), and checks that each payment is exactly one sale with
// exact balances, on every API version.
func TestStripeVersionsOneSalePerPayment(t *testing.T) {
	t.Parallel()
	for _, version := range stripeVersions {
		invoice, _, oneOff := ids(version)
		cases := []struct {
			name     string
			first    []string // processed on their own before the others
			events   []string
			live     []string
			refunded map[string]int64
			balance  int64
		}{
			{name: "subscription payment", events: subscriptionEvents, live: []string{invoice}, balance: 200},
			{name: "one-off payment", events: oneOffEvents, live: []string{oneOff}, balance: 500},
			{name: "both", events: append(slices.Clone(subscriptionEvents), oneOffEvents...), live: []string{invoice, oneOff}, balance: 700},
			{name: "partial refund", events: append(slices.Clone(subscriptionEvents), "charge.refunded.partial"),
				live: []string{invoice}, refunded: map[string]int64{invoice: 500}, balance: 150},
			{name: "partial then full refund", events: append(slices.Clone(subscriptionEvents), "charge.refunded.partial", "charge.refunded"),
				live: []string{invoice}, refunded: map[string]int64{invoice: 2000}, balance: 0},
			{name: "refund before the sale", first: []string{"charge.refunded.partial"}, events: subscriptionEvents,
				live: []string{invoice}, refunded: map[string]int64{invoice: 500}, balance: 150},
			{name: "one-off refund before the sale", first: []string{"charge.refunded.oneoff"}, events: oneOffEvents,
				live: []string{oneOff}, refunded: map[string]int64{oneOff: 5000}, balance: 0},
			{name: "one-off refund", events: append(slices.Clone(oneOffEvents), "charge.refunded.oneoff"),
				live: []string{oneOff}, refunded: map[string]int64{oneOff: 5000}, balance: 0},
		}
		for _, c := range cases {
			for seed := range uint64(3) {
				t.Run(fmt.Sprintf("%s/%s/order%d", version, c.name, seed), func(t *testing.T) {
					t.Parallel()
					e := newVersionEnv(t, version, "friend@example.com")
					r := rand.New(rand.NewPCG(seed, 12))
					e.run(e.store(c.first, nil))
					e.run(e.store(shuffled(r, c.events), nil))
					// The same events again, as Stripe retries them: nothing changes.
					e.run(e.store(shuffled(r, c.events), nil))
					e.checkNoPending()
					if got := e.live(); !slices.Equal(got, c.live) {
						t.Fatalf("transactions %v, want %v", got, c.live)
					}
					// The links came within the hold: no charge was taken for a one-off
					// sale even for a moment (nothing was folded).
					var n int
					if err := e.db.Get(&n, `SELECT count(*) FROM transactions`); err != nil || n != len(c.live) {
						t.Errorf("%d transactions recorded (%v), want %d", n, err, len(c.live))
					}
					for _, key := range c.live {
						tx := e.transaction(key)
						if tx.Refunded != c.refunded[key] || tx.DeletedAt.Valid != (tx.Refunded == tx.Amount) || tx.Buyer.Key != "cust_friend" {
							t.Errorf("%s refunded %d deleted %v buyer %s, want refunded %d", key, tx.Refunded, tx.DeletedAt.Valid, tx.Buyer.Key, c.refunded[key])
						}
					}
					if b := e.balance("ref"); b != c.balance {
						t.Errorf("referrer balance %d, want %d", b, c.balance)
					}
					e.checkSums()
				})
			}
		}
	}
}

// TestStripeLateLinkFolds: on the versions whose charges no longer name their invoice,
// a charge whose link (invoice_payment.paid) arrives only after the hold is recorded as
// a one-off sale; when the link and the invoice come, that sale is folded into the
// invoice's (reversed, saying into which), whichever of them comes first, and a refund
// of the charge then refunds the invoice's sale.
func TestStripeLateLinkFolds(t *testing.T) {
	t.Parallel()
	for _, version := range stripeVersions {
		if !current(version) {
			continue
		}
		invoice, pi, oneOff := ids(version)
		for _, late := range [][]string{{"invoice_payment.paid", "invoice.paid"}, {"invoice.paid", "invoice_payment.paid"}} {
			t.Run(version+"/"+strings.Join(late, ","), func(t *testing.T) {
				t.Parallel()
				e := newVersionEnv(t, version, "friend@example.com")
				// 10% of every purchase, and 5 USD for the first.
				var patch referral.ProgramPatch
				json.Unmarshal([]byte(`{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"},
					{"recipient": "referrer", "trigger": "first_purchase", "type": "credit", "amount": 5, "amount_type": "fixed", "currency": "usd"}]}`), &patch)
				p, err := referral.UpdateProgram(e.ctx, e.db, e.p.PK, patch)
				if err != nil {
					t.Fatal(err)
				}
				e.p = p
				charge := e.store([]string{"charge.succeeded"}, nil)
				e.run(charge) // held, then recorded when the hold has passed
				if got := e.live(); !slices.Equal(got, []string{pi}) {
					t.Fatalf("transactions %v after the charge alone, want the one-off %s", got, pi)
				}
				if b := e.balance("ref"); b != 700 {
					t.Fatalf("referrer balance %d after the one-off sale, want 700", b)
				}
				for _, name := range late {
					e.run(e.store([]string{name}, nil))
				}
				if got := e.live(); !slices.Equal(got, []string{invoice}) {
					t.Fatalf("transactions %v, want only %s", got, invoice)
				}
				folded := e.transaction(pi)
				if folded.FoldedInto.String != invoice || !folded.DeletedAt.Valid || folded.Refunded != folded.Amount {
					t.Errorf("the one-off sale: folded into %q, deleted %v, refunded %d", folded.FoldedInto.String, folded.DeletedAt.Valid, folded.Refunded)
				}
				for _, r := range folded.Rewards {
					if r.Status != "reversed" {
						t.Errorf("reward of the folded sale is %s", r.Status)
					}
				}
				if v := ledger.TransactionJSON(folded); v.FoldedInto == nil || *v.FoldedInto != invoice {
					t.Errorf("the API shows folded_into %v", v.FoldedInto)
				}
				// Whichever came first, the invoice's sale is the first purchase and earns
				// what a first purchase earns.
				if n := e.transaction(invoice).PurchaseNumber; n != 1 {
					t.Errorf("the invoice's sale is purchase %d, want 1 (the folded sale was none)", n)
				}
				if b := e.balance("ref"); b != 700 {
					t.Errorf("referrer balance %d, want 700: the rewards of one first purchase", b)
				}
				// A next payment is purchase 2.
				e.run(e.store([]string{"checkout.session.completed.payment"}, nil))
				if n := e.transaction(oneOff).PurchaseNumber; n != 2 {
					t.Errorf("the next payment is purchase %d, want 2", n)
				}
				if b := e.balance("ref"); b != 1200 {
					t.Errorf("referrer balance %d after a second payment of 5000, want 1200", b)
				}
				// The charge's events again, and its refund: the invoice's sale is refunded.
				e.run(e.store([]string{"payment_intent.succeeded", "charge.refunded"}, nil))
				if tx := e.transaction(invoice); tx.Refunded != 2000 || !tx.DeletedAt.Valid {
					t.Errorf("invoice refunded %d, deleted %v; want 2000, true", tx.Refunded, tx.DeletedAt.Valid)
				}
				if b := e.balance("ref"); b != 500 {
					t.Errorf("referrer balance %d after the refund, want 500 (the second payment's)", b)
				}
				e.checkNoPending()
				e.checkSums()
			})
		}
	}
}

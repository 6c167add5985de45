package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

type processEnv struct {
	t   *testing.T
	db  *store.DB
	p   store.Program
	ctx context.Context
}

func newProcessEnv(t *testing.T) *processEnv {
	db := storetest.New(t)
	ctx := context.Background()
	p, _, err := referral.CreateProgram(ctx, db, "Acme", "https://acme.test")
	if err != nil {
		t.Fatal(err)
	}
	var patch referral.ProgramPatch
	json.Unmarshal([]byte(`{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"}]}`), &patch)
	if p, err = referral.UpdateProgram(ctx, db, p.PK, patch); err != nil {
		t.Fatal(err)
	}
	if _, err := referral.PutIntegration(ctx, db, p, "stripe", referral.IntegrationInput{WebhookSecrets: []string{"whsec_x"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: text("ref")}); err != nil {
		t.Fatal(err)
	}
	return &processEnv{t: t, db: db, p: p, ctx: ctx}
}

// deliver stores a Stripe event and processes it (twice: the second changes nothing).
func (e *processEnv) deliver(id, typ, object string) store.ProviderEvent {
	e.t.Helper()
	body := fmt.Sprintf(`{"id": %q, "object": "event", "api_version": "2023-10-16", "created": %d, "livemode": true, "type": %q, "data": {"object": %s}}`,
		id, time.Now().Unix(), typ, object)
	news, err := store.InsertProviderEvents(e.ctx, e.db, []store.ProviderEvent{{ProgramPK: e.p.PK, Provider: "stripe", EventID: id, Type: typ, Payload: []byte(body), ReceivedAt: store.Now()}})
	if err != nil {
		e.t.Fatal(err)
	}
	var pk int64
	if err := e.db.Get(&pk, `SELECT pk FROM provider_events WHERE event_id = $1`, id); err != nil {
		e.t.Fatal(err)
	}
	_ = news
	for i := 0; i < 2; i++ {
		if err := jobs.ProcessEvent(e.ctx, e.db, pk); err != nil {
			e.t.Fatal(err)
		}
	}
	ev, err := store.GetProviderEvent(e.ctx, e.db, pk)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

func (e *processEnv) balance(key string) int64 {
	c, err := store.GetCustomer(e.ctx, e.db, e.p.PK, key, false)
	if err != nil {
		e.t.Fatal(err)
	}
	bs, err := store.Balances(e.ctx, e.db, c.PK)
	if err != nil || len(bs) == 0 {
		return 0
	}
	return bs[0].Amount
}

func TestProcessStripePaymentAndRefund(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("friend"),
		ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
		t.Fatal(err)
	}
	ev := e.deliver("evt_pay", "invoice.paid", `{"id": "in_1", "object": "invoice", "amount_paid": 5000, "currency": "usd",
		"customer": "cus_1", "customer_email": "friend@example.com", "subscription": "sub_1", "metadata": {"customer_key": "friend"}}`)
	if ev.Status != "processed" || len(ev.TransactionKeys) != 1 || ev.TransactionKeys[0] != "stripe:in_1" {
		t.Fatalf("event = %+v", ev)
	}
	tx, err := ledger.GetTransaction(e.ctx, e.db, e.p, "stripe:in_1")
	if err != nil || tx.Amount != 5000 || tx.Source != "stripe" || !tx.Livemode || !tx.ProductType.Valid {
		t.Fatalf("transaction = %+v %v", tx, err)
	}
	// Processing the event again from scratch (as a replay, or two workers at once,
	// would) changes nothing.
	if _, err := e.db.Exec(`UPDATE provider_events SET status = 'received' WHERE pk = $1`, ev.PK); err != nil {
		t.Fatal(err)
	}
	if err := jobs.ProcessEvent(e.ctx, e.db, ev.PK); err != nil {
		t.Fatal(err)
	}
	if b := e.balance("ref"); b != 500 {
		t.Errorf("referrer balance %d, want 500 (processed twice, counted once)", b)
	}
	// A later payment by the same Stripe customer without a key is attributed by the link.
	e.deliver("evt_pay2", "invoice.paid", `{"id": "in_2", "object": "invoice", "amount_paid": 1000, "currency": "usd",
		"customer": "cus_1", "customer_email": null, "subscription": "sub_1", "metadata": {}}`)
	if b := e.balance("ref"); b != 600 {
		t.Errorf("balance %d after the linked payment, want 600", b)
	}
	// charge.refunded is cumulative: 20.00 then 50.00 refunded in all.
	for i, refunded := range []int{2000, 5000} {
		e.deliver(fmt.Sprintf("evt_ref%d", i), "charge.refunded", fmt.Sprintf(`{"id": "ch_1", "object": "charge", "amount": 5000,
			"amount_refunded": %d, "currency": "usd", "customer": "cus_1", "invoice": "in_1", "refunded": %t, "metadata": {}}`, refunded, refunded == 5000))
	}
	tx, _ = ledger.GetTransaction(e.ctx, e.db, e.p, "stripe:in_1")
	if tx.Refunded != 5000 || !tx.DeletedAt.Valid {
		t.Errorf("after the refunds: refunded %d, deleted %v", tx.Refunded, tx.DeletedAt)
	}
	if b := e.balance("ref"); b != 100 {
		t.Errorf("balance %d after the full refund of in_1, want 100", b)
	}
}

func TestProcessUnattributedThenReferralKey(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	ev := e.deliver("evt_x", "invoice.paid", `{"id": "in_x", "object": "invoice", "amount_paid": 3000, "currency": "jpy",
		"customer": "cus_x", "customer_email": "nobody@example.com", "subscription": null, "metadata": {}}`)
	if ev.Status != "unattributed" {
		t.Fatalf("status %s, want unattributed", ev.Status)
	}
	// The customer signs up (referred); processing the event again attributes it by email.
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("late"), Email: strptr("nobody@example.com"),
		ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
		t.Fatal(err)
	}
	if err := jobs.ProcessEvent(e.ctx, e.db, ev.PK); err != nil {
		t.Fatal(err)
	}
	if ev, _ = store.GetProviderEvent(e.ctx, e.db, ev.PK); ev.Status != "processed" {
		t.Errorf("status %s after the sign-up", ev.Status)
	}
	if tx, err := ledger.GetTransaction(e.ctx, e.db, e.p, "stripe:in_x"); err != nil || tx.Amount != 3000 || tx.Units != "jpy" {
		t.Errorf("JPY transaction = %+v %v", tx, err)
	}
	// A payment carrying a referrer's key and no known customer creates the friend.
	ev = e.deliver("evt_y", "invoice.paid", `{"id": "in_y", "object": "invoice", "amount_paid": 2000, "currency": "usd",
		"customer": "cus_y", "customer_email": "new@example.com", "subscription": null, "metadata": {"referral_key": "ref"}}`)
	if ev.Status != "processed" {
		t.Fatalf("status %s", ev.Status)
	}
	c, err := store.CustomerByEmail(e.ctx, e.db, e.p.PK, "new@example.com")
	if err != nil || c.Referrer == nil || c.Referrer.Key != "ref" || c.Source != "stripe" {
		t.Errorf("created customer %+v %v, want ref's referral with source stripe", c, err)
	}
}

func strptr(s string) *string { return &s }

// deliverRaw stores a provider's event body received at at and processes it once.
func (e *processEnv) deliverRaw(provider, id, typ, body string, at time.Time, process bool) store.ProviderEvent {
	e.t.Helper()
	evs := []store.ProviderEvent{{ProgramPK: e.p.PK, Provider: provider, EventID: id, Type: typ, Payload: []byte(body), ReceivedAt: at}}
	if _, err := store.InsertProviderEvents(e.ctx, e.db, evs); err != nil {
		e.t.Fatal(err)
	}
	if process {
		if err := jobs.ProcessEvent(e.ctx, e.db, evs[0].PK); err != nil {
			e.t.Fatal(err)
		}
	}
	ev, err := store.GetProviderEvent(e.ctx, e.db, evs[0].PK)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

func TestProcessPaddleAndChargebee(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("friend"), Email: strptr("friend@example.com"),
		ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
		t.Fatal(err)
	}
	// Paddle: a completed transaction with custom_data, then its approved refund.
	ev := e.deliverRaw("paddle", "evt_p1", "transaction.completed", `{"event_id": "evt_p1", "event_type": "transaction.completed",
		"occurred_at": "2026-11-21T06:00:00Z", "data": {"id": "txn_p1", "currency_code": "EUR", "customer_id": "ctm_1",
		"custom_data": {"customer_key": "friend"}, "details": {"totals": {"total": "10000"}}}}`, store.Now(), true)
	if ev.Status != "processed" || ev.TransactionKeys[0] != "paddle:txn_p1" {
		t.Fatalf("paddle event = %+v", ev)
	}
	e.deliverRaw("paddle", "evt_p2", "adjustment.updated", `{"event_id": "evt_p2", "event_type": "adjustment.updated",
		"occurred_at": "2026-11-21T06:05:00Z", "data": {"id": "adj_1", "action": "refund", "status": "approved",
		"transaction_id": "txn_p1", "currency_code": "EUR", "customer_id": "ctm_1", "totals": {"total": "2500"}}}`, store.Now(), true)
	if tx, _ := ledger.GetTransaction(e.ctx, e.db, e.p, "paddle:txn_p1"); tx.Refunded != 2500 || tx.Units != "eur" {
		t.Errorf("paddle transaction %+v", tx)
	}
	// Chargebee: a payment found by the customer's email.
	ev = e.deliverRaw("chargebee", "ev_c1", "payment_succeeded", `{"id": "ev_c1", "occurred_at": 1763700000, "event_type": "payment_succeeded",
		"api_version": "v2", "content": {"transaction": {"id": "txn_c1", "amount": 3000, "currency_code": "USD", "status": "success",
		"customer_id": "cb_1"}, "customer": {"id": "cb_1", "email": "FRIEND@example.com"}}}`, store.Now(), true)
	if ev.Status != "processed" {
		t.Fatalf("chargebee event = %+v", ev)
	}
	if tx, err := ledger.GetTransaction(e.ctx, e.db, e.p, "chargebee:txn_c1"); err != nil || tx.Amount != 3000 || tx.Buyer.Key != "friend" {
		t.Errorf("chargebee transaction %+v %v", tx, err)
	}
}

// With the queue unreachable an event is still stored; the sweep processes it.
func TestSweepProcessesStoredEvents(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("friend"),
		ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"id": "evt_s", "object": "event", "created": %d, "livemode": true, "type": "invoice.paid", "data": {"object":
		{"id": "in_s", "object": "invoice", "amount_paid": 800, "currency": "usd", "customer": "cus_s", "metadata": {"customer_key": "friend"}}}}`, time.Now().Unix())
	ev := e.deliverRaw("stripe", "evt_s", "invoice.paid", body, store.Now().Add(-2*time.Minute), false)
	if ev.Status != "received" {
		t.Fatalf("status %s before the sweep", ev.Status)
	}
	stale, err := store.StaleReceivedEvents(e.ctx, e.db, time.Now().Add(-jobs.SweepAfter), time.Time{}, 0, 500)
	if err != nil || len(stale) != 1 || stale[0].PK != ev.PK {
		t.Fatalf("stale events %v %v", stale, err)
	}
	mux := jobs.Handlers(e.db, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err := mux.ProcessTask(e.ctx, asynq.NewTask(jobs.TypeSweepEvents, nil)); err != nil {
		t.Fatal(err)
	}
	if ev, _ = store.GetProviderEvent(e.ctx, e.db, ev.PK); ev.Status != "processed" {
		t.Errorf("status %s after the sweep", ev.Status)
	}
	if b := e.balance("ref"); b != 80 {
		t.Errorf("balance %d, want 80", b)
	}
}

// Events of every kind go through the pipeline as one batch: plain payments of known
// customers, a customer nobody referred, an unattributed payment, a payment that
// creates its customer, a refund, the same invoice twice and a payment that cannot be
// recorded, each ending as it would alone, with its outcome in the batch's one
// transaction. Then every task runs twice at once, as duplicate deliveries would:
// nothing changes, and each sale counts once.
func TestOneBatchProcessesEveryKind(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	for _, c := range []referral.CustomerInput{
		{Key: text("f1"), ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}},
		{Key: text("f2"), Email: strptr("f2@example.com"), ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}},
		{Key: text("solo")},
	} {
		if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, c); err != nil {
			t.Fatal(err)
		}
	}
	invoice := func(id string, amount int, customer, email, metadata string) string {
		return fmt.Sprintf(`{"id": %q, "object": "invoice", "amount_paid": %d, "currency": "usd", "customer": %q,
			"customer_email": %q, "subscription": null, "metadata": %s}`, id, amount, customer, email, metadata)
	}
	events := []struct {
		id, typ, object string
		status          store.EventStatus
		key             string
	}{
		{"evt_1", "invoice.paid", invoice("in_1", 5000, "cus_1", "", `{"customer_key": "f1"}`), "processed", "stripe:in_1"},
		{"evt_2", "invoice.paid", invoice("in_2", 2000, "cus_2", "f2@example.com", `{}`), "processed", "stripe:in_2"},
		{"evt_3", "invoice.paid", invoice("in_3", 9000, "cus_solo", "", `{"customer_key": "solo"}`), "ignored", ""},
		{"evt_4", "invoice.paid", invoice("in_4", 7000, "cus_4", "nobody@example.com", `{}`), "unattributed", ""},
		{"evt_5", "invoice.paid", invoice("in_5", 4000, "cus_5", "new@example.com", `{"referral_key": "ref"}`), "processed", "stripe:in_5"},
		{"evt_6", "charge.refunded", `{"id": "ch_1", "object": "charge", "amount": 5000, "amount_refunded": 1000, "currency": "usd",
			"customer": "cus_1", "invoice": "in_1", "refunded": false, "metadata": {}}`, "processed", "stripe:in_1"},
		{"evt_7", "invoice.paid", invoice("in_1b", 3000, "cus_1", "", `{"customer_key": "f1"}`), "processed", "stripe:in_1b"},
		{"evt_8", "invoice.paid", invoice("in_1", 5000, "cus_1", "", `{"customer_key": "f1"}`), "processed", "stripe:in_1"}, // in_1 again
		{"evt_9", "invoice.paid", strings.Replace(invoice("in_9", 100, "cus_1", "", `{"customer_key": "f1"}`), `"usd"`, `"zzz"`, 1), "failed", ""},
	}
	var stored []store.ProviderEvent
	for _, ev := range events {
		body := fmt.Sprintf(`{"id": %q, "object": "event", "api_version": "2023-10-16", "created": %d, "livemode": true, "type": %q, "data": {"object": %s}}`,
			ev.id, time.Now().Unix(), ev.typ, ev.object)
		stored = append(stored, store.ProviderEvent{ProgramPK: e.p.PK, Provider: "stripe", EventID: ev.id, Type: ev.typ, Payload: []byte(body), ReceivedAt: store.Now()})
	}
	if _, err := store.InsertProviderEvents(e.ctx, e.db, stored); err != nil {
		t.Fatal(err)
	}
	pks := make([]int64, len(stored))
	for i, ev := range stored {
		pks[i] = ev.PK
	}
	errs, err := jobs.RunBatch(e.ctx, e.db, pks)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for i, ev := range stored {
			got, err := store.GetProviderEvent(e.ctx, e.db, ev.PK)
			if err != nil || errs[i] != nil || got.Status != events[i].status || strings.Join(got.TransactionKeys, ",") != events[i].key {
				t.Errorf("%s: %s ended %s with %v (%v, %v), want %s with %q", when, ev.EventID, got.Status, got.TransactionKeys, err, errs[i], events[i].status, events[i].key)
			}
		}
	}
	check("one batch")
	// Then every task twice at once, with twelve fresh payments among them.
	var fresh []store.ProviderEvent
	for i := range 12 {
		object := invoice(fmt.Sprintf("in_p%d", i), 100, "cus_1", "", `{"customer_key": "f1"}`)
		if i%2 == 1 {
			object = invoice(fmt.Sprintf("in_p%d", i), 100, "cus_2", "f2@example.com", `{}`)
		}
		body := fmt.Sprintf(`{"id": "evt_p%d", "object": "event", "created": %d, "livemode": true, "type": "invoice.paid", "data": {"object": %s}}`,
			i, time.Now().Unix(), object)
		fresh = append(fresh, store.ProviderEvent{ProgramPK: e.p.PK, Provider: "stripe", EventID: fmt.Sprintf("evt_p%d", i), Type: "invoice.paid",
			Payload: []byte(body), ReceivedAt: store.Now()})
	}
	if _, err := store.InsertProviderEvents(e.ctx, e.db, fresh); err != nil {
		t.Fatal(err)
	}
	mux := jobs.Handlers(e.db, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	var wg sync.WaitGroup
	all := append(fresh, stored...)
	for _, ev := range all {
		for range 2 {
			wg.Go(func() {
				task, _ := jobs.ProcessEventTask(ev.PK)
				if err := mux.ProcessTask(e.ctx, task); err != nil {
					t.Errorf("task of %s: %v", ev.EventID, err)
				}
			})
		}
	}
	// And all of them in one task, as ingest queues a group commit's events.
	allPKs := make([]int64, len(all))
	for i, ev := range all {
		allPKs[i] = ev.PK
	}
	wg.Go(func() {
		task, _ := jobs.ProcessEventsTask(allPKs)
		if err := mux.ProcessTask(e.ctx, task); err != nil {
			t.Errorf("the task of all events: %v", err)
		}
	})
	wg.Wait()
	check("every task twice")
	for _, ev := range stored {
		got, _ := store.GetProviderEvent(e.ctx, e.db, ev.PK)
		for _, key := range got.TransactionKeys {
			if _, err := ledger.GetTransaction(e.ctx, e.db, e.p, key); err != nil {
				t.Errorf("%s names transaction %s: %v", ev.EventID, key, err)
			}
		}
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM transactions`); err != nil || n != 16 {
		t.Errorf("%d transactions (%v), want 16: in_1, in_2, in_5, in_1b and twelve in_p", n, err)
	}
	if err := e.db.Get(&n, `SELECT count(*) FROM provider_events WHERE status = 'processed' AND event_id LIKE 'evt_p%'`); err != nil || n != 12 {
		t.Errorf("%d of the twelve fresh payments processed (%v)", n, err)
	}
	if tx, _ := ledger.GetTransaction(e.ctx, e.db, e.p, "stripe:in_1b"); tx.PurchaseNumber != 2 {
		t.Errorf("in_1b is purchase %d of f1, want 2", tx.PurchaseNumber)
	}
	// 10% of 5000 + 2000 + 4000 + 3000 + 12 × 100, less 10% of the 1000 refunded on in_1.
	if b := e.balance("ref"); b != 1420 {
		t.Errorf("referrer balance %d, want 1420", b)
	}
	var link int64
	if err := e.db.Get(&link, `SELECT customer_pk FROM provider_customers WHERE provider_customer_id = 'cus_solo'`); err != nil {
		t.Errorf("the payment of a customer nobody referred taught no link: %v", err)
	}
}

// The sweep takes up every event whose task was lost, however many there are: here
// 3,000 payments of 30 friends acknowledged while Redis was down (stored, never queued), and
// payments held on purpose, which it leaves to their hold.
func TestSweepTakesUpTheWholeBacklog(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	const friends = 30
	for i := range friends {
		if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text(fmt.Sprintf("friend%d", i)),
			ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 3000
	at := store.Now().Add(-jobs.SweepAfter - time.Second)
	var evs []store.ProviderEvent
	for i := range n {
		body := fmt.Sprintf(`{"id": "evt_b%d", "object": "event", "created": %d, "livemode": true, "type": "invoice.paid", "data": {"object":
			{"id": "in_b%d", "object": "invoice", "amount_paid": 100, "currency": "usd", "customer": "cus_b%d", "metadata": {"customer_key": "friend%d"}}}}`,
			i, time.Now().Unix(), i, i%friends, i%friends)
		evs = append(evs, store.ProviderEvent{ProgramPK: e.p.PK, Provider: "stripe", EventID: fmt.Sprintf("evt_b%d", i), Type: "invoice.paid",
			Payload: []byte(body), ReceivedAt: at})
	}
	// A current-version charge in its hold: the sweep leaves it received, quietly.
	held := fmt.Sprintf(`{"id": "evt_held", "object": "event", "api_version": "2025-09-30.clover", "created": %d, "livemode": true,
		"type": "charge.succeeded", "data": {"object": {"id": "ch_h", "object": "charge", "amount": 500, "amount_captured": 500, "captured": true,
		"currency": "usd", "customer": "cus_h", "payment_intent": "pi_h", "metadata": {"customer_key": "friend0"}}}}`, time.Now().Unix())
	evs = append(evs, store.ProviderEvent{ProgramPK: e.p.PK, Provider: "stripe", EventID: "evt_held", Type: "charge.succeeded",
		Payload: []byte(held), ReceivedAt: store.Now().Add(-jobs.SweepAfter - time.Second)})
	if _, err := store.InsertProviderEvents(e.ctx, e.db, evs); err != nil {
		t.Fatal(err)
	}
	mux := jobs.Handlers(e.db, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	start := time.Now()
	if err := mux.ProcessTask(e.ctx, asynq.NewTask(jobs.TypeSweepEvents, nil)); err != nil {
		t.Fatal(err)
	}
	t.Logf("one sweep took up %d events in %s", n, time.Since(start).Round(time.Millisecond))
	var left []string
	if err := e.db.Select(&left, `SELECT event_id FROM provider_events WHERE status <> 'processed' ORDER BY event_id`); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != "evt_held" {
		t.Errorf("%d events not processed after one sweep (%.5v), want only the held charge", len(left), left)
	}
	if b := e.balance("ref"); b != n*10 {
		t.Errorf("referrer balance %d, want %d: each payment once", b, n*10)
	}
}

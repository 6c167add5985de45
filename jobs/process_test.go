package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/referd/referd/jobs"
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
	if _, err := referral.PutIntegration(ctx, db, p, "stripe", referral.IntegrationInput{WebhookSecrets: []string{"whsec_x"}}); err != nil {
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
	tx, err := referral.GetTransaction(e.ctx, e.db, e.p, "stripe:in_1")
	if err != nil || tx.Amount != 5000 || tx.Source != "stripe" || !tx.Livemode || !tx.ProductType.Valid {
		t.Fatalf("transaction = %+v %v", tx, err)
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
	tx, _ = referral.GetTransaction(e.ctx, e.db, e.p, "stripe:in_1")
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
	if tx, err := referral.GetTransaction(e.ctx, e.db, e.p, "stripe:in_x"); err != nil || tx.Amount != 3000 || tx.Units != "jpy" {
		t.Errorf("JPY transaction = %+v %v", tx, err)
	}
	// A payment carrying a referrer's key and no known customer creates the friend.
	ev = e.deliver("evt_y", "invoice.paid", `{"id": "in_y", "object": "invoice", "amount_paid": 2000, "currency": "usd",
		"customer": "cus_y", "customer_email": "new@example.com", "subscription": null, "metadata": {"referral_key": "ref"}}`)
	if ev.Status != "processed" {
		t.Fatalf("status %s", ev.Status)
	}
	c, err := store.CustomerByEmail(e.ctx, e.db, e.p.PK, "new@example.com")
	if err != nil || c.Referrer == nil || c.Referrer.Key != "ref" {
		t.Errorf("created customer %+v %v", c, err)
	}
}

func strptr(s string) *string { return &s }

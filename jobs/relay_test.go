package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/jobs/jobstest"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// An unattributed payment is applied as soon as the customer it names signs up: the
// relay sees customer.created in the outbox and queues the event again, and the
// workers (on the real Redis) record the sale, with no sweep involved.
func TestUnattributedPaymentAppliedWhenCustomerSignsUp(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	opt := jobstest.Redis(t)
	queue := jobstest.Queue(t, opt)
	ev := e.deliver("evt_u", "invoice.paid", `{"id": "in_u", "object": "invoice", "amount_paid": 4000, "currency": "usd",
		"customer": "cus_u", "customer_email": "Later@Example.com", "subscription": null, "metadata": {}}`)
	if ev.Status != "unattributed" || ev.Email.String != "Later@Example.com" {
		t.Fatalf("event before the sign-up = %+v", ev)
	}
	startRunner(t, &jobs.Runner{Redis: opt, Concurrency: 2, Log: testLogger(t), Mux: jobs.Handlers(e.db, testLogger(t), nil),
		Queues: map[string]int{queue: 1}})
	relay := &jobs.Relay{DB: e.db, Redis: opt, Queue: queue, Consumers: []jobs.Consumer{jobs.RetryUnattributed},
		Interval: 10 * time.Millisecond, Log: testLogger(t)}
	ctx, cancel := context.WithCancel(e.ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-relayDone })

	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("later"), Email: strptr("later@example.com"),
		ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		if ev, _ = store.GetProviderEvent(e.ctx, e.db, ev.PK); ev.Status == "processed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event still %s %s after the sign-up", ev.Status, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b := e.balance("ref"); b != 400 {
		t.Errorf("referrer balance %d, want 400", b)
	}
	var undispatched int
	if err := e.db.Get(&undispatched, `SELECT count(*) FROM outbox WHERE dispatched_at IS NULL AND event = 'customer.created'`); err != nil || undispatched != 0 {
		t.Errorf("%d customer.created rows left undispatched (%v)", undispatched, err)
	}
}

// A payment by a provider customer nobody knew is applied once a customer event
// links that provider customer to a referd customer.
func TestUnattributedPaymentAppliedWhenLinkIsLearned(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("friend"),
		ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
		t.Fatal(err)
	}
	ev := e.deliver("evt_l1", "invoice.paid", `{"id": "in_l", "object": "invoice", "amount_paid": 2500, "currency": "usd",
		"customer": "cus_l", "customer_email": null, "subscription": null, "metadata": {}}`)
	if ev.Status != "unattributed" {
		t.Fatalf("status %s, want unattributed", ev.Status)
	}
	seen := e.deliver("evt_l2", "customer.updated", `{"id": "cus_l", "object": "customer", "email": null, "metadata": {"customer_key": "friend"}}`)
	if seen.Status != "processed" {
		t.Fatalf("customer event status %s", seen.Status)
	}
	if ev, _ = store.GetProviderEvent(e.ctx, e.db, ev.PK); ev.Status != "processed" || ev.Email.Valid || ev.ProviderCustomerID.Valid {
		t.Errorf("payment after the link = %+v", ev)
	}
	if b := e.balance("ref"); b != 250 {
		t.Errorf("referrer balance %d, want 250", b)
	}
}

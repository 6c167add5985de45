package ops_test

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

// env is a program with a 10% referrer credit on every purchase, a Stripe
// integration and a referrer "ref".
type env struct {
	t   *testing.T
	ctx context.Context
	db  *store.DB
	p   store.Program
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := storetest.New(t)
	ctx := context.Background()
	p, _, err := referral.CreateProgram(ctx, db, "Acme", "https://acme.test")
	if err != nil {
		t.Fatal(err)
	}
	var patch referral.ProgramPatch
	if err := json.Unmarshal([]byte(`{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"}]}`), &patch); err != nil {
		t.Fatal(err)
	}
	if p, err = referral.UpdateProgram(ctx, db, p.PK, patch); err != nil {
		t.Fatal(err)
	}
	if _, err := referral.PutIntegration(ctx, db, p, "stripe", referral.IntegrationInput{WebhookSecrets: []string{"whsec_x"}}, nil); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, db: db, p: p}
	e.customer("ref", "")
	return e
}

// customer creates a customer with key, referred by referrerKey unless it is "".
func (e *env) customer(key, referrerKey string) {
	e.t.Helper()
	k := referral.Text(key)
	in := referral.CustomerInput{Key: &k}
	if referrerKey != "" {
		rk := referral.Text(referrerKey)
		in.ReferringCustomer = &referral.CustomerRefInput{Key: &rk}
	}
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, in); err != nil {
		e.t.Fatal(err)
	}
}

// invoicePaid stores a Stripe invoice.paid event for the customer with key, and
// processes it once if process is set. It returns the event's pk.
func (e *env) invoicePaid(eventID, invoiceID, customerKey string, amount int, currency string, process bool) int64 {
	e.t.Helper()
	body := fmt.Sprintf(`{"id": %q, "object": "event", "api_version": "2023-10-16", "created": %d, "livemode": true, "type": "invoice.paid",
		"data": {"object": {"id": %q, "object": "invoice", "amount_paid": %d, "currency": %q, "customer": "cus_%s",
		"subscription": null, "metadata": {"customer_key": %q}}}}`, eventID, time.Now().Unix(), invoiceID, amount, currency, customerKey, customerKey)
	evs := []store.ProviderEvent{{ProgramPK: e.p.PK, Provider: "stripe", EventID: eventID, Type: "invoice.paid", Payload: []byte(body), ReceivedAt: store.Now()}}
	if _, err := store.InsertProviderEvents(e.ctx, e.db, evs); err != nil {
		e.t.Fatal(err)
	}
	if process {
		if err := jobs.ProcessEvent(e.ctx, e.db, evs[0].PK); err != nil {
			e.t.Fatal(err)
		}
	}
	return evs[0].PK
}

func (e *env) status(pk int64) store.EventStatus {
	e.t.Helper()
	s, err := store.ProviderEventStatus(e.ctx, e.db, pk)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// ledgerState is what a replay must not change: the referrer's balance and how many
// transactions, rewards and ledger rows there are.
type ledgerState struct {
	Balance                           int64
	Transactions, Rewards, LedgerRows int
}

func (e *env) ledger() ledgerState {
	e.t.Helper()
	var l ledgerState
	c, err := store.GetCustomer(e.ctx, e.db, e.p.PK, "ref", false)
	if err != nil {
		e.t.Fatal(err)
	}
	bs, err := store.Balances(e.ctx, e.db, c.PK)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, b := range bs {
		if b.Units == "usd" {
			l.Balance = b.Amount
		}
	}
	for q, dest := range map[string]*int{`SELECT count(*) FROM transactions`: &l.Transactions,
		`SELECT count(*) FROM rewards`: &l.Rewards, `SELECT count(*) FROM ledger`: &l.LedgerRows} {
		if err := e.db.Get(dest, q); err != nil {
			e.t.Fatal(err)
		}
	}
	return l
}

package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/referd/referd/attribution"
	"github.com/referd/referd/batch"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/logging"
	"github.com/referd/referd/providers"
	"github.com/referd/referd/store"
)

// laneResult is what the payments lane made of one event: done (err nil), a database
// error for the task to retry, or aside: the event is not a plain payment of a known
// customer, and its task processes it on its own (processor.process).
type laneResult struct {
	aside bool
	links []store.ProviderLink
	err   error
}

// handle processes the stored event pk for its task. Plain payments of known
// customers, nearly every billing event, go through the payments lane with the
// events processed at the same time; anything else is processed on its own.
func (pr *processor) handle(ctx context.Context, pk int64) error {
	if pr.lane == nil {
		return pr.process(ctx, pk)
	}
	r, err := pr.lane.Do(ctx, pk)
	switch {
	case err != nil:
		return err
	case r.aside:
		return pr.process(ctx, pk)
	case r.err != nil:
		return r.err
	case len(r.links) > 0:
		// A provider customer just linked may have paid before referd knew who it was.
		cs := make([]store.AppearedCustomer, len(r.links))
		for i, l := range r.links {
			cs[i] = store.AppearedCustomer{ProgramPK: l.ProgramPK, Provider: l.Provider, ProviderCustomerID: l.ProviderCustomerID}
		}
		return pr.retryUnattributed(ctx, cs)
	}
	return nil
}

// paymentLane processes a batch of events in a few statements: it reads them, matches
// the payments' customers in one statement, and records the sales with the events'
// outcomes in one transaction (ledger.RecordSalesTx, store.FinishProviderEventsTx),
// so a sale and its event's outcome commit together. Events it does not take, and
// sales that fail on their own, are set aside for processor.process; if the
// transaction fails as a whole, every event it held is.
func (pr *processor) paymentLane(ctx context.Context, pks []int64) ([]laneResult, error) {
	res := make([]laneResult, len(pks))
	evs, err := store.ProviderEventsByPK(ctx, pr.db, pks)
	if err != nil {
		return nil, err
	}
	type payment struct {
		ev *store.ProviderEvent
		p  store.Program
		e  providers.Event
	}
	var pays []payment
	var qs []store.MatchQuery
	for i, ev := range batch.InOrder(pks, evs, func(e *store.ProviderEvent) int64 { return e.PK }) {
		res[i].aside = true
		if ev == nil {
			continue
		}
		if ev.Status.Done() {
			res[i].aside = false // a task delivered again: nothing left to do
			continue
		}
		cfg, err := pr.config(ctx, ev.ProgramPK, ev.Provider)
		if err != nil {
			continue
		}
		parsed, err := parse(ev, cfg.keyField)
		if err != nil || len(parsed.Events) != 1 || parsed.Events[0].Kind != providers.Payment {
			continue
		}
		e := parsed.Events[0]
		if e.Hold > 0 || len(e.Aliases) > 0 {
			continue // linked or held: processed on its own
		}
		pays = append(pays, payment{ev, cfg.p, e})
		qs = append(qs, store.MatchQuery{ProgramPK: ev.ProgramPK, Key: e.CustomerKey, Provider: ev.Provider,
			ProviderCustomerID: e.ProviderCustomerID, Email: e.Email})
	}
	if len(pays) == 0 {
		return res, nil
	}
	ms, err := store.MatchCustomers(ctx, pr.db, qs)
	if err != nil {
		return res, nil // each task tries on its own
	}
	var outs []store.EventOutcome
	var sales []ledger.SaleRequest
	var saleOf []int // the payment of each sale
	for j, pay := range pays {
		m := ms[j]
		if m.Via == "" {
			continue // unattributed, or a referral key that creates the customer: aside
		}
		out := store.EventOutcome{PK: pay.ev.PK, Status: store.EventIgnored, At: time.Now()}
		if link := attribution.LinkFor(pay.p, pay.ev.Provider, pay.e, m); link != nil {
			out.Links = []store.ProviderLink{*link}
		}
		if !m.ReferrerPK.Valid {
			outs = append(outs, out) // a customer nobody referred: nothing to reward
			continue
		}
		sale := paymentSale(pay.ev.Provider, pay.e, m.ID, pay.ev.RequestID.String)
		out.Status, out.TransactionKeys = store.EventProcessed, []string{sale.Key}
		outs = append(outs, out)
		sales = append(sales, ledger.SaleRequest{Program: pay.p, Sale: sale})
		saleOf = append(saleOf, len(outs)-1)
	}
	var done []store.EventOutcome
	err = pr.db.InTx(ctx, func(tx *store.Tx) error {
		rs, err := ledger.RecordSalesTx(ctx, tx, sales)
		if err != nil {
			return err
		}
		failed := map[int]bool{}
		for k, r := range rs {
			if r.Err != nil {
				failed[saleOf[k]] = true // processed on its own, which says why
			}
		}
		done = done[:0]
		for k, out := range outs {
			if !failed[k] {
				done = append(done, out)
			}
		}
		return store.FinishProviderEventsTx(ctx, tx, done)
	})
	if err != nil {
		return res, nil // each task tries on its own
	}
	at := make(map[int64]int, len(pks))
	for i, pk := range pks {
		at[pk] = i
	}
	requestIDs := make(map[int64]string, len(pays))
	for _, pay := range pays {
		requestIDs[pay.ev.PK] = pay.ev.RequestID.String
	}
	for _, out := range done {
		res[at[out.PK]] = laneResult{links: out.Links}
		if pr.log != nil && pr.log.Enabled(ctx, slog.LevelDebug) {
			// Logged with the ingest request's id, as processor.finish does.
			ctx := logging.WithRequestID(ctx, requestIDs[out.PK])
			pr.log.DebugContext(ctx, "provider event "+string(out.Status), "pk", out.PK, "transactions", out.TransactionKeys)
		}
	}
	return res, nil
}

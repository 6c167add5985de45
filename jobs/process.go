package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/referd/referd/attribution"
	"github.com/referd/referd/providers"
	"github.com/referd/referd/providers/all"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// ProcessEvent turns a stored billing event into what it means: links for customers
// seen, transactions for payments, refunds for refunds, through the same functions as
// the REST API. Every effect is keyed by the provider's ids, so processing an event
// again changes nothing. The event ends processed (with its transaction keys),
// ignored (nothing to do), unattributed (a payment that matches no customer yet:
// retried later) or failed (with the error).
func ProcessEvent(ctx context.Context, db *store.DB, pk int64) error {
	return (&processor{db: db}).process(ctx, pk)
}

// processor processes stored events; the workers share one, so programs and their
// integrations are read once a few seconds, and sales go through a Batcher (group
// commit) when it has one.
type processor struct {
	db    *store.DB
	sales *referral.Batcher
	cache *store.Cache[string, programConfig]
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

func (pr *processor) process(ctx context.Context, pk int64) error {
	db := pr.db
	ev, err := store.GetProviderEvent(ctx, db, pk)
	if err != nil {
		return err
	}
	if ev.Status == "processed" || ev.Status == "ignored" {
		return nil // a task delivered again, or the sweep got there first: nothing left to do
	}
	cfg, err := pr.config(ctx, ev.ProgramPK, ev.Provider)
	if err != nil {
		return err
	}
	p, keyField := cfg.p, cfg.keyField
	parsed, err := all.Parse(ev.Provider, ev.Payload, providers.Options{CustomerKeyField: keyField})
	if err != nil {
		return store.FinishProviderEvent(ctx, db, pk, "failed", err.Error(), nil, time.Now())
	}
	status, keys := "ignored", []string{}
	for _, e := range parsed.Events {
		st, key, err := pr.apply(ctx, p, ev.Provider, e)
		if err != nil {
			var verr *referral.ValidationError
			if errors.As(err, &verr) {
				return store.FinishProviderEvent(ctx, db, pk, "failed", err.Error(), keys, time.Now())
			}
			return err // a database problem: asynq retries the task
		}
		if key != "" {
			keys = append(keys, key)
		}
		status = worse(status, st)
	}
	return store.FinishProviderEvent(ctx, db, pk, status, "", keys, time.Now())
}

// worse keeps the status that says most: unattributed > processed > ignored.
func worse(a, b string) string {
	rank := map[string]int{"ignored": 0, "processed": 1, "unattributed": 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// apply handles one provider-neutral event and says what became of it.
func (pr *processor) apply(ctx context.Context, p store.Program, provider string, e providers.Event) (status, key string, err error) {
	db := pr.db
	switch e.Kind {
	case providers.CustomerSeen:
		if e.ProviderCustomerID == "" {
			return "ignored", "", nil
		}
		_, found, err := attribution.Resolve(ctx, db, p, provider, e, false)
		if err != nil || !found {
			return "ignored", "", err
		}
		return "processed", "", nil
	case providers.Payment:
		c, found, err := attribution.Resolve(ctx, db, p, provider, e, true)
		if err != nil {
			return "", "", err
		}
		if !found {
			return "unattributed", "", nil
		}
		if !c.ReferrerPK.Valid {
			return "ignored", "", nil // a customer nobody referred: nothing to reward
		}
		sale := referral.Sale{CustomerID: c.ID, Key: provider + ":" + e.ObjectID, Amount: e.Amount, Units: e.Currency,
			ProductID: e.ProductID, Source: provider, Livemode: e.Livemode}
		if e.Subscription {
			sale.ProductType = "subscription"
		}
		record := referral.RecordTransaction
		if pr.sales != nil {
			record = func(ctx context.Context, _ *store.DB, p store.Program, s referral.Sale) (store.Transaction, bool, error) {
				return pr.sales.Record(ctx, p, s)
			}
		}
		t, _, err := record(ctx, db, p, sale)
		if err != nil {
			return "", "", err
		}
		return "processed", t.Key, nil
	case providers.Refund:
		key := provider + ":" + e.ObjectID
		_, _, err := referral.RefundTransaction(ctx, db, p, referral.Refund{TransactionKey: key, Key: provider + ":" + e.RefundID,
			Amount: e.Amount, Cumulative: e.Cumulative, WaitForSale: true})
		if err != nil {
			return "", "", err
		}
		return "processed", key, nil
	}
	return "ignored", "", fmt.Errorf("unknown event kind %q", e.Kind)
}

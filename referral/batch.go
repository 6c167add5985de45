package referral

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/referd/referd/rewards"
	"github.com/referd/referd/store"
)

// Batcher records single sales that arrive together in one database transaction
// (group commit): they share its BEGIN, COMMIT and WAL flush, and the relation locks
// its statements take. Each caller gets its own sale's answer once the transaction
// has committed. A batch that fails as a whole is recorded again sale by sale, so one
// sale's problem is never another's.
type Batcher struct {
	db    *store.DB
	group *store.Group[*batchedSale, batchResult]
}

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

// NewBatcher starts workers that each commit up to max queued sales at a time.
func NewBatcher(db *store.DB, workers, max int) *Batcher {
	b := &Batcher{db: db}
	b.group = store.NewGroup(workers, max, func(_ context.Context, batch []*batchedSale) ([]batchResult, error) {
		return b.commit(batch), nil
	})
	return b
}

// Record is RecordTransaction through the batcher. Once queued, the sale is recorded
// whether or not the caller still waits.
func (b *Batcher) Record(ctx context.Context, p store.Program, s Sale) (store.Transaction, bool, error) {
	s, rules, err := checkSale(p, s)
	if err != nil {
		return store.Transaction{}, false, err
	}
	if s.RequestID == "" {
		s.RequestID = store.RequestID(ctx) // the batch commits under a context of its own
	}
	r, err := b.group.Do(ctx, &batchedSale{p: p, rules: rules, s: s})
	if err != nil {
		return store.Transaction{}, false, err
	}
	return r.t, r.created, r.err
}

// commit records a batch in one transaction: every sale's key lock and buyer first
// (in key order), then the writes in referrer, then buyer, order: the order in which
// every writer locks rows (see store.InsertSale), so concurrent batches wait for each
// other but never deadlock. Sales that fail before writing (unknown
// customer, reused key) fail alone; anything else sends the batch back sale by sale.
func (b *Batcher) commit(batch []*batchedSale) []batchResult {
	if len(batch) == 1 {
		t, created, err := recordOne(b.db, batch[0])
		return []batchResult{{t, created, err}}
	}
	// Results go back in the callers' order; the work goes in lock order.
	callers := batch
	batch = slices.Clone(batch)
	sort.SliceStable(batch, func(i, j int) bool {
		if batch[i].p.PK != batch[j].p.PK {
			return batch[i].p.PK < batch[j].p.PK
		}
		return batch[i].s.Key < batch[j].s.Key
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make([]batchResult, len(batch))
	err := b.db.InTx(ctx, func(tx *store.Tx) error {
		plans := make([]*plannedSale, len(batch))
		for i, bs := range batch {
			results[i] = batchResult{}
			ps, err := prepareSale(ctx, tx, bs.p, bs.rules, bs.s)
			switch {
			case err != nil && !isCallerError(err):
				return err
			case err != nil:
				results[i].err = err
			case ps.done:
				results[i].t = ps.t
			default:
				plans[i] = &ps
			}
		}
		order := make([]int, 0, len(batch))
		for i, ps := range plans {
			if ps != nil {
				order = append(order, i)
			}
		}
		sort.SliceStable(order, func(x, y int) bool {
			a, b := plans[order[x]].t, plans[order[y]].t
			if a.ReferrerPK.Int64 != b.ReferrerPK.Int64 {
				return a.ReferrerPK.Int64 < b.ReferrerPK.Int64
			}
			return a.CustomerPK < b.CustomerPK
		})
		written := map[int64]bool{} // buyers with a sale written in this batch
		for _, i := range order {
			if written[plans[i].t.CustomerPK] {
				// The buyer's count moved with the earlier sale: plan this one again,
				// reading this transaction's own writes.
				ps, err := prepareSale(ctx, tx, batch[i].p, batch[i].rules, batch[i].s)
				if err != nil || ps.done {
					results[i] = batchResult{t: ps.t, err: err}
					if err != nil && !isCallerError(err) {
						return err
					}
					continue
				}
				plans[i] = &ps
			}
			if err := commitSale(ctx, tx, plans[i]); err != nil {
				return err
			}
			written[plans[i].t.CustomerPK] = true
			results[i] = batchResult{t: plans[i].t, created: true}
		}
		return nil
	})
	byCaller := make(map[*batchedSale]batchResult, len(batch))
	for i, bs := range batch {
		if err != nil {
			t, created, err := recordOne(b.db, bs)
			byCaller[bs] = batchResult{t, created, err}
		} else {
			byCaller[bs] = results[i]
		}
	}
	out := make([]batchResult, len(callers))
	for i, bs := range callers {
		out[i] = byCaller[bs]
	}
	return out
}

func recordOne(db *store.DB, bs *batchedSale) (t store.Transaction, created bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = db.InTx(ctx, func(tx *store.Tx) error {
		t, created, err = recordInTx(ctx, tx, bs.p, bs.rules, bs.s)
		return err
	})
	return t, created, err
}

// isCallerError says whether err is the caller's (a validation or key conflict),
// which PostgreSQL never saw, so the batch's transaction goes on.
func isCallerError(err error) bool {
	switch err.(type) {
	case *ValidationError, *store.ConflictError:
		return true
	}
	return false
}

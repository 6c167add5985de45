package ledger

import (
	"context"
	"time"

	"github.com/referd/referd/batch"
	"github.com/referd/referd/logging"
	"github.com/referd/referd/store"
)

// Batcher records single sales that arrive together in one database transaction
// (group commit): they share its BEGIN, COMMIT and WAL flush, and its statements
// (recordSales writes them all with one statement when it can). Each caller gets its
// own sale's answer once the transaction has committed. A batch that fails as a whole
// is recorded again sale by sale, so one sale's problem is never another's.
type Batcher struct {
	db    *store.DB
	group *batch.Group[*batchedSale, batchResult]
}

// NewBatcher starts workers that each commit up to max queued sales at a time.
func NewBatcher(db *store.DB, workers, max int) *Batcher {
	b := &Batcher{db: db}
	b.group = batch.New(workers, max, func(_ context.Context, batch []*batchedSale) ([]batchResult, error) {
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
		s.RequestID = logging.RequestID(ctx) // the batch commits under a context of its own
	}
	r, err := b.group.Do(ctx, &batchedSale{p: p, rules: rules, s: s})
	if err != nil {
		return store.Transaction{}, false, err
	}
	return r.t, r.created, r.err
}

// commit records a batch in one transaction, or, if that fails, sale by sale.
func (b *Batcher) commit(batch []*batchedSale) []batchResult {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var results []batchResult
	err := b.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		results, err = recordSales(ctx, tx, batch)
		return err
	})
	if err == nil || len(batch) == 1 {
		if err != nil {
			return []batchResult{{err: err}}
		}
		return results
	}
	results = make([]batchResult, len(batch))
	for i, bs := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		results[i] = recordOne(ctx, b.db, bs)
		cancel()
	}
	return results
}

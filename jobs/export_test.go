package jobs

import (
	"context"

	"github.com/referd/referd/store"
)

// RunBatch runs the pipeline once over the events pks, as one batch, and returns
// each event's own error (nil when it is done).
func RunBatch(ctx context.Context, db *store.DB, pks []int64) ([]error, error) {
	rs, err := newProcessor(db).run(ctx, pks)
	errs := make([]error, len(rs))
	for i, r := range rs {
		errs[i] = r.err
	}
	return errs, err
}

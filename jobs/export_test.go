package jobs

import (
	"context"

	"github.com/referd/referd/store"
)

// LaneAside runs the payments lane once over the events pks, as one batch, and says
// which events it set aside for processing on their own.
func LaneAside(ctx context.Context, db *store.DB, pks []int64) ([]bool, error) {
	rs, err := newProcessor(db).paymentLane(ctx, pks)
	aside := make([]bool, len(rs))
	for i, r := range rs {
		aside[i] = r.aside
	}
	return aside, err
}

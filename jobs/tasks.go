package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// Task types.
const (
	// TypeApproveRewards approves held rewards whose hold_days have passed.
	TypeApproveRewards = "rewards:approve"
)

// Handlers returns the mux of referd's task handlers.
func Handlers(db *store.DB, log *slog.Logger) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeApproveRewards, func(ctx context.Context, _ *asynq.Task) error {
		n, err := referral.ApproveDueRewards(ctx, db, time.Now())
		if err != nil {
			return fmt.Errorf("approving held rewards: %w", err)
		}
		if n > 0 {
			log.Info("held rewards approved", "count", n)
		}
		return nil
	})
	return mux
}

// Schedule is referd's periodic work. asynq.Unique keeps several schedulers (one per
// worker process) from queueing the same sweep twice; the sweep itself is safe to run
// concurrently anyway (it skips rows another run holds).
func Schedule() []Periodic {
	return []Periodic{{
		Spec: "@every 1m",
		Task: asynq.NewTask(TypeApproveRewards, nil),
		Opts: []asynq.Option{asynq.Unique(50 * time.Second), asynq.MaxRetry(3), asynq.Timeout(5 * time.Minute)},
	}}
}

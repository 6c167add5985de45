package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// Task types.
const (
	// TypeApproveRewards approves held rewards whose hold_days have passed.
	TypeApproveRewards = "rewards:approve"
	// TypeProcessEvent processes one stored billing event (payload: its pk).
	TypeProcessEvent = "provider_event:process"
	// TypeSweepEvents processes stored events whose task was lost, and unattributed
	// ones again.
	TypeSweepEvents = "provider_events:sweep"
)

// ProcessEventTask is the task that processes the stored event pk. Its TaskID is
// derived from the event, so enqueueing it twice is one task.
func ProcessEventTask(pk int64) (*asynq.Task, []asynq.Option) {
	return asynq.NewTask(TypeProcessEvent, []byte(strconv.FormatInt(pk, 10))),
		[]asynq.Option{asynq.TaskID(fmt.Sprintf("provider_event:%d", pk)), asynq.MaxRetry(12), asynq.Timeout(time.Minute)}
}

// Handlers returns the mux of referd's task handlers.
func Handlers(db *store.DB, log *slog.Logger) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	// Sales from billing events are group-committed like the API's (BENCHMARKS.md).
	pr := newProcessor(db)
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
	mux.HandleFunc(TypeProcessEvent, func(ctx context.Context, t *asynq.Task) error {
		pk, err := strconv.ParseInt(string(t.Payload()), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: payload %q", asynq.SkipRetry, t.Payload())
		}
		return pr.process(ctx, pk)
	})
	mux.HandleFunc(TypeSweepEvents, func(ctx context.Context, _ *asynq.Task) error {
		now := time.Now()
		pks, err := store.StaleProviderEvents(ctx, db, now.Add(-time.Minute), now.AddDate(0, 0, -30), 500)
		if err != nil {
			return err
		}
		for _, pk := range pks {
			if err := pr.process(ctx, pk); err != nil {
				log.Warn("sweep: processing a stored event failed", "pk", pk, "err", err)
			}
		}
		return nil
	})
	return mux
}

// Schedule is referd's periodic work. asynq.Unique keeps several schedulers (one per
// worker process) from queueing the same sweep twice; the sweep itself is safe to run
// concurrently anyway (it skips rows another run holds).
func Schedule() []Periodic {
	opts := []asynq.Option{asynq.Unique(50 * time.Second), asynq.MaxRetry(3), asynq.Timeout(5 * time.Minute)}
	return []Periodic{
		{Spec: "@every 1m", Task: asynq.NewTask(TypeApproveRewards, nil), Opts: opts},
		{Spec: "@every 1m", Task: asynq.NewTask(TypeSweepEvents, nil), Opts: opts},
	}
}

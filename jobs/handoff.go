package jobs

import (
	"context"
	"log/slog"

	"github.com/hibiken/asynq"
)

// Handoff queues stored billing events for the workers: the events that one group
// commit stored go as one task (ProcessEventsTask), one Redis round trip for all of
// them. It never fails its caller: the events are in PostgreSQL already, and the
// sweep processes any whose task is missing within SweepAfter.
type Handoff struct {
	client *asynq.Client
	log    *slog.Logger
}

// NewHandoff returns a Handoff that queues on redis.
func NewHandoff(redis asynq.RedisConnOpt, log *slog.Logger) *Handoff {
	return &Handoff{client: asynq.NewClient(redis), log: log}
}

// Queue queues the stored events pks, batchSize to a task.
func (h *Handoff) Queue(ctx context.Context, pks []int64) {
	for len(pks) > 0 {
		n := min(len(pks), batchSize)
		task, opts := ProcessEventsTask(pks[:n])
		if _, err := h.client.EnqueueContext(ctx, task, opts...); err != nil {
			h.log.Warn("ingest: queueing stored events failed; the sweep will process them", "pks", pks[:n], "err", err)
		}
		pks = pks[n:]
	}
}

// Close closes the Redis connection.
func (h *Handoff) Close() error { return h.client.Close() }

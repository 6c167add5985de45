package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/store"
)

// How long housekeeping keeps what it prunes, unless Retention says otherwise.
const (
	// DefaultOutboxRetention keeps dispatched outbox rows a week: long enough to see
	// what the relay passed on; their deliveries hold the payload anyway.
	DefaultOutboxRetention = 7 * 24 * time.Hour
	// DefaultDeliveryRetention keeps finished deliveries (succeeded or exhausted) and
	// their attempt logs 30 days, for GET /v1/webhooks/{key}/deliveries. The retry
	// schedule ends within days, so a delivery this old is finished.
	DefaultDeliveryRetention = 30 * 24 * time.Hour
	// DefaultArchivedTaskRetention keeps asynq's archived (dead) tasks a week after
	// their last failure, for a look in /ops/queues. asynq itself would keep them 90
	// days, up to 10,000 a queue.
	DefaultArchivedTaskRetention = 7 * 24 * time.Hour
)

// Retention says how long housekeeping keeps each kind of thing; a zero field takes
// its default (DefaultOutboxRetention, ...).
type Retention struct {
	Outbox        time.Duration
	Deliveries    time.Duration
	ArchivedTasks time.Duration
}

func (r Retention) withDefaults() Retention {
	if r.Outbox <= 0 {
		r.Outbox = DefaultOutboxRetention
	}
	if r.Deliveries <= 0 {
		r.Deliveries = DefaultDeliveryRetention
	}
	if r.ArchivedTasks <= 0 {
		r.ArchivedTasks = DefaultArchivedTaskRetention
	}
	return r
}

// HousekeepResult counts what housekeeping deleted.
type HousekeepResult struct {
	Outbox        int64 `json:"outbox"`
	Deliveries    int64 `json:"deliveries"`
	ArchivedTasks int   `json:"archived_tasks"`
	// ClickVisitors are the visitor hashes of earlier days (unique clicks count per day).
	ClickVisitors int64 `json:"click_visitors"`
	// AdminSessions are the console's expired sessions.
	AdminSessions int64 `json:"admin_sessions"`
}

// pruneBatch is how many rows one DELETE takes: short statements, short locks.
const pruneBatch = 1000

// Housekeep deletes dispatched outbox rows and finished webhook deliveries older
// than their retention, in batches until none is left, and asynq's archived tasks
// whose last failure is older than theirs, from every queue. Several workers may
// run it at once: each batch skips the rows another holds, and a task another
// deleted first is no error. An archived task that never failed (one archived by
// hand, in /ops/queues) has no time to go by and is kept; asynq drops it after 90
// days. The error joins the database's and Redis's; a Redis error does not stop the
// database part.
func Housekeep(ctx context.Context, db *store.DB, redis asynq.RedisConnOpt, r Retention) (HousekeepResult, error) {
	r = r.withDefaults()
	now := time.Now()
	var res HousekeepResult
	var errs []error
	n, err := pruneAll(ctx, func(ctx context.Context) (int64, error) {
		return store.PruneOutbox(ctx, db, now.Add(-r.Outbox), pruneBatch)
	})
	res.Outbox = n
	if err != nil {
		errs = append(errs, err)
	}
	n, err = pruneAll(ctx, func(ctx context.Context) (int64, error) {
		return store.PruneDeliveries(ctx, db, now.Add(-r.Deliveries), pruneBatch)
	})
	res.Deliveries = n
	if err != nil {
		errs = append(errs, err)
	}
	// Unique clicks need only today's visitors (and their day's salt).
	if n, err := store.PruneClickVisitors(ctx, db, now); err != nil {
		errs = append(errs, err)
	} else {
		res.ClickVisitors = n
	}
	if n, err := store.PruneAdminSessions(ctx, db, now); err != nil {
		errs = append(errs, err)
	} else {
		res.AdminSessions = n
	}
	if ctx.Err() == nil {
		insp := asynq.NewInspector(redis)
		queues, err := insp.Queues()
		if err == nil {
			res.ArchivedTasks, err = pruneArchived(ctx, insp, queues, now.Add(-r.ArchivedTasks))
		}
		insp.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("archived tasks: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("ops.Housekeep: %w", err)
	}
	return res, ctx.Err()
}

// pruneAll calls prune until a batch comes back short.
func pruneAll(ctx context.Context, prune func(context.Context) (int64, error)) (int64, error) {
	var total int64
	for ctx.Err() == nil {
		n, err := prune(ctx)
		total += n
		if err != nil {
			return total, err
		}
		if n < pruneBatch {
			break
		}
	}
	return total, nil
}

// archivedPage is how many archived tasks one listing reads.
const archivedPage = 500

// pruneArchived deletes, from these queues, the archived tasks that last failed
// before cutoff, and returns how many it deleted. A task without a failure time is
// kept. A queue or task deleted meanwhile (by another housekeeper) is skipped.
func pruneArchived(ctx context.Context, insp *asynq.Inspector, queues []string, cutoff time.Time) (int, error) {
	deleted := 0
	for _, q := range queues {
		// All ids first, then the deletes: deleting while paging would shift the pages.
		// asynq keeps at most 10,000 archived tasks a queue, so the list is bounded.
		var ids []string
		for page := 1; ; page++ {
			if err := ctx.Err(); err != nil {
				return deleted, err
			}
			tasks, err := insp.ListArchivedTasks(q, asynq.PageSize(archivedPage), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			if err != nil {
				return deleted, fmt.Errorf("queue %s: %w", q, err)
			}
			for _, t := range tasks {
				if !t.LastFailedAt.IsZero() && t.LastFailedAt.Before(cutoff) {
					ids = append(ids, t.ID)
				}
			}
			if len(tasks) < archivedPage {
				break
			}
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return deleted, err
			}
			err := insp.DeleteTask(q, id)
			switch {
			case err == nil:
				deleted++
			case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			default:
				return deleted, fmt.Errorf("queue %s: deleting task %s: %w", q, id, err)
			}
		}
	}
	return deleted, nil
}

// TypeHousekeep is the periodic task that runs Housekeep with the default retention.
const TypeHousekeep = "ops:housekeep"

// HousekeepPeriodic is the scheduler entry of housekeeping: hourly, at minute 17
// (UTC), so that the schedulers of several workers queue it at the same moment and
// asynq.Unique keeps one.
func HousekeepPeriodic() jobs.Periodic {
	return jobs.Periodic{Spec: "17 * * * *", Task: asynq.NewTask(TypeHousekeep, nil),
		Opts: []asynq.Option{asynq.Unique(50 * time.Minute), asynq.MaxRetry(3), asynq.Timeout(30 * time.Minute)}}
}

// HousekeepHandler is the handler of TypeHousekeep: Housekeep with the default
// retention, logging what it deleted (log nil: slog.Default()).
func HousekeepHandler(db *store.DB, redis asynq.RedisConnOpt, log *slog.Logger) asynq.HandlerFunc {
	if log == nil {
		log = slog.Default()
	}
	return func(ctx context.Context, _ *asynq.Task) error {
		res, err := Housekeep(ctx, db, redis, Retention{})
		if res.Outbox+res.Deliveries > 0 || res.ArchivedTasks > 0 {
			log.Info("housekeeping", "outbox", res.Outbox, "deliveries", res.Deliveries, "archived_tasks", res.ArchivedTasks)
		}
		return err
	}
}

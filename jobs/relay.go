package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/referd/referd/dispatch"
	"github.com/referd/referd/store"
)

// Job is a task to enqueue once the transaction that planned it has committed.
type Job struct {
	Task *asynq.Task
	Opts []asynq.Option
}

// Consumer takes claimed outbox rows, writes what they cause in the relay's
// transaction, and returns the tasks to enqueue once it commits.
type Consumer func(ctx context.Context, tx *store.Tx, rows []store.OutboxRow) ([]Job, error)

// Poller finds work in the relay's transaction and returns the tasks to enqueue.
type Poller func(ctx context.Context, tx *store.Tx) ([]Job, error)

// Relay passes outbox rows on: it claims them in order, lets each consumer act on
// them in one transaction with marking them dispatched, then enqueues the tasks the
// consumers asked for. Work a lost enqueue leaves behind is found again by the
// sweeps, from what the transaction stored.
type Relay struct {
	DB        *store.DB
	Redis     asynq.RedisConnOpt
	Consumers []Consumer
	// Pollers run in each batch's transaction too, whether or not it claimed rows:
	// work the database asks for that no outbox row announces.
	Pollers []Poller
	// Queue is the asynq queue of the tasks ("" is asynq's default queue).
	Queue string
	// Interval is the pause after a poll that found work (default 10ms); after polls
	// that found nothing it grows to 8 × Interval. It bounds how long an outbox event
	// waits before its deliveries exist.
	Interval time.Duration
	Log      *slog.Logger

	pokeOnce sync.Once
	pokes    chan struct{}
}

func (r *Relay) pokeChan() chan struct{} {
	r.pokeOnce.Do(func() { r.pokes = make(chan struct{}, 1) })
	return r.pokes
}

// Poke tells the relay that outbox rows were just committed, so it relays them now
// rather than at its next poll: the workers poke it after each batch of billing
// events they write, which keeps an idle relay's longer pause off the latency from
// a sale to its webhook.
func (r *Relay) Poke() {
	select {
	case r.pokeChan() <- struct{}{}:
	default: // a poke is pending already
	}
}

// relayBatch is how many rows one transaction claims.
const relayBatch = 500

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	interval := r.Interval
	if interval <= 0 {
		interval = 10 * time.Millisecond
	}
	client := asynq.NewClient(r.Redis)
	defer client.Close()
	// After a poll that finds nothing the pause doubles, up to 8 × interval: an idle
	// relay costs little, and a busy one polls every interval.
	pause := interval
	for {
		n, err := r.Once(ctx, client)
		if err != nil && ctx.Err() == nil {
			log.Warn("outbox relay", "err", err)
		}
		if n == relayBatch && err == nil {
			continue
		}
		if n > 0 {
			pause = interval
		} else {
			pause = min(2*pause, 8*interval)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.pokeChan():
			pause = interval
		case <-t.C:
		}
		t.Stop()
	}
}

// Once relays one batch and says how many rows it claimed.
func (r *Relay) Once(ctx context.Context, client *asynq.Client) (int, error) {
	var jobs []Job
	var n int
	err := r.DB.InTx(ctx, func(tx *store.Tx) error {
		jobs, n = nil, 0
		for _, p := range r.Pollers {
			js, err := p(ctx, tx)
			if err != nil {
				return err
			}
			jobs = append(jobs, js...)
		}
		rows, err := store.ClaimOutbox(ctx, tx, relayBatch)
		if err != nil || len(rows) == 0 {
			return err
		}
		n = len(rows)
		for _, c := range r.Consumers {
			js, err := c(ctx, tx, rows)
			if err != nil {
				return err
			}
			jobs = append(jobs, js...)
		}
		pks := make([]int64, len(rows))
		for i, row := range rows {
			pks[i] = row.PK
		}
		return store.MarkDispatched(ctx, tx, pks, store.Now())
	})
	if err != nil {
		return 0, err
	}
	// Enqueues are Redis round trips: several at once keep a full batch from
	// waiting for 500 of them in a row.
	var mu sync.Mutex
	var errs []error
	var g errgroup.Group
	g.SetLimit(16)
	for _, j := range jobs {
		g.Go(func() error {
			opts := j.Opts
			if r.Queue != "" {
				opts = append(opts[:len(opts):len(opts)], asynq.Queue(r.Queue))
			}
			if _, err := client.EnqueueContext(ctx, j.Task, opts...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	return n, errors.Join(errs...)
}

// RetryUnattributed is the consumer that applies unattributed payments as soon as a
// matching customer appears: a customer created or updated (its id, key or email may
// now match) has the program's unattributed events that name it processed again.
func RetryUnattributed(ctx context.Context, tx *store.Tx, rows []store.OutboxRow) ([]Job, error) {
	var cs []store.AppearedCustomer
	for _, row := range rows {
		if row.Event != "customer.created" && row.Event != "customer.updated" {
			continue
		}
		var c struct {
			ID    string  `json:"id"`
			Key   string  `json:"key"`
			Email *string `json:"email"`
		}
		if err := json.Unmarshal([]byte(row.Payload), &c); err != nil {
			continue // not a customer: nothing to match
		}
		ref := store.AppearedCustomer{ProgramPK: row.ProgramPK, ID: c.ID, Key: c.Key}
		if c.Email != nil {
			ref.Email = *c.Email
		}
		cs = append(cs, ref)
	}
	pks, err := store.UnattributedEventsFor(ctx, tx, cs, 1000)
	if err != nil {
		return nil, err
	}
	return processJobs(pks), nil
}

// processJobs queues events pks, batchSize to a task.
func processJobs(pks []int64) []Job {
	var jobs []Job
	for len(pks) > 0 {
		n := min(len(pks), batchSize)
		task, opts := ProcessEventsTask(pks[:n])
		jobs = append(jobs, Job{task, opts})
		pks = pks[n:]
	}
	return jobs
}

// RetryDiscounts is the poller that queues the billing events a new promotion code
// (or a Stripe discount learned to be one's) may now attribute: payments that
// carried it and ended ignored or unattributed (store.QueueDiscountRetries).
func RetryDiscounts(ctx context.Context, tx *store.Tx) ([]Job, error) {
	pks, err := store.TakeEventRetries(ctx, tx, 1000)
	if err != nil {
		return nil, err
	}
	return processJobs(pks), nil
}

// DispatchWebhooks is the consumer that creates outgoing webhook deliveries, one per
// subscribed endpoint, and queues their first attempts: one task per endpoint for
// the deliveries a batch planned (DeliverFirstTask), up to batchSize to a task.
func DispatchWebhooks(retries int) Consumer {
	return func(ctx context.Context, tx *store.Tx, rows []store.OutboxRow) ([]Job, error) {
		planned, err := dispatch.Plan(ctx, tx, rows)
		if err != nil {
			return nil, err
		}
		var jobs []Job
		for _, pks := range planned {
			for len(pks) > 0 {
				n := min(len(pks), batchSize)
				task, opts := DeliverFirstTask(pks[:n], retries)
				jobs = append(jobs, Job{task, opts})
				pks = pks[n:]
			}
		}
		return jobs, nil
	}
}

// WebhookRetries is the poller that queues the manual attempts asked for through
// POST /v1/webhooks/{key}/deliveries/{id}/retry, and, once a minute, the attempts
// whose task was lost (a Redis restarted without its data).
func WebhookRetries(retries int) Poller {
	var lastSweep time.Time
	return func(ctx context.Context, tx *store.Tx) ([]Job, error) {
		pks, err := store.TakeRetryRequests(ctx, tx, 100)
		if err != nil {
			return nil, err
		}
		var jobs []Job
		for _, pk := range pks {
			task, opts := ManualDeliverTask(pk)
			jobs = append(jobs, Job{task, opts})
		}
		if time.Since(lastSweep) >= time.Minute {
			lastSweep = time.Now()
			overdue, err := store.OverdueDeliveries(ctx, tx, time.Now().Add(-time.Minute), 1000)
			if err != nil {
				return nil, err
			}
			for _, pk := range overdue {
				task, opts := DeliverTask(pk, retries)
				jobs = append(jobs, Job{task, opts})
			}
		}
		return jobs, nil
	}
}

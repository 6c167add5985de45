package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/dispatch"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/mail"
	"github.com/referd/referd/metrics"
	"github.com/referd/referd/promo"
	"github.com/referd/referd/store"
	"github.com/referd/referd/webhook"
)

// Task types.
const (
	// TypeApproveRewards approves held rewards whose hold_days have passed.
	TypeApproveRewards = "rewards:approve"
	// TypeProcessEvent processes stored billing events (payload: their pks, with
	// commas between them).
	TypeProcessEvent = "provider_event:process"
	// TypeSweepEvents processes stored events whose task was lost (Redis lost it, or
	// the process died between the commit and the enqueue): every event still
	// received SweepAfter after it arrived, however many.
	TypeSweepEvents = "provider_events:sweep"
	// TypeRetryUnattributed processes unattributed payments again, in case their
	// customer appeared by a way the relay did not see.
	TypeRetryUnattributed = "provider_events:retry_unattributed"
	// TypeDeliverWebhook attempts an outgoing webhook delivery, retried on the
	// delivery schedule (payload: the delivery's pk).
	TypeDeliverWebhook = "webhook:deliver"
	// TypeRetryWebhook is one more attempt of a delivery, asked for by its owner; it
	// schedules nothing further.
	TypeRetryWebhook = "webhook:retry"
)

// DeliverTask is the task that attempts delivery pk, retried up to retries times.
// Its TaskID is the delivery's, so queueing it again while it waits is a no-op.
func DeliverTask(pk int64, retries int) (*asynq.Task, []asynq.Option) {
	return asynq.NewTask(TypeDeliverWebhook, []byte(strconv.FormatInt(pk, 10))),
		[]asynq.Option{asynq.TaskID(fmt.Sprintf("webhook:deliver:%d", pk)),
			// The delivery decides when it is exhausted (dispatch.Deliverer.Attempt); the slack
			// keeps asynq from archiving it first after a database hiccup.
			asynq.MaxRetry(retries + 5), asynq.Timeout(time.Minute)}
}

// DeliverFirstTask is the task that makes the first attempt of each of the deliveries
// pks, all to one endpoint, together: their deliveries are read and their attempts
// recorded a few statements for all, and the task costs asynq's Redis round trips
// once. A delivery whose attempt fails gets a task of its own for the rest of its
// schedule (DeliverTask's TaskID, its attempts so far in the payload).
func DeliverFirstTask(pks []int64, retries int) (*asynq.Task, []asynq.Option) {
	if len(pks) == 1 {
		return DeliverTask(pks[0], retries)
	}
	return asynq.NewTask(TypeDeliverWebhook, pkList(pks)), []asynq.Option{asynq.MaxRetry(retries + 5), asynq.Timeout(time.Minute)}
}

// deliverAgainTask is delivery pk's own task after after attempts made in a
// DeliverFirstTask: asynq counts its retries from 0, and the handler adds after.
func deliverAgainTask(pk int64, after, retries int) (*asynq.Task, []asynq.Option) {
	return asynq.NewTask(TypeDeliverWebhook, fmt.Appendf(nil, "%d;%d", pk, after)),
		[]asynq.Option{asynq.TaskID(fmt.Sprintf("webhook:deliver:%d", pk)), asynq.MaxRetry(max(retries+5-after, 1)), asynq.Timeout(time.Minute)}
}

// ManualDeliverTask is one more attempt of delivery pk, now.
func ManualDeliverTask(pk int64) (*asynq.Task, []asynq.Option) {
	return asynq.NewTask(TypeRetryWebhook, []byte(strconv.FormatInt(pk, 10))),
		[]asynq.Option{asynq.TaskID(fmt.Sprintf("webhook:retry:%d:%d", pk, time.Now().UnixNano())), asynq.MaxRetry(20), asynq.Timeout(time.Minute)}
}

// retryDelay is the workers' asynq RetryDelayFunc: an error that carries its delay
// (a failed delivery: the schedule with jitter, or the receiver's Retry-After, already
// recorded as the delivery's next_attempt_at) gets exactly that; an endpoint busy
// with other attempts is tried again within a second or two; anything else backs off
// as asynq does by default.
func retryDelay(n int, err error, t *asynq.Task) time.Duration {
	var re *webhook.RetryError
	if errors.As(err, &re) && re.Delay > 0 {
		return re.Delay
	}
	var held *HeldError
	if errors.As(err, &held) {
		return max(time.Until(held.Until), 0) + 100*time.Millisecond
	}
	if errors.Is(err, dispatch.ErrBusy) {
		return time.Second + time.Duration(rand.Int64N(int64(time.Second)))
	}
	return asynq.DefaultRetryDelayFunc(n, err, t)
}

// isFailure tells asynq which errors count as a retry: an endpoint busy with other
// attempts is not one, nor a billing event held for its hold, so a task's retry
// counter counts real failures only.
func isFailure(err error) bool {
	var held *HeldError
	return !errors.Is(err, dispatch.ErrBusy) && !errors.As(err, &held)
}

// ProcessEventTask is the task that processes the stored event pk. Its TaskID is
// derived from the event, so enqueueing it twice is one task.
func ProcessEventTask(pk int64) (*asynq.Task, []asynq.Option) {
	return asynq.NewTask(TypeProcessEvent, []byte(strconv.FormatInt(pk, 10))),
		[]asynq.Option{asynq.TaskID(fmt.Sprintf("provider_event:%d", pk)), asynq.MaxRetry(12), asynq.Timeout(time.Minute)}
}

// ProcessEventsTask is the task that processes the stored events pks together, as
// one batch: what ingest queues for the events of one group commit.
func ProcessEventsTask(pks []int64) (*asynq.Task, []asynq.Option) {
	return asynq.NewTask(TypeProcessEvent, pkList(pks)), []asynq.Option{asynq.MaxRetry(12), asynq.Timeout(time.Minute)}
}

// pkList is a task payload naming rows: their pks with commas between them.
func pkList(pks []int64) []byte {
	b := make([]byte, 0, 8*len(pks))
	for i, pk := range pks {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, pk, 10)
	}
	return b
}

// eventPKs reads a pkList payload.
func eventPKs(payload []byte) ([]int64, error) {
	var pks []int64
	for f := range strings.SplitSeq(string(payload), ",") {
		pk, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: payload %q", asynq.SkipRetry, payload)
		}
		pks = append(pks, pk)
	}
	return pks, nil
}

// deliveryPayload reads a TypeDeliverWebhook or TypeRetryWebhook payload: a pkList,
// or one pk and, after a semicolon, the attempts made before its task.
func deliveryPayload(payload []byte) (pks []int64, after int, err error) {
	list, n, found := strings.Cut(string(payload), ";")
	if found {
		if after, err = strconv.Atoi(n); err != nil || after < 0 || strings.Contains(list, ",") {
			return nil, 0, fmt.Errorf("%w: payload %q", asynq.SkipRetry, payload)
		}
	}
	pks, err = eventPKs([]byte(list))
	return pks, after, err
}

// Handlers returns the mux of referd's task handlers; d makes webhook delivery
// attempts (nil: one with the default schedule that refuses private targets).
func Handlers(db *store.DB, log *slog.Logger, d *dispatch.Deliverer) *asynq.ServeMux {
	return HandlersWith(db, log, Options{Deliverer: d})
}

// Options are what the task handlers take from the process that runs them.
type Options struct {
	// Deliverer makes webhook delivery attempts (nil: one with the default schedule
	// that refuses private targets).
	Deliverer *dispatch.Deliverer
	// Written is called after each batch of billing events the workers commit
	// (Relay.Poke, in a process that runs the relay).
	Written func()
	// Redis is where a delivery that failed in a DeliverFirstTask gets its own task.
	// Without it the task itself is retried, its delivered deliveries skipped.
	Redis asynq.RedisConnOpt
	// Mail sends queued email (nil: email is off; send tasks wait, retried).
	Mail *mail.Sender
	// Promo asks a billing provider's API which code a promotion id it names is,
	// for payments whose promotion id referd has not seen (nil: no API; such
	// payments are attributed by the other rules).
	Promo promo.Resolver
}

// HandlersWith is Handlers with every option.
func HandlersWith(db *store.DB, log *slog.Logger, o Options) *asynq.ServeMux {
	d := o.Deliverer
	if d == nil {
		schedule, _ := webhook.ParseSchedule(webhook.DefaultSchedule)
		d = &dispatch.Deliverer{DB: db, Client: webhook.NewClient(false), Schedule: schedule}
	}
	var client *asynq.Client
	if o.Redis != nil {
		client = asynq.NewClient(o.Redis)
	}
	mux := asynq.NewServeMux()
	mux.Use(metrics.Jobs)
	deliver := func(manual bool) asynq.HandlerFunc {
		return func(ctx context.Context, t *asynq.Task) error {
			pks, after, err := deliveryPayload(t.Payload())
			if err != nil {
				return err
			}
			retries, _ := asynq.GetRetryCount(ctx)
			if len(pks) > 1 && !manual {
				return deliverFirst(ctx, d, client, pks, retries)
			}
			return d.Attempt(ctx, pks[0], retries+after, manual)
		}
	}
	mux.HandleFunc(TypeSendEmail, func(ctx context.Context, t *asynq.Task) error {
		pk, err := strconv.ParseInt(string(t.Payload()), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: payload %q", asynq.SkipRetry, t.Payload())
		}
		return SendEmail(ctx, db, o.Mail, pk)
	})
	mux.HandleFunc(TypeDeliverWebhook, deliver(false))
	mux.HandleFunc(TypeRetryWebhook, deliver(true))
	// Sales from billing events are group-committed like the API's (BENCHMARKS.md).
	pr := newProcessor(db)
	pr.log, pr.written, pr.resolver = log, o.Written, o.Promo
	mux.HandleFunc(TypeApproveRewards, func(ctx context.Context, _ *asynq.Task) error {
		n, err := ledger.ApproveDueRewards(ctx, db, time.Now())
		if err != nil {
			return fmt.Errorf("approving held rewards: %w", err)
		}
		if n > 0 {
			log.Info("held rewards approved", "count", n)
		}
		return nil
	})
	mux.HandleFunc(TypeProcessEvent, func(ctx context.Context, t *asynq.Task) error {
		pks, err := eventPKs(t.Payload())
		if err != nil {
			return err
		}
		return pr.handleAll(ctx, pks)
	})
	mux.HandleFunc(TypeSweepEvents, func(ctx context.Context, _ *asynq.Task) error {
		n, err := sweep(ctx, db, pr, log, time.Now().Add(-SweepAfter), sweepBudget)
		if n > 0 {
			log.Info("sweep: processed stored events whose task was missing or late", "count", n)
		}
		return err
	})
	mux.HandleFunc(TypeRetryUnattributed, func(ctx context.Context, _ *asynq.Task) error {
		pks, err := store.UnattributedEventsSince(ctx, db, time.Now().AddDate(0, 0, -30), 500)
		if err != nil {
			return err
		}
		for len(pks) > 0 {
			n := min(len(pks), batchSize)
			if _, err := pr.run(ctx, pks[:n]); err != nil {
				log.Warn("retrying unattributed events: processing a batch failed", "pks", pks[:n], "err", err)
			}
			pks = pks[n:]
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
		{Spec: "@every 15s", Task: asynq.NewTask(TypeSweepEvents, nil),
			Opts: []asynq.Option{asynq.Unique(10 * time.Second), asynq.MaxRetry(3), asynq.Timeout(time.Minute)}},
		{Spec: "@every 1m", Task: asynq.NewTask(TypeRetryUnattributed, nil), Opts: opts},
	}
}

// SweepAfter is how long after its arrival an event still received is taken for one
// whose task was lost. Workers that keep up process an event within milliseconds;
// under a backlog the sweep works beside its tasks, which then find it done.
const SweepAfter = 15 * time.Second

// sweepBudget bounds one sweep run; the next run, 15 s later, goes on from the oldest.
const sweepBudget = 45 * time.Second

// sweep processes every event still received that arrived before before, oldest
// first, a page at a time, 64 at once through the pipeline (so they share batches),
// until none is left or budget has passed. It
// returns how many it processed. Recovery after Redis lost its queue, or after a
// crash between commit and enqueue, does not wait on the backlog's size: a sweep
// runs every 15 s and goes as fast as the workers do.
func sweep(ctx context.Context, db *store.DB, pr *processor, log *slog.Logger, before time.Time, budget time.Duration) (int, error) {
	deadline := time.Now().Add(budget)
	var afterAt time.Time
	var afterPK int64
	var done atomic.Int64
	for time.Now().Before(deadline) {
		page, err := store.StaleReceivedEvents(ctx, db, before, afterAt, afterPK, 1024)
		if err != nil || len(page) == 0 {
			return int(done.Load()), err
		}
		afterAt, afterPK = page[len(page)-1].ReceivedAt, page[len(page)-1].PK
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for _, ev := range page {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				var held *HeldError
				err := pr.handle(ctx, ev.PK)
				switch {
				case errors.As(err, &held):
				case err != nil:
					log.Warn("sweep: processing a stored event failed", "pk", ev.PK, "err", err)
				default:
					done.Add(1)
				}
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return int(done.Load()), ctx.Err()
		}
	}
	return int(done.Load()), nil
}

// FormatPayload shows a task's payload in asynqmon. Every referd payload is a row's
// pk (the secrets and bodies stay in PostgreSQL), so it says which row.
func FormatPayload(taskType string, payload []byte) string {
	switch taskType {
	case TypeProcessEvent:
		if bytes.IndexByte(payload, ',') >= 0 {
			return "provider_events.pk IN (" + string(payload) + ")"
		}
		return "provider_events.pk = " + string(payload)
	case TypeDeliverWebhook, TypeRetryWebhook:
		if pks, after, err := deliveryPayload(payload); err == nil && len(pks) > 1 {
			return "webhook_deliveries.pk IN (" + string(payload) + ")"
		} else if err == nil && after > 0 {
			return fmt.Sprintf("webhook_deliveries.pk = %d (after %d attempts)", pks[0], after)
		}
		return "webhook_deliveries.pk = " + string(payload)
	case TypeSendEmail:
		return "emails.pk = " + string(payload)
	}
	if len(payload) == 0 {
		return "(none)"
	}
	return string(payload)
}

// A DeliverFirstTask makes at most firstAttemptsAtOnce attempts at once, and tries
// those that found their endpoint busy up to firstAttemptRounds times in all.
const (
	firstAttemptsAtOnce = 16
	firstAttemptRounds  = 5
)

// deliverFirst makes the first attempt of each of the deliveries pks together (one
// endpoint's; retries is the task's own retry count; dispatch.Deliverer.AttemptAll
// reads them in one statement and records their attempts in one), then gives each
// delivery that is not done a task of its own: after a failed attempt, at the delay
// its schedule says; when the endpoint was busy or the attempt could not be made,
// shortly. With no client, the task returns the first error and asynq runs it again.
func deliverFirst(ctx context.Context, d *dispatch.Deliverer, client *asynq.Client, pks []int64, retries int) error {
	// An endpoint takes dispatch's PerEndpoint attempts at once; the attempts that
	// found it busy (other tasks' attempts were in flight) try again here a few times
	// before they get a task of their own, which asynq could start only a second or
	// more later.
	errs := d.AttemptAll(ctx, pks, retries, firstAttemptsAtOnce, firstAttemptRounds)
	queue, _ := asynq.GetQueueName(ctx)
	var failed []error
	for i, err := range errs {
		if err == nil {
			continue
		}
		if client == nil {
			failed = append(failed, err)
			continue
		}
		after, delay := retries, time.Second+time.Duration(rand.Int64N(int64(time.Second)))
		var re *webhook.RetryError
		switch {
		case errors.As(err, &re):
			after, delay = retries+1, re.Delay
		case errors.Is(err, dispatch.ErrBusy):
		default:
			delay = 5 * time.Second // the attempt was not made or not recorded
		}
		task, opts := deliverAgainTask(pks[i], after, len(d.Schedule))
		opts = append(opts, asynq.ProcessIn(delay))
		if queue != "" {
			opts = append(opts, asynq.Queue(queue))
		}
		if _, err := client.EnqueueContext(ctx, task, opts...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	// The first failure says when to try again (a RetryError's delay, or busy).
	return failed[0]
}

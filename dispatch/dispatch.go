// Package dispatch holds outgoing webhooks: a program's endpoints (where to send,
// which events, the signing secret and its rotation; endpoints.go) and their
// deliveries. It turns outbox events into deliveries, one per subscribed endpoint,
// created in PostgreSQL before any task is queued, and attempts them, recording each
// attempt and deciding what comes next (done, retry later, endpoint disabled); the
// delivery log can be read and a delivery retried by hand. The HTTP side is package
// webhook; the queue is package jobs.
package dispatch

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/referd/referd/batch"
	"github.com/referd/referd/cache"
	"github.com/referd/referd/logging"
	"github.com/referd/referd/metrics"
	"github.com/referd/referd/store"
	"github.com/referd/referd/webhook"
)

// Plan creates the deliveries of claimed outbox rows, in the relay's transaction,
// and returns the new deliveries' PKs, endpoint by endpoint: the tasks to queue once
// it commits.
func Plan(ctx context.Context, tx *store.Tx, rows []store.OutboxRow) ([][]int64, error) {
	programs := map[int64]bool{}
	var pks []int64
	for _, r := range rows {
		if !programs[r.ProgramPK] {
			programs[r.ProgramPK] = true
			pks = append(pks, r.ProgramPK)
		}
	}
	if len(pks) == 0 {
		return nil, nil
	}
	endpoints, err := store.ActiveEndpoints(ctx, tx, pks)
	if err != nil || len(endpoints) == 0 {
		return nil, err
	}
	byProgram := map[int64][]store.WebhookEndpoint{}
	for _, e := range endpoints {
		byProgram[e.ProgramPK] = append(byProgram[e.ProgramPK], e)
	}
	byEndpoint := map[int64][]store.WebhookDelivery{}
	var order []int64
	for _, r := range rows {
		for _, e := range byProgram[r.ProgramPK] {
			if !e.Subscribed(r.Event) {
				continue
			}
			// The body is Partnero's: url and webhook_key name the endpoint as the API
			// shows it when the event is planned, and every attempt sends these bytes.
			body, err := json.Marshal(struct {
				Event      string          `json:"event"`
				URL        string          `json:"url"`
				WebhookKey string          `json:"webhook_key"`
				CreatedAt  string          `json:"created_at"`
				Data       json.RawMessage `json:"data"`
			}{r.Event, e.URL, e.Key, r.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z"), json.RawMessage(r.Payload)})
			if err != nil {
				return nil, err
			}
			if byEndpoint[e.PK] == nil {
				order = append(order, e.PK)
			}
			byEndpoint[e.PK] = append(byEndpoint[e.PK], store.WebhookDelivery{ID: "dlv_" + rand.Text(), WebhookID: "msg_" + rand.Text(),
				ProgramPK: r.ProgramPK, EndpointPK: e.PK, OutboxPK: r.PK, Event: r.Event, Body: string(body), CreatedAt: store.Now(),
				RequestID: r.RequestID})
		}
	}
	const chunk = 500 // bounds one statement's parameters
	var out [][]int64
	for _, ep := range order {
		ds := byEndpoint[ep]
		var pks []int64
		for i := 0; i < len(ds); i += chunk {
			got, err := store.InsertDeliveries(ctx, tx, ds[i:min(i+chunk, len(ds))])
			if err != nil {
				return nil, err
			}
			pks = append(pks, got...)
		}
		if len(pks) > 0 {
			out = append(out, pks)
		}
	}
	return out, nil
}

// Deliverer makes delivery attempts.
type Deliverer struct {
	DB     *store.DB
	Client *http.Client
	// Schedule is the delays between attempts (REFERD_WEBHOOK_RETRY_SCHEDULE); a
	// delivery is exhausted after len(Schedule) retries.
	Schedule []time.Duration
	// PerEndpoint bounds the attempts in flight to one endpoint in this process
	// (default 32, half of referd's default concurrency), so an endpoint that hangs
	// holds at most that many workers and never delays deliveries to the others.
	PerEndpoint int
	// Log, when set, gets a line for every attempt that failed, with the request id
	// behind the delivery.
	Log *slog.Logger
	// DisableAfter disables an endpoint whose attempts have all failed for this long
	// (default 5 days).
	DisableAfter time.Duration

	mu       sync.Mutex
	inflight map[int64]chan struct{}

	once      sync.Once
	reads     *batch.Group[int64, *store.WebhookDelivery]
	records   *batch.Group[store.AttemptRecord, struct{}]
	endpoints *cache.Cache[int64, endpointEntry]
}

type endpointEntry struct {
	e     store.WebhookEndpoint
	found bool
}

// endpointTTL is how long an endpoint's settings are reused: a change (a new URL, a
// rotated secret, deactivation) reaches attempts already queued within it.
const endpointTTL = time.Second

// init batches what concurrent attempts do alike: reading their deliveries and
// recording their attempts (batch.Group), and reading their endpoint (cache.Cache).
func (d *Deliverer) init() {
	d.once.Do(func() {
		d.reads = batch.New(2, 64, func(ctx context.Context, pks []int64) ([]*store.WebhookDelivery, error) {
			ds, err := store.DeliveriesByPK(ctx, d.DB, pks)
			if err != nil {
				return nil, err
			}
			return batch.InOrder(pks, ds, func(d *store.WebhookDelivery) int64 { return d.PK }), nil
		})
		d.records = batch.New(2, 64, func(ctx context.Context, recs []store.AttemptRecord) ([]struct{}, error) {
			return nil, store.RecordAttempts(ctx, d.DB, recs)
		})
		d.endpoints = &cache.Cache[int64, endpointEntry]{TTL: endpointTTL}
	})
}

func (d *Deliverer) endpoint(ctx context.Context, pk int64) (store.WebhookEndpoint, bool, error) {
	en, err := d.endpoints.Get(ctx, pk, func(ctx context.Context) (endpointEntry, error) {
		e, err := store.WebhookEndpointByPK(ctx, d.DB, pk)
		if store.IsNotFound(err) {
			return endpointEntry{}, nil
		}
		return endpointEntry{e, err == nil}, err
	})
	return en.e, en.found, err
}

// record records an attempt: at once with the attempts other tasks record meanwhile
// (d.records), or, for AttemptAll, with the other attempts of its batch (into).
func (d *Deliverer) record(ctx context.Context, into *recorder, del store.WebhookDelivery, a store.Attempt, status string, next sql.NullTime) error {
	r := store.AttemptRecord{DeliveryPK: del.PK, EndpointPK: del.EndpointPK, Attempt: a, Status: status, Next: next}
	if into != nil {
		into.mu.Lock()
		into.recs = append(into.recs, r)
		into.mu.Unlock()
		return nil
	}
	_, err := d.records.Do(ctx, r)
	return err
}

// recorder collects the attempts of an AttemptAll, recorded in one statement.
type recorder struct {
	mu   sync.Mutex
	recs []store.AttemptRecord
}

// AttemptAll makes the first attempts of the deliveries pks (retries: as Attempt's),
// at most atOnce at a time, trying again up to rounds times in all those that found
// their endpoint busy; it reads the deliveries in one statement and records the
// attempts in one. It returns each delivery's result, as Attempt would have.
func (d *Deliverer) AttemptAll(ctx context.Context, pks []int64, retries, atOnce, rounds int) []error {
	d.init()
	errs := make([]error, len(pks))
	ds, err := store.DeliveriesByPK(ctx, d.DB, pks)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	byPK := make(map[int64]*store.WebhookDelivery, len(ds))
	for i := range ds {
		byPK[ds[i].PK] = &ds[i]
	}
	rec := &recorder{}
	todo := make([]int, len(pks))
	for i := range todo {
		todo[i] = i
	}
	for round := 0; round < rounds && len(todo) > 0; round++ {
		var wg sync.WaitGroup
		sem := make(chan struct{}, max(atOnce, 1))
		for _, i := range todo {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				errs[i] = d.attempt(ctx, rec, pks[i], byPK[pks[i]], retries, false)
			})
		}
		wg.Wait()
		todo = slices.DeleteFunc(todo, func(i int) bool { return !errors.Is(errs[i], ErrBusy) })
	}
	if len(rec.recs) > 0 {
		if err := store.RecordAttempts(ctx, d.DB, rec.recs); err != nil {
			// Not recorded: the task tries them again.
			for i := range errs {
				errs[i] = err
			}
		}
	}
	return errs
}

// ErrBusy is returned when the endpoint has PerEndpoint attempts in flight and none
// ended within busyWait: the attempt is not made and is not a failure; the task
// comes back shortly.
var ErrBusy = errors.New("dispatch: endpoint busy")

// busyWait is how long an attempt waits for its endpoint to have room before it
// gives its worker back: long enough that a busy but healthy endpoint keeps its
// attempts flowing, short enough that a hanging one does not hold workers.
const busyWait = 200 * time.Millisecond

func (d *Deliverer) slots(endpointPK int64) chan struct{} {
	limit := d.PerEndpoint
	if limit <= 0 {
		limit = 32
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inflight == nil {
		d.inflight = map[int64]chan struct{}{}
	}
	sem, ok := d.inflight[endpointPK]
	if !ok {
		sem = make(chan struct{}, limit)
		d.inflight[endpointPK] = sem
	}
	return sem
}

func (d *Deliverer) acquire(ctx context.Context, endpointPK int64) bool {
	sem := d.slots(endpointPK)
	select {
	case sem <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(busyWait)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (d *Deliverer) release(endpointPK int64) { <-d.slots(endpointPK) }

// Attempt makes one attempt of delivery pk, of which retries earlier ones were
// retries, and records it. It returns nil when nothing more is to be done
// (delivered, exhausted, endpoint gone or disabled, or a manual attempt, which
// never schedules more), ErrBusy, or a *webhook.RetryError carrying the delay
// until the next attempt, which is recorded as next_attempt_at.
func (d *Deliverer) Attempt(ctx context.Context, pk int64, retries int, manual bool) error {
	d.init()
	delp, err := d.reads.Do(ctx, pk)
	if err != nil {
		return err
	}
	return d.attempt(ctx, nil, pk, delp, retries, manual)
}

// attempt is Attempt for the delivery delp (nil: there is none), recording into
// into (nil: at once).
func (d *Deliverer) attempt(ctx context.Context, into *recorder, pk int64, delp *store.WebhookDelivery, retries int, manual bool) error {
	if delp == nil {
		return nil // nothing to deliver
	}
	del := *delp
	ctx = logging.WithRequestID(ctx, del.RequestID.String)
	if !manual && (del.Status == "succeeded" || del.Status == "exhausted") {
		return nil // a task delivered twice
	}
	ep, found, err := d.endpoint(ctx, del.EndpointPK)
	if err != nil {
		return err
	}
	if !found || !ep.IsActive {
		if !manual && del.Status != "succeeded" {
			return d.record(ctx, into, del, store.Attempt{At: store.Now(), Error: "endpoint deleted or disabled"}, "exhausted", sql.NullTime{})
		}
		return nil
	}
	if !d.acquire(ctx, ep.PK) {
		metrics.Delivery("busy")
		return ErrBusy
	}
	now := time.Now()
	a := webhook.Deliver(ctx, d.Client, ep.URL, webhook.Message{ID: del.WebhookID, Timestamp: now,
		Body: []byte(del.Body), Secrets: ep.Secrets(now)})
	d.release(ep.PK)
	rec := store.Attempt{At: store.Now(), StatusCode: a.StatusCode, DurationMS: a.Duration.Milliseconds(), Response: a.Response}
	if a.Err != nil {
		rec.Error = a.Err.Error()
	} else if a.StatusCode < 200 || a.StatusCode > 299 {
		rec.Error = fmt.Sprintf("HTTP %d", a.StatusCode)
	}
	out := a.Outcome(time.Now())
	if d.Log != nil && out.Kind != webhook.Succeeded {
		d.Log.InfoContext(ctx, "webhook attempt failed", "delivery", del.ID, "webhook_id", del.WebhookID, "endpoint", ep.Key,
			"status_code", a.StatusCode, "error", rec.Error, "retries", retries)
	}
	switch {
	case out.Kind == webhook.Succeeded:
		metrics.Delivery("succeeded")
		return d.record(ctx, into, del, rec, "succeeded", sql.NullTime{})
	case out.Kind == webhook.Gone:
		metrics.Delivery("gone")
		if err := d.record(ctx, into, del, rec, "exhausted", sql.NullTime{}); err != nil {
			return err
		}
		return store.DisableEndpoint(ctx, d.DB, ep.PK, "the endpoint answered 410 Gone", store.Now())
	}
	// A failure. Past the schedule, or failing for too long, the delivery is
	// exhausted; a failure streak that long disables the endpoint too.
	disableAfter := d.DisableAfter
	if disableAfter <= 0 {
		disableAfter = 5 * 24 * time.Hour
	}
	if ep.FailingSince.Valid && time.Since(ep.FailingSince.Time) >= disableAfter {
		if err := d.record(ctx, into, del, rec, "exhausted", sql.NullTime{}); err != nil {
			return err
		}
		metrics.Delivery("exhausted")
		span := disableAfter.String()
		if days := int(disableAfter.Hours() / 24); days >= 1 && disableAfter%(24*time.Hour) == 0 {
			span = fmt.Sprintf("%d days", days)
		}
		return store.DisableEndpoint(ctx, d.DB, ep.PK, "every attempt failed for "+span, store.Now())
	}
	if manual {
		status := "failed"
		if del.Status == "exhausted" {
			status = "exhausted"
		}
		return d.record(ctx, into, del, rec, status, del.NextAttemptAt)
	}
	if retries >= len(d.Schedule) {
		metrics.Delivery("exhausted")
		return d.record(ctx, into, del, rec, "exhausted", sql.NullTime{})
	}
	metrics.Delivery("retry")
	delay := webhook.RetryDelay(d.Schedule, retries, &webhook.RetryError{Delay: out.RetryAfter}, nil)
	next := sql.NullTime{Time: time.Now().Add(delay), Valid: true}
	if err := d.record(ctx, into, del, rec, "failed", next); err != nil {
		return err
	}
	return &webhook.RetryError{Delay: delay, Err: errors.New(rec.Error)}
}

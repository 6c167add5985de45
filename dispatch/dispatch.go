// Package dispatch turns outbox events into outgoing webhook deliveries: one per
// subscribed endpoint, created in PostgreSQL before any task is queued, and attempts
// them, recording each attempt and deciding what comes next (done, retry later,
// endpoint disabled). The HTTP side is package webhook; the queue is package jobs.
package dispatch

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/referd/referd/store"
	"github.com/referd/referd/webhook"
)

// Plan creates the deliveries of claimed outbox rows, in the relay's transaction,
// and returns the new deliveries' PKs: the tasks to queue once it commits.
func Plan(ctx context.Context, tx *store.Tx, rows []store.OutboxRow) ([]int64, error) {
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
	var ds []store.WebhookDelivery
	for _, r := range rows {
		for _, e := range byProgram[r.ProgramPK] {
			if !e.Subscribed(r.Event) {
				continue
			}
			body, err := json.Marshal(struct {
				Event      string          `json:"event"`
				WebhookKey string          `json:"webhook_key"`
				CreatedAt  string          `json:"created_at"`
				Data       json.RawMessage `json:"data"`
			}{r.Event, e.Key, r.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z"), json.RawMessage(r.Payload)})
			if err != nil {
				return nil, err
			}
			ds = append(ds, store.WebhookDelivery{ID: "dlv_" + rand.Text(), WebhookID: "msg_" + rand.Text(),
				ProgramPK: r.ProgramPK, EndpointPK: e.PK, OutboxPK: r.PK, Event: r.Event, Body: string(body), CreatedAt: store.Now()})
		}
	}
	const chunk = 500 // bounds one statement's parameters
	var out []int64
	for i := 0; i < len(ds); i += chunk {
		got, err := store.InsertDeliveries(ctx, tx, ds[i:min(i+chunk, len(ds))])
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
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
	// (default 8), so an endpoint that hangs holds at most that many workers and
	// never delays deliveries to the others.
	PerEndpoint int
	// DisableAfter disables an endpoint whose attempts have all failed for this long
	// (default 5 days).
	DisableAfter time.Duration

	mu       sync.Mutex
	inflight map[int64]int
}

// ErrBusy is returned when the endpoint already has PerEndpoint attempts in flight:
// the attempt is not made and is not a failure; the task comes back shortly.
var ErrBusy = errors.New("dispatch: endpoint busy")

func (d *Deliverer) acquire(endpointPK int64) bool {
	limit := d.PerEndpoint
	if limit <= 0 {
		limit = 8
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inflight == nil {
		d.inflight = map[int64]int{}
	}
	if d.inflight[endpointPK] >= limit {
		return false
	}
	d.inflight[endpointPK]++
	return true
}

func (d *Deliverer) release(endpointPK int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inflight[endpointPK]--; d.inflight[endpointPK] <= 0 {
		delete(d.inflight, endpointPK)
	}
}

// Attempt makes one attempt of delivery pk, of which retries earlier ones were
// retries, and records it. It returns nil when nothing more is to be done
// (delivered, exhausted, endpoint gone or disabled, or a manual attempt, which
// never schedules more), ErrBusy, or a *webhook.RetryError carrying the delay
// until the next attempt, which is recorded as next_attempt_at.
func (d *Deliverer) Attempt(ctx context.Context, pk int64, retries int, manual bool) error {
	del, ep, found, err := store.DeliveryWithEndpoint(ctx, d.DB, pk)
	if store.IsNotFound(err) {
		return nil // nothing to deliver
	}
	if err != nil {
		return err
	}
	if !manual && (del.Status == "succeeded" || del.Status == "exhausted") {
		return nil // a task delivered twice
	}
	if !found || !ep.IsActive {
		if !manual && del.Status != "succeeded" {
			return store.RecordAttempt(ctx, d.DB, del, store.Attempt{At: store.Now(), Error: "endpoint deleted or disabled"},
				"exhausted", sql.NullTime{})
		}
		return nil
	}
	if !d.acquire(ep.PK) {
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
	switch {
	case out.Kind == webhook.Succeeded:
		return store.RecordAttempt(ctx, d.DB, del, rec, "succeeded", sql.NullTime{})
	case out.Kind == webhook.Gone:
		if err := store.RecordAttempt(ctx, d.DB, del, rec, "exhausted", sql.NullTime{}); err != nil {
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
		if err := store.RecordAttempt(ctx, d.DB, del, rec, "exhausted", sql.NullTime{}); err != nil {
			return err
		}
		return store.DisableEndpoint(ctx, d.DB, ep.PK, fmt.Sprintf("every attempt failed for %s", disableAfter), store.Now())
	}
	if manual {
		status := "failed"
		if del.Status == "exhausted" {
			status = "exhausted"
		}
		return store.RecordAttempt(ctx, d.DB, del, rec, status, del.NextAttemptAt)
	}
	if retries >= len(d.Schedule) {
		return store.RecordAttempt(ctx, d.DB, del, rec, "exhausted", sql.NullTime{})
	}
	delay := webhook.RetryDelay(d.Schedule, retries, &webhook.RetryError{Delay: out.RetryAfter}, nil)
	next := sql.NullTime{Time: time.Now().Add(delay), Valid: true}
	if err := store.RecordAttempt(ctx, d.DB, del, rec, "failed", next); err != nil {
		return err
	}
	return &webhook.RetryError{Delay: delay, Err: errors.New(rec.Error)}
}

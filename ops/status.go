package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/store"
)

// Report is the state of a referd deployment as an operator needs it: its queues,
// and what waits or fails in the database.
type Report struct {
	At time.Time `json:"at"`
	// Queues are asynq's queues, by name; empty when Redis did not answer.
	Queues []QueueStatus `json:"queues"`
	// RedisError is why the queues are missing, if they are.
	RedisError string `json:"redis_error,omitempty"`
	// ProviderEvents counts stored billing events that may need an operator.
	ProviderEvents EventStatus `json:"provider_events"`
	// Outbox is what waits for the relay.
	Outbox OutboxStatus `json:"outbox"`
	// Endpoints are webhook endpoints failing now, longest first, then those referd
	// disabled (50 at most); EndpointsTotal counts them all.
	Endpoints      []EndpointStatus `json:"failing_endpoints"`
	EndpointsTotal int              `json:"failing_endpoints_total"`
}

// QueueStatus is one asynq queue.
type QueueStatus struct {
	Name      string `json:"name"`
	Paused    bool   `json:"paused"`
	Size      int    `json:"size"` // pending + active + scheduled + retry + archived (+ aggregating)
	Pending   int    `json:"pending"`
	Active    int    `json:"active"`
	Scheduled int    `json:"scheduled"`
	Retry     int    `json:"retry"`
	Archived  int    `json:"archived"`
	// LatencySeconds is the age of the oldest pending task.
	LatencySeconds float64 `json:"latency_seconds"`
	// Today's counters (UTC day): tasks processed (failures included) and failed.
	ProcessedToday int `json:"processed_today"`
	FailedToday    int `json:"failed_today"`
}

// EventStatus counts stored billing events that may need an operator.
type EventStatus struct {
	Unattributed int `json:"unattributed"`
	Failed       int `json:"failed"`
	// StaleReceived were received more than StaleAfter ago and are not processed yet.
	StaleReceived     int     `json:"stale_received"`
	StaleAfterSeconds float64 `json:"stale_after_seconds"`
}

// OutboxStatus is the relay's backlog.
type OutboxStatus struct {
	Undispatched int        `json:"undispatched"`
	Oldest       *time.Time `json:"oldest,omitempty"`
	// OldestAgeSeconds is the age of the oldest undispatched row (0 when none waits).
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

// EndpointStatus is a webhook endpoint that is failing (Active) or that referd
// disabled (DisabledReason says why).
type EndpointStatus struct {
	ProgramID      string     `json:"program_id"`
	Key            string     `json:"key"`
	URL            string     `json:"url"`
	Active         bool       `json:"active"`
	FailingSince   *time.Time `json:"failing_since"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
}

// StaleAfter is how old a received billing event is before Status counts it as
// stale: the workers take events within milliseconds, and their sweep picks up
// lost ones after a minute.
const StaleAfter = time.Minute

// maxEndpoints is how many failing or disabled endpoints a report lists.
const maxEndpoints = 50

// Status reports the queues (from Redis, through asynq's Inspector) and what waits
// or fails in the database. Redis trouble does not stop it: the report then has the
// database part and RedisError. The error is the database's, with the report as far
// as it got.
func Status(ctx context.Context, db *store.DB, redis asynq.RedisConnOpt) (Report, error) {
	r := Report{At: time.Now().UTC(), Queues: []QueueStatus{}, Endpoints: []EndpointStatus{}}
	type queues struct {
		qs  []QueueStatus
		err error
	}
	qc := make(chan queues, 1)
	// The Inspector takes no context; a Redis that hangs must not hold up the rest.
	go func() {
		if redis == nil {
			qc <- queues{nil, errors.New("no Redis configured")}
			return
		}
		qs, err := queueStatuses(redis)
		qc <- queues{qs, err}
	}()
	dbErr := r.databasePart(ctx, db)
	select {
	case q := <-qc:
		if q.err != nil {
			r.RedisError = q.err.Error()
		} else {
			r.Queues = q.qs
		}
	case <-ctx.Done():
		r.RedisError = ctx.Err().Error()
	}
	if dbErr != nil {
		return r, fmt.Errorf("ops.Status: %w", dbErr)
	}
	return r, nil
}

func (r *Report) databasePart(ctx context.Context, db *store.DB) error {
	c, err := store.CountProviderEvents(ctx, db, r.At.Add(-StaleAfter))
	if err != nil {
		return err
	}
	r.ProviderEvents = EventStatus{Unattributed: c.Unattributed, Failed: c.Failed, StaleReceived: c.StaleReceived,
		StaleAfterSeconds: StaleAfter.Seconds()}
	n, oldest, err := store.OutboxBacklog(ctx, db)
	if err != nil {
		return err
	}
	r.Outbox.Undispatched = n
	if oldest.Valid {
		t := oldest.Time.UTC()
		r.Outbox.Oldest = &t
		r.Outbox.OldestAgeSeconds = max(r.At.Sub(t).Seconds(), 0)
	}
	es, total, err := store.TroubledEndpoints(ctx, db, maxEndpoints)
	if err != nil {
		return err
	}
	r.EndpointsTotal = total
	for _, e := range es {
		s := EndpointStatus{ProgramID: e.ProgramID, Key: e.Key, URL: e.URL, Active: e.IsActive, DisabledReason: e.DisabledReason.String}
		if e.FailingSince.Valid {
			t := e.FailingSince.Time.UTC()
			s.FailingSince = &t
		}
		r.Endpoints = append(r.Endpoints, s)
	}
	return nil
}

func queueStatuses(redis asynq.RedisConnOpt) ([]QueueStatus, error) {
	insp := asynq.NewInspector(redis)
	defer insp.Close()
	names, err := insp.Queues()
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	out := make([]QueueStatus, 0, len(names))
	for _, name := range names {
		qi, err := insp.GetQueueInfo(name)
		if err != nil {
			// A queue deleted since the listing is no error (asynq's own error for that
			// is internal, so ask again whether the queue exists).
			if now, lerr := insp.Queues(); lerr == nil && !slices.Contains(now, name) {
				continue
			}
			return nil, fmt.Errorf("queue %s: %w", name, err)
		}
		out = append(out, QueueStatus{Name: name, Paused: qi.Paused, Size: qi.Size, Pending: qi.Pending, Active: qi.Active,
			Scheduled: qi.Scheduled, Retry: qi.Retry, Archived: qi.Archived, LatencySeconds: qi.Latency.Seconds(),
			ProcessedToday: qi.Processed, FailedToday: qi.Failed})
	}
	return out, nil
}

// WriteText writes the report for a person: aligned sections for the queues, the
// billing events, the outbox and the troubled webhook endpoints.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "referd status at %s\n\n", r.At.Format(time.RFC3339))

	fmt.Fprintln(tw, "Queues")
	switch {
	case r.RedisError != "":
		fmt.Fprintf(tw, "  Redis unavailable: %s\n", r.RedisError)
	case len(r.Queues) == 0:
		fmt.Fprintln(tw, "  (no queues yet)")
	default:
		fmt.Fprintln(tw, "  QUEUE\tSIZE\tPENDING\tACTIVE\tSCHEDULED\tRETRY\tARCHIVED\tLATENCY\tPROCESSED TODAY\tFAILED TODAY")
		for _, q := range r.Queues {
			name := q.Name
			if q.Paused {
				name += " (paused)"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\n", name, q.Size, q.Pending, q.Active, q.Scheduled,
				q.Retry, q.Archived, age(q.LatencySeconds), q.ProcessedToday, q.FailedToday)
		}
	}

	fmt.Fprintln(tw, "\nBilling events")
	fmt.Fprintf(tw, "  unattributed\t%d\n", r.ProviderEvents.Unattributed)
	fmt.Fprintf(tw, "  failed\t%d\n", r.ProviderEvents.Failed)
	fmt.Fprintf(tw, "  received over %s ago\t%d\n", age(r.ProviderEvents.StaleAfterSeconds), r.ProviderEvents.StaleReceived)

	fmt.Fprintln(tw, "\nOutbox")
	fmt.Fprintf(tw, "  undispatched\t%d\n", r.Outbox.Undispatched)
	if r.Outbox.Oldest != nil {
		fmt.Fprintf(tw, "  oldest\t%s ago\n", age(r.Outbox.OldestAgeSeconds))
	}

	fmt.Fprintf(tw, "\nWebhook endpoints failing or disabled: %d\n", r.EndpointsTotal)
	if len(r.Endpoints) > 0 {
		fmt.Fprintln(tw, "  PROGRAM\tKEY\tSTATE\tFAILING SINCE\tURL")
		for _, e := range r.Endpoints {
			state := "failing"
			if !e.Active {
				state = "disabled: " + e.DisabledReason
			}
			since := "-"
			if e.FailingSince != nil {
				since = e.FailingSince.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.ProgramID, e.Key, state, since, e.URL)
		}
		if more := r.EndpointsTotal - len(r.Endpoints); more > 0 {
			fmt.Fprintf(tw, "  ... and %d more\n", more)
		}
	}
	return tw.Flush()
}

// age renders seconds as a short duration: "0s", "1.5s", "3m20s", "1m", "2h5m".
func age(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	var s string
	switch {
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		s = d.Round(time.Second).String()
	default:
		s = d.Round(time.Minute).String()
	}
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
)

// WebhookEndpoint is a URL a program's events are delivered to.
type WebhookEndpoint struct {
	PK                  int64          `db:"pk"`
	ProgramPK           int64          `db:"program_pk"`
	Key                 string         `db:"key"`
	Name                string         `db:"name"`
	URL                 string         `db:"url"`
	IsActive            bool           `db:"is_active"`
	Events              pq.StringArray `db:"events"`
	Secret              string         `db:"secret"`
	PreviousSecret      sql.NullString `db:"previous_secret"`
	PreviousSecretUntil sql.NullTime   `db:"previous_secret_until"`
	FailingSince        sql.NullTime   `db:"failing_since"`
	DisabledReason      sql.NullString `db:"disabled_reason"`
	CreatedAt           time.Time      `db:"created_at"`
	UpdatedAt           time.Time      `db:"updated_at"`
}

// Secrets are the secrets that sign a message sent at now, newest first (as
// webhook.Message takes them): the current one, and the previous one during its
// rotation window.
func (e WebhookEndpoint) Secrets(now time.Time) []string {
	s := []string{e.Secret}
	if e.PreviousSecret.Valid && e.PreviousSecretUntil.Valid && now.Before(e.PreviousSecretUntil.Time) {
		s = append(s, e.PreviousSecret.String)
	}
	return s
}

// Subscribed says whether the endpoint takes event (no events listed: all of them).
func (e WebhookEndpoint) Subscribed(event string) bool {
	if len(e.Events) == 0 {
		return true
	}
	for _, ev := range e.Events {
		if ev == event {
			return true
		}
	}
	return false
}

const endpointCols = `pk, program_pk, key, name, url, is_active, events, secret, previous_secret, previous_secret_until,
	failing_since, disabled_reason, created_at, updated_at`

// InsertWebhookEndpoint stores a new endpoint and sets its PK.
func InsertWebhookEndpoint(ctx context.Context, q Querier, e *WebhookEndpoint) error {
	if e.Events == nil {
		e.Events = pq.StringArray{}
	}
	err := q.GetContext(ctx, &e.PK, `INSERT INTO webhook_endpoints (program_pk, key, name, url, is_active, events, secret, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING pk`,
		e.ProgramPK, e.Key, e.Name, e.URL, e.IsActive, e.Events, e.Secret, e.CreatedAt)
	if err != nil {
		return fmt.Errorf("store.InsertWebhookEndpoint(%s): %w", e.Key, translate(err))
	}
	return nil
}

// UpdateWebhookEndpoint writes e's editable fields.
func UpdateWebhookEndpoint(ctx context.Context, q Querier, e *WebhookEndpoint) error {
	if e.Events == nil {
		e.Events = pq.StringArray{}
	}
	_, err := q.ExecContext(ctx, `UPDATE webhook_endpoints SET key = $2, name = $3, url = $4, is_active = $5, events = $6,
		secret = $7, previous_secret = $8, previous_secret_until = $9, failing_since = $10, disabled_reason = $11, updated_at = $12
		WHERE pk = $1`, e.PK, e.Key, e.Name, e.URL, e.IsActive, e.Events, e.Secret, e.PreviousSecret, e.PreviousSecretUntil,
		e.FailingSince, e.DisabledReason, e.UpdatedAt)
	if err != nil {
		return fmt.Errorf("store.UpdateWebhookEndpoint(%s): %w", e.Key, translate(err))
	}
	return nil
}

// GetWebhookEndpoint returns the program's endpoint with key.
func GetWebhookEndpoint(ctx context.Context, q Querier, programPK int64, key string) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	if err := get(ctx, q, &e, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE program_pk = $1 AND key = $2`, programPK, key); err != nil {
		return WebhookEndpoint{}, fmt.Errorf("store.GetWebhookEndpoint(%s): %w", key, translate(err))
	}
	return e, nil
}

// ListWebhookEndpoints returns a page of the program's endpoints, oldest first, and
// their total.
func ListWebhookEndpoints(ctx context.Context, q Querier, programPK int64, limit, offset int) ([]WebhookEndpoint, int, error) {
	var total int
	if err := get(ctx, q, &total, `SELECT count(*) FROM webhook_endpoints WHERE program_pk = $1`, programPK); err != nil {
		return nil, 0, fmt.Errorf("store.ListWebhookEndpoints: %w", err)
	}
	var out []WebhookEndpoint
	if err := selectRows(ctx, q, &out, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE program_pk = $1 ORDER BY pk LIMIT $2 OFFSET $3`,
		programPK, limit, offset); err != nil {
		return nil, 0, fmt.Errorf("store.ListWebhookEndpoints: %w", err)
	}
	return out, total, nil
}

// DeleteWebhookEndpoint removes an endpoint; its deliveries stop (they find no
// endpoint) and stay in the log.
func DeleteWebhookEndpoint(ctx context.Context, q Querier, pk int64) error {
	if _, err := exec(ctx, q, `DELETE FROM webhook_endpoints WHERE pk = $1`, pk); err != nil {
		return fmt.Errorf("store.DeleteWebhookEndpoint(%d): %w", pk, err)
	}
	return nil
}

// ActiveEndpoints returns the active endpoints of these programs.
func ActiveEndpoints(ctx context.Context, q Querier, programPKs []int64) ([]WebhookEndpoint, error) {
	var out []WebhookEndpoint
	if err := selectRows(ctx, q, &out, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE program_pk = ANY($1) AND is_active ORDER BY pk`,
		pq.Int64Array(programPKs)); err != nil {
		return nil, fmt.Errorf("store.ActiveEndpoints: %w", err)
	}
	return out, nil
}

// Attempt is one delivery attempt, as the delivery log shows it.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code"`
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error"`
	Response   string    `json:"response"`
}

// WebhookDelivery is one outbox event for one endpoint, with its attempts.
type WebhookDelivery struct {
	PK            int64        `db:"pk"`
	ID            string       `db:"id"`
	WebhookID     string       `db:"webhook_id"`
	ProgramPK     int64        `db:"program_pk"`
	EndpointPK    int64        `db:"endpoint_pk"`
	OutboxPK      int64        `db:"outbox_pk"`
	Event         string       `db:"event"`
	Body          string       `db:"body"`
	Status        string       `db:"status"`
	Attempts      string       `db:"attempts"`
	NextAttemptAt sql.NullTime `db:"next_attempt_at"`
	CreatedAt     time.Time    `db:"created_at"`
	// RequestID is the request behind the outbox event.
	RequestID sql.NullString `db:"request_id"`
}

const deliveryCols = `pk, id, webhook_id, program_pk, endpoint_pk, outbox_pk, event, body, status, attempts::text AS attempts,
	next_attempt_at, created_at, request_id`

// InsertDeliveries creates deliveries in one statement; one that exists already
// (same endpoint and outbox event) is left as it is. It returns the new ones' PKs.
func InsertDeliveries(ctx context.Context, q Querier, ds []WebhookDelivery) ([]int64, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	var sb strings.Builder
	sb.WriteString(`INSERT INTO webhook_deliveries (id, webhook_id, program_pk, endpoint_pk, outbox_pk, event, body, next_attempt_at, created_at, request_id) VALUES `)
	args := make([]any, 0, 9*len(ds))
	for i, d := range ds {
		if i > 0 {
			sb.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+8, n+9)
		args = append(args, d.ID, d.WebhookID, d.ProgramPK, d.EndpointPK, d.OutboxPK, d.Event, d.Body, d.CreatedAt, d.RequestID)
	}
	sb.WriteString(` ON CONFLICT (endpoint_pk, outbox_pk) DO NOTHING RETURNING pk`)
	var pks []int64
	if err := q.SelectContext(ctx, &pks, sb.String(), args...); err != nil {
		return nil, fmt.Errorf("store.InsertDeliveries(%d): %w", len(ds), err)
	}
	return pks, nil
}

// DeliveriesByPK returns the deliveries with these pks in one statement; pks that
// match nothing are left out.
func DeliveriesByPK(ctx context.Context, q Querier, pks []int64) ([]WebhookDelivery, error) {
	var out []WebhookDelivery
	if err := selectRows(ctx, q, &out, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE pk = ANY($1)`, pq.Int64Array(pks)); err != nil {
		return nil, fmt.Errorf("store.DeliveriesByPK(%d): %w", len(pks), err)
	}
	return out, nil
}

// WebhookEndpointByPK returns an endpoint.
func WebhookEndpointByPK(ctx context.Context, q Querier, pk int64) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	if err := get(ctx, q, &e, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE pk = $1`, pk); err != nil {
		return WebhookEndpoint{}, fmt.Errorf("store.WebhookEndpointByPK(%d): %w", pk, translate(err))
	}
	return e, nil
}

// AttemptRecord is an attempt to append to a delivery's log, with the delivery's new
// status and next attempt.
type AttemptRecord struct {
	DeliveryPK int64
	EndpointPK int64
	Attempt    Attempt
	Status     string
	Next       sql.NullTime
}

// RecordAttempts appends attempts to their deliveries' logs, and moves each
// endpoint's failure streak, in one transaction: an endpoint whose latest attempt
// here succeeded ends its streak, one whose latest attempt failed starts one if none
// is running; an endpoint whose streak does not change is not written (every
// delivery to one endpoint would otherwise wait for that row).
func RecordAttempts(ctx context.Context, db *DB, recs []AttemptRecord) error {
	type row struct {
		PK      int64           `json:"pk"`
		Attempt json.RawMessage `json:"attempt"`
		Status  string          `json:"status"`
		Next    *time.Time      `json:"next"`
	}
	type streak struct {
		PK int64     `json:"pk"`
		OK bool      `json:"ok"`
		At time.Time `json:"at"`
	}
	rows := make([]row, 0, len(recs))
	latest := map[int64]streak{}
	for _, r := range recs {
		b, err := json.Marshal([]Attempt{r.Attempt})
		if err != nil {
			return err
		}
		var next *time.Time
		if r.Next.Valid {
			next = &r.Next.Time
		}
		rows = append(rows, row{r.DeliveryPK, b, r.Status, next})
		if s, ok := latest[r.EndpointPK]; !ok || !r.Attempt.At.Before(s.At) {
			latest[r.EndpointPK] = streak{r.EndpointPK, r.Status == "succeeded", r.Attempt.At}
		}
	}
	// The same order in every transaction: concurrent batches wait, never deadlock.
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.PK, b.PK) })
	streaks := make([]streak, 0, len(latest))
	for _, s := range latest {
		streaks = append(streaks, s)
	}
	slices.SortFunc(streaks, func(a, b streak) int { return cmp.Compare(a.PK, b.PK) })
	rj, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	sj, err := json.Marshal(streaks)
	if err != nil {
		return err
	}
	err = db.InTx(ctx, func(tx *Tx) error {
		if _, err := exec(ctx, tx, `
			UPDATE webhook_deliveries d SET attempts = d.attempts || r.attempt, status = r.status, next_attempt_at = r.next
			FROM jsonb_to_recordset($1::jsonb) AS r(pk bigint, attempt jsonb, status text, next timestamptz)
			WHERE d.pk = r.pk`, string(rj)); err != nil {
			return err
		}
		_, err := exec(ctx, tx, `
			UPDATE webhook_endpoints e SET failing_since = CASE WHEN r.ok THEN NULL ELSE r.at END
			FROM jsonb_to_recordset($1::jsonb) AS r(pk bigint, ok boolean, at timestamptz)
			WHERE e.pk = r.pk AND r.ok = (e.failing_since IS NOT NULL)`, string(sj))
		return err
	})
	if err != nil {
		return fmt.Errorf("store.RecordAttempts(%d): %w", len(recs), err)
	}
	return nil
}

// DisableEndpoint deactivates an endpoint, saying why.
func DisableEndpoint(ctx context.Context, q Querier, pk int64, reason string, at time.Time) error {
	if _, err := exec(ctx, q, `UPDATE webhook_endpoints SET is_active = false, disabled_reason = $2, updated_at = $3 WHERE pk = $1`,
		pk, reason, at); err != nil {
		return fmt.Errorf("store.DisableEndpoint(%d): %w", pk, err)
	}
	return nil
}

// ListDeliveries returns a page of an endpoint's deliveries, newest first, and their
// total.
func ListDeliveries(ctx context.Context, q Querier, endpointPK int64, limit, offset int) ([]WebhookDelivery, int, error) {
	var total int
	if err := get(ctx, q, &total, `SELECT count(*) FROM webhook_deliveries WHERE endpoint_pk = $1`, endpointPK); err != nil {
		return nil, 0, fmt.Errorf("store.ListDeliveries: %w", err)
	}
	var out []WebhookDelivery
	if err := selectRows(ctx, q, &out, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE endpoint_pk = $1 ORDER BY pk DESC LIMIT $2 OFFSET $3`,
		endpointPK, limit, offset); err != nil {
		return nil, 0, fmt.Errorf("store.ListDeliveries: %w", err)
	}
	return out, total, nil
}

// GetDelivery returns the endpoint's delivery with id.
func GetDelivery(ctx context.Context, q Querier, endpointPK int64, id string) (WebhookDelivery, error) {
	var d WebhookDelivery
	if err := get(ctx, q, &d, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE endpoint_pk = $1 AND id = $2`, endpointPK, id); err != nil {
		return WebhookDelivery{}, fmt.Errorf("store.GetDelivery(%s): %w", id, translate(err))
	}
	return d, nil
}

// RequestRetry asks the relay for one more attempt of a delivery now.
func RequestRetry(ctx context.Context, q Querier, pk int64, at time.Time) error {
	if _, err := exec(ctx, q, `UPDATE webhook_deliveries SET retry_requested_at = $2 WHERE pk = $1`, pk, at); err != nil {
		return fmt.Errorf("store.RequestRetry(%d): %w", pk, err)
	}
	return nil
}

// TakeRetryRequests clears and returns up to limit deliveries whose retry was asked
// for, in the caller's transaction.
func TakeRetryRequests(ctx context.Context, tx *Tx, limit int) ([]int64, error) {
	var pks []int64
	err := selectRows(ctx, tx, &pks, `UPDATE webhook_deliveries SET retry_requested_at = NULL WHERE pk IN (
		SELECT pk FROM webhook_deliveries WHERE retry_requested_at IS NOT NULL ORDER BY retry_requested_at LIMIT $1
		FOR UPDATE SKIP LOCKED) RETURNING pk`, limit)
	if err != nil {
		return nil, fmt.Errorf("store.TakeRetryRequests: %w", err)
	}
	return pks, nil
}

// OverdueDeliveries returns deliveries that should have been attempted before
// before, but were not: their task was lost (a Redis without persistence restarted).
func OverdueDeliveries(ctx context.Context, q Querier, before time.Time, limit int) ([]int64, error) {
	var pks []int64
	err := selectRows(ctx, q, &pks, `SELECT pk FROM webhook_deliveries WHERE status IN ('pending', 'failed')
		AND next_attempt_at < $1 ORDER BY next_attempt_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("store.OverdueDeliveries: %w", err)
	}
	return pks, nil
}

// GetWebhookEndpointForUpdate is GetWebhookEndpoint, locking the row until the
// caller's transaction ends (an update reads and writes it whole).
func GetWebhookEndpointForUpdate(ctx context.Context, tx *Tx, programPK int64, key string) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	if err := get(ctx, tx, &e, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE program_pk = $1 AND key = $2 FOR UPDATE`, programPK, key); err != nil {
		return WebhookEndpoint{}, fmt.Errorf("store.GetWebhookEndpointForUpdate(%s): %w", key, translate(err))
	}
	return e, nil
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// The statements of package ops: replaying stored billing events, the status report,
// and housekeeping.

// ReplayFilter selects stored billing events to process again.
type ReplayFilter struct {
	// Statuses the events are in now (at least one).
	Statuses []EventStatus
	// Provider is a provider's name; "" is any.
	Provider string
	// Since keeps events received at or after it; zero is any time.
	Since time.Time
	// ProgramID is a program's public id; "" is every program.
	ProgramID string
	// UpTo keeps events whose pk is at most UpTo; 0 is no bound. A replay sets it to
	// the last match at its start, so events that arrive meanwhile are not chased.
	UpTo int64
}

const replayCond = `status = ANY($1) AND ($2::text = '' OR provider = $2::text)
	AND ($3::timestamptz IS NULL OR received_at >= $3::timestamptz)
	AND ($4::text = '' OR program_pk = (SELECT pk FROM programs WHERE id = $4::text))
	AND ($5::bigint = 0 OR pk <= $5::bigint)`

func (f ReplayFilter) args() []any {
	since := sql.NullTime{Time: f.Since, Valid: !f.Since.IsZero()}
	statuses := make(pq.StringArray, len(f.Statuses))
	for i, s := range f.Statuses {
		statuses[i] = string(s)
	}
	return []any{statuses, f.Provider, since, f.ProgramID, f.UpTo}
}

// CountReplayCandidates returns how many events match f, and the largest pk among
// them (0 when none does).
func CountReplayCandidates(ctx context.Context, q Querier, f ReplayFilter) (n int, maxPK int64, err error) {
	var r struct {
		N     int   `db:"n"`
		MaxPK int64 `db:"max_pk"`
	}
	if err := get(ctx, q, &r, `SELECT count(*) AS n, coalesce(max(pk), 0) AS max_pk FROM provider_events WHERE `+replayCond,
		f.args()...); err != nil {
		return 0, 0, fmt.Errorf("store.CountReplayCandidates: %w", err)
	}
	return r.N, r.MaxPK, nil
}

// ReplayCandidates returns the pks of up to limit events that match f and come after
// afterPK, in pk order: one page of a keyset pagination (pass the last pk of a page
// to get the next).
func ReplayCandidates(ctx context.Context, q Querier, f ReplayFilter, afterPK int64, limit int) ([]int64, error) {
	var pks []int64
	if err := selectRows(ctx, q, &pks, `SELECT pk FROM provider_events WHERE pk > $6 AND `+replayCond+` ORDER BY pk LIMIT $7`,
		append(f.args(), afterPK, limit)...); err != nil {
		return nil, fmt.Errorf("store.ReplayCandidates(after %d): %w", afterPK, err)
	}
	return pks, nil
}

// ResetProviderEvent puts a stored event back to received, so that processing it
// again does not skip it as done. Its previous outcome (error, transaction keys,
// processed_at) stays until the next one is recorded.
func ResetProviderEvent(ctx context.Context, q Querier, pk int64) error {
	res, err := exec(ctx, q, `UPDATE provider_events SET status = 'received' WHERE pk = $1`, pk)
	if err != nil {
		return fmt.Errorf("store.ResetProviderEvent(%d): %w", pk, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store.ResetProviderEvent(%d): %w", pk, ErrNotFound)
	}
	return nil
}

// ProviderEventStatus returns a stored event's status.
func ProviderEventStatus(ctx context.Context, q Querier, pk int64) (EventStatus, error) {
	var s EventStatus
	if err := get(ctx, q, &s, `SELECT status FROM provider_events WHERE pk = $1`, pk); err != nil {
		return "", fmt.Errorf("store.ProviderEventStatus(%d): %w", pk, translate(err))
	}
	return s, nil
}

// EventCounts counts the stored billing events that may need an operator.
type EventCounts struct {
	Unattributed int `db:"unattributed"`
	Failed       int `db:"failed"`
	// StaleReceived are received events older than the cutoff: their task was lost or
	// the workers are behind.
	StaleReceived int `db:"stale_received"`
}

// CountProviderEvents counts unattributed and failed events, and received ones
// received before receivedBefore. (Failed events have no index of their own: their
// count reads the table.)
func CountProviderEvents(ctx context.Context, q Querier, receivedBefore time.Time) (EventCounts, error) {
	var c EventCounts
	if err := get(ctx, q, &c, `SELECT
			(SELECT count(*) FROM provider_events WHERE status = 'unattributed') AS unattributed,
			(SELECT count(*) FROM provider_events WHERE status = 'failed') AS failed,
			(SELECT count(*) FROM provider_events WHERE status = 'received' AND received_at < $1) AS stale_received`,
		receivedBefore); err != nil {
		return EventCounts{}, fmt.Errorf("store.CountProviderEvents: %w", err)
	}
	return c, nil
}

// OutboxBacklog returns how many outbox rows wait for the relay, and when the
// oldest of them was written (not valid when none waits).
func OutboxBacklog(ctx context.Context, q Querier) (n int, oldest sql.NullTime, err error) {
	var r struct {
		N      int          `db:"n"`
		Oldest sql.NullTime `db:"oldest"`
	}
	if err := get(ctx, q, &r, `SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE dispatched_at IS NULL`); err != nil {
		return 0, sql.NullTime{}, fmt.Errorf("store.OutboxBacklog: %w", err)
	}
	return r.N, r.Oldest, nil
}

// TroubledEndpoint is a webhook endpoint that is failing, or that referd disabled.
type TroubledEndpoint struct {
	ProgramID      string         `db:"program_id"`
	Key            string         `db:"key"`
	URL            string         `db:"url"`
	IsActive       bool           `db:"is_active"`
	FailingSince   sql.NullTime   `db:"failing_since"`
	DisabledReason sql.NullString `db:"disabled_reason"`
}

// TroubledEndpoints returns up to limit endpoints of every program that are active
// with every attempt failing since failing_since (longest failing first), then those
// referd disabled (disabled_reason set; most recently changed first), and how many
// there are in all.
func TroubledEndpoints(ctx context.Context, q Querier, limit int) ([]TroubledEndpoint, int, error) {
	var rows []struct {
		TroubledEndpoint
		Total int `db:"total"`
	}
	err := selectRows(ctx, q, &rows, `
		SELECT p.id AS program_id, e.key, e.url, e.is_active, e.failing_since, e.disabled_reason, count(*) OVER () AS total
		FROM webhook_endpoints e JOIN programs p ON p.pk = e.program_pk
		WHERE (e.is_active AND e.failing_since IS NOT NULL) OR (NOT e.is_active AND e.disabled_reason IS NOT NULL)
		ORDER BY e.is_active DESC, CASE WHEN e.is_active THEN e.failing_since END, e.updated_at DESC, e.pk
		LIMIT $1`, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("store.TroubledEndpoints: %w", err)
	}
	out := make([]TroubledEndpoint, len(rows))
	total := 0
	for i, r := range rows {
		out[i], total = r.TroubledEndpoint, r.Total
	}
	return out, total, nil
}

// PruneOutbox deletes up to limit outbox rows dispatched before dispatchedBefore,
// oldest first, and returns how many it deleted. Rows another pruner holds are
// skipped, so concurrent pruners share the work; call it until it deletes fewer
// than limit. Deliveries keep their outbox_pk (there is no foreign key).
func PruneOutbox(ctx context.Context, q Querier, dispatchedBefore time.Time, limit int) (int64, error) {
	res, err := exec(ctx, q, `DELETE FROM outbox WHERE pk IN (
		SELECT pk FROM outbox WHERE dispatched_at < $1 ORDER BY pk LIMIT $2 FOR UPDATE SKIP LOCKED)`, dispatchedBefore, limit)
	if err != nil {
		return 0, fmt.Errorf("store.PruneOutbox: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store.PruneOutbox: %w", err)
	}
	return n, nil
}

// PruneDeliveries deletes up to limit finished deliveries (succeeded or exhausted)
// created before before, oldest first, with their attempt log, and returns how many
// it deleted. A delivery whose owner asked for one more attempt stays until that
// attempt is taken. Concurrent pruners share the work as with PruneOutbox.
func PruneDeliveries(ctx context.Context, q Querier, before time.Time, limit int) (int64, error) {
	res, err := exec(ctx, q, `DELETE FROM webhook_deliveries WHERE pk IN (
		SELECT pk FROM webhook_deliveries WHERE status IN ('succeeded', 'exhausted') AND created_at < $1
			AND retry_requested_at IS NULL
		ORDER BY pk LIMIT $2 FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("store.PruneDeliveries: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store.PruneDeliveries: %w", err)
	}
	return n, nil
}

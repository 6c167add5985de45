package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// OutboxRow is an event written in the same transaction as its cause, waiting for
// the relay to pass it on (outgoing webhooks, unattributed payments to retry).
type OutboxRow struct {
	PK        int64          `db:"pk"`
	ProgramPK int64          `db:"program_pk"`
	Event     string         `db:"event"`
	Payload   string         `db:"payload"`
	CreatedAt time.Time      `db:"created_at"`
	RequestID sql.NullString `db:"request_id"`
}

// ClaimOutbox locks up to limit undispatched rows, oldest first, in the caller's
// transaction; rows another transaction holds are skipped, so several relays share
// the work.
func ClaimOutbox(ctx context.Context, tx *Tx, limit int) ([]OutboxRow, error) {
	var rows []OutboxRow
	err := selectRows(ctx, tx, &rows, `SELECT pk, program_pk, event, payload::text AS payload, created_at, request_id FROM outbox
		WHERE dispatched_at IS NULL ORDER BY pk LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return nil, fmt.Errorf("store.ClaimOutbox: %w", err)
	}
	return rows, nil
}

// MarkDispatched records that the rows were passed on.
func MarkDispatched(ctx context.Context, tx *Tx, pks []int64, at time.Time) error {
	if _, err := exec(ctx, tx, `UPDATE outbox SET dispatched_at = $2 WHERE pk = ANY($1)`, pq.Int64Array(pks), at); err != nil {
		return fmt.Errorf("store.MarkDispatched(%d): %w", len(pks), err)
	}
	return nil
}

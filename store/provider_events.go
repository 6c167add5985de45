package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
)

// ProviderEvent is a verified webhook event of a billing provider.
type ProviderEvent struct {
	PK              int64          `db:"pk"`
	ProgramPK       int64          `db:"program_pk"`
	Provider        string         `db:"provider"`
	EventID         string         `db:"event_id"`
	Type            string         `db:"type"`
	Status          string         `db:"status"`
	Error           sql.NullString `db:"error"`
	TransactionKeys pq.StringArray `db:"transaction_keys"`
	Payload         []byte         `db:"payload"`
	ReceivedAt      time.Time      `db:"received_at"`
	ProcessedAt     sql.NullTime   `db:"processed_at"`
}

// InsertProviderEvents stores events in one multi-row statement (one commit for all
// of them: the ingest path's group commit); an event already stored (same program,
// provider and event id) is left as it is. It returns, for each event, whether it was
// new.
func InsertProviderEvents(ctx context.Context, q Querier, events []ProviderEvent) ([]bool, error) {
	if len(events) == 0 {
		return nil, nil
	}
	var sb strings.Builder
	sb.WriteString(`INSERT INTO provider_events (program_pk, provider, event_id, type, payload, received_at) VALUES `)
	args := make([]any, 0, 6*len(events))
	for i, e := range events {
		if i > 0 {
			sb.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
		// With binary parameters the payload's bytes go as they are (bytea's wire format).
		args = append(args, e.ProgramPK, e.Provider, e.EventID, e.Type, e.Payload, e.ReceivedAt)
	}
	sb.WriteString(` ON CONFLICT (program_pk, provider, event_id) DO NOTHING RETURNING program_pk, provider, event_id`)
	var rows []struct {
		ProgramPK int64  `db:"program_pk"`
		Provider  string `db:"provider"`
		EventID   string `db:"event_id"`
	}
	if err := q.SelectContext(ctx, &rows, sb.String(), args...); err != nil {
		return nil, fmt.Errorf("store.InsertProviderEvents(%d): %w", len(events), err)
	}
	inserted := map[string]bool{}
	for _, r := range rows {
		inserted[fmt.Sprintf("%d|%s|%s", r.ProgramPK, r.Provider, r.EventID)] = true
	}
	out := make([]bool, len(events))
	for i, e := range events {
		k := fmt.Sprintf("%d|%s|%s", e.ProgramPK, e.Provider, e.EventID)
		out[i] = inserted[k]
		inserted[k] = false // the same event twice in one batch is new once
	}
	return out, nil
}

// ProviderEventFilter selects a program's stored events.
type ProviderEventFilter struct {
	ProgramPK int64
	Provider  string
	Status    string
	Limit     int
	Offset    int
}

// ListProviderEvents returns a page of stored events, newest first, and their total.
func ListProviderEvents(ctx context.Context, q Querier, f ProviderEventFilter) ([]ProviderEvent, int, error) {
	cond := `program_pk = $1 AND ($2 = '' OR provider = $2) AND ($3 = '' OR status = $3)`
	args := []any{f.ProgramPK, f.Provider, f.Status}
	var total int
	if err := get(ctx, q, &total, `SELECT count(*) FROM provider_events WHERE `+cond, args...); err != nil {
		return nil, 0, fmt.Errorf("store.ListProviderEvents: %w", err)
	}
	var out []ProviderEvent
	if total > f.Offset {
		err := selectRows(ctx, q, &out, `SELECT pk, program_pk, provider, event_id, type, status, error, transaction_keys,
			''::bytea AS payload, received_at, processed_at FROM provider_events WHERE `+cond+` ORDER BY pk DESC LIMIT $4 OFFSET $5`,
			append(args, f.Limit, f.Offset)...)
		if err != nil {
			return nil, 0, fmt.Errorf("store.ListProviderEvents: %w", err)
		}
	}
	return out, total, nil
}

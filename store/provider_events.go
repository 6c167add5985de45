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
// new, and sets the new ones' PK.
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
	sb.WriteString(` ON CONFLICT (program_pk, provider, event_id) DO NOTHING RETURNING pk, program_pk, provider, event_id`)
	var rows []struct {
		PK        int64  `db:"pk"`
		ProgramPK int64  `db:"program_pk"`
		Provider  string `db:"provider"`
		EventID   string `db:"event_id"`
	}
	if err := q.SelectContext(ctx, &rows, sb.String(), args...); err != nil {
		return nil, fmt.Errorf("store.InsertProviderEvents(%d): %w", len(events), err)
	}
	inserted := map[string]int64{}
	for _, r := range rows {
		inserted[fmt.Sprintf("%d|%s|%s", r.ProgramPK, r.Provider, r.EventID)] = r.PK
	}
	out := make([]bool, len(events))
	for i := range events {
		k := fmt.Sprintf("%d|%s|%s", events[i].ProgramPK, events[i].Provider, events[i].EventID)
		if pk := inserted[k]; pk != 0 {
			out[i], events[i].PK = true, pk
			delete(inserted, k) // the same event twice in one batch is new once
		}
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

// GetProviderEvent returns a stored event with its payload.
func GetProviderEvent(ctx context.Context, q Querier, pk int64) (ProviderEvent, error) {
	var e ProviderEvent
	if err := get(ctx, q, &e, `SELECT * FROM provider_events WHERE pk = $1`, pk); err != nil {
		return ProviderEvent{}, fmt.Errorf("store.GetProviderEvent(%d): %w", pk, translate(err))
	}
	return e, nil
}

// FinishProviderEvent records how processing a stored event ended.
func FinishProviderEvent(ctx context.Context, q Querier, pk int64, status string, errText string, keys []string, at time.Time) error {
	if keys == nil {
		keys = []string{}
	}
	_, err := exec(ctx, q, `UPDATE provider_events SET status = $2, error = NULLIF($3, ''), transaction_keys = $4, processed_at = $5 WHERE pk = $1`,
		pk, status, errText, pq.StringArray(keys), at)
	if err != nil {
		return fmt.Errorf("store.FinishProviderEvent(%d): %w", pk, err)
	}
	return nil
}

// LinkProviderCustomer records that the provider's customer is referd's customer;
// a link learned earlier stays.
func LinkProviderCustomer(ctx context.Context, q Querier, programPK int64, provider, providerCustomerID string, customerPK int64) error {
	_, err := exec(ctx, q, `
		INSERT INTO provider_customers (program_pk, provider, provider_customer_id, customer_pk, created_at)
		VALUES ($1, $2, $3, $4, now()) ON CONFLICT DO NOTHING`, programPK, provider, providerCustomerID, customerPK)
	if err != nil {
		return fmt.Errorf("store.LinkProviderCustomer(%s): %w", providerCustomerID, err)
	}
	return nil
}

// LinkedCustomer returns the referd customer linked to the provider's customer.
func LinkedCustomer(ctx context.Context, q Querier, programPK int64, provider, providerCustomerID string) (Customer, error) {
	var c Customer
	err := get(ctx, q, &c, customerSelect+`
		WHERE c.pk = (SELECT customer_pk FROM provider_customers WHERE program_pk = $1 AND provider = $2 AND provider_customer_id = $3)`,
		programPK, provider, providerCustomerID)
	if err != nil {
		return Customer{}, fmt.Errorf("store.LinkedCustomer(%s): %w", providerCustomerID, translate(err))
	}
	return c, c.finish()
}

// CustomerByEmail returns the program's customer with this email (case-insensitive).
func CustomerByEmail(ctx context.Context, q Querier, programPK int64, email string) (Customer, error) {
	var c Customer
	if err := get(ctx, q, &c, customerSelect+` WHERE c.program_pk = $1 AND lower(c.email) = lower($2)`, programPK, email); err != nil {
		return Customer{}, fmt.Errorf("store.CustomerByEmail: %w", translate(err))
	}
	return c, c.finish()
}

// StaleProviderEvents lists events to process again: received ones the workers have
// not finished for a while (their task was lost, say), and unattributed ones whose
// customer may have appeared since.
func StaleProviderEvents(ctx context.Context, q Querier, receivedBefore, unattributedSince time.Time, limit int) ([]int64, error) {
	var pks []int64
	err := selectRows(ctx, q, &pks, `
		(SELECT pk FROM provider_events WHERE status = 'received' AND received_at < $1 ORDER BY received_at LIMIT $3)
		UNION ALL
		(SELECT pk FROM provider_events WHERE status = 'unattributed' AND received_at >= $2 ORDER BY received_at LIMIT $3)`,
		receivedBefore, unattributedSince, limit)
	if err != nil {
		return nil, fmt.Errorf("store.StaleProviderEvents: %w", err)
	}
	return pks, nil
}

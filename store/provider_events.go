package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
)

// EventStatus is where a stored billing event is in its processing. The values are
// what the API shows and the database's check on provider_events.status lists.
type EventStatus string

// The statuses of a stored billing event.
const (
	// EventReceived: stored and not yet processed (or put back to be replayed).
	EventReceived EventStatus = "received"
	// EventProcessed: its effects are recorded (TransactionKeys name the sales).
	EventProcessed EventStatus = "processed"
	// EventIgnored: it meant nothing to act on (a type referd does not use, a
	// customer nobody referred).
	EventIgnored EventStatus = "ignored"
	// EventUnattributed: a payment that matches no customer yet; processed again
	// when a customer it may be about appears, and by the sweep.
	EventUnattributed EventStatus = "unattributed"
	// EventFailed: processing refused its data (Error says why); a replay retries it.
	EventFailed EventStatus = "failed"
)

// EventStatuses returns every status, in the order of an event's life.
func EventStatuses() []EventStatus {
	return []EventStatus{EventReceived, EventProcessed, EventIgnored, EventUnattributed, EventFailed}
}

// Done says whether processing the event again has nothing left to do.
func (s EventStatus) Done() bool { return s == EventProcessed || s == EventIgnored }

// ProviderEvent is a verified webhook event of a billing provider.
type ProviderEvent struct {
	PK              int64          `db:"pk"`
	ProgramPK       int64          `db:"program_pk"`
	Provider        string         `db:"provider"`
	EventID         string         `db:"event_id"`
	Type            string         `db:"type"`
	Status          EventStatus    `db:"status"`
	Error           sql.NullString `db:"error"`
	TransactionKeys pq.StringArray `db:"transaction_keys"`
	Payload         []byte         `db:"payload"`
	ReceivedAt      time.Time      `db:"received_at"`
	ProcessedAt     sql.NullTime   `db:"processed_at"`
	// Who an unattributed payment may be about (see EventOutcome).
	CustomerKey        sql.NullString `db:"customer_key"`
	ProviderCustomerID sql.NullString `db:"provider_customer_id"`
	Email              sql.NullString `db:"email"`
	// RequestID is the ingest request that received it.
	RequestID sql.NullString `db:"request_id"`
	// DiscountRefs are the promotion codes and discount ids a payment carried
	// (EventOutcome.DiscountRefs); read by no query of the pipeline's.
	DiscountRefs pq.StringArray `db:"discount_refs"`
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
	sb.WriteString(`INSERT INTO provider_events (program_pk, provider, event_id, type, payload, received_at, request_id) VALUES `)
	args := make([]any, 0, 7*len(events))
	for i, e := range events {
		if i > 0 {
			sb.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7)
		// With binary parameters the payload's bytes go as they are (bytea's wire format).
		args = append(args, e.ProgramPK, e.Provider, e.EventID, e.Type, e.Payload, e.ReceivedAt, e.RequestID)
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

// RejectedError is the database refusing a row for its own data: a NUL byte or
// invalid UTF-8 in a text column, a value too large for its index, a failed check.
// Writing the same row again fails again; the rows written with it are not at fault.
type RejectedError struct{ Err error }

func (e *RejectedError) Error() string { return "rejected: " + e.Err.Error() }
func (e *RejectedError) Unwrap() error { return e.Err }

// Reason is what the database said about the row, for the sender.
func (e *RejectedError) Reason() string {
	var pqErr *pq.Error
	if errors.As(e.Err, &pqErr) {
		return pqErr.Message
	}
	return e.Err.Error()
}

// refusedForData says whether err is the database refusing a statement for the data
// it writes (data exceptions, integrity violations, program limits such as the size
// of an index row), as opposed to failing to run it at all (a lost connection, a
// timeout, a full disk): only the former can be one row's fault.
func refusedForData(err error) bool {
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) {
		return false
	}
	switch pqErr.Code.Class() {
	case "22", "23", "54": // data_exception, integrity_constraint_violation, program_limit_exceeded
		return true
	}
	return false
}

// InsertProviderEventsEach is InsertProviderEvents for events that have nothing to
// do with each other (webhooks the ingest path group-commits): one event the database
// refuses never fails the others. It returns, for each event, whether it was new and
// the error that kept it from being stored: a *RejectedError when the database
// refused that event itself, another error when the database failed.
//
// The statement for all of them is tried first; when the database refuses it for
// its data, each half is tried on its own, down to the single events at fault, so a
// group with k bad events costs about 2k·log2(n) statements and none without.
func InsertProviderEventsEach(ctx context.Context, q Querier, events []ProviderEvent) ([]bool, []error) {
	news := make([]bool, len(events))
	errs := make([]error, len(events))
	var insert func(lo, hi int)
	insert = func(lo, hi int) {
		got, err := InsertProviderEvents(ctx, q, events[lo:hi])
		switch {
		case err == nil:
			copy(news[lo:hi], got)
		case !refusedForData(err):
			for i := lo; i < hi; i++ {
				errs[i] = err
			}
		case hi-lo == 1:
			errs[lo] = &RejectedError{Err: err}
		default:
			mid := lo + (hi-lo)/2
			insert(lo, mid)
			insert(mid, hi)
		}
	}
	if len(events) > 0 {
		insert(0, len(events))
	}
	return news, errs
}

// ProviderEventFilter selects a program's stored events.
type ProviderEventFilter struct {
	ProgramPK int64
	Provider  string
	Status    EventStatus // "" is any
	Limit     int
	Offset    int
}

// ListProviderEvents returns a page of stored events, newest first, and their total.
func ListProviderEvents(ctx context.Context, q Querier, f ProviderEventFilter) ([]ProviderEvent, int, error) {
	cond, args := f.where()
	var total int
	if err := get(ctx, q, &total, `SELECT count(*) FROM provider_events e WHERE `+cond, args...); err != nil {
		return nil, 0, fmt.Errorf("store.ListProviderEvents: %w", err)
	}
	var out []ProviderEvent
	if total > f.Offset {
		n := len(args)
		err := selectRows(ctx, q, &out, providerEventListSelect+` WHERE `+cond+fmt.Sprintf(` ORDER BY e.pk DESC LIMIT $%d OFFSET $%d`, n+1, n+2),
			append(args, f.Limit, f.Offset)...)
		if err != nil {
			return nil, 0, fmt.Errorf("store.ListProviderEvents: %w", err)
		}
	}
	return out, total, nil
}

// where is f's condition on provider_events e and its arguments ($1 is the
// program): only the filters given, so each combination is planned with its index.
func (f ProviderEventFilter) where() (string, []any) {
	w := conditions{sql: []string{"e.program_pk = $1"}, args: []any{f.ProgramPK}}
	if f.Provider != "" {
		w.add("e.provider = ?", f.Provider)
	}
	if f.Status != "" {
		w.add("e.status = ?", f.Status)
	}
	return w.where(), w.args
}

// providerEventListSelect reads stored events for a list: every column but the
// payload, which lists do not show.
const providerEventListSelect = `SELECT e.pk, e.program_pk, e.provider, e.event_id, e.type, e.status, e.error, e.transaction_keys,
	''::bytea AS payload, e.received_at, e.processed_at FROM provider_events e`

// providerEventColumns are a stored event's columns, payload included.
const providerEventColumns = `pk, program_pk, provider, event_id, type, status, error, transaction_keys, payload, received_at,
	processed_at, customer_key, provider_customer_id, email, request_id`

// GetProviderEvent returns a stored event with its payload.
func GetProviderEvent(ctx context.Context, q Querier, pk int64) (ProviderEvent, error) {
	var e ProviderEvent
	if err := get(ctx, q, &e, `SELECT `+providerEventColumns+` FROM provider_events WHERE pk = $1`, pk); err != nil {
		return ProviderEvent{}, fmt.Errorf("store.GetProviderEvent(%d): %w", pk, translate(err))
	}
	return e, nil
}

// ProviderEventsByPK returns the stored events with these pks, payloads included, in
// one statement; pks that match nothing are left out.
func ProviderEventsByPK(ctx context.Context, q Querier, pks []int64) ([]ProviderEvent, error) {
	var out []ProviderEvent
	if err := selectRows(ctx, q, &out, `SELECT `+providerEventColumns+` FROM provider_events WHERE pk = ANY($1)`,
		pq.Int64Array(pks)); err != nil {
		return nil, fmt.Errorf("store.ProviderEventsByPK(%d): %w", len(pks), err)
	}
	return out, nil
}

// EventOutcome is how processing a stored event ended.
type EventOutcome struct {
	PK              int64       `json:"pk"`
	Status          EventStatus `json:"status"`
	Error           string      `json:"error"`
	TransactionKeys []string    `json:"keys"`
	At              time.Time   `json:"at"`
	// Who an unattributed payment may be about, so that a customer who appears later
	// finds it (UnattributedEventsFor).
	CustomerKey        string `json:"customer_key"`
	ProviderCustomerID string `json:"provider_customer_id"`
	Email              string `json:"email"`
	// DiscountRefs are the promotion codes and provider discount ids a payment
	// carried ("code:<lower-case code>", "<provider>:<id>"), so that one ignored or
	// unattributed before its code existed is processed again when it is created
	// (QueueDiscountRetries).
	DiscountRefs []string `json:"discount_refs"`
	// Links are the provider-customer links processing learned; they are stored with
	// the outcome.
	Links []ProviderLink `json:"-"`
}

// ProviderLink says that a billing provider's customer is a referd customer.
type ProviderLink struct {
	ProgramPK          int64
	Provider           string
	ProviderCustomerID string
	CustomerPK         int64
}

// FinishProviderEventsTx records how processing stored events ended, and the links it
// learned (a link learned earlier stays), in the caller's transaction: the workers
// record every event's effects and its outcome together.
func FinishProviderEventsTx(ctx context.Context, tx *Tx, outs []EventOutcome) error {
	if len(outs) == 0 {
		return nil
	}
	outs = slices.Clone(outs)
	var links []ProviderLink
	for i := range outs {
		if outs[i].TransactionKeys == nil {
			outs[i].TransactionKeys = []string{}
		}
		links = append(links, outs[i].Links...)
	}
	// The same order in every transaction: concurrent batches wait, never deadlock.
	slices.SortFunc(outs, func(a, b EventOutcome) int { return cmp.Compare(a.PK, b.PK) })
	slices.SortFunc(links, func(a, b ProviderLink) int {
		return cmp.Or(cmp.Compare(a.ProgramPK, b.ProgramPK), cmp.Compare(a.Provider, b.Provider),
			cmp.Compare(a.ProviderCustomerID, b.ProviderCustomerID))
	})
	links = slices.CompactFunc(links, func(a, b ProviderLink) bool {
		return a.ProgramPK == b.ProgramPK && a.Provider == b.Provider && a.ProviderCustomerID == b.ProviderCustomerID
	})
	rows, err := json.Marshal(outs)
	if err != nil {
		return fmt.Errorf("store.FinishProviderEventsTx: %w", err)
	}
	if len(links) > 0 {
		var sb strings.Builder
		sb.WriteString(`INSERT INTO provider_customers (program_pk, provider, provider_customer_id, customer_pk, created_at) VALUES `)
		args := make([]any, 0, 4*len(links))
		for i, l := range links {
			if i > 0 {
				sb.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, now())", n+1, n+2, n+3, n+4)
			args = append(args, l.ProgramPK, l.Provider, l.ProviderCustomerID, l.CustomerPK)
		}
		sb.WriteString(` ON CONFLICT DO NOTHING`)
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("store.FinishProviderEventsTx(%d): %w", len(outs), err)
		}
	}
	_, err = exec(ctx, tx, `
		UPDATE provider_events e SET status = r.status, error = NULLIF(r.error, ''), transaction_keys = r.keys,
			processed_at = r.at, customer_key = NULLIF(r.customer_key, ''),
			provider_customer_id = NULLIF(r.provider_customer_id, ''), email = NULLIF(r.email, ''),
			discount_refs = NULLIF(r.discount_refs, '{}')
		FROM jsonb_to_recordset($1::jsonb) AS r(pk bigint, status text, error text, keys text[], at timestamptz,
			customer_key text, provider_customer_id text, email text, discount_refs text[])
		WHERE e.pk = r.pk`, string(rows))
	if err != nil {
		return fmt.Errorf("store.FinishProviderEventsTx(%d): %w", len(outs), err)
	}
	return nil
}

// AppearedCustomer names a customer who appeared in a program (created, updated, or
// linked to a billing provider's customer), for UnattributedEventsFor; empty fields
// match nothing.
type AppearedCustomer struct {
	ProgramPK          int64  `json:"program_pk"`
	ID                 string `json:"id"`
	Key                string `json:"key"`
	Email              string `json:"email"`
	Provider           string `json:"provider"`
	ProviderCustomerID string `json:"provider_customer_id"`
}

// unattributedForQuery makes one index probe per hint, each on its partial index: as
// a single join with ORs, the planner may choose to scan every pending event instead
// (it did, 50 ms a call, while a backlog of received events had not been analyzed).
const unattributedForQuery = `
		SELECT DISTINCT m.pk FROM jsonb_to_recordset($1::jsonb)
			AS c(program_pk bigint, id text, key text, email text, provider text, provider_customer_id text)
		CROSS JOIN LATERAL (
			SELECT e.pk FROM provider_events e WHERE c.key <> '' AND e.program_pk = c.program_pk
				AND e.status = 'unattributed' AND e.customer_key IS NOT NULL AND e.customer_key = c.key
			UNION ALL
			SELECT e.pk FROM provider_events e WHERE c.id <> '' AND e.program_pk = c.program_pk
				AND e.status = 'unattributed' AND e.customer_key IS NOT NULL AND e.customer_key = c.id
			UNION ALL
			SELECT e.pk FROM provider_events e WHERE c.email <> '' AND e.program_pk = c.program_pk
				AND e.status = 'unattributed' AND e.email IS NOT NULL AND lower(e.email) = lower(c.email)
			UNION ALL
			SELECT e.pk FROM provider_events e WHERE c.provider_customer_id <> '' AND e.program_pk = c.program_pk
				AND e.status = 'unattributed' AND e.provider_customer_id IS NOT NULL
				AND e.provider = c.provider AND e.provider_customer_id = c.provider_customer_id
		) m
		ORDER BY m.pk LIMIT $2`

// UnattributedEventsFor returns, in one statement, the unattributed events that may
// be about any of these customers: by the customer key they carried (the customer's
// id or key), their email (case-insensitive), or their provider customer id.
func UnattributedEventsFor(ctx context.Context, q Querier, cs []AppearedCustomer, limit int) ([]int64, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return nil, err
	}
	var pks []int64
	err = selectRows(ctx, q, &pks, unattributedForQuery, string(b), limit)
	if err != nil {
		return nil, fmt.Errorf("store.UnattributedEventsFor(%d): %w", len(cs), err)
	}
	return pks, nil
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

// StaleReceivedEvents lists, oldest first, up to limit events still received (not
// processed) that arrived before receivedBefore, after the event (afterAt, afterPK)
// in that order: the sweep pages through all of them, however many there are.
func StaleReceivedEvents(ctx context.Context, q Querier, receivedBefore, afterAt time.Time, afterPK int64, limit int) ([]ProviderEvent, error) {
	var out []ProviderEvent
	err := selectRows(ctx, q, &out, `
		SELECT pk, received_at FROM provider_events
		WHERE status = 'received' AND received_at < $1 AND (received_at, pk) > ($2, $3)
		ORDER BY received_at, pk LIMIT $4`, receivedBefore, afterAt, afterPK, limit)
	if err != nil {
		return nil, fmt.Errorf("store.StaleReceivedEvents: %w", err)
	}
	return out, nil
}

// UnattributedEventsSince lists, oldest first, up to limit unattributed events that
// arrived at or after since: payments whose customer may have appeared since.
func UnattributedEventsSince(ctx context.Context, q Querier, since time.Time, limit int) ([]int64, error) {
	var pks []int64
	err := selectRows(ctx, q, &pks, `
		SELECT pk FROM provider_events WHERE status = 'unattributed' AND received_at >= $1 ORDER BY received_at LIMIT $2`,
		since, limit)
	if err != nil {
		return nil, fmt.Errorf("store.UnattributedEventsSince: %w", err)
	}
	return pks, nil
}

// CustomerMatch is whom a billing event names, and by what: "key", "link" or "email".
type CustomerMatch struct {
	PK         int64         `db:"pk"`
	ID         string        `db:"id"`
	ReferrerPK sql.NullInt64 `db:"referrer_pk"`
	Via        string        `db:"via"`
}

// MatchQuery is what a billing event names its customer by.
type MatchQuery struct {
	ProgramPK          int64  `json:"program_pk"`
	Key                string `json:"key"` // a referd id, else key
	Provider           string `json:"provider"`
	ProviderCustomerID string `json:"provider_customer_id"`
	Email              string `json:"email"` // case-insensitive
}

// MatchCustomers finds, in one statement, the program's customer each billing event
// names: by the customer key it carries (a referd id, else key), else by a
// provider-customer link already known, else by email (case-insensitive); empty
// values match nothing. One match per query, in order, with Via empty where nobody
// matched.
func MatchCustomers(ctx context.Context, q Querier, qs []MatchQuery) ([]CustomerMatch, error) {
	b, err := json.Marshal(qs)
	if err != nil {
		return nil, err
	}
	// Each way of naming the customer is its own branch, so each is an index probe.
	var out []CustomerMatch
	err = selectRows(ctx, q, &out, `
		SELECT coalesce(m.pk, 0) AS pk, coalesce(m.id, '') AS id, m.referrer_pk, coalesce(m.via, '') AS via
		FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (program_pk bigint, key text, provider text, provider_customer_id text, email text))
			WITH ORDINALITY AS q(program_pk, key, provider, provider_customer_id, email, n)
		LEFT JOIN LATERAL (SELECT * FROM (
			(SELECT c.pk, c.id, c.referrer_pk, 1 AS rank, 'key' AS via FROM customers c
				WHERE q.key <> '' AND c.program_pk = q.program_pk AND c.id = q.key)
			UNION ALL
			(SELECT c.pk, c.id, c.referrer_pk, 2, 'key' FROM customers c
				WHERE q.key <> '' AND c.program_pk = q.program_pk AND c.key = q.key)
			UNION ALL
			(SELECT c.pk, c.id, c.referrer_pk, 3, 'link' FROM provider_customers l JOIN customers c ON c.pk = l.customer_pk
				WHERE q.provider_customer_id <> '' AND l.program_pk = q.program_pk AND l.provider = q.provider
					AND l.provider_customer_id = q.provider_customer_id)
			UNION ALL
			(SELECT c.pk, c.id, c.referrer_pk, 4, 'email' FROM customers c
				WHERE q.email <> '' AND c.program_pk = q.program_pk AND lower(c.email) = lower(q.email) ORDER BY c.pk LIMIT 1)
			) branches ORDER BY rank LIMIT 1
		) m ON true
		ORDER BY q.n`, string(b))
	if err != nil {
		return nil, fmt.Errorf("store.MatchCustomers(%d): %w", len(qs), translate(err))
	}
	if len(out) != len(qs) {
		return nil, fmt.Errorf("store.MatchCustomers: %d rows for %d queries", len(out), len(qs))
	}
	return out, nil
}

package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// RefundedState selects transactions by how much of them is refunded.
type RefundedState string

// The refund states a transaction list may be filtered by.
const (
	RefundedAny    RefundedState = ""        // every transaction
	RefundedNone   RefundedState = "no"      // nothing refunded
	RefundedSome   RefundedState = "yes"     // partly or fully refunded
	RefundedPartly RefundedState = "partial" // partly refunded, some of it left
	RefundedFully  RefundedState = "full"    // fully refunded (deleted_at set)
)

// RefundedStates returns the states a filter may name, "" (any) left out.
func RefundedStates() []RefundedState {
	return []RefundedState{RefundedNone, RefundedSome, RefundedPartly, RefundedFully}
}

// where is f's condition on transactions t and its arguments ($1 is the program).
// Only the filters given are in it, so that PostgreSQL plans each combination with
// the index that serves it: (program_pk, pk DESC), (customer_pk, pk DESC),
// (program_pk, source, pk DESC), or the refunded ones' partial index.
func (f TransactionFilter) where() (string, []any) {
	w := conditions{sql: []string{"t.program_pk = $1"}, args: []any{f.ProgramPK}}
	if f.Key != "" {
		w.add("t.key = ?", f.Key)
	}
	if f.CustomerPK != 0 {
		w.add("t.customer_pk = ?", f.CustomerPK)
	}
	if f.Source != "" {
		w.add("t.source = ?", f.Source)
	}
	switch f.Refunded {
	case RefundedNone:
		w.sql = append(w.sql, "t.refunded = 0")
	case RefundedSome:
		w.sql = append(w.sql, "t.refunded > 0")
	case RefundedPartly:
		w.sql = append(w.sql, "t.refunded > 0 AND t.refunded < t.amount")
	case RefundedFully:
		w.sql = append(w.sql, "t.refunded > 0 AND t.refunded = t.amount")
	}
	return w.where(), w.args
}

// conditions builds a WHERE clause; each ? of a condition becomes its argument's $n.
type conditions struct {
	sql  []string
	args []any
}

func (c *conditions) add(cond string, v any) {
	c.args = append(c.args, v)
	c.sql = append(c.sql, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(c.args))))
}

// where is the conditions joined with AND.
func (c *conditions) where() string { return strings.Join(c.sql, " AND ") }

// Keyset is a page of a list read newest first by position rather than by offset:
// a page deep in a list of millions costs what the first one does, and rows added
// meanwhile do not shift the pages.
type Keyset struct {
	// Before reads the rows older than this pk (the next page); 0 is from the newest.
	Before int64
	// After reads the rows newer than this pk (the previous page); it wins over Before.
	After int64
	// Limit is the page's rows.
	Limit int
}

// KeysetPage is what a keyset read found beside its rows: whether there are rows
// newer than the first and older than the last. What the read probed (one row more
// than the page) is exact; the other side is assumed from the cursor it started at.
type KeysetPage struct {
	Newer, Older bool
}

// keyset reads a page newest first with query, which ends in the WHERE clause of a
// table aliased alias.
func keyset[T any](ctx context.Context, q Querier, query, alias string, args []any, k Keyset) ([]T, KeysetPage, error) {
	n := len(args)
	order, dir := "DESC", "<"
	cursor := k.Before
	if k.After > 0 {
		order, dir, cursor = "ASC", ">", k.After
	}
	if cursor > 0 {
		args = append(args, cursor)
		n++
		query += fmt.Sprintf(" AND %s.pk %s $%d", alias, dir, n)
	}
	query += fmt.Sprintf(" ORDER BY %s.pk %s LIMIT $%d", alias, order, n+1)
	var out []T
	if err := selectRows(ctx, q, &out, query, append(args, k.Limit+1)...); err != nil {
		return nil, KeysetPage{}, err
	}
	more := len(out) > k.Limit
	if more {
		out = out[:k.Limit]
	}
	var pg KeysetPage
	if k.After > 0 {
		slices.Reverse(out)
		pg = KeysetPage{Newer: more, Older: true}
	} else {
		pg = KeysetPage{Newer: k.Before > 0, Older: more}
	}
	return out, pg, nil
}

// TransactionsPage returns a page of the transactions f selects, newest first, with
// their buyers, referrers and rewards; f's Limit and Offset are not used (k is the
// page). It counts nothing: a page costs k.Limit+1 rows of an index whatever the
// program's size.
func TransactionsPage(ctx context.Context, q Querier, f TransactionFilter, k Keyset) ([]Transaction, KeysetPage, error) {
	cond, args := f.where()
	out, pg, err := keyset[Transaction](ctx, q, transactionSelect+` WHERE `+cond, "t", args, k)
	if err != nil {
		return nil, pg, fmt.Errorf("store.TransactionsPage: %w", err)
	}
	for i := range out {
		if err := out[i].finish(); err != nil {
			return nil, pg, err
		}
	}
	return out, pg, nil
}

// ProviderEventsPage returns a page of the stored billing events f selects (f's
// Limit and Offset are not used), newest first, without their payloads; it counts
// nothing, as TransactionsPage.
func ProviderEventsPage(ctx context.Context, q Querier, f ProviderEventFilter, k Keyset) ([]ProviderEvent, KeysetPage, error) {
	cond, args := f.where()
	out, pg, err := keyset[ProviderEvent](ctx, q, providerEventListSelect+` WHERE `+cond, "e", args, k)
	if err != nil {
		return nil, pg, fmt.Errorf("store.ProviderEventsPage: %w", err)
	}
	return out, pg, nil
}

// ProgramProviderEvent returns the program's stored event pk with its payload;
// another program's event is ErrNotFound.
func ProgramProviderEvent(ctx context.Context, q Querier, programPK, pk int64) (ProviderEvent, error) {
	var e ProviderEvent
	if err := get(ctx, q, &e, `SELECT `+providerEventColumns+` FROM provider_events WHERE pk = $1 AND program_pk = $2`, pk, programPK); err != nil {
		return ProviderEvent{}, fmt.Errorf("store.ProgramProviderEvent(%d): %w", pk, translate(err))
	}
	return e, nil
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Refund is a refund by its own idempotency key, applied or waiting for its sale.
type Refund struct {
	PK             int64         `db:"pk"`
	ProgramPK      int64         `db:"program_pk"`
	Key            string        `db:"key"`
	TransactionKey string        `db:"transaction_key"`
	Amount         sql.NullInt64 `db:"amount"` // NULL: all that is left
	Cumulative     bool          `db:"cumulative"`
	Applied        bool          `db:"applied"`
	CreatedAt      time.Time     `db:"created_at"`
}

// InsertRefund records a refund unless its key was seen before; inserted says which.
func InsertRefund(ctx context.Context, tx *Tx, r *Refund) (inserted bool, err error) {
	err = get(ctx, tx, &r.PK, `
		INSERT INTO refunds (program_pk, key, transaction_key, amount, cumulative, applied, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (program_pk, key) DO NOTHING RETURNING pk`,
		r.ProgramPK, r.Key, r.TransactionKey, r.Amount, r.Cumulative, r.Applied, r.CreatedAt)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store.InsertRefund(%s): %w", r.Key, err)
	}
	return true, nil
}

// WaitingRefunds locks and returns the refunds that arrived before their sale.
func WaitingRefunds(ctx context.Context, tx *Tx, programPK int64, transactionKey string) ([]Refund, error) {
	var out []Refund
	err := selectRows(ctx, tx, &out, `
		SELECT * FROM refunds WHERE program_pk = $1 AND transaction_key = $2 AND NOT applied ORDER BY pk FOR UPDATE`,
		programPK, transactionKey)
	if err != nil {
		return nil, fmt.Errorf("store.WaitingRefunds(%s): %w", transactionKey, err)
	}
	return out, nil
}

// MarkRefundApplied marks a waiting refund as applied.
func MarkRefundApplied(ctx context.Context, tx *Tx, refundPK int64) error {
	_, err := exec(ctx, tx, `UPDATE refunds SET applied = true WHERE pk = $1`, refundPK)
	return err
}

// Balance is a customer's spendable amount and held amount in one units.
type Balance struct {
	Units      string `db:"units"`
	IsCurrency bool   `db:"is_currency"`
	Amount     int64  `db:"amount"`
	Pending    int64  `db:"pending"`
}

// Balances returns the customer's balances, one per units.
func Balances(ctx context.Context, q Querier, customerPK int64) ([]Balance, error) {
	var out []Balance
	if err := selectRows(ctx, q, &out, `SELECT units, is_currency, amount, pending FROM balances WHERE customer_pk = $1 ORDER BY units`, customerPK); err != nil {
		return nil, fmt.Errorf("store.Balances(%d): %w", customerPK, err)
	}
	return out, nil
}

// RewardTotal is the net value of a customer's rewards in one units.
type RewardTotal struct {
	Units      string `db:"units"`
	IsCurrency bool   `db:"is_currency"`
	Total      int64  `db:"total"`
}

// Stats are a customer's counters as a referrer.
type Stats struct {
	Clicks       int64 `db:"clicks"`
	UniqueClicks int64 `db:"unique_clicks"`
	Referrals    int   `db:"referrals"`
	Successful   int   `db:"successful"`
	Totals       []RewardTotal
}

// CustomerStats reads the customer's counters and reward totals: two index lookups,
// however many referrals and transactions the customer has.
func CustomerStats(ctx context.Context, q Querier, customerPK int64) (Stats, error) {
	var s Stats
	err := get(ctx, q, &s, `
		SELECT coalesce(max(clicks), 0) AS clicks, coalesce(max(unique_clicks), 0) AS unique_clicks,
			coalesce(max(referrals), 0) AS referrals, coalesce(max(successful), 0) AS successful
		FROM customer_stats WHERE customer_pk = $1`, customerPK)
	if err != nil {
		return Stats{}, fmt.Errorf("store.CustomerStats(%d): %w", customerPK, err)
	}
	err = selectRows(ctx, q, &s.Totals, `SELECT units, is_currency, total FROM reward_totals WHERE customer_pk = $1 AND total > 0 ORDER BY units`, customerPK)
	if err != nil {
		return Stats{}, fmt.Errorf("store.CustomerStats(%d): %w", customerPK, err)
	}
	return s, nil
}

// ListRewards returns a page of the customer's rewards, newest first, and their total.
func ListRewards(ctx context.Context, q Querier, customerPK int64, limit, offset int) ([]Reward, int, error) {
	var total int
	if err := get(ctx, q, &total, `SELECT count(*) FROM rewards WHERE customer_pk = $1`, customerPK); err != nil {
		return nil, 0, fmt.Errorf("store.ListRewards: %w", err)
	}
	var out []Reward
	if total > offset {
		err := selectRows(ctx, q, &out, `
			SELECT w.*, t.key AS transaction_key FROM rewards w LEFT JOIN transactions t ON t.pk = w.transaction_pk
			WHERE w.customer_pk = $1 ORDER BY w.pk DESC LIMIT $2 OFFSET $3`, customerPK, limit, offset)
		if err != nil {
			return nil, 0, fmt.Errorf("store.ListRewards: %w", err)
		}
	}
	return out, total, nil
}

// Credit is a manual change of a customer's spendable balance: positive credits,
// negative debits (payouts, redemptions).
type Credit struct {
	ProgramPK  int64
	CustomerPK int64
	Units      string
	IsCurrency bool
	Amount     int64
	Key        string // optional idempotency key
	Note       sql.NullString
	At         time.Time
}

// ErrInsufficient means a debit would take the balance below zero.
var ErrInsufficient = fmt.Errorf("insufficient balance")

// ApplyCredit appends the credit to the ledger and applies it to the balance, in the
// caller's transaction. A debit beyond the balance is ErrInsufficient and changes
// nothing; a credit whose key was applied before changes nothing (applied=false).
func ApplyCredit(ctx context.Context, tx *Tx, c Credit) (applied bool, err error) {
	kind := "credit"
	if c.Amount < 0 {
		kind = "debit"
	}
	key := sql.NullString{String: c.Key, Valid: c.Key != ""}
	var pk int64
	err = get(ctx, tx, &pk, `
		INSERT INTO ledger (program_pk, customer_pk, units, is_currency, kind, amount, pending, key, note, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9)
		ON CONFLICT (program_pk, key) WHERE key IS NOT NULL DO NOTHING RETURNING pk`,
		c.ProgramPK, c.CustomerPK, c.Units, c.IsCurrency, kind, c.Amount, key, c.Note, c.At)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store.ApplyCredit: %w", err)
	}
	var res sql.Result
	if c.Amount > 0 {
		res, err = exec(ctx, tx, `
			INSERT INTO balances AS b (customer_pk, units, program_pk, is_currency, amount) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (customer_pk, units) DO UPDATE SET amount = b.amount + EXCLUDED.amount`,
			c.CustomerPK, c.Units, c.ProgramPK, c.IsCurrency, c.Amount)
	} else {
		res, err = exec(ctx, tx, `
			UPDATE balances SET amount = amount + $3 WHERE customer_pk = $1 AND units = $2 AND amount + $3 >= 0`,
			c.CustomerPK, c.Units, c.Amount)
	}
	if err != nil {
		return false, fmt.Errorf("store.ApplyCredit: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, ErrInsufficient
	}
	return true, nil
}

// LedgerSums adds up a customer's ledger per units: what the balances must equal.
func LedgerSums(ctx context.Context, q Querier, customerPK int64) ([]Balance, error) {
	var out []Balance
	err := q.SelectContext(ctx, &out, `
		SELECT units, bool_or(is_currency) AS is_currency, sum(amount)::bigint AS amount, sum(pending)::bigint AS pending
		FROM ledger WHERE customer_pk = $1 GROUP BY units ORDER BY units`, customerPK)
	if err != nil {
		return nil, fmt.Errorf("store.LedgerSums(%d): %w", customerPK, err)
	}
	return out, nil
}

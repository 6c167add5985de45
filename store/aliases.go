package store

import (
	"context"
	"fmt"
	"time"
)

// PaymentLock is the LockKey name that every writer of a payment id's identity takes
// first (before any TransactionLock): the link that makes it an alias, the sale
// recorded under it, a refund keyed by it. Whichever comes first, the next sees it.
func PaymentLock(key string) string { return "payment:" + key }

// InsertPaymentAlias records that the sale key alias is another name of target's
// payment, and returns the target the alias has: target, or the one it was given
// first (an alias keeps it).
func InsertPaymentAlias(ctx context.Context, tx *Tx, programPK int64, alias, target string, at time.Time) (string, error) {
	var got string
	err := get(ctx, tx, &got, `
		WITH ins AS (
			INSERT INTO payment_aliases (program_pk, alias, target, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING RETURNING target
		)
		SELECT target FROM ins
		UNION ALL
		SELECT target FROM payment_aliases WHERE program_pk = $1 AND alias = $2
		LIMIT 1`, programPK, alias, target, at)
	if err != nil {
		return "", fmt.Errorf("store.InsertPaymentAlias(%s, %s): %w", alias, target, translate(err))
	}
	return got, nil
}

// PaymentAliasTarget is the sale key that key is an alias of, or "" when it is none.
func PaymentAliasTarget(ctx context.Context, q Querier, programPK int64, key string) (string, error) {
	var targets []string
	if err := selectRows(ctx, q, &targets, `SELECT target FROM payment_aliases WHERE program_pk = $1 AND alias = $2`, programPK, key); err != nil {
		return "", fmt.Errorf("store.PaymentAliasTarget(%s): %w", key, err)
	}
	if len(targets) == 0 {
		return "", nil
	}
	return targets[0], nil
}

// RetargetRefunds moves the refunds recorded against the sale key from to the sale
// key to, as waiting (not applied) refunds of it, and says how many it moved.
func RetargetRefunds(ctx context.Context, tx *Tx, programPK int64, from, to string) (int64, error) {
	res, err := exec(ctx, tx, `UPDATE refunds SET transaction_key = $3, applied = false WHERE program_pk = $1 AND transaction_key = $2`,
		programPK, from, to)
	if err != nil {
		return 0, fmt.Errorf("store.RetargetRefunds(%s, %s): %w", from, to, err)
	}
	return res.RowsAffected()
}

// SetFoldedInto records that transaction pk was folded into the sale key into.
func SetFoldedInto(ctx context.Context, tx *Tx, pk int64, into string) error {
	if _, err := exec(ctx, tx, `UPDATE transactions SET folded_into = $2 WHERE pk = $1`, pk, into); err != nil {
		return fmt.Errorf("store.SetFoldedInto(%d, %s): %w", pk, into, err)
	}
	return nil
}

// ForgetPurchase takes back the buyer's purchase number n when it is the latest, so
// the next sale has that number again: a sale folded into another was no purchase of
// its own.
func ForgetPurchase(ctx context.Context, tx *Tx, buyerPK int64, n int) error {
	if _, err := exec(ctx, tx, `UPDATE customer_stats SET purchases = purchases - 1 WHERE customer_pk = $1 AND purchases = $2`, buyerPK, n); err != nil {
		return fmt.Errorf("store.ForgetPurchase(%d): %w", buyerPK, err)
	}
	return nil
}

// SetPurchaseNumber renumbers transaction pk as its buyer's n-th purchase.
func SetPurchaseNumber(ctx context.Context, tx *Tx, pk int64, n int) error {
	if _, err := exec(ctx, tx, `UPDATE transactions SET purchase_number = $2 WHERE pk = $1`, pk, n); err != nil {
		return fmt.Errorf("store.SetPurchaseNumber(%d, %d): %w", pk, n, err)
	}
	return nil
}

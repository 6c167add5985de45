package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// AdminSession is a browser signed in to the admin console of a program.
type AdminSession struct {
	ProgramPK int64     `db:"program_pk"`
	CSRF      string    `db:"csrf"`
	CreatedAt time.Time `db:"created_at"`
	ExpiresAt time.Time `db:"expires_at"`
}

// CreateAdminSession stores a session under the hash of its id.
func CreateAdminSession(ctx context.Context, q Querier, idHash []byte, s AdminSession) error {
	_, err := exec(ctx, q, `INSERT INTO admin_sessions (id_hash, program_pk, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		idHash, s.ProgramPK, s.CSRF, s.CreatedAt, s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("store.CreateAdminSession: %w", translate(err))
	}
	return nil
}

// GetAdminSession returns the unexpired session whose id hashes to idHash, or
// ErrNotFound.
func GetAdminSession(ctx context.Context, q Querier, idHash []byte, now time.Time) (AdminSession, error) {
	var s AdminSession
	err := get(ctx, q, &s, `SELECT program_pk, csrf, created_at, expires_at FROM admin_sessions WHERE id_hash = $1 AND expires_at > $2`, idHash, now)
	if err != nil {
		return AdminSession{}, fmt.Errorf("store.GetAdminSession: %w", translate(err))
	}
	return s, nil
}

// DeleteAdminSession ends a session (signing out), and every expired one.
func DeleteAdminSession(ctx context.Context, q Querier, idHash []byte, now time.Time) error {
	if _, err := exec(ctx, q, `DELETE FROM admin_sessions WHERE id_hash = $1 OR expires_at <= $2`, idHash, now); err != nil {
		return fmt.Errorf("store.DeleteAdminSession: %w", err)
	}
	return nil
}

// PruneAdminSessions deletes the console's sessions that expired before now (those
// nobody signed out of), and says how many; and the counts of failed sign-ins of
// minutes more than an hour gone.
func PruneAdminSessions(ctx context.Context, q Querier, now time.Time) (int64, error) {
	res, err := exec(ctx, q, `DELETE FROM admin_sessions WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("store.PruneAdminSessions: %w", err)
	}
	if _, err := exec(ctx, q, `DELETE FROM admin_signin_failures WHERE minute < $1`, now.Add(-time.Hour)); err != nil {
		return 0, fmt.Errorf("store.PruneAdminSessions: %w", err)
	}
	return res.RowsAffected()
}

// AdminSigninFailures is how many sign-ins from addr failed in the minute of now.
func AdminSigninFailures(ctx context.Context, q Querier, addr string, now time.Time) (int, error) {
	var n []int
	if err := selectRows(ctx, q, &n, `SELECT failures FROM admin_signin_failures WHERE addr = $1 AND minute = $2`,
		addr, now.UTC().Truncate(time.Minute)); err != nil {
		return 0, fmt.Errorf("store.AdminSigninFailures: %w", err)
	}
	if len(n) == 0 {
		return 0, nil
	}
	return n[0], nil
}

// AddAdminSigninFailure counts a failed sign-in from addr in the minute of now.
func AddAdminSigninFailure(ctx context.Context, q Querier, addr string, now time.Time) error {
	if _, err := exec(ctx, q, `INSERT INTO admin_signin_failures AS f (addr, minute, failures) VALUES ($1, $2, 1)
		ON CONFLICT (addr, minute) DO UPDATE SET failures = f.failures + 1`, addr, now.UTC().Truncate(time.Minute)); err != nil {
		return fmt.Errorf("store.AddAdminSigninFailure: %w", err)
	}
	return nil
}

// SetAdminFlash keeps text for the session's next page to show once.
func SetAdminFlash(ctx context.Context, q Querier, idHash []byte, text string) error {
	if _, err := exec(ctx, q, `UPDATE admin_sessions SET flash = $2 WHERE id_hash = $1`, idHash, text); err != nil {
		return fmt.Errorf("store.SetAdminFlash: %w", err)
	}
	return nil
}

// TakeAdminFlash returns the session's flash and clears it ("" when none): a page
// shows it once, and a reload does not.
func TakeAdminFlash(ctx context.Context, q Querier, idHash []byte) (string, error) {
	var flash []sql.NullString
	err := selectRows(ctx, q, &flash, `UPDATE admin_sessions s SET flash = NULL
		FROM (SELECT id_hash, flash FROM admin_sessions WHERE id_hash = $1 AND flash IS NOT NULL FOR UPDATE) old
		WHERE s.id_hash = old.id_hash RETURNING old.flash`, idHash)
	if err != nil {
		return "", fmt.Errorf("store.TakeAdminFlash: %w", err)
	}
	if len(flash) == 0 {
		return "", nil
	}
	return flash[0].String, nil
}

// DayCount is one day's count of something, and its sum in units when it has an
// amount (sales, rewards).
type DayCount struct {
	Day   time.Time `db:"day"`
	Units string    `db:"units"`
	N     int64     `db:"n"`
	Sum   int64     `db:"sum"`
}

// Activity is a program's activity per UTC day since a day: each list holds only
// the days that had any.
type Activity struct {
	Clicks    []DayCount // N = clicks
	Signups   []DayCount // N = customers created
	Referred  []DayCount // N = customers created with a referrer
	Sales     []DayCount // N = referred sales, Sum = their amount, per units
	Rewards   []DayCount // N = rewards, Sum = their amount, per units
	Customers int64      // customers of the program, all time
}

// ProgramActivity reads a program's activity per UTC day from since (a UTC day) on,
// from the narrow indexes of migration 00019.
func ProgramActivity(ctx context.Context, q *DB, programPK int64, since time.Time) (Activity, error) {
	var a Activity
	queries := []struct {
		dest  *[]DayCount
		query string
	}{
		{&a.Clicks, `SELECT day, '' AS units, sum(clicks)::bigint AS n, 0::bigint AS sum FROM click_days
			WHERE program_pk = $1 AND day >= $2::date GROUP BY day ORDER BY day`},
		{&a.Signups, `SELECT (created_at AT TIME ZONE 'UTC')::date AS day, '' AS units, count(*) AS n, 0::bigint AS sum FROM customers
			WHERE program_pk = $1 AND created_at >= $2 GROUP BY 1 ORDER BY 1`},
		{&a.Referred, `SELECT (created_at AT TIME ZONE 'UTC')::date AS day, '' AS units, count(*) AS n, 0::bigint AS sum FROM customers
			WHERE program_pk = $1 AND created_at >= $2 AND referrer_pk IS NOT NULL GROUP BY 1 ORDER BY 1`},
		{&a.Sales, `SELECT (created_at AT TIME ZONE 'UTC')::date AS day, units, count(*) AS n, sum(amount)::bigint AS sum FROM transactions
			WHERE program_pk = $1 AND created_at >= $2 AND referrer_pk IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2`},
		{&a.Rewards, `SELECT (created_at AT TIME ZONE 'UTC')::date AS day, units, count(*) AS n, sum(amount)::bigint AS sum FROM rewards
			WHERE program_pk = $1 AND created_at >= $2 GROUP BY 1, 2 ORDER BY 1, 2`},
	}
	// The counts are independent: they run at once, each on a connection of its own.
	g, gctx := errgroup.WithContext(ctx)
	for _, qq := range queries {
		g.Go(func() error { return selectRows(gctx, q, qq.dest, qq.query, programPK, since) })
	}
	g.Go(func() error {
		return get(gctx, q, &a.Customers, `SELECT count(*) FROM customers WHERE program_pk = $1`, programPK)
	})
	if err := g.Wait(); err != nil {
		return Activity{}, fmt.Errorf("store.ProgramActivity: %w", err)
	}
	return a, nil
}

// LedgerEntry is one row of a customer's ledger: a reward credited or held, its
// approval or reversal, a manual credit or debit.
type LedgerEntry struct {
	Kind       string         `db:"kind"`
	Units      string         `db:"units"`
	IsCurrency bool           `db:"is_currency"`
	Amount     int64          `db:"amount"`
	Pending    int64          `db:"pending"`
	Note       sql.NullString `db:"note"`
	CreatedAt  time.Time      `db:"created_at"`
}

// LedgerEntries returns a customer's newest ledger rows, at most limit, and how many
// there are.
func LedgerEntries(ctx context.Context, q Querier, customerPK int64, limit int) ([]LedgerEntry, int, error) {
	var es []LedgerEntry
	if err := selectRows(ctx, q, &es, `SELECT kind, units, is_currency, amount, pending, note, created_at FROM ledger
		WHERE customer_pk = $1 ORDER BY pk DESC LIMIT $2`, customerPK, limit); err != nil {
		return nil, 0, fmt.Errorf("store.LedgerEntries: %w", err)
	}
	var n int
	if err := get(ctx, q, &n, `SELECT count(*) FROM ledger WHERE customer_pk = $1`, customerPK); err != nil {
		return nil, 0, fmt.Errorf("store.LedgerEntries: %w", err)
	}
	return es, n, nil
}

package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"
)

// ReferralKey is what a referral key of a program resolves to: the customer whose
// own key or extra link key it is.
type ReferralKey struct {
	CustomerPK int64 `db:"customer_pk"`
	// Active is false for a deleted customer, who refers nobody new.
	Active         bool           `db:"active"`
	DestinationURL sql.NullString `db:"destination_url"`
}

// ResolveReferralKey returns the referrer behind key in the program: customer keys
// and extra link keys share one namespace (referral_links), so there is at most one.
func ResolveReferralKey(ctx context.Context, q Querier, programPK int64, key string) (ReferralKey, error) {
	var k ReferralKey
	err := get(ctx, q, &k, `
		SELECT l.customer_pk, c.status = 'active' AS active, l.destination_url
		FROM referral_links l JOIN customers c ON c.pk = l.customer_pk
		WHERE l.program_pk = $1 AND l.key = $2`, programPK, key)
	if err != nil {
		return ReferralKey{}, fmt.Errorf("store.ResolveReferralKey(%s): %w", key, translate(err))
	}
	return k, nil
}

// Click is one click on a referral link, attributed to the link's customer.
type Click struct {
	ProgramPK  int64
	CustomerPK int64
	// Day is the UTC day of the click; only its date counts.
	Day time.Time
	// Visitor identifies the visitor for the day (16 bytes): the same visitor's
	// clicks on one referrer's links count once in unique_clicks.
	Visitor []byte
}

// clickLockTimeout bounds how long a batch of clicks waits for a counters row.
// Sales lock a referrer's counters before the buyer's, whatever their keys, while
// a batch of clicks locks its referrers' rows in key order. A referrer who is also
// a buyer can therefore deadlock with a sale; PostgreSQL would find that only after
// deadlock_timeout (1 s) and might abort the sale. With this timeout the batch of
// clicks gives way first, and it is retried.
const clickLockTimeout = "100ms"

// RecordClicks counts clicks in one transaction: every click adds one to its
// referrer's clicks, and a visitor not yet seen that day for that referrer adds
// one to unique_clicks. However many clicks there are, they cost one transaction of
// one statement.
func RecordClicks(ctx context.Context, db *DB, clicks []Click) error {
	if len(clicks) == 0 {
		return nil
	}
	// Visitors in one order and counters in customer order: concurrent batches
	// then wait for each other's rows in the same order and cannot deadlock.
	sorted := slices.Clone(clicks)
	for i := range sorted {
		sorted[i].Day = sorted[i].Day.UTC().Truncate(24 * time.Hour) // the date, as the key has it
	}
	slices.SortFunc(sorted, func(a, b Click) int {
		return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.CustomerPK, b.CustomerPK), slices.Compare(a.Visitor, b.Visitor))
	})
	days := make(pq.StringArray, len(sorted))
	customers := make(pq.Int64Array, len(sorted))
	visitors := make(pq.ByteaArray, len(sorted))
	for i, c := range sorted {
		days[i] = c.Day.Format(time.DateOnly)
		customers[i] = c.CustomerPK
		visitors[i] = c.Visitor
	}
	// One counters row per referrer, in customer order. A referrer can appear under
	// two days (a batch across midnight), and a row must not be updated twice.
	type counted struct{ program, clicks int64 }
	per := map[int64]*counted{}
	for _, c := range sorted {
		if p := per[c.CustomerPK]; p != nil {
			p.clicks++
		} else {
			per[c.CustomerPK] = &counted{c.ProgramPK, 1}
		}
	}
	refs := make(pq.Int64Array, 0, len(per))
	for pk := range per {
		refs = append(refs, pk)
	}
	slices.Sort(refs)
	programs := make(pq.Int64Array, len(refs))
	counts := make(pq.Int64Array, len(refs))
	for i, pk := range refs {
		programs[i], counts[i] = per[pk].program, per[pk].clicks
	}
	err := db.InTx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '`+clickLockTimeout+`'`); err != nil {
			return err
		}
		// The sort under ON CONFLICT reads all of its input, and so runs the insert
		// of visitors to the end, before the first counters row is locked.
		_, err := exec(ctx, tx, `
			WITH v AS (
				INSERT INTO click_visitors (day, customer_pk, visitor)
				SELECT * FROM unnest($1::date[], $2::bigint[], $3::bytea[])
				ON CONFLICT DO NOTHING
				RETURNING customer_pk
			), u AS (
				SELECT customer_pk, count(*) AS n FROM v GROUP BY customer_pk
			), d AS (
				INSERT INTO click_days AS d (program_pk, day, shard, clicks)
				SELECT program_pk, day, shard, count(*) FROM (
					SELECT c.program_pk, k.day, (k.customer_pk % 8)::smallint AS shard
					FROM unnest($1::date[], $2::bigint[]) AS k(day, customer_pk)
					JOIN unnest($4::bigint[], $5::bigint[]) AS c(customer_pk, program_pk) USING (customer_pk)
				) x GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
				ON CONFLICT (program_pk, day, shard) DO UPDATE SET clicks = d.clicks + EXCLUDED.clicks
			)
			INSERT INTO customer_stats AS s (customer_pk, program_pk, clicks, unique_clicks)
			SELECT c.customer_pk, c.program_pk, c.clicks, coalesce(u.n, 0)
			FROM unnest($4::bigint[], $5::bigint[], $6::bigint[]) AS c(customer_pk, program_pk, clicks)
			LEFT JOIN u USING (customer_pk)
			ORDER BY c.customer_pk
			ON CONFLICT (customer_pk) DO UPDATE
			SET clicks = s.clicks + EXCLUDED.clicks, unique_clicks = s.unique_clicks + EXCLUDED.unique_clicks`,
			days, customers, visitors, refs, programs, counts)
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "55P03" { // lock_not_available: see clickLockTimeout
			return ErrRetry
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store.RecordClicks(%d clicks): %w", len(clicks), err)
	}
	return nil
}

// ClickSalt returns the salt of the UTC day of day, storing fresh as that salt if
// the day has none yet. Every process gets the same salt for a day.
func ClickSalt(ctx context.Context, q Querier, day time.Time, fresh []byte) ([]byte, error) {
	d := day.UTC().Format(time.DateOnly)
	if _, err := exec(ctx, q, `INSERT INTO click_salts (day, salt) VALUES ($1::date, $2) ON CONFLICT (day) DO NOTHING`, d, fresh); err != nil {
		return nil, fmt.Errorf("store.ClickSalt(%s): %w", d, err)
	}
	// A statement of its own: it sees the row of a concurrent process that won.
	var salt []byte
	if err := get(ctx, q, &salt, `SELECT salt FROM click_salts WHERE day = $1::date`, d); err != nil {
		return nil, fmt.Errorf("store.ClickSalt(%s): %w", d, translate(err))
	}
	return salt, nil
}

// PruneClickVisitors deletes the visitors and salts of the days before the UTC day
// of before, and returns how many visitors it deleted. Unique clicks are counted
// per day, so only the current day's rows are ever read; the current day (by the
// database's clock) is never deleted, whatever before says, because deleting it
// would count its visitors again.
func PruneClickVisitors(ctx context.Context, q Querier, before time.Time) (int64, error) {
	d := before.UTC().Format(time.DateOnly)
	var n int64
	err := q.GetContext(ctx, &n, `
		WITH cut AS (
			SELECT least($1::date, (now() AT TIME ZONE 'UTC')::date) AS day
		), s AS (
			DELETE FROM click_salts WHERE day < (SELECT day FROM cut)
		), v AS (
			DELETE FROM click_visitors WHERE day < (SELECT day FROM cut) RETURNING 1
		)
		SELECT count(*) FROM v`, d)
	if err != nil {
		return 0, fmt.Errorf("store.PruneClickVisitors(%s): %w", d, err)
	}
	return n, nil
}

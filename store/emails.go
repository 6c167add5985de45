package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// Email is an outgoing email, rendered when its cause was written (DESIGN §9).
type Email struct {
	PK        int64          `db:"pk"`
	ProgramPK int64          `db:"program_pk"`
	Cause     string         `db:"cause"`
	ToAddress string         `db:"to_address"`
	ToName    string         `db:"to_name"`
	Subject   string         `db:"subject"`
	TextBody  string         `db:"text_body"`
	HTMLBody  string         `db:"html_body"`
	CreatedAt time.Time      `db:"created_at"`
	QueuedAt  sql.NullTime   `db:"queued_at"`
	SentAt    sql.NullTime   `db:"sent_at"`
	Attempts  int            `db:"attempts"`
	LastError sql.NullString `db:"last_error"`
}

// InsertEmail queues e in the caller's transaction, the one that writes its cause.
// An email of the same cause to the same address is stored once: the second insert
// changes nothing. e.PK is set when it was inserted.
func InsertEmail(ctx context.Context, q Querier, e *Email) error {
	var pk []int64
	err := selectRows(ctx, q, &pk, `INSERT INTO emails (program_pk, cause, to_address, to_name, subject, text_body, html_body, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (cause, to_address) DO NOTHING RETURNING pk`,
		e.ProgramPK, e.Cause, e.ToAddress, e.ToName, e.Subject, e.TextBody, e.HTMLBody, e.CreatedAt)
	if err != nil {
		return fmt.Errorf("store.InsertEmail(%s, %s): %w", e.Cause, e.ToAddress, translate(err))
	}
	if len(pk) == 1 {
		e.PK = pk[0]
	}
	return nil
}

// TakeEmailsToQueue marks up to limit emails that have no task yet as queued and
// returns their pks, in the caller's transaction (the relay's): rows another
// transaction holds are skipped.
func TakeEmailsToQueue(ctx context.Context, tx *Tx, limit int) ([]int64, error) {
	var pks []int64
	err := selectRows(ctx, tx, &pks, `UPDATE emails SET queued_at = $2 WHERE pk IN (
			SELECT pk FROM emails WHERE queued_at IS NULL ORDER BY pk LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING pk`, limit, Now())
	if err != nil {
		return nil, fmt.Errorf("store.TakeEmailsToQueue: %w", err)
	}
	return pks, nil
}

// UnsentEmails lists up to limit emails queued before before and not sent: those whose
// task may have been lost (a Redis restarted without its data).
func UnsentEmails(ctx context.Context, q Querier, before time.Time, limit int) ([]int64, error) {
	var pks []int64
	err := selectRows(ctx, q, &pks, `SELECT pk FROM emails WHERE sent_at IS NULL AND queued_at < $1 ORDER BY queued_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("store.UnsentEmails: %w", err)
	}
	return pks, nil
}

// LockEmail reads email pk and locks it until the transaction ends, so that two
// tasks for one email never send it at once.
func LockEmail(ctx context.Context, tx *Tx, pk int64) (Email, error) {
	var e Email
	if err := get(ctx, tx, &e, `SELECT * FROM emails WHERE pk = $1 FOR UPDATE`, pk); err != nil {
		return Email{}, fmt.Errorf("store.LockEmail(%d): %w", pk, translate(err))
	}
	return e, nil
}

// MarkEmailSent records that the SMTP server accepted email pk.
func MarkEmailSent(ctx context.Context, q Querier, pk int64, at time.Time) error {
	if _, err := exec(ctx, q, `UPDATE emails SET sent_at = $2, attempts = attempts + 1, last_error = NULL WHERE pk = $1`, pk, at); err != nil {
		return fmt.Errorf("store.MarkEmailSent(%d): %w", pk, err)
	}
	return nil
}

// RecordEmailFailure records a failed attempt at email pk.
func RecordEmailFailure(ctx context.Context, q Querier, pk int64, msg string) error {
	if _, err := exec(ctx, q, `UPDATE emails SET attempts = attempts + 1, last_error = $2 WHERE pk = $1`, pk, msg); err != nil {
		return fmt.Errorf("store.RecordEmailFailure(%d): %w", pk, err)
	}
	return nil
}

// EmailsOf returns the emails with these pks (tests, ops).
func EmailsOf(ctx context.Context, q Querier, pks []int64) ([]Email, error) {
	var es []Email
	if err := selectRows(ctx, q, &es, `SELECT * FROM emails WHERE pk = ANY($1) ORDER BY pk`, pq.Int64Array(pks)); err != nil {
		return nil, fmt.Errorf("store.EmailsOf: %w", err)
	}
	return es, nil
}

// CountEmailsSince counts the program's emails queued since since whose cause starts
// with prefix (a customer's widget invitations, say).
func CountEmailsSince(ctx context.Context, q Querier, programPK int64, prefix string, since time.Time) (int, error) {
	var n int
	if err := get(ctx, q, &n, `SELECT count(*) FROM emails WHERE program_pk = $1 AND starts_with(cause, $2) AND created_at >= $3`,
		programPK, prefix, since); err != nil {
		return 0, fmt.Errorf("store.CountEmailsSince: %w", err)
	}
	return n, nil
}

package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/referd/referd/logging"
)

// Customer is a program's customer: a potential referrer and possibly a referred friend.
type Customer struct {
	PK        int64          `db:"pk"`
	ProgramPK int64          `db:"program_pk"`
	ID        string         `db:"id"`
	Key       string         `db:"key"`
	Email     sql.NullString `db:"email"`
	Name      sql.NullString `db:"name"`
	Surname   sql.NullString `db:"surname"`
	Metadata  string         `db:"metadata"` // a JSON object
	// Source is where the customer was created: api, js, or the name of the billing
	// provider whose payment created it.
	Source         string        `db:"source"`
	ReferrerPK     sql.NullInt64 `db:"referrer_pk"`
	Status         string        `db:"status"`
	Approved       bool          `db:"approved"`
	ReferralsCount int           `db:"referrals_count"`
	CreatedAt      time.Time     `db:"created_at"`
	UpdatedAt      time.Time     `db:"updated_at"`
	DeletedAt      sql.NullTime  `db:"deleted_at"`

	// Referrer is the referring customer, read with the customer.
	Referrer *CustomerRef `db:"-"`
	// Links are the customer's referral links, its own key first.
	Links []LinkRef `db:"-"`

	RefID    sql.NullString `db:"ref_id"`
	RefKey   sql.NullString `db:"ref_key"`
	RefEmail sql.NullString `db:"ref_email"`
	RefName  sql.NullString `db:"ref_name"`
	LinksRaw string         `db:"links"`
}

// CustomerRef is the short form of a customer used for referrers.
type CustomerRef struct {
	PK    int64
	ID    string
	Key   string
	Email sql.NullString
	Name  sql.NullString
}

// LinkRef is what a customer object shows of each referral link.
type LinkRef struct {
	Key            string  `json:"key"`
	DestinationURL *string `json:"destination_url"`
}

const customerSelect = `
	SELECT c.pk, c.program_pk, c.id, c.key, c.email, c.name, c.surname, c.metadata::text AS metadata, c.source,
		c.referrer_pk, c.status, c.approved, coalesce(s.referrals, 0) AS referrals_count,
		c.created_at, c.updated_at, c.deleted_at,
		r.id AS ref_id, r.key AS ref_key, r.email AS ref_email, r.name AS ref_name,
		(SELECT coalesce(json_agg(json_build_object('key', l.key, 'destination_url', l.destination_url)
			ORDER BY l.is_default DESC, l.created_at, l.key), '[]')::text FROM referral_links l WHERE l.customer_pk = c.pk) AS links
	FROM customers c
	LEFT JOIN customers r ON r.pk = c.referrer_pk
	LEFT JOIN customer_stats s ON s.customer_pk = c.pk`

func (c *Customer) finish() error {
	c.Metadata = NormalizeJSON(c.Metadata)
	if c.ReferrerPK.Valid {
		c.Referrer = &CustomerRef{PK: c.ReferrerPK.Int64, ID: c.RefID.String, Key: c.RefKey.String, Email: c.RefEmail, Name: c.RefName}
	}
	if c.LinksRaw != "" {
		if err := json.Unmarshal([]byte(c.LinksRaw), &c.Links); err != nil {
			return fmt.Errorf("links of customer %d: %w", c.PK, err)
		}
	}
	return nil
}

// InsertCustomer stores c in one statement: it resolves the referrer named by refID
// (else refKey, a customer key or extra link key), inserts the customer and its
// default referral link, counts the referral, and writes the customer.created
// outbox event, whose payload is payload with referring_customer filled in. When a
// referrer is named but is not an active customer of the program, nothing is
// stored and the error is ErrNotFound. c.PK and c.Referrer are set on success.
func InsertCustomer(ctx context.Context, q Querier, c *Customer, refID, refKey, payload string) error {
	var row struct {
		PK       int64          `db:"pk"`
		RefPK    sql.NullInt64  `db:"ref_pk"`
		RefID    sql.NullString `db:"ref_id"`
		RefKey   sql.NullString `db:"ref_key"`
		RefEmail sql.NullString `db:"ref_email"`
		RefName  sql.NullString `db:"ref_name"`
	}
	err := get(ctx, q, &row, `
		WITH ref AS (
			SELECT r.pk, r.id, r.key, r.email, r.name FROM customers r
			WHERE $10 <> '' AND r.program_pk = $1 AND r.id = $10 AND r.status = 'active'
			UNION ALL
			SELECT r.pk, r.id, r.key, r.email, r.name FROM referral_links l JOIN customers r ON r.pk = l.customer_pk
			WHERE $10 = '' AND $11 <> '' AND l.program_pk = $1 AND l.key = $11 AND r.status = 'active'
		), c AS (
			INSERT INTO customers (program_pk, id, key, email, name, surname, metadata, referrer_pk, created_at, updated_at, source)
			SELECT $1, $2, $3, $4, $5, $6, $7, (SELECT pk FROM ref), $8, $8, coalesce(NULLIF($13, ''), 'api')
			WHERE ($10 = '' AND $11 = '') OR EXISTS (SELECT FROM ref)
			RETURNING pk, referrer_pk
		), l AS (
			INSERT INTO referral_links (program_pk, customer_pk, key, is_default, created_at)
			SELECT $1, pk, $3, true, $8 FROM c
		), s AS (
			INSERT INTO customer_stats AS s (customer_pk, program_pk, referrals)
			SELECT referrer_pk, $1, 1 FROM c WHERE referrer_pk IS NOT NULL
			ON CONFLICT (customer_pk) DO UPDATE SET referrals = s.referrals + 1
		), o AS (
			INSERT INTO outbox (program_pk, event, payload, created_at, request_id)
			SELECT $1, 'customer.created', $9::jsonb || jsonb_build_object('referring_customer',
				(SELECT jsonb_build_object('id', id, 'key', key, 'email', email, 'name', name) FROM ref)), $8, NULLIF($12, '')
			FROM c
		)
		SELECT c.pk, ref.pk AS ref_pk, ref.id AS ref_id, ref.key AS ref_key, ref.email AS ref_email, ref.name AS ref_name
		FROM c LEFT JOIN ref ON true`,
		c.ProgramPK, c.ID, c.Key, c.Email, c.Name, c.Surname, c.Metadata, c.CreatedAt, payload, refID, refKey, logging.RequestID(ctx), c.Source)
	if err != nil {
		return fmt.Errorf("store.InsertCustomer(%s): %w", c.Key, translate(err))
	}
	c.PK = row.PK
	if row.RefPK.Valid {
		c.ReferrerPK = row.RefPK
		c.Referrer = &CustomerRef{PK: row.RefPK.Int64, ID: row.RefID.String, Key: row.RefKey.String, Email: row.RefEmail, Name: row.RefName}
	}
	return nil
}

// GetCustomer returns the program's customer whose id is idOrKey, else whose key is.
// With forUpdate it locks the row until the transaction ends.
func GetCustomer(ctx context.Context, q Querier, programPK int64, idOrKey string, forUpdate bool) (Customer, error) {
	query := customerSelect + ` WHERE c.program_pk = $1 AND (c.id = $2 OR c.key = $2) ORDER BY c.id = $2 DESC LIMIT 1`
	if forUpdate {
		query += ` FOR UPDATE OF c`
	}
	var c Customer
	if err := get(ctx, q, &c, query, programPK, idOrKey); err != nil {
		return Customer{}, fmt.Errorf("store.GetCustomer(%s): %w", idOrKey, translate(err))
	}
	return c, c.finish()
}

// UpdateCustomer writes c's editable fields (id, key, email, name, surname, metadata,
// status, deleted_at, updated_at), moves its default link to a changed key, and writes
// the outbox event, in the caller's transaction.
func UpdateCustomer(ctx context.Context, q Querier, c *Customer, event, payload string) error {
	_, err := q.ExecContext(ctx, `
		WITH u AS (
			UPDATE customers SET id = $2, key = $3, email = $4, name = $5, surname = $6, metadata = $7,
				status = $8, deleted_at = $9, updated_at = $10
			WHERE pk = $1 RETURNING pk
		), l AS (
			UPDATE referral_links SET key = $3 WHERE customer_pk = $1 AND is_default AND key <> $3
		)
		INSERT INTO outbox (program_pk, event, payload, created_at, request_id) SELECT $11, $12, $13, $10, NULLIF($14, '') FROM u`,
		c.PK, c.ID, c.Key, c.Email, c.Name, c.Surname, c.Metadata, c.Status, c.DeletedAt, c.UpdatedAt,
		c.ProgramPK, event, payload, logging.RequestID(ctx))
	if err != nil {
		return fmt.Errorf("store.UpdateCustomer(%s): %w", c.ID, translate(err))
	}
	return nil
}

// CustomerFilter selects customers of one program for a list.
type CustomerFilter struct {
	ProgramPK  int64
	ReferrerPK int64  // only the customers this one referred
	Referred   *bool  // refer_status: referred (true) or non_referred (false)
	Email      string // exact, case-insensitive
	ID, Key    string // exact
	Query      string // substring of id, key, email or name, case-insensitive
	Status     string // active | deleted; empty for both
	Limit      int
	Offset     int
	// NoTotal skips counting the matches (ListCustomers then returns -1 for the
	// total): a page of a search need not scan every match.
	NoTotal bool
}

// ListCustomers returns one page of the filter's customers, newest first, and the
// number of customers the filter matches in all.
func ListCustomers(ctx context.Context, q Querier, f CustomerFilter) ([]Customer, int, error) {
	w := conditions{sql: []string{"c.program_pk = $1"}, args: []any{f.ProgramPK}}
	if f.ReferrerPK != 0 {
		w.add("c.referrer_pk = ?", f.ReferrerPK)
	}
	if f.Referred != nil {
		if *f.Referred {
			w.sql = append(w.sql, "c.referrer_pk IS NOT NULL")
		} else {
			w.sql = append(w.sql, "c.referrer_pk IS NULL")
		}
	}
	if f.Status != "" {
		w.add("c.status = ?", f.Status)
	}
	if f.Email != "" {
		w.add("lower(c.email) = lower(?)", f.Email)
	}
	if f.ID != "" {
		w.add("c.id = ?", f.ID)
	}
	if f.Key != "" {
		w.add("c.key = ?", f.Key)
	}
	if f.Query != "" {
		// One column holds the lower-cased id, key, email, name and surname (migration
		// 00019): one LIKE per row instead of five ILIKEs.
		w.add(`c.search LIKE lower(?)`, "%"+likeEscaper.Replace(f.Query)+"%")
	}
	cond, args := w.where(), w.args
	total := -1
	if !f.NoTotal {
		if err := get(ctx, q, &total, `SELECT count(*) FROM customers c WHERE `+cond, args...); err != nil {
			return nil, 0, fmt.Errorf("store.ListCustomers: %w", err)
		}
	}
	var out []Customer
	if total > f.Offset || f.NoTotal {
		// The page's pks first, then their rows with links and referrer: an offset
		// skips index entries, not joined rows.
		query := customerSelect + ` WHERE c.pk IN (SELECT c.pk FROM customers c WHERE ` + cond +
			fmt.Sprintf(` ORDER BY c.pk DESC LIMIT $%d OFFSET $%d) ORDER BY c.pk DESC`, len(args)+1, len(args)+2)
		if err := selectRows(ctx, q, &out, query, append(args, f.Limit, f.Offset)...); err != nil {
			return nil, 0, fmt.Errorf("store.ListCustomers: %w", err)
		}
	}
	for i := range out {
		if err := out[i].finish(); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// NormalizeJSON re-encodes a JSON document with sorted keys and no spaces (numbers
// kept exact), so equal documents have equal text whether they came from jsonb or Go.
func NormalizeJSON(s string) string {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return s
	}
	out, err := json.Marshal(v)
	if err != nil {
		return s
	}
	return string(out)
}

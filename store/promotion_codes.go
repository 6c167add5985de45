package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
)

// PromotionCode is a referring customer's promotion code (DESIGN §8): a friend who
// pays with it becomes the owner's referral.
type PromotionCode struct {
	PK          int64          `db:"pk"`
	ProgramPK   int64          `db:"program_pk"`
	CustomerPK  int64          `db:"customer_pk"`
	Code        string         `db:"code"`
	StripeID    sql.NullString `db:"stripe_id"`
	PaddleID    sql.NullString `db:"paddle_id"`
	ChargebeeID sql.NullString `db:"chargebee_id"`
	CreatedAt   time.Time      `db:"created_at"`
	DeletedAt   sql.NullTime   `db:"deleted_at"`
	// Uses counts the sales attributed to the owner through the code.
	Uses int `db:"uses"`

	// The owner, read with the code.
	OwnerID    string         `db:"owner_id"`
	OwnerKey   string         `db:"owner_key"`
	OwnerEmail sql.NullString `db:"owner_email"`
	OwnerName  sql.NullString `db:"owner_name"`
}

// Refs are the discount refs (see EventOutcome.DiscountRefs) that name the code: its
// text and its providers' ids.
func (pc PromotionCode) Refs() []string {
	refs := []string{CodeRef(pc.Code)}
	for provider, id := range map[string]sql.NullString{"stripe": pc.StripeID, "paddle": pc.PaddleID, "chargebee": pc.ChargebeeID} {
		if id.Valid {
			refs = append(refs, provider+":"+id.String)
		}
	}
	return refs
}

// CodeRef is the discount ref of a code's text: case does not matter. Refs are
// made in Go only (a payment's and a code's alike), so they agree with each other.
func CodeRef(code string) string { return "code:" + strings.ToLower(code) }

// promotionCodeSelect reads codes with their uses and owners.
var promotionCodeSelect = codeSelectFrom("promotion_codes")

// codeSelectFrom is promotionCodeSelect reading the codes from table (a CTE's rows).
func codeSelectFrom(table string) string {
	return `
	SELECT pc.pk, pc.program_pk, pc.customer_pk, pc.code, pc.stripe_id, pc.paddle_id, pc.chargebee_id, pc.created_at,
		pc.deleted_at, (SELECT count(*) FROM promotion_code_uses u WHERE u.code_pk = pc.pk) AS uses,
		o.id AS owner_id, o.key AS owner_key, o.email AS owner_email, o.name AS owner_name
	FROM ` + table + ` pc JOIN customers o ON o.pk = pc.customer_pk`
}

func init() {
	uniqueFields["promotion_codes_program_code"] = "code"
	uniqueFields["promotion_codes_program_stripe"] = "provider_ids.stripe"
	uniqueFields["promotion_codes_program_paddle"] = "provider_ids.paddle"
	uniqueFields["promotion_codes_program_chargebee"] = "provider_ids.chargebee"
}

// InsertPromotionCode stores pc and queues for processing again the program's
// payments that carried it and ended ignored or unattributed (they arrived before
// it): see QueueDiscountRetries. pc.PK is set.
func InsertPromotionCode(ctx context.Context, tx *Tx, pc *PromotionCode) error {
	err := tx.GetContext(ctx, &pc.PK, `
		INSERT INTO promotion_codes (program_pk, customer_pk, code, stripe_id, paddle_id, chargebee_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING pk`,
		pc.ProgramPK, pc.CustomerPK, pc.Code, pc.StripeID, pc.PaddleID, pc.ChargebeeID, pc.CreatedAt)
	if err != nil {
		return fmt.Errorf("store.InsertPromotionCode(%s): %w", pc.Code, translate(err))
	}
	refs := pc.Refs()
	if pc.StripeID.Valid {
		// The Stripe discounts learned to apply it (customer.discount.created).
		var dis []string
		err := selectRows(ctx, tx, &dis, `SELECT 'stripe:' || discount_id FROM provider_discounts
			WHERE program_pk = $1 AND provider = 'stripe' AND promotion_id = $2`, pc.ProgramPK, pc.StripeID.String)
		if err != nil {
			return fmt.Errorf("store.InsertPromotionCode(%s): %w", pc.Code, err)
		}
		refs = append(refs, dis...)
	}
	if _, err := QueueDiscountRetries(ctx, tx, pc.ProgramPK, refs); err != nil {
		return err
	}
	return nil
}

// GetPromotionCode returns the program's code (case-insensitive) that is not deleted.
func GetPromotionCode(ctx context.Context, q Querier, programPK int64, code string) (PromotionCode, error) {
	var pc PromotionCode
	err := get(ctx, q, &pc, promotionCodeSelect+` WHERE pc.program_pk = $1 AND lower(pc.code) = lower($2) AND pc.deleted_at IS NULL`,
		programPK, code)
	if err != nil {
		return PromotionCode{}, fmt.Errorf("store.GetPromotionCode(%s): %w", code, translate(err))
	}
	return pc, nil
}

// DeletePromotionCode marks the program's code deleted and returns it: it attributes
// nothing from now on, and its text may be given to a new code.
func DeletePromotionCode(ctx context.Context, q Querier, programPK int64, code string, at time.Time) (PromotionCode, error) {
	var pc PromotionCode
	err := get(ctx, q, &pc, `
		WITH d AS (
			UPDATE promotion_codes SET deleted_at = $3
			WHERE program_pk = $1 AND lower(code) = lower($2) AND deleted_at IS NULL RETURNING *
		)`+codeSelectFrom("d"), programPK, code, at)
	if err != nil {
		return PromotionCode{}, fmt.Errorf("store.DeletePromotionCode(%s): %w", code, translate(err))
	}
	return pc, nil
}

// PromotionCodeFilter selects a program's codes for a list.
type PromotionCodeFilter struct {
	ProgramPK  int64
	CustomerPK int64 // only this customer's; 0 for all
	Limit      int
	Offset     int
}

// ListPromotionCodes returns one page of the program's codes that are not deleted,
// newest first, and how many there are.
func ListPromotionCodes(ctx context.Context, q Querier, f PromotionCodeFilter) ([]PromotionCode, int, error) {
	cond := ` WHERE pc.program_pk = $1 AND pc.deleted_at IS NULL AND ($2 = 0 OR pc.customer_pk = $2)`
	var total int
	if err := get(ctx, q, &total, `SELECT count(*) FROM promotion_codes pc`+cond, f.ProgramPK, f.CustomerPK); err != nil {
		return nil, 0, fmt.Errorf("store.ListPromotionCodes: %w", err)
	}
	var out []PromotionCode
	if total > f.Offset {
		err := selectRows(ctx, q, &out, promotionCodeSelect+cond+` ORDER BY pc.pk DESC LIMIT $3 OFFSET $4`,
			f.ProgramPK, f.CustomerPK, f.Limit, f.Offset)
		if err != nil {
			return nil, 0, fmt.Errorf("store.ListPromotionCodes: %w", err)
		}
	}
	return out, total, nil
}

// CodeQuery is a payment's discount, to find the program's code it names: by its
// text (case-insensitive), else by the provider's id of the promotion code (Stripe
// promo_..., Paddle dsc_..., Chargebee coupon), else by a provider discount id
// learned earlier (LearnDiscounts).
type CodeQuery struct {
	ProgramPK   int64  `json:"program_pk"`
	Provider    string `json:"provider"`
	Code        string `json:"code"`
	PromotionID string `json:"promotion_id"`
	DiscountID  string `json:"discount_id"`
}

// CodeMatch is the code a CodeQuery found (PK 0: none) and its owner.
type CodeMatch struct {
	PK       int64  `db:"pk"`
	Code     string `db:"code"`
	OwnerPK  int64  `db:"owner_pk"`
	OwnerID  string `db:"owner_id"`
	OwnerKey string `db:"owner_key"`
}

// MatchCodes finds, in one statement, the code each query names among the codes
// not deleted whose owner is active; one match per query, in order.
func MatchCodes(ctx context.Context, q Querier, qs []CodeQuery) ([]CodeMatch, error) {
	if len(qs) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(qs)
	if err != nil {
		return nil, err
	}
	var out []CodeMatch
	err = selectRows(ctx, q, &out, `
		SELECT coalesce(m.pk, 0) AS pk, coalesce(m.code, '') AS code, coalesce(m.customer_pk, 0) AS owner_pk,
			coalesce(o.id, '') AS owner_id, coalesce(o.key, '') AS owner_key
		FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (program_pk bigint, provider text, code text, promotion_id text, discount_id text))
			WITH ORDINALITY AS q(program_pk, provider, code, promotion_id, discount_id, n)
		LEFT JOIN LATERAL (
			SELECT * FROM (
				(SELECT pc.*, 1 AS rank FROM promotion_codes pc WHERE q.code <> '' AND pc.program_pk = q.program_pk
					AND lower(pc.code) = lower(q.code) AND pc.deleted_at IS NULL)
				UNION ALL
				(SELECT pc.*, 2 FROM promotion_codes pc WHERE q.promotion_id <> '' AND pc.program_pk = q.program_pk
					AND pc.deleted_at IS NULL AND CASE q.provider WHEN 'stripe' THEN pc.stripe_id = q.promotion_id
						WHEN 'paddle' THEN pc.paddle_id = q.promotion_id WHEN 'chargebee' THEN pc.chargebee_id = q.promotion_id END)
				UNION ALL
				(SELECT pc.*, 3 FROM provider_discounts d JOIN promotion_codes pc ON pc.program_pk = d.program_pk
					AND pc.deleted_at IS NULL AND ((d.promotion_id <> '' AND pc.stripe_id = d.promotion_id AND d.provider = 'stripe')
						OR (d.code <> '' AND lower(pc.code) = lower(d.code)))
					WHERE q.discount_id <> '' AND d.program_pk = q.program_pk AND d.provider = q.provider AND d.discount_id = q.discount_id)
			) branches ORDER BY rank LIMIT 1
		) m ON true
		LEFT JOIN customers o ON o.pk = m.customer_pk AND o.status = 'active'
		ORDER BY q.n`, string(b))
	if err != nil {
		return nil, fmt.Errorf("store.MatchCodes(%d): %w", len(qs), translate(err))
	}
	if len(out) != len(qs) {
		return nil, fmt.Errorf("store.MatchCodes: %d rows for %d queries", len(out), len(qs))
	}
	for i := range out {
		if out[i].OwnerID == "" {
			out[i] = CodeMatch{} // a deleted owner's code attributes nothing
		}
	}
	return out, nil
}

// ProviderDiscount is what a provider's discount object names: the promotion code
// (its provider id, or its text) a discount id stands for.
type ProviderDiscount struct {
	ProgramPK   int64  `json:"program_pk"`
	Provider    string `json:"provider"`
	DiscountID  string `json:"discount_id"`
	PromotionID string `json:"promotion_id"`
	Code        string `json:"code"`
}

// LearnDiscounts remembers what discount ids stand for, in one statement; a
// discount learned before keeps what it was learned as.
func LearnDiscounts(ctx context.Context, tx *Tx, ds []ProviderDiscount) error {
	if len(ds) == 0 {
		return nil
	}
	b, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	_, err = exec(ctx, tx, `
		INSERT INTO provider_discounts (program_pk, provider, discount_id, promotion_id, code)
		SELECT DISTINCT ON (program_pk, provider, discount_id) program_pk, provider, discount_id, promotion_id, code
		FROM jsonb_to_recordset($1::jsonb) AS d(program_pk bigint, provider text, discount_id text, promotion_id text, code text)
		WHERE discount_id <> '' AND (promotion_id <> '' OR code <> '')
		ORDER BY program_pk, provider, discount_id
		ON CONFLICT DO NOTHING`, string(b))
	if err != nil {
		return fmt.Errorf("store.LearnDiscounts(%d): %w", len(ds), err)
	}
	return nil
}

// QueueDiscountRetries queues for processing again (TakeEventRetries) the program's
// payments that carried any of refs and ended ignored or unattributed: a code or a
// discount id they named has just become known. Ignored ones are put back to
// received, as a replay does, so that processing does not skip them as done. It
// returns how many it queued.
func QueueDiscountRetries(ctx context.Context, tx *Tx, programPK int64, refs []string) (int64, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	res, err := exec(ctx, tx, `
		WITH m AS (
			SELECT pk, status FROM provider_events WHERE program_pk = $1 AND status IN ('ignored', 'unattributed')
				AND discount_refs IS NOT NULL AND discount_refs && $2::text[]
			ORDER BY pk FOR UPDATE
		), r AS (
			UPDATE provider_events e SET status = 'received' FROM m WHERE e.pk = m.pk AND m.status = 'ignored'
		)
		INSERT INTO provider_event_retries (event_pk) SELECT pk FROM m ON CONFLICT DO NOTHING`,
		programPK, pq.StringArray(refs))
	if err != nil {
		return 0, fmt.Errorf("store.QueueDiscountRetries(%d): %w", programPK, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// TakeEventRetries removes and returns up to limit events queued by
// QueueDiscountRetries, for the relay to enqueue in the same transaction.
func TakeEventRetries(ctx context.Context, tx *Tx, limit int) ([]int64, error) {
	var pks []int64
	err := selectRows(ctx, tx, &pks, `
		DELETE FROM provider_event_retries WHERE event_pk IN (
			SELECT event_pk FROM provider_event_retries ORDER BY event_pk LIMIT $1 FOR UPDATE SKIP LOCKED
		) RETURNING event_pk`, limit)
	if err != nil {
		return nil, fmt.Errorf("store.TakeEventRetries: %w", err)
	}
	return pks, nil
}

// CodeReferral is a customer a code made its owner's referral (ReferByCodes).
type CodeReferral struct {
	ProgramPK int64       `db:"program_pk"`
	Customer  CustomerRef `db:"-"`
	Owner     CustomerRef `db:"-"`

	CustomerPK    int64          `db:"customer_pk"`
	CustomerID    string         `db:"customer_id"`
	CustomerKey   string         `db:"customer_key"`
	CustomerEmail sql.NullString `db:"customer_email"`
	CustomerName  sql.NullString `db:"customer_name"`
	OwnerPK       int64          `db:"owner_pk"`
	OwnerID       string         `db:"owner_id"`
	OwnerKey      string         `db:"owner_key"`
	OwnerEmail    sql.NullString `db:"owner_email"`
	OwnerName     sql.NullString `db:"owner_name"`
}

// CodeBuyer is a sale's buyer, named as a sale names it, and the code it paid with.
type CodeBuyer struct {
	ProgramPK int64  `json:"program_pk"`
	ID        string `json:"id"`
	Key       string `json:"key"`
	Email     string `json:"email"`
	Code      string `json:"code"`
}

// ReferByCodes makes, in one statement, each buyer whom nobody referred the referral
// of the owner of the code it paid with (a code not deleted, of an active owner other
// than the buyer), and counts the referrals. Only a customer without a referrer gets
// one (the update is guarded in SQL): a buyer who has one keeps it, and of two
// concurrent sales one refers. It returns the referrals it made.
func ReferByCodes(ctx context.Context, tx *Tx, bs []CodeBuyer) ([]CodeReferral, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(bs)
	if err != nil {
		return nil, err
	}
	var out []CodeReferral
	err = selectRows(ctx, tx, &out, `
		WITH q AS (
			SELECT DISTINCT ON (c.pk) c.pk AS customer_pk, pc.customer_pk AS owner_pk, q.program_pk
			FROM jsonb_to_recordset($1::jsonb) AS q(program_pk bigint, id text, key text, email text, code text)
			CROSS JOIN LATERAL (
				(SELECT c.* FROM customers c WHERE q.id <> '' AND c.program_pk = q.program_pk AND c.id = q.id)
				UNION ALL
				(SELECT c.* FROM customers c WHERE q.id = '' AND q.key <> '' AND c.program_pk = q.program_pk AND c.key = q.key)
				UNION ALL
				(SELECT c.* FROM customers c WHERE q.id = '' AND q.key = '' AND q.email <> ''
					AND c.program_pk = q.program_pk AND lower(c.email) = lower(q.email) ORDER BY c.pk LIMIT 1)
				LIMIT 1
			) c
			JOIN promotion_codes pc ON pc.program_pk = q.program_pk AND lower(pc.code) = lower(q.code) AND pc.deleted_at IS NULL
			JOIN customers o ON o.pk = pc.customer_pk AND o.status = 'active'
			WHERE q.code <> '' AND c.referrer_pk IS NULL AND c.pk <> pc.customer_pk
			ORDER BY c.pk
		), u AS (
			UPDATE customers c SET referrer_pk = q.owner_pk, updated_at = now()
			FROM q WHERE c.pk = q.customer_pk AND c.referrer_pk IS NULL
			RETURNING c.pk, c.id, c.key, c.email, c.name, c.referrer_pk, c.program_pk
		), s AS (
			INSERT INTO customer_stats AS s (customer_pk, program_pk, referrals)
			SELECT referrer_pk, program_pk, count(*) FROM u GROUP BY referrer_pk, program_pk
			ON CONFLICT (customer_pk) DO UPDATE SET referrals = s.referrals + excluded.referrals
		)
		SELECT u.program_pk, u.pk AS customer_pk, u.id AS customer_id, u.key AS customer_key, u.email AS customer_email,
			u.name AS customer_name, o.pk AS owner_pk, o.id AS owner_id, o.key AS owner_key, o.email AS owner_email, o.name AS owner_name
		FROM u JOIN customers o ON o.pk = u.referrer_pk ORDER BY u.pk`, string(b))
	if err != nil {
		return nil, fmt.Errorf("store.ReferByCodes(%d): %w", len(bs), translate(err))
	}
	for i := range out {
		r := &out[i]
		r.Customer = CustomerRef{PK: r.CustomerPK, ID: r.CustomerID, Key: r.CustomerKey, Email: r.CustomerEmail, Name: r.CustomerName}
		r.Owner = CustomerRef{PK: r.OwnerPK, ID: r.OwnerID, Key: r.OwnerKey, Email: r.OwnerEmail, Name: r.OwnerName}
	}
	return out, nil
}

// CodeUse is a sale paid with a code, for RecordCodeUses.
type CodeUse struct {
	ProgramPK int64  `json:"program_pk"`
	SaleKey   string `json:"sale_key"`
	Code      string `json:"code"`
}

// RecordCodeUses counts, in one statement, each sale whose referrer is the owner of
// the code it was paid with as a use of that code; a sale counts once, however often
// it is recorded again.
func RecordCodeUses(ctx context.Context, tx *Tx, us []CodeUse) error {
	if len(us) == 0 {
		return nil
	}
	b, err := json.Marshal(us)
	if err != nil {
		return err
	}
	_, err = exec(ctx, tx, `
		INSERT INTO promotion_code_uses (program_pk, code_pk, transaction_pk)
		SELECT DISTINCT ON (t.pk) t.program_pk, pc.pk, t.pk
		FROM jsonb_to_recordset($1::jsonb) AS u(program_pk bigint, sale_key text, code text)
		JOIN transactions t ON t.program_pk = u.program_pk AND t.key = u.sale_key
		JOIN promotion_codes pc ON pc.program_pk = u.program_pk AND lower(pc.code) = lower(u.code) AND pc.deleted_at IS NULL
		WHERE u.code <> '' AND t.referrer_pk = pc.customer_pk
		ORDER BY t.pk
		ON CONFLICT DO NOTHING`, string(b))
	if err != nil {
		return fmt.Errorf("store.RecordCodeUses(%d): %w", len(us), err)
	}
	return nil
}

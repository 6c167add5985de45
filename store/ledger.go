package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/referd/referd/logging"
)

// Transaction is a recorded sale; ReferrerPK is null when nobody referred the buyer.
type Transaction struct {
	// RequestID is the request that recorded it, for its outbox events (not stored
	// with the transaction).
	RequestID      string         `db:"-"`
	PK             int64          `db:"pk"`
	ProgramPK      int64          `db:"program_pk"`
	Key            string         `db:"key"`
	CustomerPK     int64          `db:"customer_pk"`
	ReferrerPK     sql.NullInt64  `db:"referrer_pk"`
	Action         string         `db:"action"`
	Amount         int64          `db:"amount"`
	Units          string         `db:"units"`
	Refunded       int64          `db:"refunded"`
	ProductID      sql.NullString `db:"product_id"`
	ProductType    sql.NullString `db:"product_type"`
	Rewardable     bool           `db:"rewardable"` // false: recorded without rewards
	DiscountCode   sql.NullString `db:"discount_code"`
	DiscountAmount sql.NullInt64  `db:"discount_amount"` // minor units of Units, as the request gave it
	GrossAmount    sql.NullInt64  `db:"gross_amount"`    // minor units of Units, as the request gave it
	Source         string         `db:"source"`
	Livemode       bool           `db:"livemode"`
	PurchaseNumber int            `db:"purchase_number"`
	Fingerprint    string         `db:"fingerprint"`
	CreatedAt      time.Time      `db:"created_at"` // the sale's time (an import's is past): holds and max_months count from it
	DeletedAt      sql.NullTime   `db:"deleted_at"`
	// FoldedInto is the sale key of the payment this sale turned out to be part of
	// (store.SetFoldedInto); the sale is then fully reversed.
	FoldedInto sql.NullString `db:"folded_into"`

	// Read with the transaction.
	Buyer    CustomerRef  `db:"-"`
	Referrer *CustomerRef `db:"-"`
	Rewards  []Reward     `db:"-"`

	BuyerID     string         `db:"buyer_id"`
	BuyerKey    string         `db:"buyer_key"`
	BuyerEmail  sql.NullString `db:"buyer_email"`
	BuyerName   sql.NullString `db:"buyer_name"`
	RefID       sql.NullString `db:"ref_id"`
	RefKey      sql.NullString `db:"ref_key"`
	RefEmail    sql.NullString `db:"ref_email"`
	RefName     sql.NullString `db:"ref_name"`
	RewardsJSON string         `db:"rewards"`
}

// Reward is a reward a rule granted to a customer.
type Reward struct {
	PK            int64         `db:"pk" json:"pk"`
	ProgramPK     int64         `db:"program_pk" json:"program_pk"`
	Key           string        `db:"key" json:"key"`
	CustomerPK    int64         `db:"customer_pk" json:"customer_pk"`
	Recipient     string        `db:"recipient" json:"recipient"`
	Rule          int           `db:"rule" json:"rule"`
	Trigger       string        `db:"trigger" json:"trigger"`
	Type          string        `db:"type" json:"type"`
	Amount        int64         `db:"amount" json:"amount"`
	Units         string        `db:"units" json:"units"`
	IsCurrency    bool          `db:"is_currency" json:"is_currency"`
	Proportional  bool          `db:"proportional" json:"proportional"`
	Reversed      int64         `db:"reversed" json:"reversed"`
	Status        string        `db:"status" json:"status"`
	TransactionPK sql.NullInt64 `db:"transaction_pk" json:"-"`
	SignupPK      sql.NullInt64 `db:"signup_pk" json:"-"`
	AvailableAt   time.Time     `db:"available_at" json:"available_at"`
	CreatedAt     time.Time     `db:"created_at" json:"created_at"`

	TransactionKey sql.NullString `db:"transaction_key" json:"-"`
}

// InBalance reports whether the reward is spendable value (credit or cash); discounts
// are listed with rewards but never enter the balance.
func (r *Reward) InBalance() bool { return r.Type == "credit" || r.Type == "cash" }

const transactionSelect = `
	SELECT t.pk, t.program_pk, t.key, t.customer_pk, t.referrer_pk, t.action, t.amount, t.units, t.refunded,
		t.product_id, t.product_type, t.source, t.livemode, t.purchase_number, t.fingerprint, t.created_at, t.deleted_at, t.folded_into,
		t.rewardable, t.discount_code, t.discount_amount, t.gross_amount,
		b.id AS buyer_id, b.key AS buyer_key, b.email AS buyer_email, b.name AS buyer_name,
		r.id AS ref_id, r.key AS ref_key, r.email AS ref_email, r.name AS ref_name,
		(SELECT coalesce(json_agg(row_to_json(w) ORDER BY w.pk), '[]')::text FROM rewards w WHERE w.transaction_pk = t.pk) AS rewards
	FROM transactions t
	JOIN customers b ON b.pk = t.customer_pk
	LEFT JOIN customers r ON r.pk = t.referrer_pk`

func (t *Transaction) finish() error {
	t.Buyer = CustomerRef{PK: t.CustomerPK, ID: t.BuyerID, Key: t.BuyerKey, Email: t.BuyerEmail, Name: t.BuyerName}
	if t.ReferrerPK.Valid {
		t.Referrer = &CustomerRef{PK: t.ReferrerPK.Int64, ID: t.RefID.String, Key: t.RefKey.String, Email: t.RefEmail, Name: t.RefName}
	}
	t.Rewards = nil
	if t.RewardsJSON != "" {
		var rows []struct {
			Reward
			AvailableAt string `json:"available_at"`
			CreatedAt   string `json:"created_at"`
		}
		if err := json.Unmarshal([]byte(t.RewardsJSON), &rows); err != nil {
			return fmt.Errorf("rewards of transaction %d: %w", t.PK, err)
		}
		for _, r := range rows {
			w := r.Reward
			w.AvailableAt = parsePGTime(r.AvailableAt)
			w.CreatedAt = parsePGTime(r.CreatedAt)
			w.TransactionKey = sql.NullString{String: t.Key, Valid: true}
			t.Rewards = append(t.Rewards, w)
		}
	}
	return nil
}

// parsePGTime reads a timestamptz as row_to_json writes it.
func parsePGTime(s string) time.Time {
	for _, layout := range []string{"2006-01-02T15:04:05.999999-07:00", "2006-01-02T15:04:05.999999Z07:00", "2006-01-02T15:04:05.999999-07"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// GetTransaction returns the program's transaction with this key, its buyer, referrer
// and rewards. With forUpdate the transaction row is locked.
func GetTransaction(ctx context.Context, q Querier, programPK int64, key string, forUpdate bool) (Transaction, error) {
	query := transactionSelect + ` WHERE t.program_pk = $1 AND t.key = $2`
	if forUpdate {
		query += ` FOR UPDATE OF t`
	}
	var t Transaction
	if err := get(ctx, q, &t, query, programPK, key); err != nil {
		return Transaction{}, fmt.Errorf("store.GetTransaction(%s): %w", key, translate(err))
	}
	return t, t.finish()
}

// TransactionFilter selects transactions of one program for a list.
type TransactionFilter struct {
	ProgramPK  int64
	Key        string
	CustomerPK int64         // the buyer
	Source     string        // api or a provider's name; "" is any
	Refunded   RefundedState // "" is any
	Limit      int
	Offset     int
}

// ListTransactions returns a page of transactions, newest first, and their total.
func ListTransactions(ctx context.Context, q Querier, f TransactionFilter) ([]Transaction, int, error) {
	cond, args := f.where()
	var total int
	if err := get(ctx, q, &total, `SELECT count(*) FROM transactions t WHERE `+cond, args...); err != nil {
		return nil, 0, fmt.Errorf("store.ListTransactions: %w", err)
	}
	var out []Transaction
	if total > f.Offset {
		n := len(args)
		if err := selectRows(ctx, q, &out, transactionSelect+` WHERE `+cond+fmt.Sprintf(` ORDER BY t.pk DESC LIMIT $%d OFFSET $%d`, n+1, n+2),
			append(args, f.Limit, f.Offset)...); err != nil {
			return nil, 0, fmt.Errorf("store.ListTransactions: %w", err)
		}
	}
	for i := range out {
		if err := out[i].finish(); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// LockCounters locks a customer's counters row (if it has one) until the transaction
// ends: refunds lock the referrer's before the buyer's, as sales do.
func LockCounters(ctx context.Context, tx *Tx, customerPK int64) error {
	_, err := exec(ctx, tx, `SELECT FROM customer_stats WHERE customer_pk = $1 FOR UPDATE`, customerPK)
	if err != nil {
		return fmt.Errorf("store.LockCounters(%d): %w", customerPK, err)
	}
	return nil
}

// EndSale counts a sale of the buyer as fully refunded and returns the live sales left.
func EndSale(ctx context.Context, tx *Tx, buyerPK int64) (int, error) {
	var live int
	err := get(ctx, tx, &live, `UPDATE customer_stats SET live_sales = live_sales - 1 WHERE customer_pk = $1 RETURNING live_sales`, buyerPK)
	if err != nil {
		return 0, fmt.Errorf("store.EndSale(%d): %w", buyerPK, translate(err))
	}
	return live, nil
}

// AddSuccessful changes the referrer's count of successful referrals by delta.
func AddSuccessful(ctx context.Context, tx *Tx, programPK, referrerPK int64, delta int) error {
	_, err := exec(ctx, tx, `
		INSERT INTO customer_stats AS s (customer_pk, program_pk, successful) VALUES ($2, $1, greatest($3, 0))
		ON CONFLICT (customer_pk) DO UPDATE SET successful = s.successful + $3`, programPK, referrerPK, delta)
	if err != nil {
		return fmt.Errorf("store.AddSuccessful(%d): %w", referrerPK, err)
	}
	return nil
}

// SetRefunded records the transaction's new refunded total (and deleted_at when it
// is fully refunded).
func SetRefunded(ctx context.Context, tx *Tx, t *Transaction) error {
	_, err := exec(ctx, tx, `UPDATE transactions SET refunded = $2, deleted_at = $3 WHERE pk = $1`, t.PK, t.Refunded, t.DeletedAt)
	if err != nil {
		return fmt.Errorf("store.SetRefunded(%s): %w", t.Key, translate(err))
	}
	return nil
}

// InsertOutbox writes an outbox event in the caller's transaction.
func InsertOutbox(ctx context.Context, q Querier, programPK int64, event, payload string, at time.Time) error {
	_, err := q.ExecContext(ctx, `INSERT INTO outbox (program_pk, event, payload, created_at, request_id) VALUES ($1, $2, $3, $4, NULLIF($5, ''))`,
		programPK, event, payload, at, logging.RequestID(ctx))
	if err != nil {
		return fmt.Errorf("store.InsertOutbox(%s): %w", event, err)
	}
	return nil
}

// InsertReward stores r with its ledger entry and running sums (credit and cash only
// enter the ledger and balance; every type counts in reward_totals) and the
// reward.created event, in one statement. r.PK is set.
func InsertReward(ctx context.Context, tx *Tx, r *Reward, payload string) error {
	avail, pending := r.Amount, int64(0)
	if r.Status == "pending" {
		avail, pending = 0, r.Amount
	}
	err := get(ctx, tx, &r.PK, `
		WITH w AS (
			INSERT INTO rewards (program_pk, key, customer_pk, recipient, rule, trigger, type, amount, units, is_currency,
				proportional, status, transaction_pk, signup_pk, available_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
			RETURNING pk
		), l AS (
			INSERT INTO ledger (program_pk, customer_pk, units, is_currency, kind, reward_pk, amount, pending, created_at)
			SELECT $1, $3, $9, $10, 'reward', pk, $17, $18, $16 FROM w WHERE $19
		), b AS (
			INSERT INTO balances AS b (customer_pk, units, program_pk, is_currency, amount, pending)
			SELECT $3, $9, $1, $10, $17, $18 FROM w WHERE $19
			ON CONFLICT (customer_pk, units) DO UPDATE SET amount = b.amount + EXCLUDED.amount, pending = b.pending + EXCLUDED.pending
		), t AS (
			INSERT INTO reward_totals AS t (customer_pk, units, program_pk, is_currency, total)
			SELECT $3, $9, $1, $10, $8 FROM w
			ON CONFLICT (customer_pk, units) DO UPDATE SET total = t.total + EXCLUDED.total
		), o AS (
			INSERT INTO outbox (program_pk, event, payload, created_at, request_id) SELECT $1, 'reward.created', $20, $16, NULLIF($21, '') FROM w
		)
		SELECT pk FROM w`,
		r.ProgramPK, r.Key, r.CustomerPK, r.Recipient, r.Rule, r.Trigger, r.Type, r.Amount, r.Units, r.IsCurrency,
		r.Proportional, r.Status, r.TransactionPK, r.SignupPK, r.AvailableAt, r.CreatedAt, avail, pending, r.InBalance(), payload,
		logging.RequestID(ctx))
	if err != nil {
		return fmt.Errorf("store.InsertReward(%s): %w", r.Key, translate(err))
	}
	return nil
}

// LockRewards locks and returns the rewards of a transaction, so that a refund
// holds them before it touches any balance (the approval sweep skips locked rewards).
func LockRewards(ctx context.Context, tx *Tx, transactionPK int64) ([]Reward, error) {
	var out []Reward
	err := selectRows(ctx, tx, &out, `
		SELECT w.*, NULL::text AS transaction_key FROM rewards w WHERE w.transaction_pk = $1 ORDER BY w.pk FOR UPDATE`, transactionPK)
	if err != nil {
		return nil, fmt.Errorf("store.LockRewards(%d): %w", transactionPK, err)
	}
	return out, nil
}

// ReverseReward takes delta more of the locked reward r back: its status becomes
// reversed when nothing is left, the ledger gets a reversal entry (credit and cash),
// the running sums follow, and reward.reversed is written. r is updated.
func ReverseReward(ctx context.Context, tx *Tx, r *Reward, delta int64, at time.Time, payload func(Reward) string) error {
	prior := r.Status
	r.Reversed += delta
	if r.Reversed == r.Amount {
		r.Status = "reversed"
	}
	avail, pending := -delta, int64(0)
	if prior == "pending" {
		avail, pending = 0, -delta
	}
	_, err := exec(ctx, tx, `
		WITH w AS (
			UPDATE rewards SET reversed = $2, status = $3 WHERE pk = $1 RETURNING pk, program_pk, customer_pk, units, is_currency
		), l AS (
			INSERT INTO ledger (program_pk, customer_pk, units, is_currency, kind, reward_pk, amount, pending, created_at)
			SELECT program_pk, customer_pk, units, is_currency, 'reversal', pk, $4, $5, $6 FROM w WHERE $7
		), b AS (
			UPDATE balances b SET amount = b.amount + $4, pending = b.pending + $5
			FROM w WHERE $7 AND b.customer_pk = w.customer_pk AND b.units = w.units
		), t AS (
			UPDATE reward_totals t SET total = t.total - $8 FROM w WHERE t.customer_pk = w.customer_pk AND t.units = w.units
		)
		INSERT INTO outbox (program_pk, event, payload, created_at, request_id) SELECT program_pk, 'reward.reversed', $9, $6, NULLIF($10, '') FROM w`,
		r.PK, r.Reversed, r.Status, avail, pending, at, r.InBalance(), delta, payload(*r), logging.RequestID(ctx))
	if err != nil {
		return fmt.Errorf("store.ReverseReward(%s): %w", r.Key, translate(err))
	}
	return nil
}

// ApproveDue approves up to limit held rewards whose time has come, moving what is
// left of each from pending to the spendable balance with reward.approved events.
// Rewards locked by a refund are skipped and approved by a later run, so several
// workers may run it at once. It returns how many it approved.
func ApproveDue(ctx context.Context, db *DB, now time.Time, limit int, payload func(Reward) string) (int, error) {
	n := 0
	err := db.InTx(ctx, func(tx *Tx) error {
		var due []Reward
		// Ordered by customer and units: balances are then locked in one order by everyone.
		if err := selectRows(ctx, tx, &due, `
			SELECT w.*, t.key AS transaction_key FROM rewards w LEFT JOIN transactions t ON t.pk = w.transaction_pk
			WHERE w.pk IN (
				SELECT pk FROM rewards WHERE status = 'pending' AND available_at <= $1
				ORDER BY available_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			ORDER BY w.customer_pk, w.units, w.pk`, now, limit); err != nil {
			return err
		}
		for i := range due {
			r := &due[i]
			r.Status = "approved"
			net := r.Amount - r.Reversed
			_, err := exec(ctx, tx, `
				WITH w AS (
					UPDATE rewards SET status = 'approved' WHERE pk = $1 AND status = 'pending'
					RETURNING pk, program_pk, customer_pk, units, is_currency
				), l AS (
					INSERT INTO ledger (program_pk, customer_pk, units, is_currency, kind, reward_pk, amount, pending, created_at)
					SELECT program_pk, customer_pk, units, is_currency, 'approval', pk, $2::bigint, -$2::bigint, $3 FROM w WHERE $4
				), b AS (
					UPDATE balances b SET amount = b.amount + $2::bigint, pending = b.pending - $2::bigint
					FROM w WHERE $4 AND b.customer_pk = w.customer_pk AND b.units = w.units
				)
				INSERT INTO outbox (program_pk, event, payload, created_at) SELECT program_pk, 'reward.approved', $5, $3 FROM w`,
				r.PK, net, now, r.InBalance(), payload(*r))
			if err != nil {
				return fmt.Errorf("approving reward %s: %w", r.Key, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store.ApproveDue: %w", err)
	}
	return n, nil
}

// Buyer is the customer a sale is for, with its referrer; PK is 0 when no customer
// matched.
type Buyer struct {
	PK         int64          `db:"pk"`
	ID         string         `db:"id"`
	Key        string         `db:"key"`
	Email      sql.NullString `db:"email"`
	Name       sql.NullString `db:"name"`
	ReferrerPK sql.NullInt64  `db:"referrer_pk"`
	CreatedAt  time.Time      `db:"created_at"`
	RefID      sql.NullString `db:"ref_id"`
	RefKey     sql.NullString `db:"ref_key"`
	RefEmail   sql.NullString `db:"ref_email"`
	RefName    sql.NullString `db:"ref_name"`

	// Existing is the fingerprint of the program's transaction with the sale's key, if
	// one was committed when the statement began.
	Existing sql.NullString `db:"existing"`
	// Purchases is how many sales of the buyer were recorded when the statement began.
	Purchases int `db:"purchases"`
}

// BuyerQuery names a sale's buyer, by the first given of ID, Key and Email, and the
// sale's key.
type BuyerQuery struct {
	ProgramPK int64  `json:"program_pk"`
	ID        string `json:"id"`
	Key       string `json:"key"`
	Email     string `json:"email"` // case-insensitive
	SaleKey   string `json:"sale_key"`
}

// TransactionLock is the LockKey name of a transaction key.
func TransactionLock(key string) string { return "transaction:" + key }

// FindBuyers returns, for each query in order, the customer it names with the
// referrer, and takes the transaction-scoped lock of each sale's key (see LockKey) in
// the order given, all in one round trip. What it reads of the sale keys and the
// buyers' sales predates the locks: InsertSales detects what changed meanwhile.
func FindBuyers(ctx context.Context, tx *Tx, qs []BuyerQuery) ([]Buyer, error) {
	type query struct {
		BuyerQuery
		Lock string `json:"lock"`
	}
	in := make([]query, len(qs))
	for i, q := range qs {
		in[i] = query{q, lockName(q.ProgramPK, TransactionLock(q.SaleKey))}
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	// The locks are taken row by row in the order of the array (the lateral call
	// makes it the outer side of every join). Each way of naming the buyer has its
	// own branch, so each is an index probe.
	var out []Buyer
	err = selectRows(ctx, tx, &out, `
		SELECT coalesce(c.pk, 0) AS pk, coalesce(c.id, '') AS id, coalesce(c.key, '') AS key, c.email, c.name, c.referrer_pk,
			coalesce(c.created_at, 'epoch') AS created_at,
			r.id AS ref_id, r.key AS ref_key, r.email AS ref_email, r.name AS ref_name,
			(SELECT fingerprint FROM transactions WHERE program_pk = q.program_pk AND key = q.sale_key) AS existing,
			coalesce((SELECT purchases FROM customer_stats WHERE customer_pk = c.pk), 0) AS purchases
		FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (program_pk bigint, id text, key text, email text, sale_key text, lock text))
			WITH ORDINALITY AS q(program_pk, id, key, email, sale_key, lock, n)
		CROSS JOIN LATERAL pg_advisory_xact_lock(hashtextextended(q.lock, 0)) AS l
		LEFT JOIN LATERAL (
			(SELECT c.* FROM customers c WHERE q.id <> '' AND c.program_pk = q.program_pk AND c.id = q.id)
			UNION ALL
			(SELECT c.* FROM customers c WHERE q.id = '' AND q.key <> '' AND c.program_pk = q.program_pk AND c.key = q.key)
			UNION ALL
			(SELECT c.* FROM customers c WHERE q.id = '' AND q.key = '' AND q.email <> ''
				AND c.program_pk = q.program_pk AND lower(c.email) = lower(q.email) ORDER BY c.pk LIMIT 1)
			LIMIT 1
		) c ON true
		LEFT JOIN customers r ON r.pk = c.referrer_pk
		ORDER BY q.n`, string(b))
	if err != nil {
		return nil, fmt.Errorf("store.FindBuyers(%d): %w", len(qs), translate(err))
	}
	if len(out) != len(qs) {
		return nil, fmt.Errorf("store.FindBuyers: %d rows for %d queries", len(out), len(qs))
	}
	return out, nil
}

// Event is an outbox event to write.
type Event struct {
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

// ErrSaleRaced means that between FindBuyers and InsertSales another sale of a buyer
// or with a key was committed; the caller starts over (store.ErrRetry).
var ErrSaleRaced = fmt.Errorf("a concurrent sale changed the buyer's count or took the key: %w", ErrRetry)

// insertSalesQuery is InsertSales' statement: $1 the sales, $2 their rewards, $3
// their events, as JSON arrays.
const insertSalesQuery = `
		WITH s AS (
			SELECT * FROM jsonb_to_recordset($1::jsonb) AS s(n int, program_pk bigint, key text, customer_pk bigint,
				referrer_pk bigint, action text, amount bigint, units text, product_id text, product_type text, rewardable boolean,
				discount_code text, discount_amount bigint, gross_amount bigint, source text,
				livemode boolean, purchase_number int, fingerprint text, created_at timestamptz, recorded_at timestamptz, request_id text)
		), rl AS (
			SELECT customer_pk FROM customer_stats WHERE customer_pk = ANY (ARRAY(SELECT referrer_pk FROM s))
			ORDER BY customer_pk FOR UPDATE
		), st AS (
			INSERT INTO customer_stats AS st (customer_pk, program_pk, purchases, live_sales)
			SELECT s.customer_pk, s.program_pk, 1, 1 FROM s, (SELECT count(*) FROM rl) AS first ORDER BY s.customer_pk
			ON CONFLICT (customer_pk) DO UPDATE SET purchases = st.purchases + 1, live_sales = st.live_sales + 1
			RETURNING customer_pk, purchases, live_sales
		), rs AS (
			INSERT INTO customer_stats AS rs (customer_pk, program_pk, successful)
			SELECT s.referrer_pk, min(s.program_pk), count(*) FROM s JOIN st ON st.customer_pk = s.customer_pk
			WHERE st.live_sales = 1 AND s.referrer_pk IS NOT NULL
			GROUP BY s.referrer_pk ORDER BY s.referrer_pk
			ON CONFLICT (customer_pk) DO UPDATE SET successful = rs.successful + EXCLUDED.successful
		), t AS (
			INSERT INTO transactions (program_pk, key, customer_pk, referrer_pk, action, amount, units, product_id, product_type,
				rewardable, discount_code, discount_amount, gross_amount, source, livemode, purchase_number, fingerprint, created_at)
			SELECT program_pk, key, customer_pk, referrer_pk, action, amount, units, product_id, product_type,
				rewardable, discount_code, discount_amount, gross_amount, source, livemode, purchase_number, fingerprint, created_at
			FROM s ORDER BY n
			RETURNING pk, program_pk, key
		), x AS (
			SELECT x.*, s.program_pk, s.recorded_at AS created_at, t.pk AS transaction_pk
			FROM ROWS FROM (jsonb_to_recordset($2::jsonb) AS (sale int, key text, customer_pk bigint, recipient text,
				rule int, trigger text, type text, amount bigint, units text, is_currency boolean, proportional boolean,
				status text, in_balance boolean, available_at timestamptz)) WITH ORDINALITY
				AS x(sale, key, customer_pk, recipient, rule, trigger, type, amount, units, is_currency, proportional, status,
					in_balance, available_at, n)
			JOIN s ON s.n = x.sale
			JOIN t ON t.program_pk = s.program_pk AND t.key = s.key
		), w AS (
			INSERT INTO rewards (program_pk, key, customer_pk, recipient, rule, trigger, type, amount, units, is_currency,
				proportional, status, transaction_pk, available_at, created_at)
			SELECT program_pk, key, customer_pk, recipient, rule, trigger, type, amount, units, is_currency,
				proportional, status, transaction_pk, available_at, created_at
			FROM x ORDER BY n
			RETURNING pk, program_pk, key, customer_pk, units, is_currency, amount, status, type, created_at
		), l AS (
			INSERT INTO ledger (program_pk, customer_pk, units, is_currency, kind, reward_pk, amount, pending, created_at)
			SELECT program_pk, customer_pk, units, is_currency, 'reward', pk,
				CASE WHEN status = 'pending' THEN 0 ELSE amount END, CASE WHEN status = 'pending' THEN amount ELSE 0 END, created_at
			FROM w WHERE type IN ('credit', 'cash') ORDER BY pk
		), b AS (
			INSERT INTO balances AS b (customer_pk, units, program_pk, is_currency, amount, pending)
			SELECT customer_pk, units, min(program_pk), bool_or(is_currency),
				sum(CASE WHEN status = 'pending' THEN 0 ELSE amount END)::bigint, sum(CASE WHEN status = 'pending' THEN amount ELSE 0 END)::bigint
			FROM x WHERE in_balance GROUP BY customer_pk, units ORDER BY customer_pk, units
			ON CONFLICT (customer_pk, units) DO UPDATE SET amount = b.amount + EXCLUDED.amount, pending = b.pending + EXCLUDED.pending
		), r AS (
			INSERT INTO reward_totals AS r (customer_pk, units, program_pk, is_currency, total)
			SELECT customer_pk, units, min(program_pk), bool_or(is_currency), sum(amount)::bigint
			FROM x GROUP BY customer_pk, units ORDER BY customer_pk, units
			ON CONFLICT (customer_pk, units) DO UPDATE SET total = r.total + EXCLUDED.total
		), o AS (
			INSERT INTO outbox (program_pk, event, payload, created_at, request_id)
			SELECT s.program_pk, e.event, e.payload, s.recorded_at, NULLIF(s.request_id, '')
			FROM ROWS FROM (jsonb_to_recordset($3::jsonb) AS (sale int, event text, payload jsonb)) WITH ORDINALITY
				AS e(sale, event, payload, n)
			JOIN s ON s.n = e.sale
			ORDER BY e.n
		)
		SELECT s.n, t.pk, st.purchases,
			EXISTS (SELECT FROM refunds f WHERE f.program_pk = s.program_pk AND f.transaction_key = s.key AND NOT f.applied) AS waiting,
			CASE WHEN s.n = 0 THEN coalesce((SELECT json_object_agg(key, pk) FROM w), '{}')::text ELSE '' END AS reward_pks
		FROM s
		JOIN t ON t.program_pk = s.program_pk AND t.key = s.key
		JOIN st ON st.customer_pk = s.customer_pk
		ORDER BY s.n`

// Sale is a transaction to write with InsertSales, its rewards and its events.
type Sale struct {
	T       *Transaction
	Rewards []Reward
	Events  []Event
	// RecordedAt is when the sale is recorded: its rewards' and events' time. T.CreatedAt
	// is the sale's own time, earlier for an import; zero RecordedAt means T.CreatedAt.
	RecordedAt time.Time
	// Waiting is set by InsertSales: refunds arrived for the key before the sale.
	Waiting bool
}

// InsertSales stores sales in one statement: each transaction with its rewards (their
// ledger entries and the running sums) and events, and the counts (each buyer's
// purchases and live sales; a referrer's successful referrals when this is the
// buyer's only live sale). No buyer may appear twice, nor be another sale's referrer:
// one statement cannot change a row twice (the caller splits such sales over several
// calls). Each T.PurchaseNumber must be the number FindBuyers implied; if a counter
// says otherwise, or a key was taken meanwhile, it returns ErrSaleRaced and the
// caller rolls back. T.PK, the rewards' PKs and Waiting are set.
//
// Rows are locked in one order: the referrers' counters (rl, which st reads from so
// that it runs first), then the buyers' counters, then balances, each by customer. Every
// sale, refund and batch then waits for others in the referrers' order, and a caller
// that writes several groups writes them in referrer order.
func InsertSales(ctx context.Context, tx *Tx, sales []Sale) error {
	type saleRow struct {
		N           int       `json:"n"`
		ProgramPK   int64     `json:"program_pk"`
		Key         string    `json:"key"`
		CustomerPK  int64     `json:"customer_pk"`
		ReferrerPK  *int64    `json:"referrer_pk"`
		Action      string    `json:"action"`
		Amount      int64     `json:"amount"`
		Units       string    `json:"units"`
		ProductID   *string   `json:"product_id"`
		ProductType *string   `json:"product_type"`
		Rewardable  bool      `json:"rewardable"`
		Code        *string   `json:"discount_code"`
		Discount    *int64    `json:"discount_amount"`
		Gross       *int64    `json:"gross_amount"`
		Source      string    `json:"source"`
		Livemode    bool      `json:"livemode"`
		Purchase    int       `json:"purchase_number"`
		Fingerprint string    `json:"fingerprint"`
		CreatedAt   time.Time `json:"created_at"`
		RecordedAt  time.Time `json:"recorded_at"`
		RequestID   string    `json:"request_id"`
	}
	type rewardRow struct {
		Sale         int       `json:"sale"`
		Key          string    `json:"key"`
		CustomerPK   int64     `json:"customer_pk"`
		Recipient    string    `json:"recipient"`
		Rule         int       `json:"rule"`
		Trigger      string    `json:"trigger"`
		Type         string    `json:"type"`
		Amount       int64     `json:"amount"`
		Units        string    `json:"units"`
		IsCurrency   bool      `json:"is_currency"`
		Proportional bool      `json:"proportional"`
		Status       string    `json:"status"`
		InBalance    bool      `json:"in_balance"`
		AvailableAt  time.Time `json:"available_at"`
	}
	type eventRow struct {
		Sale    int             `json:"sale"`
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if len(sales) == 0 {
		return nil
	}
	srows := make([]saleRow, len(sales))
	rrows := []rewardRow{}
	erows := []eventRow{}
	buyers := map[int64]bool{}
	for i, s := range sales {
		t := s.T
		if buyers[t.CustomerPK] {
			return fmt.Errorf("store.InsertSales: customer %d buys twice", t.CustomerPK)
		}
		buyers[t.CustomerPK] = true
		srows[i] = saleRow{N: i, ProgramPK: t.ProgramPK, Key: t.Key, CustomerPK: t.CustomerPK, Action: t.Action, Amount: t.Amount,
			Units: t.Units, Rewardable: t.Rewardable, Source: t.Source, Livemode: t.Livemode, Purchase: t.PurchaseNumber,
			Fingerprint: t.Fingerprint, CreatedAt: t.CreatedAt, RecordedAt: cmp.Or(s.RecordedAt, t.CreatedAt),
			RequestID: cmp.Or(t.RequestID, logging.RequestID(ctx))}
		if t.ReferrerPK.Valid {
			srows[i].ReferrerPK = &t.ReferrerPK.Int64
		}
		if t.ProductID.Valid {
			srows[i].ProductID = &t.ProductID.String
		}
		if t.ProductType.Valid {
			srows[i].ProductType = &t.ProductType.String
		}
		if t.DiscountCode.Valid {
			srows[i].Code = &t.DiscountCode.String
		}
		if t.DiscountAmount.Valid {
			srows[i].Discount = &t.DiscountAmount.Int64
		}
		if t.GrossAmount.Valid {
			srows[i].Gross = &t.GrossAmount.Int64
		}
		for _, r := range s.Rewards {
			rrows = append(rrows, rewardRow{i, r.Key, r.CustomerPK, r.Recipient, r.Rule, r.Trigger, r.Type, r.Amount, r.Units,
				r.IsCurrency, r.Proportional, r.Status, r.InBalance(), r.AvailableAt})
		}
		for _, e := range s.Events {
			erows = append(erows, eventRow{i, e.Event, e.Payload})
		}
	}
	for _, s := range sales {
		if s.T.ReferrerPK.Valid && buyers[s.T.ReferrerPK.Int64] {
			return fmt.Errorf("store.InsertSales: customer %d buys and refers in one call", s.T.ReferrerPK.Int64)
		}
	}
	sj, err := json.Marshal(srows)
	if err != nil {
		return err
	}
	rj, err := json.Marshal(rrows)
	if err != nil {
		return err
	}
	ej, err := json.Marshal(erows)
	if err != nil {
		return err
	}
	var out []struct {
		N         int    `db:"n"`
		PK        int64  `db:"pk"`
		Purchases int    `db:"purchases"`
		Waiting   bool   `db:"waiting"`
		PKs       string `db:"reward_pks"`
	}
	err = selectRows(ctx, tx, &out, insertSalesQuery, string(sj), string(rj), string(ej))
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" && pqErr.Constraint == "transactions_program_key" {
		return ErrSaleRaced
	}
	if err != nil {
		return fmt.Errorf("store.InsertSales(%d): %w", len(sales), translate(err))
	}
	if len(out) != len(sales) {
		return fmt.Errorf("store.InsertSales: %d rows for %d sales", len(out), len(sales))
	}
	pks := map[string]int64{}
	if err := json.Unmarshal([]byte(out[0].PKs), &pks); err != nil {
		return err
	}
	for i, o := range out {
		s := &sales[i]
		if o.N != i {
			return fmt.Errorf("store.InsertSales: row %d answered for sale %d", o.N, i)
		}
		if o.Purchases != s.T.PurchaseNumber {
			return ErrSaleRaced
		}
		s.T.PK, s.Waiting = o.PK, o.Waiting
		for j := range s.Rewards {
			s.Rewards[j].PK = pks[s.Rewards[j].Key]
			s.Rewards[j].TransactionPK = sql.NullInt64{Int64: o.PK, Valid: true}
		}
	}
	return nil
}

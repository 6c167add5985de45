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
)

// Transaction is a recorded sale of a referred customer.
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
	Source         string         `db:"source"`
	Livemode       bool           `db:"livemode"`
	PurchaseNumber int            `db:"purchase_number"`
	Fingerprint    string         `db:"fingerprint"`
	CreatedAt      time.Time      `db:"created_at"`
	DeletedAt      sql.NullTime   `db:"deleted_at"`

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
		t.product_id, t.product_type, t.source, t.livemode, t.purchase_number, t.fingerprint, t.created_at, t.deleted_at,
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
	CustomerPK int64 // the buyer
	Limit      int
	Offset     int
}

// ListTransactions returns a page of transactions, newest first, and their total.
func ListTransactions(ctx context.Context, q Querier, f TransactionFilter) ([]Transaction, int, error) {
	cond := `t.program_pk = $1 AND ($2 = '' OR t.key = $2) AND ($3 = 0 OR t.customer_pk = $3)`
	args := []any{f.ProgramPK, f.Key, f.CustomerPK}
	var total int
	if err := get(ctx, q, &total, `SELECT count(*) FROM transactions t WHERE `+cond, args...); err != nil {
		return nil, 0, fmt.Errorf("store.ListTransactions: %w", err)
	}
	var out []Transaction
	if total > f.Offset {
		if err := selectRows(ctx, q, &out, transactionSelect+` WHERE `+cond+` ORDER BY t.pk DESC LIMIT $4 OFFSET $5`,
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
		programPK, event, payload, at, RequestID(ctx))
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
		RequestID(ctx))
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
		r.PK, r.Reversed, r.Status, avail, pending, at, r.InBalance(), delta, payload(*r), RequestID(ctx))
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

// Buyer is the customer a sale is for, with its referrer.
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

// TransactionLock is the LockKey name of a transaction key.
func TransactionLock(key string) string { return "transaction:" + key }

// FindBuyer returns the program's customer with this id, else key, else email, and
// takes the transaction-scoped lock of the sale's key (see LockKey), in one round
// trip. What it reads of the sale key and the buyer's sales predates the lock:
// InsertSale detects what changed meanwhile.
func FindBuyer(ctx context.Context, tx *Tx, programPK int64, id, key, email, saleKey string) (Buyer, error) {
	var cond, v string
	switch {
	case id != "":
		cond, v = `c.id = $2`, id
	case key != "":
		cond, v = `c.key = $2`, key
	case email != "":
		cond, v = `lower(c.email) = lower($2)`, email
	default:
		return Buyer{}, fmt.Errorf("store.FindBuyer: %w", ErrNotFound)
	}
	var b Buyer
	err := get(ctx, tx, &b, `
		SELECT c.pk, c.id, c.key, c.email, c.name, c.referrer_pk, c.created_at,
			r.id AS ref_id, r.key AS ref_key, r.email AS ref_email, r.name AS ref_name,
			(SELECT fingerprint FROM transactions WHERE program_pk = $1 AND key = $4) AS existing,
			coalesce((SELECT purchases FROM customer_stats WHERE customer_pk = c.pk), 0) AS purchases
		FROM customers c
		LEFT JOIN customers r ON r.pk = c.referrer_pk
		CROSS JOIN LATERAL pg_advisory_xact_lock(hashtextextended($3, 0)) AS l
		WHERE c.program_pk = $1 AND `+cond, programPK, v, lockName(programPK, TransactionLock(saleKey)), saleKey)
	if err != nil {
		return Buyer{}, fmt.Errorf("store.FindBuyer(%q): %w", v, translate(err))
	}
	return b, nil
}

// Event is an outbox event to write.
type Event struct {
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

// ErrSaleRaced means that between FindBuyer and InsertSale another sale of the buyer
// or with the key was committed; the caller starts over (store.ErrRetry).
var ErrSaleRaced = fmt.Errorf("a concurrent sale changed the buyer's count or took the key: %w", ErrRetry)

// InsertSale counts the sale (the buyer's purchases and live sales; the referrer's
// successful referrals when this is the buyer's only live sale) and stores the
// transaction t with its rewards (their ledger entries and the running sums) and the
// events, in one statement. t.PurchaseNumber must be the number FindBuyer implied;
// if the counters say otherwise, or the key was taken meanwhile, the statement
// changes nothing that survives: it returns ErrSaleRaced and the caller rolls back.
// waiting says that refunds arrived for the key before the sale. t.PK and the
// rewards' PKs are set.
func InsertSale(ctx context.Context, tx *Tx, t *Transaction, rewards []Reward, events []Event) (waiting bool, err error) {
	type rewardRow struct {
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
	rows := make([]rewardRow, len(rewards))
	for i, r := range rewards {
		rows[i] = rewardRow{r.Key, r.CustomerPK, r.Recipient, r.Rule, r.Trigger, r.Type, r.Amount, r.Units, r.IsCurrency,
			r.Proportional, r.Status, r.InBalance(), r.AvailableAt}
	}
	rj, err := json.Marshal(rows)
	if err != nil {
		return false, err
	}
	ej, err := json.Marshal(events)
	if err != nil {
		return false, err
	}
	var out struct {
		PK        int64  `db:"pk"`
		PKs       string `db:"reward_pks"`
		Purchases int    `db:"purchases"`
		Waiting   bool   `db:"waiting"`
	}
	// Rows are locked referrer first: the referrer's counters (rl, which st reads
	// from so that it runs first), then the buyer's, then balances. Every sale, refund
	// and batch of sales (sorted by referrer, then buyer) then waits for others in one
	// order, the referrers', and they cannot deadlock.
	err = get(ctx, tx, &out, `
		WITH rl AS (
			SELECT customer_pk FROM customer_stats WHERE customer_pk = $4 FOR UPDATE
		), st AS (
			INSERT INTO customer_stats AS st (customer_pk, program_pk, purchases, live_sales)
			SELECT $3, $1, 1, 1 FROM (SELECT count(*) FROM rl) AS first
			ON CONFLICT (customer_pk) DO UPDATE SET purchases = st.purchases + 1, live_sales = st.live_sales + 1
			RETURNING purchases, live_sales
		), rs AS (
			INSERT INTO customer_stats AS rs (customer_pk, program_pk, successful)
			SELECT $4, $1, 1 FROM st WHERE st.live_sales = 1 AND $4::bigint IS NOT NULL
			ON CONFLICT (customer_pk) DO UPDATE SET successful = rs.successful + 1
		), t AS (
			INSERT INTO transactions (program_pk, key, customer_pk, referrer_pk, action, amount, units, product_id, product_type,
				source, livemode, purchase_number, fingerprint, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
			RETURNING pk
		), x AS (
			SELECT * FROM ROWS FROM (jsonb_to_recordset($15::jsonb) AS (key text, customer_pk bigint, recipient text,
				rule int, trigger text, type text, amount bigint, units text, is_currency boolean, proportional boolean,
				status text, in_balance boolean, available_at timestamptz)) WITH ORDINALITY
				AS x(key, customer_pk, recipient, rule, trigger, type, amount, units, is_currency, proportional, status, in_balance, available_at, n)
		), w AS (
			INSERT INTO rewards (program_pk, key, customer_pk, recipient, rule, trigger, type, amount, units, is_currency,
				proportional, status, transaction_pk, available_at, created_at)
			SELECT $1, x.key, x.customer_pk, x.recipient, x.rule, x.trigger, x.type, x.amount, x.units, x.is_currency,
				x.proportional, x.status, t.pk, x.available_at, $14
			FROM x, t ORDER BY x.n
			RETURNING pk, key, customer_pk, units, is_currency, amount, status, type
		), l AS (
			INSERT INTO ledger (program_pk, customer_pk, units, is_currency, kind, reward_pk, amount, pending, created_at)
			SELECT $1, customer_pk, units, is_currency, 'reward', pk,
				CASE WHEN status = 'pending' THEN 0 ELSE amount END, CASE WHEN status = 'pending' THEN amount ELSE 0 END, $14
			FROM w WHERE type IN ('credit', 'cash')
		), b AS (
			INSERT INTO balances AS b (customer_pk, units, program_pk, is_currency, amount, pending)
			SELECT customer_pk, units, $1, bool_or(is_currency),
				sum(CASE WHEN status = 'pending' THEN 0 ELSE amount END)::bigint, sum(CASE WHEN status = 'pending' THEN amount ELSE 0 END)::bigint
			FROM x WHERE in_balance GROUP BY customer_pk, units ORDER BY customer_pk, units
			ON CONFLICT (customer_pk, units) DO UPDATE SET amount = b.amount + EXCLUDED.amount, pending = b.pending + EXCLUDED.pending
		), s AS (
			INSERT INTO reward_totals AS s (customer_pk, units, program_pk, is_currency, total)
			SELECT customer_pk, units, $1, bool_or(is_currency), sum(amount)::bigint
			FROM x GROUP BY customer_pk, units ORDER BY customer_pk, units
			ON CONFLICT (customer_pk, units) DO UPDATE SET total = s.total + EXCLUDED.total
		), o AS (
			INSERT INTO outbox (program_pk, event, payload, created_at, request_id)
			SELECT $1, e.event, e.payload, $14, NULLIF($17, '')
			FROM ROWS FROM (jsonb_to_recordset($16::jsonb) AS (event text, payload jsonb)) WITH ORDINALITY AS e(event, payload, n)
			ORDER BY e.n
		)
		SELECT t.pk, coalesce((SELECT json_object_agg(key, pk) FROM w), '{}')::text AS reward_pks, st.purchases,
			EXISTS (SELECT FROM refunds WHERE program_pk = $1 AND transaction_key = $2 AND NOT applied) AS waiting
		FROM t, st`,
		t.ProgramPK, t.Key, t.CustomerPK, t.ReferrerPK, t.Action, t.Amount, t.Units, t.ProductID, t.ProductType,
		t.Source, t.Livemode, t.PurchaseNumber, t.Fingerprint, t.CreatedAt, string(rj), string(ej), cmp.Or(t.RequestID, RequestID(ctx)))
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" && pqErr.Constraint == "transactions_program_key" {
		return false, ErrSaleRaced
	}
	if err != nil {
		return false, fmt.Errorf("store.InsertSale(%s): %w", t.Key, translate(err))
	}
	if out.Purchases != t.PurchaseNumber {
		return false, ErrSaleRaced
	}
	t.PK = out.PK
	pks := map[string]int64{}
	if err := json.Unmarshal([]byte(out.PKs), &pks); err != nil {
		return false, err
	}
	for i := range rewards {
		rewards[i].PK = pks[rewards[i].Key]
		rewards[i].TransactionPK = sql.NullInt64{Int64: t.PK, Valid: true}
	}
	return out.Waiting, nil
}

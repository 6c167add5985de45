package store

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Program is a refer-a-friend program: the tenant every other row belongs to.
type Program struct {
	PK         int64    `db:"pk"`
	ID         string   `db:"id"`
	Name       string   `db:"name"`
	WebsiteURL string   `db:"website_url"`
	Currency   string   `db:"currency"`
	Tracking   Tracking `db:"tracking"`
	Rewards    string   `db:"rewards"` // a JSON list of reward rules
	// WidgetSecret keys the HMAC token of the referral widget (DESIGN §7).
	WidgetSecret string `db:"widget_secret"`
	// Notifications are the emails the program sends on events (DESIGN §9).
	Notifications Notifications `db:"notifications"`
	CreatedAt     time.Time     `db:"created_at"`
	UpdatedAt     time.Time     `db:"updated_at"`
}

// Tracking is how a program's referral links look and how its cookie behaves.
type Tracking struct {
	LinkFormat   string  `json:"link_format"` // query | path
	Param        string  `json:"param"`
	CookieName   string  `json:"cookie_name"`
	CookieDays   int     `json:"cookie_days"` // 0 = lifetime
	Attribution  string  `json:"attribution"` // last_click | first_click
	CookieDomain *string `json:"cookie_domain"`
	// BrowserSignups lets universal.js create customers (POST /track/customer).
	BrowserSignups bool `json:"browser_signups"`
}

// Scan reads the jsonb column. A setting added after a program was stored takes
// its default: browser sign-ups are on.
func (t *Tracking) Scan(src any) error {
	*t = Tracking{BrowserSignups: true}
	switch v := src.(type) {
	case []byte:
		return json.Unmarshal(v, t)
	case string:
		return json.Unmarshal([]byte(v), t)
	}
	return fmt.Errorf("store: cannot scan %T into Tracking", src)
}

// Value writes the jsonb column (as text: see binary_parameters in Open).
func (t Tracking) Value() (driver.Value, error) {
	b, err := json.Marshal(t)
	return string(b), err
}

// Notifications are a program's email notifications.
type Notifications struct {
	RewardEarned bool `json:"reward_earned"` // email a customer who earns a reward
}

// Scan reads the jsonb column.
func (n *Notifications) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		return json.Unmarshal(v, n)
	case string:
		return json.Unmarshal([]byte(v), n)
	}
	return fmt.Errorf("store: cannot scan %T into Notifications", src)
}

// Value writes the jsonb column (as text: see binary_parameters in Open).
func (n Notifications) Value() (driver.Value, error) {
	b, err := json.Marshal(n)
	return string(b), err
}

const programCols = `p.pk, p.id, p.name, p.website_url, p.currency, p.tracking, p.rewards::text AS rewards, p.widget_secret, p.notifications, p.created_at, p.updated_at`

// CreateProgram stores p (its ID, name, website, currency, tracking and rewards) with
// its first API key, in one transaction.
func CreateProgram(ctx context.Context, db *DB, p Program, keyHash []byte, keyPrefix string) (Program, error) {
	var out Program
	err := db.InTx(ctx, func(tx *Tx) error {
		err := get(ctx, tx, &out, `
			INSERT INTO programs AS p (id, name, website_url, currency, tracking, rewards)
			VALUES ($1, $2, $3, $4, $5, $6)
			RETURNING `+programCols,
			p.ID, p.Name, p.WebsiteURL, p.Currency, p.Tracking, rewardsOrEmpty(p.Rewards))
		if err != nil {
			return err
		}
		_, err = exec(ctx, tx, `INSERT INTO api_keys (program_pk, hash, prefix) VALUES ($1, $2, $3)`,
			out.PK, keyHash, keyPrefix)
		return err
	})
	if err != nil {
		return Program{}, fmt.Errorf("store.CreateProgram: %w", translate(err))
	}
	return out, nil
}

func rewardsOrEmpty(r string) string {
	if r == "" {
		return "[]"
	}
	return r
}

// CreateAPIKey adds another key to the program with public id programID.
func CreateAPIKey(ctx context.Context, q Querier, programID string, keyHash []byte, keyPrefix string) error {
	res, err := q.ExecContext(ctx, `
		INSERT INTO api_keys (program_pk, hash, prefix)
		SELECT pk, $2, $3 FROM programs WHERE id = $1`, programID, keyHash, keyPrefix)
	if err != nil {
		return fmt.Errorf("store.CreateAPIKey(%s): %w", programID, translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store.CreateAPIKey(%s): program %w", programID, ErrNotFound)
	}
	return nil
}

// ProgramByKeyHash returns the program that owns the (unrevoked) API key with this hash.
func ProgramByKeyHash(ctx context.Context, q Querier, keyHash []byte) (Program, error) {
	var p Program
	err := get(ctx, q, &p, `
		SELECT `+programCols+` FROM api_keys k JOIN programs p ON p.pk = k.program_pk
		WHERE k.hash = $1 AND k.revoked_at IS NULL`, keyHash)
	if err != nil {
		return Program{}, fmt.Errorf("store.ProgramByKeyHash: %w", translate(err))
	}
	return p, nil
}

// ProgramByID returns the program with public id id.
func ProgramByID(ctx context.Context, q Querier, id string) (Program, error) {
	var p Program
	if err := get(ctx, q, &p, `SELECT `+programCols+` FROM programs p WHERE p.id = $1`, id); err != nil {
		return Program{}, fmt.Errorf("store.ProgramByID(%s): %w", id, translate(err))
	}
	return p, nil
}

// LockProgram reads the program with primary key pk and locks it until the
// transaction ends, so read-modify-write updates do not lose each other's changes.
func LockProgram(ctx context.Context, q Querier, pk int64) (Program, error) {
	var p Program
	if err := q.GetContext(ctx, &p, `SELECT `+programCols+` FROM programs p WHERE p.pk = $1 FOR UPDATE`, pk); err != nil {
		return Program{}, fmt.Errorf("store.LockProgram(%d): %w", pk, translate(err))
	}
	return p, nil
}

// UpdateProgram overwrites the program's editable settings.
func UpdateProgram(ctx context.Context, q Querier, p Program) (Program, error) {
	var out Program
	err := q.GetContext(ctx, &out, `
		UPDATE programs AS p SET name = $2, website_url = $3, currency = $4, tracking = $5, rewards = $6, notifications = $7,
			widget_secret = coalesce(nullif($8, ''), p.widget_secret), updated_at = now()
		WHERE p.pk = $1 RETURNING `+programCols,
		p.PK, p.Name, p.WebsiteURL, p.Currency, p.Tracking, rewardsOrEmpty(p.Rewards), p.Notifications, p.WidgetSecret)
	if err != nil {
		return Program{}, fmt.Errorf("store.UpdateProgram(%s): %w", p.ID, translate(err))
	}
	return out, nil
}

// IsNotFound reports whether err means that nothing matched.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// ProgramByPK returns the program with primary key pk.
func ProgramByPK(ctx context.Context, q Querier, pk int64) (Program, error) {
	var p Program
	if err := get(ctx, q, &p, `SELECT `+programCols+` FROM programs p WHERE p.pk = $1`, pk); err != nil {
		return Program{}, fmt.Errorf("store.ProgramByPK(%d): %w", pk, translate(err))
	}
	return p, nil
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Link is a referral link of a customer: its own key (IsDefault) or an extra one.
type Link struct {
	ProgramPK      int64          `db:"program_pk"`
	CustomerPK     int64          `db:"customer_pk"`
	Key            string         `db:"key"`
	DestinationURL sql.NullString `db:"destination_url"`
	IsDefault      bool           `db:"is_default"`
	IsAdditional   bool           `db:"is_additional"`
	DomainID       sql.NullString `db:"domain_id"`
	CreatedAt      time.Time      `db:"created_at"`
}

const linkCols = `program_pk, customer_pk, key, destination_url, is_default, is_additional, domain_id, created_at`

// InsertLink stores an extra referral link; its key shares one namespace with every
// customer key and link key of the program.
func InsertLink(ctx context.Context, q Querier, l *Link) error {
	err := q.GetContext(ctx, l, `
		INSERT INTO referral_links (program_pk, customer_pk, key, destination_url, is_additional, domain_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+linkCols,
		l.ProgramPK, l.CustomerPK, l.Key, l.DestinationURL, l.IsAdditional, l.DomainID, l.CreatedAt)
	if err != nil {
		return fmt.Errorf("store.InsertLink(%s): %w", l.Key, translate(err))
	}
	return nil
}

// ListLinks returns the customer's referral links, its own key first.
func ListLinks(ctx context.Context, q Querier, customerPK int64) ([]Link, error) {
	var out []Link
	err := selectRows(ctx, q, &out, `SELECT `+linkCols+` FROM referral_links WHERE customer_pk = $1 ORDER BY is_default DESC, created_at, key`, customerPK)
	if err != nil {
		return nil, fmt.Errorf("store.ListLinks(%d): %w", customerPK, err)
	}
	return out, nil
}

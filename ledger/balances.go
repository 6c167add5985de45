package ledger

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/referd/referd/money"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// CreditInput is the body of POST /v1/customers/{id}/balance/credit. A negative
// amount is a debit (a payout or a redemption).
type CreditInput struct {
	Amount      referral.Number `json:"amount"`
	AmountUnits string          `json:"amount_units"`
	Currency    string          `json:"currency"` // accepted for amount_units, as Partnero's guides write it
	IsCurrency  *bool           `json:"is_currency"`
	Note        *string         `json:"note"`
	Key         *referral.Text  `json:"key"` // optional idempotency key (also the Idempotency-Key header)
}

func (in CreditInput) check(p store.Program) (store.Credit, error) {
	verr := &referral.ValidationError{}
	units := strings.ToLower(strings.TrimSpace(in.AmountUnits))
	if units == "" {
		units = strings.ToLower(strings.TrimSpace(in.Currency))
	}
	if units == "" {
		units = p.Currency
	}
	c := store.Credit{ProgramPK: p.PK, Units: units, IsCurrency: money.IsCurrency(units), Key: in.Key.String()}
	scale, err := money.Scale(units)
	if err != nil || units == "percent" {
		verr.Add("amount_units", "The amount_units must be an ISO 4217 currency code or credit.")
	}
	if in.IsCurrency != nil && err == nil && *in.IsCurrency != c.IsCurrency {
		verr.Add("is_currency", "The is_currency must be true for a currency and false for credit.")
	}
	if in.Amount == "" {
		verr.Add("amount", "The amount field is required.")
	} else if err == nil {
		amt, perr := money.ParseMajor(in.Amount.String(), scale)
		switch {
		case perr != nil:
			verr.Add("amount", "The amount is not valid: "+perr.Error()+".")
		case amt == 0:
			verr.Add("amount", "The amount must not be 0.")
		}
		c.Amount = amt
	}
	if in.Note != nil {
		if len(*in.Note) > 1000 || strings.ContainsRune(*in.Note, 0) {
			verr.Add("note", "The note must be at most 1000 characters.")
		}
		c.Note = sql.NullString{String: *in.Note, Valid: true}
	}
	if len(c.Key) > 255 {
		verr.Add("key", "The key must not be greater than 255 characters.")
	}
	return c, verr.Err()
}

// CreditBalance adds a manual credit (or debit) to the customer's balance and returns
// the customer and its balances afterwards. A debit beyond the balance is refused and
// changes nothing; a credit with a key that was used before changes nothing.
func CreditBalance(ctx context.Context, db *store.DB, p store.Program, idOrKey string, in CreditInput) (store.Customer, []store.Balance, error) {
	credit, err := in.check(p)
	if err != nil {
		return store.Customer{}, nil, err
	}
	c, err := referral.GetCustomer(ctx, db, p, idOrKey)
	if err != nil {
		return store.Customer{}, nil, err
	}
	credit.CustomerPK = c.PK
	err = db.InTx(ctx, func(tx *store.Tx) error {
		credit.At = store.Now()
		applied, err := store.ApplyCredit(ctx, tx, credit)
		if err != nil || !applied {
			return err // a retry with a used key: its event was written the first time
		}
		return writeEvent(ctx, tx, p.PK, "customer.credited", CreditedJSON(c, credit), credit.At)
	})
	if errors.Is(err, store.ErrInsufficient) {
		return store.Customer{}, nil, referral.Invalid("amount", "The debit is larger than the balance.")
	}
	if err != nil {
		return store.Customer{}, nil, err
	}
	bs, err := store.Balances(ctx, db, c.PK)
	return c, bs, err
}

// CustomerBalance returns the customer and its balances, one per units.
func CustomerBalance(ctx context.Context, db *store.DB, p store.Program, idOrKey string) (store.Customer, []store.Balance, error) {
	c, err := referral.GetCustomer(ctx, db, p, idOrKey)
	if err != nil {
		return store.Customer{}, nil, err
	}
	bs, err := store.Balances(ctx, db, c.PK)
	return c, bs, err
}

// CustomerStats returns the customer and its referral stats.
func CustomerStats(ctx context.Context, db *store.DB, p store.Program, idOrKey string) (store.Customer, store.Stats, error) {
	c, err := referral.GetCustomer(ctx, db, p, idOrKey)
	if err != nil {
		return store.Customer{}, store.Stats{}, err
	}
	s, err := store.CustomerStats(ctx, db, c.PK)
	return c, s, err
}

// CustomerRewards lists the customer's rewards, newest first.
func CustomerRewards(ctx context.Context, db *store.DB, p store.Program, idOrKey string, limit, offset int) ([]store.Reward, int, error) {
	c, err := referral.GetCustomer(ctx, db, p, idOrKey)
	if err != nil {
		return nil, 0, err
	}
	return store.ListRewards(ctx, db, c.PK, limit, offset)
}

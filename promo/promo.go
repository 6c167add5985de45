// Package promo is referd's promotion codes (DESIGN §8): a code belongs to a
// referring customer, and a friend who pays with it, typed at a checkout or named by
// a billing provider's discount, becomes that customer's referral. This package
// keeps the codes (create, list, read, delete); attribution happens where payments
// are recorded: package ledger refers a sale's buyer by the code it paid with, and
// the workers (package jobs) find the code a provider's discount names.
package promo

import (
	"context"
	"database/sql"
	"strings"
	"unicode"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/stripeapi"
)

// A Resolver asks a provider's API which code a provider promotion id names (Stripe
// promo_...), when referd has not seen it. A nil Resolver means no API: an unknown
// id falls back to the other attribution rules. ok is false when the provider knows
// no such promotion code.
type Resolver interface {
	ResolvePromotionCode(ctx context.Context, p store.Program, provider, id string) (code string, ok bool, err error)
}

// A DiscountResolver, a Resolver that can do more, also asks which promotion code a
// discount applied to a payment is (a Stripe di_... on an invoice of a current API
// version, when no customer.discount.created said it): objectID is the payment's id
// in the provider (the invoice).
type DiscountResolver interface {
	ResolveDiscount(ctx context.Context, p store.Program, provider, objectID, discountID string) (code string, ok bool, err error)
}

// MaxCodeLength is the longest code accepted, in characters.
const MaxCodeLength = 64

// ProviderIDs are a code's ids in the billing providers: the Stripe promotion code
// (promo_...), the Paddle discount (dsc_...), the Chargebee coupon.
type ProviderIDs struct {
	Stripe    *string `json:"stripe"`
	Paddle    *string `json:"paddle"`
	Chargebee *string `json:"chargebee"`
}

// Input is the body of POST /v1/promotion_codes.
type Input struct {
	Customer    *referral.CustomerRefInput `json:"customer"`
	Code        *referral.Text             `json:"code"`
	ProviderIDs *ProviderIDs               `json:"provider_ids"`
	// CreateIn names a provider to create the code in as well ("stripe"), with
	// Discount saying what it takes off there.
	CreateIn *string        `json:"create_in"`
	Discount *DiscountInput `json:"discount"`
}

// DiscountInput is what a code created in a provider takes off (create_in).
type DiscountInput struct {
	Type             string           `json:"type"`
	Amount           *referral.Number `json:"amount"`
	Currency         string           `json:"currency"`
	Duration         string           `json:"duration"`
	DurationInMonths *int             `json:"duration_in_months"`
}

// View is the promotion code object of the API.
type View struct {
	Code        string                    `json:"code"`
	Customer    *referral.CustomerRefView `json:"customer"`
	ProviderIDs ProviderIDs               `json:"provider_ids"`
	Uses        int                       `json:"uses"`
	CreatedAt   referral.Time             `json:"created_at"`
	DeletedAt   *referral.Time            `json:"deleted_at,omitempty"`
}

// JSON is the API's view of pc.
func JSON(pc store.PromotionCode) View {
	return View{
		Code: pc.Code,
		Customer: referral.RefJSON(store.CustomerRef{PK: pc.CustomerPK, ID: pc.OwnerID, Key: pc.OwnerKey,
			Email: pc.OwnerEmail, Name: pc.OwnerName}),
		ProviderIDs: ProviderIDs{Stripe: referral.NullString(pc.StripeID), Paddle: referral.NullString(pc.PaddleID),
			Chargebee: referral.NullString(pc.ChargebeeID)},
		Uses:      pc.Uses,
		CreatedAt: referral.Time(pc.CreatedAt),
		DeletedAt: referral.NullTime(pc.DeletedAt),
	}
}

// Create validates in and stores the code for its customer. Payments that carried
// the code (or one of its provider ids) before it existed, and ended ignored or
// unattributed, are queued to be processed again, now that they can be attributed.
//
// With create_in "stripe" the code is created in Stripe first (a coupon of
// in.Discount and a promotion code, through st with the program's API key, under an
// idempotency key made of the program, the code and the discount, so that a retried
// request reuses what Stripe made), and its promotion code id is recorded.
func Create(ctx context.Context, db *store.DB, p store.Program, in Input, st *Stripe) (store.PromotionCode, error) {
	verr := &referral.ValidationError{}
	owner := ""
	if in.Customer != nil {
		owner = firstText(in.Customer.ID, in.Customer.Key)
	}
	if owner == "" {
		verr.Add("customer", "The customer field is required (customer.id or customer.key).")
	}
	code := CheckCode(verr, "code", in.Code)
	pc := store.PromotionCode{ProgramPK: p.PK, Code: code}
	if ids := in.ProviderIDs; ids != nil {
		pc.StripeID = providerID(verr, "provider_ids.stripe", ids.Stripe)
		pc.PaddleID = providerID(verr, "provider_ids.paddle", ids.Paddle)
		pc.ChargebeeID = providerID(verr, "provider_ids.chargebee", ids.Chargebee)
	}
	var d *stripeapi.Discount
	if in.CreateIn != nil && strings.TrimSpace(*in.CreateIn) != "" {
		d = createIn(verr, p, strings.TrimSpace(*in.CreateIn), in)
	}
	if err := verr.Err(); err != nil {
		return store.PromotionCode{}, err
	}
	if d != nil {
		id, err := st.create(ctx, db, p, owner, code, *d)
		if err != nil {
			return store.PromotionCode{}, err
		}
		pc.StripeID = sql.NullString{String: id, Valid: true}
	}
	err := db.InTx(ctx, func(tx *store.Tx) error {
		c, err := store.GetCustomer(ctx, tx, p.PK, owner, false)
		if store.IsNotFound(err) || (err == nil && c.Status != "active") {
			return referral.Invalid("customer", "The customer does not exist.")
		}
		if err != nil {
			return err
		}
		pc.CustomerPK, pc.CreatedAt = c.PK, store.Now()
		pc.OwnerID, pc.OwnerKey, pc.OwnerEmail, pc.OwnerName = c.ID, c.Key, c.Email, c.Name
		return store.InsertPromotionCode(ctx, tx, &pc)
	})
	if err != nil {
		return store.PromotionCode{}, err
	}
	return pc, nil
}

// createIn checks a request to create the code in a provider as well (create_in):
// only Stripe, with a discount; it returns Stripe's coupon.
func createIn(verr *referral.ValidationError, p store.Program, provider string, in Input) *stripeapi.Discount {
	if provider != "stripe" {
		verr.Add("create_in", "The create_in must be stripe.")
		return nil
	}
	if in.ProviderIDs != nil && in.ProviderIDs.Stripe != nil {
		verr.Add("provider_ids.stripe", "The provider_ids.stripe is set by create_in: give one or the other.")
	}
	d := discount(verr, p, in.Discount)
	return &d
}

// space or control characters.
func CheckCode(verr *referral.ValidationError, field string, t *referral.Text) string {
	if t == nil {
		verr.Add(field, "The "+field+" field is required.")
		return ""
	}
	code := string(*t) // not trimmed: white space anywhere is refused
	switch {
	case code == "":
		verr.Add(field, "The "+field+" field is required.")
	case len([]rune(code)) > MaxCodeLength:
		verr.Add(field, "The "+field+" must be at most 64 characters.")
	case strings.ContainsFunc(code, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		verr.Add(field, "The "+field+" must not contain white space or control characters.")
	}
	return code
}

func providerID(verr *referral.ValidationError, field string, v *string) sql.NullString {
	if v == nil || strings.TrimSpace(*v) == "" {
		return sql.NullString{}
	}
	id := strings.TrimSpace(*v)
	if len(id) > 255 || strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		verr.Add(field, "The "+field+" must be at most 255 characters without white space.")
	}
	return sql.NullString{String: id, Valid: true}
}

func firstText(ts ...*referral.Text) string {
	for _, t := range ts {
		if t != nil && strings.TrimSpace(string(*t)) != "" {
			return strings.TrimSpace(string(*t))
		}
	}
	return ""
}

// Get returns the program's code, case-insensitively; a deleted or unknown code is a
// NotFoundError.
func Get(ctx context.Context, q store.Querier, p store.Program, code string) (store.PromotionCode, error) {
	pc, err := store.GetPromotionCode(ctx, q, p.PK, code)
	if store.IsNotFound(err) {
		return pc, &referral.NotFoundError{What: "promotion code"}
	}
	return pc, err
}

// Delete deletes the program's code and returns it: it attributes nothing from now
// on. Sales it attributed keep their referrer.
func Delete(ctx context.Context, db *store.DB, p store.Program, code string) (store.PromotionCode, error) {
	pc, err := store.DeletePromotionCode(ctx, db, p.PK, code, store.Now())
	if store.IsNotFound(err) {
		return pc, &referral.NotFoundError{What: "promotion code"}
	}
	return pc, err
}

// List returns a page of the program's codes, newest first, and their total; with
// customer (an id or key) only that customer's: none for an unknown customer, as
// GET /v1/transactions?customer= answers.
func List(ctx context.Context, db *store.DB, p store.Program, customer string, limit, offset int) ([]store.PromotionCode, int, error) {
	f := store.PromotionCodeFilter{ProgramPK: p.PK, Limit: limit, Offset: offset}
	if customer != "" {
		c, err := store.GetCustomer(ctx, db, p.PK, customer, false)
		if store.IsNotFound(err) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		f.CustomerPK = c.PK
	}
	return store.ListPromotionCodes(ctx, db, f)
}

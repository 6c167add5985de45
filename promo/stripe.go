package promo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/referd/referd/money"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/secrets"
	"github.com/referd/referd/store"
	"github.com/referd/referd/stripeapi"
)

// Stripe is Stripe's API as promotion codes use it: with the API key of a program's
// Stripe integration (sealed with Key, REFERD_SECRET_KEY), Client creates codes
// (create_in) and resolves the promotion ids payments carry (a Resolver).
type Stripe struct {
	DB     store.Querier
	Key    *secrets.Key
	Client *stripeapi.Client
}

// apiKey is the program's Stripe API key in the clear; ok is false when it has none
// that can be opened (no key stored, or no REFERD_SECRET_KEY).
func (s *Stripe) apiKey(ctx context.Context, p store.Program) (key string, ok bool, err error) {
	if s == nil || s.Client == nil {
		return "", false, nil
	}
	key, err = referral.IntegrationAPIKey(ctx, s.DB, s.Key, p.PK, "stripe")
	switch {
	case errors.Is(err, referral.ErrNoAPIKey), errors.Is(err, secrets.ErrNoKey):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return key, true, nil
}

// ResolvePromotionCode asks Stripe which code the promotion code id names (cached
// by the client). ok is false for another provider, a program without an API key,
// or an id Stripe does not know; the error of any other failure is Stripe's
// (*stripeapi.Error: Temporary says whether trying again may help).
func (s *Stripe) ResolvePromotionCode(ctx context.Context, p store.Program, provider, id string) (string, bool, error) {
	if provider != "stripe" || !strings.HasPrefix(id, "promo_") {
		return "", false, nil
	}
	key, ok, err := s.apiKey(ctx, p)
	if !ok || err != nil {
		return "", false, err
	}
	code, err := s.Client.ResolvePromotionCode(ctx, key, id)
	var se *stripeapi.Error
	if errors.As(err, &se) && se.NotFound() {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return code, code != "", nil
}

// ResolveDiscount asks Stripe which promotion code the discount discountID applied
// to the invoice objectID is: the invoice is read with its discounts expanded
// (Stripe cannot read a discount by its id). ok is false for anything but a Stripe
// invoice, a program without an API key, or a discount without a promotion code.
func (s *Stripe) ResolveDiscount(ctx context.Context, p store.Program, provider, objectID, discountID string) (string, bool, error) {
	if provider != "stripe" || !strings.HasPrefix(objectID, "in_") || discountID == "" {
		return "", false, nil
	}
	key, ok, err := s.apiKey(ctx, p)
	if !ok || err != nil {
		return "", false, err
	}
	ds, err := s.Client.InvoiceDiscountCodes(ctx, key, objectID)
	var se *stripeapi.Error
	if errors.As(err, &se) && se.NotFound() {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	for _, d := range ds {
		if d.ID == discountID && d.Code != "" {
			return d.Code, true, nil
		}
	}
	return "", false, nil
}

// discount turns the API's discount object into Stripe's coupon, adding the API's
// field errors to verr. A fixed amount is in the major units of its currency (the
// program's when not given), as every amount of the API.
func discount(verr *referral.ValidationError, p store.Program, in *DiscountInput) stripeapi.Discount {
	if in == nil {
		verr.Add("discount", "The discount field is required with create_in: {type: percent|fixed, amount, currency?, duration: once|forever|repeating, duration_in_months?}.")
		return stripeapi.Discount{}
	}
	d := stripeapi.Discount{Type: stripeapi.DiscountType(in.Type), Duration: stripeapi.Duration(in.Duration)}
	if d.Duration == "" {
		d.Duration = stripeapi.Once
	}
	if in.DurationInMonths != nil {
		d.DurationInMonths = int64(*in.DurationInMonths)
	}
	amount := ""
	if in.Amount != nil {
		amount = strings.TrimSpace(string(*in.Amount))
	}
	switch d.Type {
	case stripeapi.Percent:
		v, err := strconv.ParseFloat(amount, 64)
		if err != nil {
			verr.Add("discount.amount", "The discount amount must be a number.")
			return d
		}
		d.Percent = v
	case stripeapi.Fixed:
		d.Currency = strings.ToLower(strings.TrimSpace(in.Currency))
		if d.Currency == "" {
			d.Currency = p.Currency
		}
		scale, err := money.Scale(d.Currency)
		if err != nil {
			verr.Add("discount.currency", "The discount currency must be a three-letter ISO 4217 code.")
			return d
		}
		minor, err := money.ParseMajor(amount, scale)
		if err != nil {
			verr.Add("discount.amount", fmt.Sprintf("The discount amount must be a number with at most %d decimals.", scale))
			return d
		}
		d.AmountOff = minor
	}
	var sv *stripeapi.ValidationError
	if err := stripeapi.ValidateDiscount(d, "discount."); errors.As(err, &sv) {
		for f, msgs := range sv.Fields {
			for _, m := range msgs {
				verr.Add(f, m)
			}
		}
	}
	return d
}

// create makes the code in Stripe and returns its promotion code id. The owner and
// the code are checked first, so that a request referd would refuse creates nothing
// in Stripe.
func (s *Stripe) create(ctx context.Context, db *store.DB, p store.Program, owner, code string, d stripeapi.Discount) (string, error) {
	c, err := store.GetCustomer(ctx, db, p.PK, owner, false)
	if store.IsNotFound(err) || (err == nil && c.Status != "active") {
		return "", referral.Invalid("customer", "The customer does not exist.")
	}
	if err != nil {
		return "", err
	}
	if _, err := store.GetPromotionCode(ctx, db, p.PK, code); err == nil {
		return "", &store.ConflictError{Field: "code"}
	} else if !store.IsNotFound(err) {
		return "", err
	}
	key, ok, err := s.apiKey(ctx, p)
	if err != nil {
		if errors.Is(err, secrets.ErrOpen) {
			return "", referral.Invalid("create_in", "The Stripe API key was stored under another REFERD_SECRET_KEY: store it again with PUT /v1/integrations/stripe {\"api_key\": ...}.")
		}
		return "", err
	}
	if !ok {
		return "", referral.Invalid("create_in", "Creating a promotion code in Stripe needs the Stripe integration's API key: PUT /v1/integrations/stripe with api_key (and REFERD_SECRET_KEY set on the server).")
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%+v", p.ID, strings.ToLower(code), d))
	idem := "referd-promo-" + hex.EncodeToString(sum[:16])
	// d passed ValidateDiscount in Create; were it refused here, the API answers a
	// *stripeapi.ValidationError as the 422 it is.
	id, _, err := s.Client.CreatePromotionCode(ctx, key, d, code, idem)
	return id, err
}

package stripeapi

import (
	"context"
	"math"
	"regexp"
	"strings"

	stripe "github.com/stripe/stripe-go/v76"
)

// DiscountType is how a discount is counted.
type DiscountType string

// The types of discount.
const (
	Percent DiscountType = "percent" // a share of the price
	Fixed   DiscountType = "fixed"   // an amount off, in one currency
)

// Duration is how long a discount lasts on a subscription.
type Duration string

// The durations of Stripe's coupons.
const (
	Once      Duration = "once"
	Forever   Duration = "forever"
	Repeating Duration = "repeating" // for DurationInMonths months
)

// Discount is the coupon behind a promotion code: the API's discount object of
// POST /v1/promotion_codes, with a fixed amount already in minor units.
type Discount struct {
	Type DiscountType
	// Percent is the share off for Type percent: more than 0, at most 100, with at
	// most two decimals (Stripe's percent_off).
	Percent float64
	// AmountOff is the amount off for Type fixed, in minor units of Currency.
	AmountOff int64
	// Currency is the ISO 4217 code of AmountOff, for Type fixed.
	Currency         string
	Duration         Duration
	DurationInMonths int64
}

var currencyRE = regexp.MustCompile(`^[a-z]{3}$`)

// ValidateDiscount checks d as Stripe would, before anything is created, and
// returns a *ValidationError naming the API's fields (prefix+"type", prefix+"amount",
// ...; prefix is "discount." in POST /v1/promotion_codes), or nil.
func ValidateDiscount(d Discount, prefix string) error {
	v := &ValidationError{}
	switch d.Type {
	case Percent:
		if !(d.Percent > 0 && d.Percent <= 100) || math.Abs(d.Percent*100-math.Round(d.Percent*100)) > 1e-6 {
			v.add(prefix+"amount", "A percent discount's amount must be more than 0 and at most 100, with at most two decimals.")
		}
	case Fixed:
		if d.AmountOff <= 0 {
			v.add(prefix+"amount", "A fixed discount's amount must be more than 0.")
		}
		if !currencyRE.MatchString(strings.ToLower(d.Currency)) {
			v.add(prefix+"currency", "A fixed discount needs a currency: a three-letter ISO 4217 code.")
		}
	default:
		v.add(prefix+"type", "The discount type must be percent or fixed.")
	}
	switch d.Duration {
	case Once, Forever:
		if d.DurationInMonths != 0 {
			v.add(prefix+"duration_in_months", "The duration_in_months is only for duration repeating.")
		}
	case Repeating:
		if d.DurationInMonths < 1 || d.DurationInMonths > 1200 {
			v.add(prefix+"duration_in_months", "A repeating discount needs duration_in_months, 1 to 1200.")
		}
	default:
		v.add(prefix+"duration", "The discount duration must be once, forever or repeating.")
	}
	return v.err()
}

// CreatePromotionCode creates in Stripe a coupon of d and a promotion code code of
// that coupon, and returns their ids.
//
// Each of the two calls carries its own idempotency key made from idempotencyKey
// (idempotencyKey+":coupon", idempotencyKey+":promo"): called again with the same
// key (a retried request or job), Stripe answers with what it created the first time
// instead of creating a second coupon. An empty idempotencyKey makes new ones.
// When Stripe refuses the promotion code for good (a code already in use, say), the
// coupon this call made is deleted, so that failures leave nothing behind; a coupon
// Stripe answered from an earlier call with the same key (Idempotent-Replayed) is
// left alone: it may be the coupon of a promotion code that exists.
//
// d must pass ValidateDiscount; errors of Stripe are *Error.
func (c *Client) CreatePromotionCode(ctx context.Context, apiKey string, d Discount, code, idempotencyKey string) (promotionCodeID, couponID string, err error) {
	if err := ValidateDiscount(d, "discount."); err != nil {
		return "", "", err
	}
	sc := c.api(apiKey)
	cp := &stripe.CouponParams{Duration: stripe.String(string(d.Duration))}
	params(ctx, &cp.Params, suffixed(idempotencyKey, ":coupon"))
	if name := []rune(code); len(name) <= 40 { // Stripe's limit; the id is shown without a name
		cp.Name = stripe.String(code)
	}
	switch d.Type {
	case Percent:
		cp.PercentOff = stripe.Float64(d.Percent)
	case Fixed:
		cp.AmountOff = stripe.Int64(d.AmountOff)
		cp.Currency = stripe.String(strings.ToLower(d.Currency))
	}
	if d.Duration == Repeating {
		cp.DurationInMonths = stripe.Int64(d.DurationInMonths)
	}
	cp.AddMetadata("referd_code", code)
	coupon, err := sc.Coupons.New(cp)
	if err != nil {
		return "", "", wrap("create coupon", err)
	}
	pp := &stripe.PromotionCodeParams{Coupon: stripe.String(coupon.ID), Code: stripe.String(code)}
	params(ctx, &pp.Params, suffixed(idempotencyKey, ":promo"))
	promo, err := sc.PromotionCodes.New(pp)
	if err != nil {
		e := wrap("create promotion code "+code, err)
		replayed := coupon.LastResponse != nil && coupon.LastResponse.Header.Get("Idempotent-Replayed") == "true"
		if !e.Temporary() && !replayed && e.Type != string(stripe.ErrorTypeIdempotency) {
			dp := &stripe.CouponParams{}
			params(context.WithoutCancel(ctx), &dp.Params, "")
			sc.Coupons.Del(coupon.ID, dp) // best effort: the error to report is e
		}
		return "", "", e
	}
	c.remember(ctx, apiKey, promo.ID, promo.Code)
	return promo.ID, coupon.ID, nil
}

func suffixed(key, suffix string) string {
	if key == "" {
		return ""
	}
	return key + suffix
}

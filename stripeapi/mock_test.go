package stripeapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/referd/referd/stripeapi"
	"github.com/referd/referd/stripeapi/stripemock"
)

// Against stripe-mock, which checks every request against Stripe's spec: what
// referd sends is what Stripe's API accepts. stripe-mock keeps no state, so what it
// answers is its fixtures with the request's values copied in.
func TestAgainstStripeMock(t *testing.T) {
	t.Parallel()
	url := stripemock.Start(t)
	c := stripeapi.New(stripeapi.Options{URL: url})
	ctx := context.Background()

	for _, d := range []stripeapi.Discount{
		{Type: stripeapi.Percent, Percent: 20, Duration: stripeapi.Once},
		{Type: stripeapi.Percent, Percent: 12.5, Duration: stripeapi.Repeating, DurationInMonths: 3},
		{Type: stripeapi.Fixed, AmountOff: 1000, Currency: "EUR", Duration: stripeapi.Forever},
	} {
		promo, coupon, err := c.CreatePromotionCode(ctx, stripemock.APIKey, d, "FRIEND20", "req_1")
		if err != nil {
			t.Fatalf("CreatePromotionCode(%+v): %v", d, err)
		}
		if !strings.HasPrefix(promo, "promo_") || coupon == "" {
			t.Errorf("CreatePromotionCode(%+v) = %q, %q", d, promo, coupon)
		}
		// The answer to the create (its code copied from the request) is cached.
		if code, err := c.ResolvePromotionCode(ctx, stripemock.APIKey, promo); err != nil || code != "FRIEND20" {
			t.Errorf("ResolvePromotionCode(%s) after create = %q, %v", promo, code, err)
		}
	}

	// Its fixture's code, whatever the id.
	if code, err := c.ResolvePromotionCode(ctx, stripemock.APIKey, "promo_1Referd"); err != nil || code != "FALL20" {
		t.Errorf("ResolvePromotionCode = %q, %v; want stripe-mock's FALL20", code, err)
	}
	// Its invoice fixture has no discounts; the expansions are accepted.
	if ds, err := c.InvoiceDiscountCodes(ctx, stripemock.APIKey, "in_1Referd"); err != nil || len(ds) != 0 {
		t.Errorf("InvoiceDiscountCodes = %+v, %v", ds, err)
	}

	for _, err := range []error{
		func() error { _, err := c.ResolvePromotionCode(ctx, stripemock.APIKey, ""); return err }(),
		func() error { _, err := c.InvoiceDiscountCodes(ctx, stripemock.APIKey, ""); return err }(),
	} {
		if err == nil {
			t.Error("an empty id: no error")
		}
	}

	// Stripe's API cannot read a discount by its id (which is why
	// InvoiceDiscountCodes reads the invoice): its spec has no such path.
	req, _ := http.NewRequest("GET", url+"/v1/discounts/di_1Referd", nil)
	req.Header.Set("Authorization", "Bearer "+stripemock.APIKey)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/discounts/{id}: %v, %v; want 404", res.Status, err)
	} else {
		res.Body.Close()
	}

	// stripe-mock refuses live keys, as Stripe refuses a wrong key: 401.
	_, _, err := c.CreatePromotionCode(ctx, "sk_live_4eC39HqLyjWDarjtT1zdp7dc", stripeapi.Discount{Type: stripeapi.Percent, Percent: 5, Duration: stripeapi.Once}, "X", "")
	var se *stripeapi.Error
	if !errors.As(err, &se) || se.Status != 401 || se.Op != "create coupon" || !strings.Contains(se.Message, "API key") || se.Temporary() {
		t.Errorf("a refused key: %#v", err)
	}
}

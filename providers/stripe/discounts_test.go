package stripe

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/referd/referd/providers"
)

// promoDir holds real payloads adapted to carry a promotion code (see its README).
var promoDir = filepath.Join("..", "..", "testdata", "promotion_codes")

// Where each API version names a payment's promotion code (DESIGN §8).
func TestParseDiscounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		kind providers.Kind
		want []providers.Discount
	}{
		{"stripe.2023-10-16.invoice.paid.json", providers.Payment,
			[]providers.Discount{{PromotionID: "promo_1Alice", DiscountID: "di_1Promo2310", CouponID: "FRIEND20"}}},
		{"stripe.2025-09-30.clover.invoice.paid.json", providers.Payment,
			[]providers.Discount{{DiscountID: "di_1Promo2509"}}},
		{"stripe.2025-09-30.clover.checkout.session.completed.json", providers.Payment,
			[]providers.Discount{{PromotionID: "promo_1Alice", CouponID: "FRIEND20"}}},
		{"stripe.2023-10-16.checkout.session.completed.breakdown.json", providers.Payment,
			[]providers.Discount{{Code: "ALICE20", PromotionID: "promo_1Alice", DiscountID: "di_1Promo2310Checkout", CouponID: "FRIEND20"}}},
		{"stripe.2025-09-30.clover.customer.discount.created.json", providers.DiscountSeen,
			[]providers.Discount{{PromotionID: "promo_1Alice", DiscountID: "di_1Promo2509", CouponID: "FRIEND20"}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p, err := Parse(readFile(t, filepath.Join(promoDir, tc.file)), providers.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Events) != 1 || p.Events[0].Kind != tc.kind {
				t.Fatalf("events = %+v, want one %s", p.Events, tc.kind)
			}
			if got := p.Events[0].Discounts; !slices.Equal(got, tc.want) {
				t.Errorf("discounts = %+v, want %+v", got, tc.want)
			}
			if tc.kind == providers.Payment && (p.Events[0].CustomerKey != "" || p.Events[0].ReferralKey != "") {
				t.Errorf("the payment carries a key: %+v", p.Events[0])
			}
		})
	}
}

// Payments without discounts carry none; a discount of a coupon alone (no promotion
// code) teaches nothing.
func TestParseNoDiscounts(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"2023-10-16/invoice.paid.json", "2025-09-30.clover/invoice.paid.json", "2025-09-30.clover/checkout.session.completed.payment.json"} {
		p, err := Parse(readFile(t, filepath.Join("..", "..", "testdata", "stripe", file)), providers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != 1 || p.Events[0].Discounts != nil {
			t.Errorf("%s: events = %+v", file, p.Events)
		}
	}
	body := `{"id": "evt_1", "type": "customer.discount.created", "api_version": "2023-10-16", "data": {"object":
		{"id": "di_1", "object": "discount", "coupon": {"id": "C"}, "customer": "cus_1", "promotion_code": null}}}`
	if p, err := Parse([]byte(body), providers.Options{}); err != nil || len(p.Events) != 0 {
		t.Errorf("a coupon's discount = %+v, %v", p.Events, err)
	}
}

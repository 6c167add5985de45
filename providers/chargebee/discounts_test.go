package chargebee

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/referd/referd/providers"
)

// A payment names the coupons of its invoice (invoice.discounts[].entity_id of the
// coupon entity types); other discounts are no promotion code.
func TestParseCoupons(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "promotion_codes", "chargebee.payment_succeeded.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(body, providers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 || len(p.Events[0].Discounts) != 1 || p.Events[0].Discounts[0] != (providers.Discount{PromotionID: "alice-coupon", CouponID: "alice-coupon"}) {
		t.Fatalf("events = %+v", p.Events)
	}
	mixed := `{"id": "ev_1", "event_type": "payment_succeeded", "content": {"transaction": {"id": "txn_1", "amount": 900,
		"currency_code": "USD", "status": "success", "customer_id": "c1"}, "invoice": {"id": "1", "discounts": [
		{"amount": 100, "entity_type": "promotional_credits", "entity_id": "x", "object": "discount"},
		{"amount": 100, "entity_type": "item_level_coupon", "entity_id": "ITEMCOUPON", "coupon_set_code": "ALICE-SET-1", "object": "discount"},
		{"amount": 100, "entity_type": "document_level_discount", "entity_id": "d", "object": "discount"}]}}}`
	p, err = Parse([]byte(mixed), providers.Options{})
	if err != nil || len(p.Events) != 1 || len(p.Events[0].Discounts) != 1 ||
		p.Events[0].Discounts[0] != (providers.Discount{PromotionID: "ITEMCOUPON", CouponID: "ITEMCOUPON", Code: "ALICE-SET-1"}) {
		t.Fatalf("mixed discounts: %+v, %v", p.Events, err)
	}
}

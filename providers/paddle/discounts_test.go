package paddle

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/referd/referd/providers"
)

// A transaction names the Paddle discount it was paid with by discount_id (and the
// discount object, when included).
func TestParseDiscount(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "promotion_codes", "paddle.transaction.completed.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(body, providers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 || len(p.Events[0].Discounts) != 1 || p.Events[0].Discounts[0] != (providers.Discount{PromotionID: "dsc_01hv6scyf7qdnzcdq01t2y8dx4"}) {
		t.Fatalf("events = %+v", p.Events)
	}
	included := `{"event_id": "evt_1", "event_type": "transaction.completed", "data": {"id": "txn_1", "currency_code": "USD",
		"discount_id": null, "discount": {"id": "dsc_2", "code": "ALICE10"}, "details": {"totals": {"total": "900"}}}}`
	p, err = Parse([]byte(included), providers.Options{})
	if err != nil || len(p.Events) != 1 || len(p.Events[0].Discounts) != 1 || p.Events[0].Discounts[0] != (providers.Discount{PromotionID: "dsc_2", Code: "ALICE10"}) {
		t.Fatalf("with the discount included: %+v, %v", p.Events, err)
	}
	body, _ = os.ReadFile(filepath.Join("..", "..", "testdata", "paddle", "upstream", "transaction.completed.json"))
	if p, err := Parse(body, providers.Options{}); err != nil || p.Events[0].Discounts != nil {
		t.Errorf("without a discount: %+v, %v", p.Events, err)
	}
}

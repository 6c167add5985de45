package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// The promotion code contract of DESIGN §8: create (201), read and delete (200)
// case-insensitively, list by customer, and the errors.
func TestPromotionCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", map[string]any{"id": "alice", "key": "alice-key", "email": "alice@example.com", "name": "Alice"})
	e.must(201, "POST", "/v1/customers", map[string]any{"id": "bob", "key": "bob-key"})

	r := e.must(201, "POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"key": "alice-key"}, "code": "Alice20",
		"provider_ids": map[string]any{"stripe": "promo_123", "paddle": "dsc_01abc"}})
	d := r.data()
	if d["code"] != "Alice20" || d["uses"] != float64(0) || d["created_at"] == nil {
		t.Errorf("created code = %s", r.Raw)
	}
	if c, _ := d["customer"].(map[string]any); c["id"] != "alice" || c["key"] != "alice-key" || c["email"] != "alice@example.com" || c["name"] != "Alice" {
		t.Errorf("customer = %v", d["customer"])
	}
	if ids, _ := d["provider_ids"].(map[string]any); ids["stripe"] != "promo_123" || ids["paddle"] != "dsc_01abc" || ids["chargebee"] != nil {
		t.Errorf("provider_ids = %v", d["provider_ids"])
	}

	// Case-insensitive everywhere: reading, and uniqueness.
	if r := e.must(200, "GET", "/v1/promotion_codes/ALICE20", nil); r.data()["code"] != "Alice20" {
		t.Errorf("GET by another case = %s", r.Raw)
	}
	wantError(t, e.call("POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"id": "bob"}, "code": "alice20"}), 409, "code")
	wantError(t, e.call("POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"id": "bob"}, "code": "BOB",
		"provider_ids": map[string]any{"stripe": "promo_123"}}), 409, "provider_ids.stripe")

	// Invalid codes and customers.
	for _, code := range []any{"two words", "tab\there", "", strings.Repeat("x", 65)} {
		wantError(t, e.offSpec().call("POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"id": "bob"}, "code": code}), 422, "code")
	}
	wantError(t, e.offSpec().call("POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"id": "bob"}}), 422, "code")
	e.must(201, "POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"id": "bob"}, "code": strings.Repeat("é", 64)})
	wantError(t, e.call("POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"id": "nobody"}, "code": "NOBODY"}), 422, "customer")
	wantError(t, e.offSpec().call("POST", "/v1/promotion_codes", map[string]any{"code": "NOBODY"}), 422, "customer")
	wantError(t, e.call("POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"id": "bob"}, "code": "INSTRIPE",
		"create_in": "stripe", "discount": map[string]any{"type": "percent", "amount": 20, "duration": "once"}}), 422, "create_in")

	// Lists: all, by customer (id or key), paginated.
	e.must(201, "POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"id": "bob"}, "code": "BOB10"})
	if r := e.must(200, "GET", "/v1/promotion_codes", nil); len(r.list()) != 3 {
		t.Errorf("list = %s", r.Raw)
	}
	if r := e.must(200, "GET", "/v1/promotion_codes?customer=alice-key", nil); len(r.list()) != 1 || r.list()[0].(map[string]any)["code"] != "Alice20" {
		t.Errorf("list of alice = %s", r.Raw)
	}
	if r := e.must(200, "GET", "/v1/promotion_codes", map[string]any{"customer": "bob", "limit": 1}); len(r.list()) != 1 ||
		r.Body["meta"].(map[string]any)["total"] != float64(2) {
		t.Errorf("list of bob, a page of 1 = %s", r.Raw)
	}
	if r := e.must(200, "GET", "/v1/promotion_codes?customer=nobody", nil); len(r.list()) != 0 {
		t.Errorf("list of an unknown customer = %s", r.Raw)
	}
	wantError(t, e.offSpec().call("GET", "/v1/promotion_codes?limit=0", nil), 422, "limit")

	// Another program sees none of them.
	other := *e
	other.prog, other.key = e.newProgram("Other", "https://other.test")
	wantError(t, other.call("GET", "/v1/promotion_codes/Alice20", nil), 404, "")
	wantError(t, other.call("DELETE", "/v1/promotion_codes/Alice20", nil), 404, "")
	if r := other.must(200, "GET", "/v1/promotion_codes", nil); len(r.list()) != 0 {
		t.Errorf("another program's list = %s", r.Raw)
	}
	wantError(t, e.call("GET", "/v1/promotion_codes/UNKNOWN", nil), 404, "")

	// Delete: 200 with the code, then it is gone and its text free again.
	if r := e.must(http.StatusOK, "DELETE", "/v1/promotion_codes/alice20", nil); r.data()["code"] != "Alice20" || r.data()["deleted_at"] == nil {
		t.Errorf("DELETE = %s", r.Raw)
	}
	wantError(t, e.call("GET", "/v1/promotion_codes/Alice20", nil), 404, "")
	wantError(t, e.call("DELETE", "/v1/promotion_codes/Alice20", nil), 404, "")
	e.must(201, "POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"id": "bob"}, "code": "ALICE20",
		"provider_ids": map[string]any{"stripe": "promo_123"}})
}

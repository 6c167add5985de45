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

// POST /v1/transactions with discount_code: a known code makes a buyer nobody
// referred the owner's referral before rewards, once; an owner's own code and a
// buyer with a referrer change nothing.
func TestTransactionDiscountCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[
		{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"},
		{"recipient": "referrer", "trigger": "signup", "type": "credit", "amount": 2, "amount_type": "fixed"}
	]`)
	e.must(201, "POST", "/v1/customers", map[string]any{"key": "alice"})
	e.must(201, "POST", "/v1/customers", map[string]any{"key": "bob"})
	e.referral("dave", "carol")
	e.must(201, "POST", "/v1/promotion_codes", map[string]any{"customer": map[string]any{"key": "alice"}, "code": "ALICE10"})

	sale := map[string]any{"customer": map[string]any{"key": "bob"}, "key": "bob-1", "amount": 100, "discount_code": "alice10"}
	tx := e.must(201, "POST", "/v1/transactions", sale).data()
	if ref, _ := tx["referring_customer"].(map[string]any); ref["key"] != "alice" || tx["discount_code"] != "alice10" || len(tx["rewards"].([]any)) != 1 {
		t.Fatalf("sale with alice's code = %v", tx)
	}
	e.must(200, "POST", "/v1/transactions", sale) // the same request again
	if c := e.must(200, "GET", "/v1/customers/bob", nil).data(); c["referring_customer"].(map[string]any)["key"] != "alice" {
		t.Errorf("bob = %v", c)
	}
	// 10 for the sale and 2 for bob's becoming her referral, each once.
	if b := e.balance("alice"); b["usd"] != [2]string{"12", "0"} {
		t.Errorf("alice's balance = %v, want 12", b)
	}
	if pc := e.must(200, "GET", "/v1/promotion_codes/ALICE10", nil).data(); pc["uses"] != float64(1) {
		t.Errorf("uses = %v, want 1", pc["uses"])
	}

	// Alice with her own code; carol, whom dave referred, with alice's code.
	own := e.must(201, "POST", "/v1/transactions", map[string]any{"customer": map[string]any{"key": "alice"}, "key": "alice-1", "amount": 100, "discount_code": "ALICE10"}).data()
	if own["referring_customer"] != nil || len(own["rewards"].([]any)) != 0 {
		t.Errorf("alice's own code = %v", own)
	}
	kept := e.must(201, "POST", "/v1/transactions", map[string]any{"customer": map[string]any{"key": "carol"}, "key": "carol-1", "amount": 100, "discount_code": "ALICE10"}).data()
	if ref, _ := kept["referring_customer"].(map[string]any); ref["key"] != "dave" {
		t.Errorf("carol's referrer = %v, want dave kept", kept["referring_customer"])
	}
	if b := e.balance("alice"); b["usd"] != [2]string{"12", "0"} {
		t.Errorf("alice's balance = %v, want 12 still", b)
	}
	if pc := e.must(200, "GET", "/v1/promotion_codes/ALICE10", nil).data(); pc["uses"] != float64(1) {
		t.Errorf("uses = %v, want 1 still", pc["uses"])
	}

	// A deleted code attributes nothing new.
	e.must(201, "POST", "/v1/customers", map[string]any{"key": "erin"})
	e.must(200, "DELETE", "/v1/promotion_codes/alice10", nil)
	if tx := e.must(201, "POST", "/v1/transactions", map[string]any{"customer": map[string]any{"key": "erin"}, "key": "erin-1", "amount": 100, "discount_code": "ALICE10"}).data(); tx["referring_customer"] != nil {
		t.Errorf("a deleted code attributed %v", tx)
	}
}

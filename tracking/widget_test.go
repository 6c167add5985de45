package tracking

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/referd/referd/referral"
)

// The widget's data answers only to the customer's own token: a token for another
// customer, one made with another secret, or one made before a rotation is a 401 that
// says nothing of whether the customer exists; the right one shows the customer's
// link, share links and counts, and a deleted customer is a 404.
func TestWidgetCustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	other := e.program("https://other.test", "")
	e.customer(p, "ann")
	e.customer(p, "bob")
	if p.WidgetSecret == "" || p.WidgetSecret == other.WidgetSecret {
		t.Fatalf("widget secrets %q and %q: every program needs its own", p.WidgetSecret, other.WidgetSecret)
	}
	get := func(program, key, token string) (int, map[string]any) {
		t.Helper()
		q := url.Values{"program": {program}, "customer_key": {key}, "token": {token}}
		resp, body := e.do("GET", "/widget/customer?"+q.Encode(), "", "", alice)
		wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		return resp.StatusCode, v
	}
	code, v := get(p.ID, "ann", WidgetToken(p.WidgetSecret, "ann"))
	data, _ := v["data"].(map[string]any)
	if code != http.StatusOK || data["referral_link"] != "https://shop.test?ref=ann" {
		t.Fatalf("ann's widget: %d %v", code, v)
	}
	if links, _ := data["sharing_links"].(map[string]any); links["twitter"] == nil {
		t.Errorf("sharing links %v", data["sharing_links"])
	}
	if stats, _ := data["stats"].(map[string]any); stats["clicks"] != float64(0) || stats["successful_referrals"] != float64(0) {
		t.Errorf("stats %v", data["stats"])
	}
	for name, c := range map[string]struct{ program, key, token string }{
		"another customer's token": {p.ID, "ann", WidgetToken(p.WidgetSecret, "bob")},
		"another program's secret": {p.ID, "ann", WidgetToken(other.WidgetSecret, "ann")},
		"no token":                 {p.ID, "ann", ""},
		"an unknown customer":      {p.ID, "nobody", WidgetToken(other.WidgetSecret, "nobody")},
		"upper-case hex":           {p.ID, "ann", "X" + WidgetToken(p.WidgetSecret, "ann")[1:]},
	} {
		if code, v := get(c.program, c.key, c.token); code != http.StatusUnauthorized || v["status"] != float64(0) {
			t.Errorf("%s: %d %v, want 401", name, code, v)
		}
	}
	if code, _ := get(p.ID, "nobody", WidgetToken(p.WidgetSecret, "nobody")); code != http.StatusNotFound {
		t.Errorf("an unknown customer with its token: %d, want 404", code)
	}
	if code, _ := get("prg_unknown", "ann", WidgetToken(p.WidgetSecret, "ann")); code != http.StatusNotFound {
		t.Errorf("an unknown program: %d, want 404", code)
	}
	// Rotating the secret ends the old tokens at once in this process.
	rotated, err := referral.UpdateProgram(context.Background(), e.db, p.PK, referral.ProgramPatch{RotateWidgetSecret: true})
	if err != nil || rotated.WidgetSecret == p.WidgetSecret || rotated.WidgetSecret == "" {
		t.Fatalf("rotation: %q → %q (%v)", p.WidgetSecret, rotated.WidgetSecret, err)
	}
	e.h.ProgramChanged(rotated)
	if code, _ := get(p.ID, "ann", WidgetToken(p.WidgetSecret, "ann")); code != http.StatusUnauthorized {
		t.Errorf("a token of the old secret: %d, want 401", code)
	}
	if code, _ := get(p.ID, "ann", WidgetToken(rotated.WidgetSecret, "ann")); code != http.StatusOK {
		t.Errorf("a token of the new secret: %d, want 200", code)
	}
	if _, err := referral.DeleteCustomer(context.Background(), e.db, rotated, "bob"); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(p.ID, "bob", WidgetToken(rotated.WidgetSecret, "bob")); code != http.StatusNotFound {
		t.Errorf("a deleted customer: %d, want 404", code)
	}
}

// The token is what the README's Node and Python lines compute (checked with both).
func TestWidgetTokenKnownAnswer(t *testing.T) {
	if got := WidgetToken("wgs_test", "ann"); got != "515d30047aad4bbe765c261ce3a1641c17e7be02bb97b077e096ba345321b90d" {
		t.Errorf("WidgetToken = %s", got)
	}
}

package api_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestGetProgram(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.must(200, "GET", "/v1/program", nil).data()
	if p["id"] != e.prog.ID || p["name"] != "Acme" || p["website_url"] != "https://acme.test" || p["currency"] != "usd" {
		t.Errorf("program = %v", p)
	}
	tr := p["tracking"].(map[string]any)
	want := map[string]any{"link_format": "query", "param": "ref", "cookie_name": "partnero_referral",
		"cookie_days": float64(30), "attribution": "last_click", "cookie_domain": nil, "browser_signups": true}
	if fmt.Sprint(tr) != fmt.Sprint(want) {
		t.Errorf("tracking = %v, want %v", tr, want)
	}
	if r, ok := p["rewards"].([]any); !ok || len(r) != 0 {
		t.Errorf("rewards = %v, want []", p["rewards"])
	}
	e.must(200, "GET", "/v1/program", "[]")
}

func TestPatchProgram(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"key": "alice"}`)

	p := e.must(200, "PATCH", "/v1/program", `{"name": "Acme Inc", "currency": "EUR",
		"tracking": {"link_format": "path", "param": "via", "cookie_days": 0, "cookie_domain": ".Acme.test"},
		"rewards": [
			{"name": "Give 10", "recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "fixed", "max_purchases": 3},
			{"recipient": "referred", "trigger": "first_purchase", "type": "discount", "amount": 12.5, "amount_type": "percent", "hold_days": 14},
			{"recipient": "referrer", "trigger": "signup", "type": "cash", "amount": "500", "amount_type": "fixed", "currency": "JPY"}
		]}`).data()
	if p["name"] != "Acme Inc" || p["currency"] != "eur" || p["website_url"] != "https://acme.test" {
		t.Errorf("program = %v", p)
	}
	tr := p["tracking"].(map[string]any)
	if tr["link_format"] != "path" || tr["param"] != "via" || tr["cookie_days"] != float64(0) ||
		tr["cookie_domain"] != ".acme.test" || tr["cookie_name"] != "partnero_referral" || tr["attribution"] != "last_click" {
		t.Errorf("tracking = %v (unpatched fields must stay)", tr)
	}
	rules := p["rewards"].([]any)
	if len(rules) != 3 {
		t.Fatalf("rewards = %v", rules)
	}
	r0, r2 := rules[0].(map[string]any), rules[2].(map[string]any)
	if r0["currency"] != "eur" || r0["amount"] != float64(10) || r0["max_purchases"] != float64(3) || r0["name"] != "Give 10" {
		t.Errorf("rule 0 = %v (currency defaults to the program's)", r0)
	}
	if r2["currency"] != "jpy" || r2["amount"] != float64(500) {
		t.Errorf("rule 2 = %v", r2)
	}
	// Stored, not just echoed.
	if again := e.must(200, "GET", "/v1/program", nil).data(); fmt.Sprint(again["rewards"]) != fmt.Sprint(p["rewards"]) {
		t.Errorf("GET after PATCH: %v", again["rewards"])
	}
	// Referral links follow the tracking settings at once.
	c := e.must(200, "GET", "/v1/customers/alice", nil).data()
	if c["referral_link"] != "https://acme.test/via/alice" {
		t.Errorf("referral_link = %v, want the path format", c["referral_link"])
	}
	// Clearing the cookie domain.
	p = e.must(200, "PATCH", "/v1/program", `{"tracking": {"cookie_domain": null, "attribution": "first_click"}}`).data()
	if tr := p["tracking"].(map[string]any); tr["cookie_domain"] != nil || tr["attribution"] != "first_click" || tr["param"] != "via" {
		t.Errorf("tracking = %v", tr)
	}
	// Browser sign-ups (po('createCustomer')) are on by default; a PATCH turns them off.
	p = e.must(200, "PATCH", "/v1/program", `{"tracking": {"browser_signups": false}}`).data()
	if tr := p["tracking"].(map[string]any); tr["browser_signups"] != false || tr["attribution"] != "first_click" {
		t.Errorf("tracking = %v, want browser_signups false and the rest kept", tr)
	}
	if tr := e.must(200, "GET", "/v1/program", nil).data()["tracking"].(map[string]any); tr["browser_signups"] != false {
		t.Errorf("GET after PATCH: tracking = %v", tr)
	}
	// PUT is PATCH: absent fields stay.
	if p := e.must(200, "PUT", "/v1/program", `{"name": "Acme"}`).data(); p["name"] != "Acme" || p["currency"] != "eur" {
		t.Errorf("after PUT = %v", p)
	}
}

func TestPatchProgramValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rule := func(extra string) string {
		return `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount_type": "fixed", "amount": 10` + extra + `}]}`
	}
	for _, tc := range []struct {
		name, body, field string
		status            int
		offSpec           bool // the body breaks openapi.json
	}{
		{"empty name", `{"name": " "}`, "name", 422, false},
		{"bad website", `{"website_url": "acme.test"}`, "website_url", 422, false},
		{"bad currency", `{"currency": "XYZ"}`, "currency", 422, false},
		{"bad link format", `{"tracking": {"link_format": "hash"}}`, "tracking.link_format", 422, true},
		{"bad param", `{"tracking": {"param": "r e f"}}`, "tracking.param", 422, true},
		{"bad cookie name", `{"tracking": {"cookie_name": "a;b"}}`, "tracking.cookie_name", 422, true},
		{"negative cookie days", `{"tracking": {"cookie_days": -1}}`, "tracking.cookie_days", 422, true},
		{"bad attribution", `{"tracking": {"attribution": "middle_click"}}`, "tracking.attribution", 422, true},
		{"bad cookie domain", `{"tracking": {"cookie_domain": "not a domain"}}`, "tracking.cookie_domain", 422, false},
		{"tracking not an object", `{"tracking": [1]}`, "tracking", 422, true},
		{"browser signups not a boolean", `{"tracking": {"browser_signups": "no"}}`, "tracking", 422, true},
		{"rewards not a list", `{"rewards": {"a": 1}}`, "rewards", 422, true},
		{"bad recipient", `{"rewards": [{"recipient": "nobody", "trigger": "purchase", "type": "credit", "amount": 1, "amount_type": "fixed"}]}`, "rewards.0.recipient", 422, true},
		{"bad trigger", `{"rewards": [{"recipient": "referrer", "trigger": "birthday", "type": "credit", "amount": 1, "amount_type": "fixed"}]}`, "rewards.0.trigger", 422, true},
		{"bad type", `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "gold", "amount": 1, "amount_type": "fixed"}]}`, "rewards.0.type", 422, true},
		{"zero amount", `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 0, "amount_type": "fixed"}]}`, "rewards.0.amount", 422, true},
		{"too many decimals", rule(`.001`), "rewards.0.amount", 422, false},
		{"percent over 100", `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 101, "amount_type": "percent"}]}`, "rewards.0.amount", 422, true},
		{"percent credit on signup", `{"rewards": [{"recipient": "referrer", "trigger": "signup", "type": "credit", "amount": 5, "amount_type": "percent"}]}`, "rewards.0.amount_type", 422, true},
		{"percent cash on signup", `{"rewards": [{"recipient": "referred", "trigger": "signup", "type": "cash", "amount": 5, "amount_type": "percent"}]}`, "rewards.0.amount_type", 422, true},
		{"percent discount on signup over 100", `{"rewards": [{"recipient": "referred", "trigger": "signup", "type": "discount", "amount": 120, "amount_type": "percent"}]}`, "rewards.0.amount", 422, true},
		{"yen with decimals", `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "cash", "amount": 1.5, "amount_type": "fixed", "currency": "jpy"}]}`, "rewards.0.amount", 422, false},
		{"negative hold days", `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 1, "amount_type": "fixed", "hold_days": -1}]}`, "rewards.0.hold_days", 422, true},
		{"bad min purchase", `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 1, "amount_type": "fixed", "min_purchase": -5}]}`, "rewards.0.min_purchase", 422, true},
		{"percent discount in thousandths", `{"rewards": [{"recipient": "referred", "trigger": "purchase", "type": "discount", "amount": 12.345, "amount_type": "percent"}]}`, "rewards.0.amount", 422, false},
		{"amount out of range", rule(`e14`), "rewards.0.amount", 422, false},
		{"min purchase out of range", `{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 1, "amount_type": "fixed", "min_purchase": 1e20}]}`, "rewards.0.min_purchase", 422, false},
		{"malformed", `{"name": `, "", 400, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.offSpecIf(tc.offSpec).call("PATCH", "/v1/program", tc.body), tc.status, tc.field)
		})
	}
	// Nothing of the failed patches was stored.
	p := e.must(200, "GET", "/v1/program", nil).data()
	if p["name"] != "Acme" || p["currency"] != "usd" || p["tracking"].(map[string]any)["link_format"] != "query" || len(p["rewards"].([]any)) != 0 {
		t.Errorf("program changed by failed patches: %v", p)
	}
	e.must(200, "PATCH", "/v1/program", rule(`.10`)) // 10.10 is fine in USD
}

// Concurrent patches of different settings all take effect.
func TestConcurrentProgramPatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bodies := []string{`{"name": "New name"}`, `{"tracking": {"param": "via"}}`, `{"tracking": {"cookie_days": 7}}`, `{"currency": "gbp"}`}
	var wg sync.WaitGroup
	for _, b := range bodies {
		wg.Add(1)
		go func(b string) {
			defer wg.Done()
			if r := e.call("PATCH", "/v1/program", b); r.Status != 200 {
				t.Errorf("%s: %d %s", b, r.Status, r.Raw)
			}
		}(b)
	}
	wg.Wait()
	p := e.must(200, "GET", "/v1/program", nil).data()
	tr := p["tracking"].(map[string]any)
	if p["name"] != "New name" || p["currency"] != "gbp" || tr["param"] != "via" || tr["cookie_days"] != float64(7) {
		t.Errorf("lost update: %v", p)
	}
}

// The seeds' double-sided program as written: the friend gets 20 % off at sign-up (a
// rate, listed in rewards and stats, never in a balance), the referrer a 10 USD credit
// when the friend first buys.
func TestDoubleSidedSignupDiscount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.must(200, "PATCH", "/v1/program", `{"rewards": [
		{"recipient": "referrer", "trigger": "first_purchase", "type": "credit", "amount": 10, "amount_type": "fixed", "currency": "USD"},
		{"recipient": "referred", "trigger": "signup", "type": "discount", "amount": 20, "amount_type": "percent"}]}`).data()
	if rules := p["rewards"].([]any); len(rules) != 2 || rules[1].(map[string]any)["amount_type"] != "percent" {
		t.Fatalf("rewards = %v", p["rewards"])
	}
	e.referral("jane", "friend")

	rw := e.must(200, "GET", "/v1/customers/friend/rewards", nil).list()
	if len(rw) != 1 {
		t.Fatalf("friend rewards = %v, want the 20 %% discount", rw)
	}
	d := rw[0].(map[string]any)
	if d["recipient"] != "referred" || d["trigger"] != "signup" || d["type"] != "discount" || d["amount"] != float64(20) ||
		d["amount_units"] != "percent" || d["is_currency"] != false || d["status"] != "approved" || d["transaction_key"] != nil {
		t.Errorf("friend reward = %v", d)
	}
	st := e.must(200, "GET", "/v1/customers/friend/stats", nil).data()
	if tr := st["total_rewards"].([]any); len(tr) != 1 || fmt.Sprint(tr[0]) != "map[amount:20 amount_units:percent is_currency:false]" {
		t.Errorf("friend total_rewards = %v", st["total_rewards"])
	}
	if b := e.balance("friend"); len(b) != 0 {
		t.Errorf("friend balance = %v, want none: a discount is not spendable", b)
	}
	if rw := e.must(200, "GET", "/v1/customers/jane/rewards", nil).list(); len(rw) != 0 {
		t.Errorf("referrer rewards before the purchase = %v", rw)
	}

	// The friend buys: the referrer earns the credit; the friend's discount stays as it was.
	e.must(201, "POST", "/v1/transactions", `{"customer": {"key": "friend"}, "key": "order-1", "amount": 80}`)
	if b := e.balance("jane"); fmt.Sprint(b) != "map[usd:[10 0]]" {
		t.Errorf("referrer balance = %v, want 10 usd", b)
	}
	if b := e.balance("friend"); len(b) != 0 {
		t.Errorf("friend balance after the purchase = %v", b)
	}
	st = e.must(200, "GET", "/v1/customers/jane/stats", nil).data()
	if st["successful_referrals"] != float64(1) || fmt.Sprint(st["total_rewards"]) != "[map[amount:10 amount_units:usd is_currency:true]]" {
		t.Errorf("referrer stats = %v", st)
	}
	var discountEvents int
	for _, ev := range e.outbox() {
		if ev.Event == "reward.created" && ev.Payload["amount_units"] == "percent" {
			discountEvents++
			if ev.Payload["amount"] != float64(20) || ev.Payload["type"] != "discount" {
				t.Errorf("reward.created payload = %v", ev.Payload)
			}
		}
	}
	if discountEvents != 1 {
		t.Errorf("%d reward.created events for the discount, want 1", discountEvents)
	}
}

// The program shows its widget_secret; {"rotate_widget_secret": true} makes a new one
// and changes nothing else; false or absent keeps it.
func TestRotateWidgetSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := e.must(200, "GET", "/v1/program", nil).data()
	secret, _ := before["widget_secret"].(string)
	if !strings.HasPrefix(secret, "wgs_") || len(secret) != 36 {
		t.Fatalf("widget_secret %q", secret)
	}
	if p := e.must(200, "PATCH", "/v1/program", `{"rotate_widget_secret": false, "name": "Acme 2"}`).data(); p["widget_secret"] != secret {
		t.Errorf("rotate false changed the secret to %v", p["widget_secret"])
	}
	p := e.must(200, "PATCH", "/v1/program", `{"rotate_widget_secret": true}`).data()
	if p["widget_secret"] == secret || !strings.HasPrefix(p["widget_secret"].(string), "wgs_") || p["name"] != "Acme 2" {
		t.Errorf("after rotating: %v (was %s)", p, secret)
	}
	if got := e.must(200, "GET", "/v1/program", nil).data()["widget_secret"]; got != p["widget_secret"] {
		t.Errorf("GET shows %v, PATCH answered %v", got, p["widget_secret"])
	}
}

func TestProgramNotifications(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if n := e.must(200, "GET", "/v1/program", nil).data()["notifications"]; fmt.Sprint(n) != "map[reward_earned:false]" {
		t.Errorf("notifications = %v, want reward_earned false by default", n)
	}
	if n := e.must(200, "PATCH", "/v1/program", `{"notifications": {"reward_earned": true}}`).data()["notifications"]; fmt.Sprint(n) != "map[reward_earned:true]" {
		t.Errorf("notifications after PATCH = %v", n)
	}
	e.must(200, "PATCH", "/v1/program", `{"name": "Acme 2", "notifications": {}}`)
	if n := e.must(200, "GET", "/v1/program", nil).data()["notifications"]; fmt.Sprint(n) != "map[reward_earned:true]" {
		t.Errorf("notifications after a PATCH without them = %v, want them kept", n)
	}
}

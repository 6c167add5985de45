package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// events returns the payloads of the program's outbox events named event, in order.
func (e *env) events(event string) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	for _, o := range e.outbox() {
		if o.Event == event {
			out = append(out, o.Payload)
		}
	}
	return out
}

// Endpoints subscribe to Partnero's event names, as its n8n trigger does.
func TestWebhookPartneroEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.must(201, "POST", "/v1/webhooks", `{"name": "n8n – Referrals", "url": "https://n8n.example.com/webhook/1/webhook",
		"events": ["customer.rewarded", "customer.credited", "transaction.created"], "is_active": true}`).data()
	if fmt.Sprint(d["events"]) != "[customer.rewarded customer.credited transaction.created]" {
		t.Errorf("events = %v", d["events"])
	}
	d = e.must(200, "PUT", "/v1/webhooks/"+d["key"].(string), `{"events": ["customer.credited"]}`).data()
	if fmt.Sprint(d["events"]) != "[customer.credited]" {
		t.Errorf("events after the update = %v", d["events"])
	}
	r := e.offSpec().call("POST", "/v1/webhooks", `{"url": "https://n8n.example.com/x", "events": ["customer.rewarded", "partner.created"]}`)
	wantError(t, r, 422, "events")
	if !strings.Contains(string(r.Raw), "customer.rewarded, customer.credited") {
		t.Errorf("the error does not list Partnero's events: %s", r.Raw)
	}
}

// creditWithKey posts a credit with an Idempotency-Key header and returns the status.
func (e *env) creditWithKey(customer, body, key string) int {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+"/v1/customers/"+customer+"/balance/credit", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// A credit writes one customer.credited, however often it is retried with its
// Idempotency-Key or key field, even concurrently; a debit writes one with a
// negative amount; a refused debit writes none.
func TestCreditWritesCustomerCreditedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.must(201, "POST", "/v1/customers", `{"key": "c", "email": "c@example.com", "name": "Cee"}`).data()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s := e.creditWithKey("c", `{"amount": 10, "amount_units": "usd", "note": "goodwill"}`, "idem-1"); s != 200 {
				t.Errorf("credit answered %d", s)
			}
		}()
	}
	wg.Wait()
	for range 2 {
		e.must(200, "POST", "/v1/customers/c/balance/credit", `{"amount": 100, "amount_units": "credit", "key": "points-1"}`)
	}
	e.must(200, "POST", "/v1/customers/"+c["id"].(string)+"/balance/credit", `{"amount": -4.5, "amount_units": "usd"}`)
	wantError(t, e.call("POST", "/v1/customers/c/balance/credit", `{"amount": -6, "amount_units": "usd", "note": "too much"}`), 422, "amount")
	if b := e.balance("c"); b["usd"] != [2]string{"5.5", "0"} || b["credit"] != [2]string{"100", "0"} {
		t.Errorf("balance = %v", b)
	}
	cust := fmt.Sprintf("map[email:c@example.com id:%s key:c name:Cee]", c["id"])
	want := []string{
		"map[amount:10 amount_units:usd customer:" + cust + " is_currency:true note:goodwill]",
		"map[amount:100 amount_units:credit customer:" + cust + " is_currency:false note:<nil>]",
		"map[amount:-4.5 amount_units:usd customer:" + cust + " is_currency:true note:<nil>]",
	}
	got := e.events("customer.credited")
	if len(got) != len(want) {
		t.Fatalf("%d customer.credited events, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if s := fmt.Sprint(got[i]); s != want[i] {
			t.Errorf("customer.credited %d:\n got %s\nwant %s", i, s, want[i])
		}
	}
}

// A sale sent again, alone or in a batch, writes no second customer.rewarded: one
// per reward, to the reward's recipient, beside its reward.created.
func TestSaleWritesCustomerRewardedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.rules(`[{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent"},
		{"recipient": "referred", "trigger": "first_purchase", "type": "credit", "amount": 5, "amount_type": "fixed", "currency": "usd", "hold_days": 14}]`)
	e.referral("ref", "friend")
	e.referral("ref", "pal")
	sale := `{"customer": {"key": "friend"}, "key": "inv-1", "amount": 100}`
	e.must(201, "POST", "/v1/transactions", sale)
	e.must(200, "POST", "/v1/transactions", sale)
	batch := `{"customer": {"key": "pal"}, "transactions": [{"key": "inv-2", "amount": 50}, {"key": "inv-3", "amount": 20}]}`
	e.must(201, "POST", "/v1/transactions", batch)
	e.must(200, "POST", "/v1/transactions", batch)

	got := e.events("customer.rewarded")
	created := e.events("reward.created")
	// inv-1: the referrer's 10 and friend's 5; inv-2: 5 and pal's 5; inv-3: 2.
	if len(got) != 5 || len(created) != 5 {
		t.Fatalf("%d customer.rewarded and %d reward.created events, want 5 each", len(got), len(created))
	}
	seen := map[any]bool{}
	for i, d := range got {
		who, _ := d["customer"].(map[string]any)
		wantWho := "ref"
		if d["recipient"] == "referred" {
			wantWho = map[any]string{"inv-1": "friend", "inv-2": "pal"}[d["transaction_key"]]
		}
		if who["key"] != wantWho || seen[d["key"]] {
			t.Errorf("customer.rewarded %d goes to %v (want %s), reward %v seen before: %v", i, who["key"], wantWho, d["key"], seen[d["key"]])
		}
		seen[d["key"]] = true
		if d["recipient"] == "referred" && (d["status"] != "pending" || d["amount"] != float64(5)) {
			t.Errorf("the friend's held reward: %v", d)
		}
		for k, v := range created[i] {
			if fmt.Sprint(d[k]) != fmt.Sprint(v) {
				t.Errorf("customer.rewarded %d: %s = %v, reward.created says %v", i, k, d[k], v)
			}
		}
	}
}

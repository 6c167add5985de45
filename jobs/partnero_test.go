package jobs_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/referd/referd/dispatch"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// partneroVerifies checks a delivery as Partnero's documentation tells receivers to,
// and as its n8n trigger does: the Signature header must be exactly the lower-case
// hex HMAC-SHA256 of the raw body, keyed by the signature string the API showed.
func partneroVerifies(signature string, r received) bool {
	mac := hmac.New(sha256.New, []byte(signature))
	mac.Write(r.body)
	return hmac.Equal([]byte(r.header.Get("Signature")), []byte(hex.EncodeToString(mac.Sum(nil))))
}

// standardVerifies checks the Standard Webhooks headers with the reference library.
func standardVerifies(t *testing.T, secret string, r received) bool {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh.Verify(r.body, r.header) == nil
}

// partneroBody is a delivery's body: exactly Partnero's five fields.
type partneroBody struct {
	Event      string          `json:"event"`
	URL        string          `json:"url"`
	WebhookKey string          `json:"webhook_key"`
	CreatedAt  string          `json:"created_at"`
	Data       json.RawMessage `json:"data"`
}

var bodyTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// checkDelivery verifies r both ways with the endpoint as the API showed it, and
// returns its body.
func checkDelivery(t *testing.T, shown dispatch.WebhookView, r received) partneroBody {
	t.Helper()
	if !partneroVerifies(shown.Signature, r) {
		t.Errorf("Signature %q does not verify with %s", r.header.Get("Signature"), shown.Signature)
	}
	if !standardVerifies(t, shown.Signature, r) {
		t.Errorf("webhook-signature %q does not verify", r.header.Get("webhook-signature"))
	}
	var fields map[string]json.RawMessage
	var b partneroBody
	if err := json.Unmarshal(r.body, &fields); err != nil || json.Unmarshal(r.body, &b) != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"created_at", "data", "event", "url", "webhook_key"}) {
		t.Errorf("body fields %v, want event, url, webhook_key, created_at, data", keys)
	}
	if b.URL != shown.URL || b.WebhookKey != shown.Key || !bodyTimeRE.MatchString(b.CreatedAt) {
		t.Errorf("body url %q webhook_key %q created_at %q, want %q, %q and a time", b.URL, b.WebhookKey, b.CreatedAt, shown.URL, shown.Key)
	}
	return b
}

// createWebhook makes an endpoint as POST /v1/webhooks does and returns what it showed.
func (e *webhookEnv) createWebhook(url string, events ...string) dispatch.WebhookView {
	e.t.Helper()
	ep, err := dispatch.CreateWebhook(e.ctx, e.db, e.p, dispatch.WebhookInput{URL: &url, Events: &events}, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return dispatch.WebhookJSON(ep, true)
}

// A receiver written for Partnero verifies every delivery by its Signature header,
// and one written for Standard Webhooks by its own; after a rotation Signature uses
// the new secret, while webhook-signature verifies with the old one too.
func TestPartneroReceiverVerifiesDeliveries(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, time.Hour)
	rcv := newReceiver(t)
	shown := e.createWebhook(rcv.URL+"/partnero?source=referd", "customer.created")
	e.customer("pat")
	eventually(t, "the first delivery", func() bool { return len(rcv.requests()) == 1 })
	b := checkDelivery(t, shown, rcv.requests()[0])
	var data struct{ Key string }
	json.Unmarshal(b.Data, &data)
	if b.Event != "customer.created" || data.Key != "pat" || b.URL != rcv.URL+"/partnero?source=referd" {
		t.Errorf("body %+v", b)
	}

	ep, rotated, err := dispatch.UpdateWebhook(e.ctx, e.db, e.p, shown.Key, dispatch.WebhookInput{RotateSignature: true}, true)
	if err != nil || !rotated {
		t.Fatalf("rotation: %v %v", rotated, err)
	}
	old, shownNew := shown.Signature, dispatch.WebhookJSON(ep, rotated)
	// Attempts reuse an endpoint's settings for a second (dispatch's endpoint cache).
	time.Sleep(1100 * time.Millisecond)
	e.customer("quinn")
	eventually(t, "the delivery after the rotation", func() bool { return len(rcv.requests()) == 2 })
	r := rcv.requests()[1]
	checkDelivery(t, shownNew, r)
	if partneroVerifies(old, r) {
		t.Error("Signature after the rotation verifies with the old secret, want the newest only")
	}
	if !standardVerifies(t, old, r) {
		t.Error("webhook-signature after the rotation does not verify with the old secret")
	}
}

// deliveredData returns the data of every delivery to rcv by its key field, failing
// on an event other than want or a key delivered twice.
func deliveredData(t *testing.T, shown dispatch.WebhookView, rcv *receiver, want string, key func(map[string]any) string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range rcv.requests() {
		b := checkDelivery(t, shown, r)
		var d map[string]any
		json.Unmarshal(b.Data, &d)
		k := key(d)
		if b.Event != want {
			t.Errorf("event %s delivered, want only %s", b.Event, want)
		}
		if _, dup := out[k]; dup {
			t.Errorf("%s delivered twice for %s", want, k)
		}
		out[k] = d
	}
	return out
}

// asJSON is v encoded and decoded as a generic value, for comparing with a body.
func asJSON(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// customer.rewarded comes once for every reward, from every source: sign-up rewards
// (the referrer's credit, the friend's discount), an API sale (a held reward of the
// referrer, the friend's first-purchase credit) and a billing event's sale. A sale
// recorded again and an event processed twice add none. Its data is the reward as
// GET /v1/customers/{id}/rewards shows it, and the customer it went to.
func TestCustomerRewardedEvents(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, time.Hour)
	var patch referral.ProgramPatch
	json.Unmarshal([]byte(`{"rewards": [
		{"recipient": "referrer", "trigger": "signup", "type": "credit", "amount": 2, "amount_type": "fixed", "currency": "usd"},
		{"recipient": "referred", "trigger": "signup", "type": "discount", "amount": 5, "amount_type": "fixed", "currency": "usd"},
		{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 10, "amount_type": "percent", "hold_days": 30},
		{"recipient": "referred", "trigger": "first_purchase", "type": "credit", "amount": 5, "amount_type": "fixed", "currency": "usd"}]}`), &patch)
	p, err := referral.UpdateProgram(e.ctx, e.db, e.p.PK, patch)
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	rcv := newReceiver(t)
	shown := e.createWebhook(rcv.URL, "customer.rewarded")

	annEmail, annName, benEmail, benName := "ann@example.com", "Ann", "ben@example.com", "Ben"
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("ann"), Email: &annEmail, Name: &annName}); err != nil {
		t.Fatal(err)
	}
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("ben"), Email: &benEmail, Name: &benName,
		ReferringCustomer: &referral.CustomerRefInput{Key: text("ann")}}); err != nil {
		t.Fatal(err)
	}
	for i, wantCreated := range []bool{true, false} {
		_, created, err := ledger.RecordTransaction(e.ctx, e.db, e.p, ledger.Sale{CustomerKey: "ben", Key: "sale-1", Amount: 10000, Units: "usd"})
		if err != nil || created != wantCreated {
			t.Fatalf("recording the sale, time %d: created %v, %v", i+1, created, err)
		}
	}
	e.deliver("evt_rewarded", "invoice.paid", `{"id": "in_rewarded", "object": "invoice", "amount_paid": 5000, "currency": "usd",
		"customer": "cus_rewarded", "metadata": {"customer_key": "ben"}}`)

	var want []store.Reward
	for _, c := range []string{"ann", "ben"} {
		cust, err := store.GetCustomer(e.ctx, e.db, e.p.PK, c, false)
		if err != nil {
			t.Fatal(err)
		}
		rs, _, err := store.ListRewards(e.ctx, e.db, cust.PK, 250, 0)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rs...)
	}
	if len(want) != 5 {
		t.Fatalf("%d rewards, want 5", len(want))
	}
	eventually(t, "a delivery per reward", func() bool { return len(rcv.requests()) >= len(want) })
	time.Sleep(200 * time.Millisecond) // room for a duplicate to arrive
	got := deliveredData(t, shown, rcv, "customer.rewarded", func(d map[string]any) string { s, _ := d["key"].(string); return s })
	if len(got) != len(want) {
		t.Errorf("%d rewards delivered, want %d", len(got), len(want))
	}
	people := map[int64]map[string]any{}
	for _, c := range []struct{ key, email, name string }{{"ann", annEmail, annName}, {"ben", benEmail, benName}} {
		cust, _ := store.GetCustomer(e.ctx, e.db, e.p.PK, c.key, false)
		people[cust.PK] = map[string]any{"id": cust.ID, "key": c.key, "email": c.email, "name": c.name}
	}
	held := 0
	for _, r := range want {
		w := asJSON(t, ledger.RewardJSON(r))
		w["customer"] = people[r.CustomerPK]
		if !reflect.DeepEqual(got[r.Key], w) {
			t.Errorf("customer.rewarded of %s (%s, %s, %s):\n got %v\nwant %v", r.Key, r.Recipient, r.Trigger, r.Status, got[r.Key], w)
		}
		if r.Status == "pending" {
			held++
		}
	}
	if held != 2 {
		t.Errorf("%d held rewards, want the referrer's two purchase rewards", held)
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM outbox WHERE program_pk = $1 AND event = 'customer.rewarded'`, e.p.PK); err != nil || n != len(want) {
		t.Errorf("%d customer.rewarded events in the outbox, want %d (%v)", n, len(want), err)
	}
}

// customer.credited comes once for a manual credit, however often it is retried
// with its key, and once for a debit (a negative amount); a refused debit writes
// none.
func TestCustomerCreditedEvents(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, time.Hour)
	rcv := newReceiver(t)
	shown := e.createWebhook(rcv.URL, "customer.credited", "customer.updated")
	email := "cara@example.com"
	c, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text("cara"), Email: &email})
	if err != nil {
		t.Fatal(err)
	}
	note := "welcome bonus"
	for range 2 {
		if _, _, err := ledger.CreditBalance(e.ctx, e.db, e.p, "cara", ledger.CreditInput{Amount: "12.50", AmountUnits: "usd",
			Note: &note, Key: text("bonus-1")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ledger.CreditBalance(e.ctx, e.db, e.p, c.ID, ledger.CreditInput{Amount: "-2.5", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.CreditBalance(e.ctx, e.db, e.p, "cara", ledger.CreditInput{Amount: "-100", AmountUnits: "usd"}); err == nil {
		t.Fatal("a debit beyond the balance was accepted")
	}
	eventually(t, "the credit and the debit", func() bool { return len(rcv.requests()) >= 2 })
	time.Sleep(200 * time.Millisecond) // room for a duplicate to arrive
	got := deliveredData(t, shown, rcv, "customer.credited", func(d map[string]any) string { return asJSONString(d["amount"]) })
	cust := map[string]any{"id": c.ID, "key": "cara", "email": email, "name": nil}
	want := map[string]map[string]any{
		"12.5": {"customer": cust, "amount": 12.5, "amount_units": "usd", "is_currency": true, "note": note},
		"-2.5": {"customer": cust, "amount": -2.5, "amount_units": "usd", "is_currency": true, "note": nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("customer.credited data:\n got %v\nwant %v", got, want)
	}
}

func asJSONString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

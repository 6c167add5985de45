package jobs_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/referd/referd/referral"
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
func checkDelivery(t *testing.T, shown referral.WebhookView, r received) partneroBody {
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
func (e *webhookEnv) createWebhook(url string, events ...string) referral.WebhookView {
	e.t.Helper()
	ep, err := referral.CreateWebhook(e.ctx, e.db, e.p, referral.WebhookInput{URL: &url, Events: &events}, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return referral.WebhookJSON(ep, true)
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

	ep, rotated, err := referral.UpdateWebhook(e.ctx, e.db, e.p, shown.Key, referral.WebhookInput{RotateSignature: true}, true)
	if err != nil || !rotated {
		t.Fatalf("rotation: %v %v", rotated, err)
	}
	old, shownNew := shown.Signature, referral.WebhookJSON(ep, rotated)
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

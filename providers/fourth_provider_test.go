package providers_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/api"
	"github.com/referd/referd/ingest"
	"github.com/referd/referd/jobs"
	"github.com/referd/referd/ops"
	"github.com/referd/referd/providers"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// acmepay is a fourth billing provider that exists only in this test: what a new
// provider's package holds. It signs the body with HMAC-SHA256 under the
// integration's secrets ("Acme-Signature: sha256=<hex>"), and its one event type
// that means anything is payment.succeeded.
type acmepay struct{}

func (acmepay) Name() string         { return "acmepay" }
func (acmepay) Title() string        { return "AcmePay" }
func (acmepay) Auth() providers.Auth { return providers.SigningSecrets }

func (acmepay) Verify(h http.Header, body []byte, c providers.Credentials, _ time.Time) error {
	got, err := hex.DecodeString(strings.TrimPrefix(h.Get("Acme-Signature"), "sha256="))
	if err != nil {
		return fmt.Errorf("%w: acmepay: bad signature encoding", providers.ErrSignature)
	}
	for _, secret := range c.WebhookSecrets {
		if hmac.Equal(got, acmeSign(secret, body)) {
			return nil
		}
	}
	return fmt.Errorf("%w: acmepay: no secret signed the body", providers.ErrSignature)
}

func (acmepay) Parse(body []byte, opt providers.Options) (providers.Parsed, error) {
	var ev struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Created int64  `json:"created"`
		Payment struct {
			ID       string            `json:"id"`
			Amount   int64             `json:"amount"`
			Currency string            `json:"currency"`
			Customer string            `json:"customer"`
			Email    string            `json:"email"`
			Metadata map[string]string `json:"metadata"`
		} `json:"payment"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.Type == "" {
		return providers.Parsed{}, fmt.Errorf("%w: acmepay: not an event", providers.ErrMalformed)
	}
	out := providers.Parsed{EventID: ev.ID, Type: ev.Type, Livemode: true}
	if p := ev.Payment; ev.Type == "payment.succeeded" {
		out.Events = append(out.Events, providers.Event{Kind: providers.Payment, ObjectID: p.ID,
			ProviderCustomerID: p.Customer, Email: p.Email, CustomerKey: p.Metadata[opt.KeyField()],
			ReferralKey: p.Metadata["referral_key"], Amount: p.Amount, Currency: p.Currency, Livemode: true,
			OccurredAt: time.Unix(ev.Created, 0)})
	}
	return out, nil
}

func acmeSign(secret string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return mac.Sum(nil)
}

// The test registers acmepay as providers/all registers the shipped providers: one
// line, at initialization (after providers/all's, which this package imports).
func init() { providers.Register(acmepay{}) }

// A fourth provider is one package and one Register line: with nothing else
// changed, its integration is configured through the API, its webhooks are
// verified, stored and answered by the ingest path, its stored events are processed
// (parsed through the registry) into a referred customer and a sale whose source is
// the provider, and replay and the provider_events filter know it. (Migration 00013
// made the database check the shape of a provider's name rather than a list of
// three, or the integration and the event could not be stored.) openapi.json still
// lists the three shipped providers, so this test does not hold its exchanges to it.
func TestFourthProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, key, err := referral.CreateProgram(ctx, db, "Acme", "https://acme.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: ptr(referral.Text("ref"))}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ingest.New(db, log, 2).Register(mux)
	mux.Handle("/v1/", api.New(db, "http://referd.test", log, 8).Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	call := func(method, path string, body any, header http.Header) (int, map[string]any) {
		t.Helper()
		var raw []byte
		switch b := body.(type) {
		case nil:
		case []byte:
			raw = b
		default:
			raw, _ = json.Marshal(b)
		}
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(raw))
		req.Header = header.Clone()
		if req.Header == nil {
			req.Header = http.Header{"Authorization": {"Bearer " + key}, "Content-Type": {"application/json"}}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
		}
		return res.StatusCode, out
	}
	data := func(out map[string]any) map[string]any { d, _ := out["data"].(map[string]any); return d }

	// The integration takes what acmepay's Auth says: signing secrets.
	const secret = "acme_whsec_0123456789"
	if status, out := call("PUT", "/v1/integrations/acmepay", map[string]any{"username": "u", "password": "p"}, nil); status != 422 {
		t.Errorf("PUT without webhook secrets: %d %v, want 422", status, out)
	}
	status, out := call("PUT", "/v1/integrations/acmepay", map[string]any{"webhook_secrets": []string{secret}}, nil)
	if d := data(out); status != 200 || d["provider"] != "acmepay" || d["webhook_url"] != "http://referd.test/ingest/acmepay/"+p.ID {
		t.Fatalf("PUT /v1/integrations/acmepay: %d %v", status, out)
	}
	if status, out := call("GET", "/v1/integrations/acmepay", nil, nil); status != 200 || data(out)["provider"] != "acmepay" {
		t.Errorf("GET /v1/integrations/acmepay: %d %v", status, out)
	}

	body := []byte(fmt.Sprintf(`{"id": "evt_1", "type": "payment.succeeded", "created": %d, "payment": {"id": "pay_1",
		"amount": 5000, "currency": "usd", "customer": "acme_cus_1", "email": "friend@example.com",
		"metadata": {"customer_key": "friend", "referral_key": "ref"}}}`, time.Now().Unix()))
	signed := func(secret string) http.Header {
		return http.Header{"Acme-Signature": {"sha256=" + hex.EncodeToString(acmeSign(secret, body))}}
	}
	if status, out := call("POST", "/ingest/acmepay/"+p.ID, body, signed("another_secret_0123456789")); status != 400 {
		t.Errorf("a bad signature: %d %v, want 400", status, out)
	}
	if n := countEvents(t, db); n != 0 {
		t.Fatalf("%d events stored after a bad signature", n)
	}
	if status, out := call("POST", "/ingest/acmepay/"+p.ID, body, signed(secret)); status != 200 || out["message"] != "stored" {
		t.Fatalf("a signed webhook: %d %v, want 200 stored", status, out)
	}
	var pk int64
	if err := db.Get(&pk, `SELECT pk FROM provider_events WHERE provider = 'acmepay' AND event_id = 'evt_1'`); err != nil {
		t.Fatalf("the event is not stored: %v", err)
	}

	if err := jobs.ProcessEvent(ctx, db, pk); err != nil {
		t.Fatal(err)
	}
	ev, err := store.GetProviderEvent(ctx, db, pk)
	if err != nil || ev.Status != store.EventProcessed || len(ev.TransactionKeys) != 1 || ev.TransactionKeys[0] != "acmepay:pay_1" {
		t.Fatalf("processed event = %+v, %v", ev, err)
	}
	if status, out := call("GET", "/v1/transactions/acmepay:pay_1", nil, nil); status != 200 || data(out)["source"] != "acmepay" ||
		data(out)["amount"] != float64(50) {
		t.Errorf("GET the sale: %d %v, want source acmepay, amount 50", status, out)
	}
	if status, out := call("GET", "/v1/customers/friend", nil, nil); status != 200 || data(out)["source"] != "acmepay" {
		t.Errorf("GET the referred customer: %d %v, want source acmepay", status, out)
	}
	if status, out := call("GET", "/v1/provider_events?provider=acmepay", nil, nil); status != 200 || len(out["data"].([]any)) != 1 {
		t.Errorf("GET /v1/provider_events?provider=acmepay: %d %v", status, out)
	}
	res, err := ops.Replay(ctx, db, ops.ReplayFilter{Provider: "acmepay", Status: "processed"}, nil)
	if err != nil || res.Replayed != 1 || res.Processed != 1 {
		t.Errorf("replaying acmepay's events: %+v, %v", res, err)
	}

	// What lists the providers lists it.
	if _, out := call("POST", "/ingest/nopay/"+p.ID, body, nil); !strings.Contains(fmt.Sprint(out["message"]), "chargebee and acmepay") {
		t.Errorf("unknown provider: %v, want the registered ones listed", out)
	}
	if _, out := call("GET", "/v1/provider_events?provider=nopay", nil, nil); !strings.Contains(fmt.Sprint(out["errors"]), "chargebee, acmepay") {
		t.Errorf("filter by an unknown provider: %v, want the registered ones listed", out)
	}
	if status, out := call("DELETE", "/v1/integrations/acmepay", nil, nil); status != 200 {
		t.Errorf("DELETE /v1/integrations/acmepay: %d %v", status, out)
	}
}

func countEvents(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM provider_events`); err != nil {
		t.Fatal(err)
	}
	return n
}

func ptr[T any](v T) *T { return &v }

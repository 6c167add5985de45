package api_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/referd/referd/api"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/secrets"
	"github.com/referd/referd/stripeapi"
	"github.com/referd/referd/stripeapi/stripemock"
)

const stripeKey = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"

// withSecretKey serves the API of e's database with REFERD_SECRET_KEY set.
func (e *env) withSecretKey() *secrets.Key {
	e.t.Helper()
	key, err := secrets.ParseKey(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	if err != nil {
		e.t.Fatal(err)
	}
	s := api.New(e.db, "http://referd.test", slog.New(slog.NewTextHandler(io.Discard, nil)), 8)
	s.SecretKey = key
	e.srv = e.serve(s)
	return key
}

func (e *env) sealedAPIKey(programPK int64) (sealed, hint *string) {
	e.t.Helper()
	row := e.db.QueryRowxContext(context.Background(), `SELECT api_key_sealed, api_key_hint FROM integrations WHERE program_pk = $1 AND provider = 'stripe'`, programPK)
	if err := row.Scan(&sealed, &hint); err != nil {
		e.t.Fatal(err)
	}
	return sealed, hint
}

func TestIntegrationAPIKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	body := func(apiKey string) string {
		return `{"webhook_secrets": ["whsec_0123456789abcdefghij"]` + apiKey + `}`
	}

	// Without REFERD_SECRET_KEY: a 422 that says how to set it, and nothing stored.
	r := e.call("PUT", "/v1/integrations/stripe", body(`, "api_key": "`+stripeKey+`"`))
	wantError(t, r, 422, "api_key")
	if !strings.Contains(string(r.Raw), "REFERD_SECRET_KEY") {
		t.Errorf("422 does not say what to set: %s", r.Raw)
	}
	wantError(t, e.call("GET", "/v1/integrations/stripe", nil), 404, "")
	// Removing needs no key.
	if i := e.must(200, "PUT", "/v1/integrations/stripe", body(`, "api_key": null`)).data(); i["api_key"] != nil {
		t.Errorf("api_key = %v, want null", i["api_key"])
	}

	key := e.withSecretKey()
	i := e.must(200, "PUT", "/v1/integrations/stripe", body(`, "api_key": "`+stripeKey+`"`)).data()
	if i["api_key"] != "sk_test_…p7dc" {
		t.Errorf("api_key shown as %v, want sk_test_…p7dc", i["api_key"])
	}
	// Never returned, stored encrypted.
	for _, raw := range []string{string(e.must(200, "GET", "/v1/integrations", nil).Raw), string(e.must(200, "GET", "/v1/integrations/stripe", nil).Raw)} {
		if strings.Contains(raw, "4eC39HqLyjWDarjtT1zdp7dc") {
			t.Errorf("the API key leaked: %s", raw)
		}
	}
	sealed, hint := e.sealedAPIKey(e.prog.PK)
	if sealed == nil || !strings.HasPrefix(*sealed, "v1:") || strings.Contains(*sealed, "4eC39Hq") || *hint != "sk_test_…p7dc" {
		t.Errorf("stored as %v, %v", sealed, hint)
	}
	if got, err := referral.IntegrationAPIKey(ctx, e.db, key, e.prog.PK, "stripe"); err != nil || got != stripeKey {
		t.Errorf("IntegrationAPIKey = %q, %v", got, err)
	}
	if _, err := referral.IntegrationAPIKey(ctx, e.db, nil, e.prog.PK, "stripe"); !errors.Is(err, secrets.ErrNoKey) {
		t.Errorf("IntegrationAPIKey without REFERD_SECRET_KEY: %v", err)
	}

	// A PUT without api_key keeps it (rotating webhook secrets); null or "" removes it.
	e.must(200, "PUT", "/v1/integrations/stripe", `{"webhook_secrets": ["whsec_rotated_0123456789"]}`)
	if got, err := referral.IntegrationAPIKey(ctx, e.db, key, e.prog.PK, "stripe"); err != nil || got != stripeKey {
		t.Errorf("after a PUT without api_key: %q, %v", got, err)
	}
	for _, remove := range []string{`null`, `""`} {
		e.must(200, "PUT", "/v1/integrations/stripe", body(`, "api_key": "rk_live_51Habc0123456789"`))
		if i := e.must(200, "GET", "/v1/integrations/stripe", nil).data(); i["api_key"] != "rk_live_…6789" {
			t.Errorf("replaced key shown as %v", i["api_key"])
		}
		if i := e.must(200, "PUT", "/v1/integrations/stripe", body(`, "api_key": `+remove)).data(); i["api_key"] != nil {
			t.Errorf("api_key %s: shown as %v", remove, i["api_key"])
		}
		if _, err := referral.IntegrationAPIKey(ctx, e.db, key, e.prog.PK, "stripe"); !errors.Is(err, referral.ErrNoAPIKey) {
			t.Errorf("api_key %s: IntegrationAPIKey = %v, want ErrNoAPIKey", remove, err)
		}
	}
	if _, err := referral.IntegrationAPIKey(ctx, e.db, key, e.prog.PK, "paddle"); !errors.Is(err, referral.ErrNoAPIKey) {
		t.Errorf("no integration: %v", err)
	}

	// Only Stripe's and well-formed keys.
	for _, bad := range []string{"pk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_short", "whsec_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39Hq<script>"} {
		wantError(t, e.call("PUT", "/v1/integrations/stripe", body(`, "api_key": "`+bad+`"`)), 422, "api_key")
	}
	wantError(t, e.offSpec().call("PUT", "/v1/integrations/stripe", body(`, "api_key": 42`)), 422, "api_key")
	wantError(t, e.call("PUT", "/v1/integrations/paddle", body(`, "api_key": "`+stripeKey+`"`)), 422, "api_key")
	e.must(200, "PUT", "/v1/integrations/paddle", body(`, "api_key": null`))

	// A sealed key copied to another program's row does not open there.
	e.must(200, "PUT", "/v1/integrations/stripe", body(`, "api_key": "`+stripeKey+`"`))
	progB, keyB := e.newProgram("Beta", "https://beta.test")
	if r := e.callKey(keyB, "PUT", "/v1/integrations/stripe", body("")); r.Status != 200 {
		t.Fatalf("program B: %s", r.Raw)
	}
	if _, err := e.db.ExecContext(ctx, `UPDATE integrations SET (api_key_sealed, api_key_hint) = (SELECT api_key_sealed, api_key_hint FROM integrations WHERE program_pk = $1 AND provider = 'stripe') WHERE program_pk = $2`, e.prog.PK, progB.PK); err != nil {
		t.Fatal(err)
	}
	if _, err := referral.IntegrationAPIKey(ctx, e.db, key, progB.PK, "stripe"); !errors.Is(err, secrets.ErrOpen) {
		t.Errorf("a key copied to program B opened: %v", err)
	}
}

// Stripe's errors answer 502 with Stripe's message; a discount Stripe would refuse, 422.
func TestStripeErrorsAnswer(t *testing.T) {
	t.Parallel()
	status, msg, fields := api.Classify(fmt.Errorf("creating: %w", &stripeapi.Error{Op: "create coupon", Status: 401, Message: "Invalid API Key provided: sk_test_****p7dc"}))
	if status != http.StatusBadGateway || !strings.Contains(msg, "Invalid API Key provided") || len(fields["stripe"]) != 1 {
		t.Errorf("401 from Stripe: %d %q %v", status, msg, fields)
	}
	status, msg, _ = api.Classify(&stripeapi.Error{Op: "get invoice in_1", Message: "dial tcp: connection refused"})
	if status != http.StatusBadGateway || !strings.Contains(msg, "did not answer") {
		t.Errorf("no answer: %d %q", status, msg)
	}
	err := stripeapi.ValidateDiscount(stripeapi.Discount{Type: "percent", Percent: 120, Duration: "once"}, "discount.")
	if status, _, fields := api.Classify(err); status != 422 || len(fields["discount.amount"]) != 1 {
		t.Errorf("invalid discount: %d %v", status, fields)
	}
}

// create_in "stripe": with the integration's API key, POST /v1/promotion_codes
// creates the coupon and the promotion code in Stripe (stripe-mock, the API version
// stripe-go v76 speaks) and records its id; without a key, 422 saying how; Stripe's
// refusal, 502 with its message and nothing stored.
func TestPromotionCodeCreatedInStripe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.must(201, "POST", "/v1/customers", `{"key": "alice", "email": "alice@example.com"}`)
	create := `{"customer": {"key": "alice"}, "code": "ALICE20", "create_in": "stripe", "discount": {"type": "percent", "amount": 20, "duration": "once"}}`

	// No API key on the integration: a 422 on create_in that says how.
	r := e.call("POST", "/v1/promotion_codes", create)
	wantError(t, r, 422, "create_in")
	if !strings.Contains(string(r.Raw), "api_key") {
		t.Errorf("422 does not say how: %s", r.Raw)
	}
	// A discount Stripe would refuse is a 422 before anything is asked of Stripe.
	wantError(t, e.call("POST", "/v1/promotion_codes", `{"customer": {"key": "alice"}, "code": "X", "create_in": "stripe", "discount": {"type": "percent", "amount": 120}}`), 422, "discount.amount")

	e.withSecretKey()
	s := api.New(e.db, "http://referd.test", slog.New(slog.NewTextHandler(io.Discard, nil)), 8)
	s.SecretKey, _ = secrets.ParseKey(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	s.Stripe = stripeapi.New(stripeapi.Options{URL: stripemock.Start(t)})
	e.srv = e.serve(s)
	e.must(200, "PUT", "/v1/integrations/stripe", `{"webhook_secrets": ["whsec_0123456789abcdefghij"], "api_key": "`+stripeKey+`"}`)
	pc := e.must(201, "POST", "/v1/promotion_codes", create).data()
	ids, _ := pc["provider_ids"].(map[string]any)
	if id, _ := ids["stripe"].(string); !strings.HasPrefix(id, "promo_") || pc["code"] != "ALICE20" {
		t.Fatalf("created in Stripe: %v", pc)
	}
	got := e.must(200, "GET", "/v1/promotion_codes/alice20", nil).data()
	if got["provider_ids"].(map[string]any)["stripe"] != ids["stripe"] {
		t.Errorf("stored %v, want the Stripe id %v", got["provider_ids"], ids["stripe"])
	}
	// The code taken: 409 before Stripe is asked.
	wantError(t, e.call("POST", "/v1/promotion_codes", create), 409, "code")

	// Stripe refuses (a revoked key): 502 with Stripe's message, nothing stored.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****p7dc"}}`)
	}))
	t.Cleanup(refusing.Close)
	s.Stripe = stripeapi.New(stripeapi.Options{URL: refusing.URL})
	r = e.call("POST", "/v1/promotion_codes", strings.Replace(create, "ALICE20", "ALICE30", 1))
	if r.Status != http.StatusBadGateway || !strings.Contains(string(r.Raw), "Invalid API Key provided") {
		t.Errorf("Stripe's refusal: %d %s, want 502 with its message", r.Status, r.Raw)
	}
	wantError(t, e.call("GET", "/v1/promotion_codes/ALICE30", nil), 404, "")
}

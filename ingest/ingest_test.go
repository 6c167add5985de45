package ingest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/referd/referd/ingest"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

type env struct {
	t    *testing.T
	db   *store.DB
	srv  *httptest.Server
	prog store.Program
}

const stripeSecret = "whsec_test_secret_0123456789"
const paddleSecret = "pdl_ntfset_secret_0123456789"

func newEnv(t *testing.T) *env {
	t.Helper()
	db := storetest.New(t)
	ctx := context.Background()
	p, _, err := referral.CreateProgram(ctx, db, "Acme", "https://acme.test")
	if err != nil {
		t.Fatal(err)
	}
	for provider, in := range map[string]referral.IntegrationInput{
		"stripe":    {WebhookSecrets: []string{"whsec_old_secret_abcdefgh", stripeSecret}},
		"paddle":    {WebhookSecrets: []string{paddleSecret}},
		"chargebee": {Username: ptr("cb-user"), Password: ptr("cb-password")},
	} {
		if _, err := referral.PutIntegration(ctx, db, p, provider, in, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Logged through t: a 503 in a test says why.
	h := ingest.New(db, slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), 2)
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, db: db, srv: srv, prog: p}
}

func ptr(s string) *string { return &s }

// testLog writes log lines to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *env) post(provider string, body []byte, header http.Header) int {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/ingest/"+provider+"/"+e.prog.ID, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func (e *env) stored() int {
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM provider_events`); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func stripeEvent(id string) []byte {
	return []byte(fmt.Sprintf(`{"id": %q, "object": "event", "api_version": "2023-10-16", "created": %d, "livemode": false,
		"type": "invoice.paid", "data": {"object": {"id": "in_1", "object": "invoice", "amount_paid": 5000, "currency": "usd",
		"customer": "cus_1", "customer_email": "bob@example.com", "subscription": null, "metadata": {}}}}`, id, time.Now().Unix()))
}

func stripeHeader(body []byte, secret string, at time.Time) http.Header {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
	return http.Header{"Stripe-Signature": {sp.Header}}
}

func TestStripeEventIsStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := stripeEvent("evt_1")
	// The same delivery five times at once: one row.
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s := e.post("stripe", body, stripeHeader(body, stripeSecret, time.Now())); s != 200 {
				t.Errorf("status %d", s)
			}
		}()
	}
	wg.Wait()
	if n := e.stored(); n != 1 {
		t.Fatalf("%d rows after 5 deliveries", n)
	}
	var ev store.ProviderEvent
	if err := e.db.Get(&ev, `SELECT * FROM provider_events`); err != nil {
		t.Fatal(err)
	}
	if ev.EventID != "evt_1" || ev.Type != "invoice.paid" || ev.Status != "received" || !bytes.Equal(ev.Payload, body) {
		t.Errorf("stored %+v", ev)
	}
}

func TestRejectedDeliveriesStoreNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := stripeEvent("evt_2")
	for name, tc := range map[string]struct {
		provider string
		body     []byte
		header   http.Header
		status   int
	}{
		"stripe wrong secret": {"stripe", body, stripeHeader(body, "whsec_wrong", time.Now()), 400},
		"stripe stale":        {"stripe", body, stripeHeader(body, stripeSecret, time.Now().Add(-10*time.Minute)), 400},
		"stripe no signature": {"stripe", body, nil, 400},
		"stripe tampered":     {"stripe", append(append([]byte{}, body...), ' '), stripeHeader(body, stripeSecret, time.Now()), 400},
		"paddle wrong secret": {"paddle", []byte(`{"event_id": "evt_p"}`), paddleHeader([]byte(`{"event_id": "evt_p"}`), "nope", time.Now()), 400},
		"chargebee bad creds": {"chargebee", []byte(`{"id": "ev_c"}`), basic("cb-user", "wrong"), 401},
		"chargebee no creds":  {"chargebee", []byte(`{"id": "ev_c"}`), nil, 401},
		"unknown provider":    {"paypal", body, nil, 404},
		"body over 1 MiB":     {"stripe", bytes.Repeat([]byte("x"), ingest.MaxBody+1), nil, 413},
	} {
		if s := e.post(tc.provider, tc.body, tc.header); s != tc.status {
			t.Errorf("%s: status %d, want %d", name, s, tc.status)
		}
	}
	if n := e.stored(); n != 0 {
		t.Errorf("%d rows stored by rejected deliveries", n)
	}
	// Unknown program, and a provider the program has not configured.
	req, _ := http.NewRequest("POST", e.srv.URL+"/ingest/stripe/nope", bytes.NewReader(body))
	if res, _ := http.DefaultClient.Do(req); res.StatusCode != 404 {
		t.Errorf("unknown program: %d", res.StatusCode)
	}
	if _, err := referral.DeleteIntegration(context.Background(), e.db, e.prog, "paddle"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // the receiver's configuration cache
	pb := []byte(`{"event_id": "evt_p"}`)
	if s := e.post("paddle", pb, paddleHeader(pb, paddleSecret, time.Now())); s != 404 {
		t.Errorf("unconfigured provider: %d", s)
	}
}

func paddleHeader(body []byte, secret string, at time.Time) http.Header {
	ts := fmt.Sprint(at.Unix())
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + ":"))
	mac.Write(body)
	return http.Header{"Paddle-Signature": {"ts=" + ts + ";h1=" + hex.EncodeToString(mac.Sum(nil))}}
}

func basic(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

func TestPaddleAndChargebeeEventsAreStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pb := []byte(`{"event_id": "evt_01paddle", "event_type": "transaction.completed", "occurred_at": "2026-11-21T06:00:00Z",
		"data": {"id": "txn_1", "currency_code": "USD", "customer_id": "ctm_1", "details": {"totals": {"total": "5000"}}}}`)
	if s := e.post("paddle", pb, paddleHeader(pb, paddleSecret, time.Now())); s != 200 {
		t.Fatalf("paddle: %d", s)
	}
	cb := []byte(`{"id": "ev_cb1", "occurred_at": 1763700000, "event_type": "payment_succeeded", "api_version": "v2",
		"content": {"transaction": {"id": "txn_cb1", "amount": 5000, "currency_code": "USD", "customer_id": "c1"}, "customer": {"id": "c1"}}}`)
	if s := e.post("chargebee", cb, basic("cb-user", "cb-password")); s != 200 {
		t.Fatalf("chargebee: %d", s)
	}
	var ids []string
	e.db.Select(&ids, `SELECT provider || ':' || event_id || ':' || type FROM provider_events ORDER BY provider`)
	if strings.Join(ids, ",") != "chargebee:ev_cb1:payment_succeeded,paddle:evt_01paddle:transaction.completed" {
		t.Errorf("stored %v", ids)
	}
}

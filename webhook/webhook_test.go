package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// received is what a test receiver saw of one request.
type received struct {
	header http.Header
	body   []byte
}

// receiver starts a server that records requests and answers status.
func receiver(t *testing.T, status int) (*httptest.Server, func() []received) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []received
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Header.Clone(), body})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSignSpecVector checks Sign against the example in the Standard Webhooks
// spec, independently of any library.
func TestSignSpecVector(t *testing.T) {
	t.Parallel()
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestDeliverVerifiesWithReferenceLibrary(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, http.StatusNoContent)
	secret := newSecret(t)
	body := []byte(`{"event":"customer.created","webhook_key":"wh_1","created_at":"2026-01-02T03:04:05Z","data":{"key":"c_1"}}`)

	a := Deliver(context.Background(), NewClient(true), srv.URL, Message{
		ID: "msg_1", Timestamp: time.Now(), Body: body, Secrets: []string{secret},
	})
	if a.Err != nil || a.StatusCode != http.StatusNoContent {
		t.Fatalf("Deliver = %+v", a)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("server got %d requests, want 1", len(reqs))
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(reqs[0].body, reqs[0].header); err != nil {
		t.Errorf("reference Verify: %v", err)
	}
	h := reqs[0].header
	for k, want := range map[string]string{
		"content-type": "application/json",
		"user-agent":   "referd-webhooks/1",
		"webhook-id":   "msg_1",
	} {
		if v := h.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
}

func TestDeliverRotationVerifiesWithEachSecret(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, http.StatusOK)
	oldSecret, newSec := newSecret(t), newSecret(t)

	// Zero Timestamp means now, which the reference library's tolerance accepts.
	a := Deliver(context.Background(), NewClient(true), srv.URL, Message{
		ID: "msg_rot", Body: []byte(`{}`), Secrets: []string{newSec, oldSecret},
	})
	if a.Outcome(time.Now()).Kind != Succeeded {
		t.Fatalf("Deliver = %+v", a)
	}
	req := got()[0]
	if n := len(strings.Split(req.header.Get("webhook-signature"), " ")); n != 2 {
		t.Errorf("webhook-signature has %d signatures, want 2", n)
	}
	for _, s := range []string{oldSecret, newSec} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(req.body, req.header); err != nil {
			t.Errorf("reference Verify with %s: %v", s, err)
		}
	}
	other, _ := standardwebhooks.NewWebhook(newSecret(t))
	if err := other.Verify(req.body, req.header); err == nil {
		t.Error("a third secret verified the message")
	}
	// Partnero's header has room for one signature: the newest secret's.
	if sig := req.header.Get("Signature"); !partneroVerify(newSec, req.body, sig) || partneroVerify(oldSecret, req.body, sig) {
		t.Errorf("Signature %q: want the new secret's, not the old one's", sig)
	}
}

// partneroVerify checks a Signature header the way Partnero's documentation and its
// n8n trigger do, independently of PartneroSignature: the lower-case hex HMAC-SHA256
// of the raw body, keyed by the secret string's bytes, compared exactly.
func partneroVerify(secret string, body []byte, header string) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return subtle.ConstantTimeCompare([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(header)) == 1
}

// Every delivery carries Partnero's Signature header next to the Standard Webhooks
// ones, and a receiver for either scheme accepts it.
func TestDeliverPartneroSignature(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, http.StatusOK)
	secret := newSecret(t)
	// A body with what a re-encoding would change: HTML characters, non-ASCII, spacing.
	body := []byte(`{"event":"customer.credited", "url":"https://x.test/?a=1&b=<2>","data":{"note":"café"}}`)
	a := Deliver(context.Background(), NewClient(true), srv.URL, Message{ID: "msg_p", Body: body, Secrets: []string{secret}})
	if a.Outcome(time.Now()).Kind != Succeeded {
		t.Fatalf("Deliver = %+v", a)
	}
	req := got()[0]
	sig := req.header.Get("Signature")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sig) {
		t.Errorf("Signature %q: want 64 lower-case hex digits", sig)
	}
	if !bytes.Equal(req.body, body) || !partneroVerify(secret, req.body, sig) {
		t.Errorf("Signature %q does not verify the raw body %s", sig, req.body)
	}
	// The key is the secret's text, not the base64-decoded key the other scheme uses.
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if partneroVerify(string(key), req.body, sig) {
		t.Error("Signature is keyed by the decoded secret")
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(req.body, req.header); err != nil {
		t.Errorf("reference Verify: %v", err)
	}
}

func TestSignInvalidSecret(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if _, err := Sign(s, "msg", time.Now(), nil); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("Sign(%q) error = %v, want ErrInvalidSecret", s, err)
		}
	}
	if _, err := Signatures(nil, "msg", time.Now(), nil); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("Signatures(no secrets) error = %v, want ErrInvalidSecret", err)
	}
	if _, err := Signatures([]string{newSecret(t), "bad"}, "msg", time.Now(), nil); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("Signatures(one bad) error = %v, want ErrInvalidSecret", err)
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := newSecret(t), newSecret(t)
	if a == b {
		t.Error("two secrets are equal")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if !strings.HasPrefix(a, "whsec_") || err != nil || len(key) != 24 {
		t.Errorf("NewSecret = %q: want whsec_ and 24 bytes of base64 (%d bytes, %v)", a, len(key), err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/stripe/stripe-go/v76/webhook"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// wait bounds anything the tests wait for; it is a failure bound, not a timing check.
const wait = 15 * time.Second

// runCmd runs the referd command args and returns its stdout, its stderr and its error.
// The buffers are safe for concurrent writes: run points the process-wide loggers of
// the Redis client and the log package at its logger, so a parallel test's Redis pool
// may still write to this one's stderr after run returns.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out, errOut syncBuffer
	err = run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

type programCreated struct {
	Program map[string]any `json:"program"`
	APIKey  string         `json:"api_key"`
}

// createProgram runs `program create` against the database at dbURL.
func createProgram(t *testing.T, dbURL, name, website string) programCreated {
	t.Helper()
	stdout, stderr, err := runCmd(t, "program", "create", "--name", name, "--website", website, "--database-url", dbURL)
	if err != nil {
		t.Fatalf("program create: %v\nstderr:\n%s", err, stderr)
	}
	var got programCreated
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("program create printed %q, not JSON: %v", stdout, err)
	}
	return got
}

func TestProgramAndAPIKeyCreate(t *testing.T) {
	t.Parallel()
	db, dbURL := storetest.NewWithURL(t)
	ctx := context.Background()

	got := createProgram(t, dbURL, "Acme", "https://acme.test")
	p := got.Program
	id, _ := p["id"].(string)
	if id == "" {
		t.Fatalf("program create printed no program id: %v", p)
	}
	for field, want := range map[string]any{"name": "Acme", "website_url": "https://acme.test", "currency": "usd"} {
		if p[field] != want {
			t.Errorf("program.%s = %v, want %v", field, p[field], want)
		}
	}
	if tr, ok := p["tracking"].(map[string]any); !ok || tr["link_format"] != "query" || tr["param"] != "ref" || tr["cookie_name"] != "partnero_referral" {
		t.Errorf("program.tracking = %v, want the default tracking", p["tracking"])
	}
	if r, ok := p["rewards"].([]any); !ok || len(r) != 0 {
		t.Errorf("program.rewards = %#v, want []", p["rewards"])
	}
	if !strings.HasPrefix(got.APIKey, referral.APIKeyPrefix) || len(got.APIKey) <= len(referral.APIKeyPrefix) {
		t.Fatalf("api_key = %q, want an %s... key", got.APIKey, referral.APIKeyPrefix)
	}

	stdout, stderr, err := runCmd(t, "apikey", "create", "--program", id, "--database-url", dbURL)
	if err != nil {
		t.Fatalf("apikey create: %v\nstderr:\n%s", err, stderr)
	}
	var second struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal([]byte(stdout), &second); err != nil {
		t.Fatalf("apikey create printed %q, not JSON: %v", stdout, err)
	}
	if !strings.HasPrefix(second.APIKey, referral.APIKeyPrefix) {
		t.Fatalf("apikey create api_key = %q, want an %s... key", second.APIKey, referral.APIKeyPrefix)
	}
	if second.APIKey == got.APIKey {
		t.Fatalf("apikey create returned the program's first key again: %q", second.APIKey)
	}

	for _, key := range []string{got.APIKey, second.APIKey} {
		prog, err := store.ProgramByKeyHash(ctx, db, referral.HashAPIKey(key))
		if err != nil {
			t.Fatalf("key %s...: ProgramByKeyHash: %v", key[:10], err)
		}
		if prog.ID != id {
			t.Errorf("key %s... belongs to program %s, want %s", key[:10], prog.ID, id)
		}
	}

	// A website that is not an http(s) URL is the user's mistake, not a crash.
	_, _, err = runCmd(t, "program", "create", "--name", "Bad", "--website", "ftp://acme.test", "--database-url", dbURL)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "website_url") {
		t.Errorf("program create --website ftp://...: err = %v (%T), want a usageError about website_url", err, err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	// Nothing listens here: usage errors must be found before connecting.
	const deadDB = "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"program"},
		{"program", "delete"},
		{"program", "create", "--name", "Acme", "--database-url", deadDB},
		{"program", "create", "--website", "https://acme.test", "--database-url", deadDB},
		{"apikey", "create", "--database-url", deadDB},
		{"serve", "--no-such-flag"},
		{"serve", "--port", "99999", "--database-url", deadDB},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			t.Parallel()
			_, _, err := runCmd(t, args...)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("run(%q) = %v (%T), want a usageError", args, err, err)
			}
		})
	}
}

func TestAPIKeyCreateUnknownProgram(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewWithURL(t)
	stdout, _, err := runCmd(t, "apikey", "create", "--program", "nope", "--database-url", dbURL)
	if err == nil {
		t.Fatalf("apikey create --program nope succeeded: %s", stdout)
	}
	if !strings.Contains(err.Error(), "not found") && !strings.Contains(err.Error(), "nope") {
		t.Errorf("apikey create --program nope: error %q does not say the program was not found", err)
	}
	if stdout != "" {
		t.Errorf("apikey create --program nope printed %q, want nothing on stdout", stdout)
	}
}

// syncBuffer is a bytes.Buffer safe for a server's goroutines to write while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestServe(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewWithURL(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve",
			"--database-url", dbURL,
			"--redis-url", "", // embedded Redis, whatever REDIS_URL says
			"--host", "127.0.0.1", "--port", fmt.Sprint(port),
			"--public-url", base,
			"--concurrency", "4",
		}, io.Discard, &stderr)
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("run did not return after its context was cancelled")
		}
	}
	t.Cleanup(func() { stop() })

	client := &http.Client{Timeout: wait}
	defer client.CloseIdleConnections()

	// Wait for /healthz.
	deadline := time.Now().Add(wait)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited before it was healthy: %v\nstderr:\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve was not healthy after %s (last error %v)\nstderr:\n%s", wait, err, stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), "referd listening") {
		t.Errorf("serve did not log \"referd listening\"; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(strings.ToLower(stderr.String()), "lost") {
		t.Errorf("serve without REDIS_URL did not warn that queued work is lost; stderr:\n%s", stderr.String())
	}

	prog := createProgram(t, dbURL, "Acme", "https://acme.test")

	// The console: signed out, /admin sends to its sign-in form.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if res, err := noFollow.Get(base + "/admin"); err != nil || res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/signin" {
		t.Errorf("GET /admin signed out: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if res, err := client.Get(base + "/admin/signin"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("GET /admin/signin: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+prog.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d %q is not JSON: %v", method, path, resp.StatusCode, raw, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
		}
		return resp.StatusCode, out
	}

	status, body := call("POST", "/v1/customers", `{"key":"customer_123","email":"alice@example.com","name":"Alice"}`)
	if status != http.StatusCreated {
		t.Fatalf("POST /v1/customers: %d %v, want 201", status, body)
	}
	status, body = call("GET", "/v1/customers/customer_123", "")
	if status != http.StatusOK {
		t.Fatalf("GET /v1/customers/customer_123: %d %v, want 200", status, body)
	}
	data, _ := body["data"].(map[string]any)
	if data["key"] != "customer_123" || data["email"] != "alice@example.com" {
		t.Errorf("GET /v1/customers/customer_123: data = %v", data)
	}
	if link := data["referral_link"]; link != "https://acme.test?ref=customer_123" {
		t.Errorf("referral_link = %v, want https://acme.test?ref=customer_123", link)
	}

	// Billing ingest end to end: a signed Stripe invoice.paid for a referred friend
	// becomes a transaction, processed by the asynq workers on the embedded Redis.
	progID, _ := prog.Program["id"].(string)
	if status, body := call("PUT", "/v1/integrations/stripe", `{"webhook_secrets": ["whsec_e2e_secret_0123456789"]}`); status != 200 {
		t.Fatalf("PUT integration: %d %v", status, body)
	}
	if status, body := call("POST", "/v1/customers", `{"key":"friend_1","referring_customer":{"key":"customer_123"}}`); status != 201 {
		t.Fatalf("POST friend: %d %v", status, body)
	}
	event := []byte(fmt.Sprintf(`{"id": "evt_e2e", "object": "event", "api_version": "2023-10-16", "created": %d, "livemode": false,
		"type": "invoice.paid", "data": {"object": {"id": "in_e2e", "object": "invoice", "amount_paid": 4200, "currency": "usd",
		"customer": "cus_e2e", "customer_email": null, "subscription": null, "metadata": {"customer_key": "friend_1"}}}}`, time.Now().Unix()))
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: event, Secret: "whsec_e2e_secret_0123456789", Timestamp: time.Now()})
	ireq, _ := http.NewRequest("POST", base+"/ingest/stripe/"+progID, bytes.NewReader(event))
	ireq.Header.Set("Stripe-Signature", signed.Header)
	if resp, err := client.Do(ireq); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /ingest/stripe: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	deadline = time.Now().Add(wait)
	for {
		_, body := call("GET", "/v1/transactions?key=stripe:in_e2e", "")
		if l, _ := body["data"].([]any); len(l) == 1 {
			tx := l[0].(map[string]any)
			if tx["amount"] != 42.0 || tx["source"] != "stripe" || tx["customer"].(map[string]any)["key"] != "friend_1" {
				t.Errorf("ingested transaction = %v", tx)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ingested payment never became a transaction\nstderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A request without a key is refused, through the same server.
	req, _ := http.NewRequest("GET", base+"/v1/customers/customer_123", nil)
	if resp, err := client.Do(req); err != nil {
		t.Fatalf("GET without a key: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET without a key: %d, want 401", resp.StatusCode)
		}
	}

	client.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatalf("serve after cancel: %v, want nil (graceful shutdown)\nstderr:\n%s", err, stderr.String())
	}
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Errorf("serve still answers after it returned")
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string // serve flags, parsed over the environment
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c config) {
				wantDocumented(t, c, documented{
					DatabaseURL:   "postgres://localhost:5432/referd?sslmode=disable",
					Port:          8080,
					PublicURL:     "http://localhost:8080",
					RetrySchedule: "5s,5m,30m,2h,5h,10h,14h,20h,24h",
					Concurrency:   64,
				})
			},
		},
		{
			name: "everything set",
			env: map[string]string{
				"DATABASE_URL": "postgres://db/x", "REDIS_URL": "redis://r:6379/1", "PORT": "9000",
				"REFERD_ADMIN_TOKEN": "s3cret", "REFERD_ALLOW_PRIVATE_TARGETS": "true",
				"REFERD_WEBHOOK_RETRY_SCHEDULE": "1s,2s", "REFERD_CONCURRENCY": "8", "REFERD_LOG_FORMAT": "json",
				"REFERD_HOST": "127.0.0.1",
			},
			check: func(t *testing.T, c config) {
				wantDocumented(t, c, documented{
					DatabaseURL: "postgres://db/x", RedisURL: "redis://r:6379/1", Host: "127.0.0.1", Port: 9000,
					PublicURL: "http://localhost:9000", AdminToken: "s3cret", AllowPrivate: true,
					RetrySchedule: "1s,2s", Concurrency: 8, LogFormat: "json",
				})
			},
		},
		{
			name:  "PORT sets the public URL",
			env:   map[string]string{"PORT": "9000"},
			check: wantPublicURL(9000, "http://localhost:9000"),
		},
		{
			name:  "REFERD_PUBLIC_URL wins, without its trailing slash",
			env:   map[string]string{"PORT": "9000", "REFERD_PUBLIC_URL": "https://refer.example.com/"},
			check: wantPublicURL(9000, "https://refer.example.com"),
		},
		{
			name:  "--port overrides PORT and the public URL follows it",
			env:   map[string]string{"PORT": "9000"},
			args:  []string{"--port", "9100"},
			check: wantPublicURL(9100, "http://localhost:9100"),
		},
		{
			name:  "--public-url overrides REFERD_PUBLIC_URL",
			env:   map[string]string{"REFERD_PUBLIC_URL": "https://a.example"},
			args:  []string{"--public-url", "https://b.example"},
			check: wantPublicURL(8080, "https://b.example"),
		},
		{name: "PORT not a number", env: map[string]string{"PORT": "eighty"}, wantErr: "PORT"},
		{name: "PORT out of range", env: map[string]string{"PORT": "70000"}, wantErr: "out of range"},
		{name: "REFERD_CONCURRENCY not a number", env: map[string]string{"REFERD_CONCURRENCY": "lots"}, wantErr: "REFERD_CONCURRENCY"},
		{name: "REFERD_CONCURRENCY zero", env: map[string]string{"REFERD_CONCURRENCY": "0"}, wantErr: "concurrency"},
		{name: "REFERD_ALLOW_PRIVATE_TARGETS not a boolean", env: map[string]string{"REFERD_ALLOW_PRIVATE_TARGETS": "maybe"}, wantErr: "REFERD_ALLOW_PRIVATE_TARGETS"},
		{name: "REFERD_LOG_FORMAT unknown", env: map[string]string{"REFERD_LOG_FORMAT": "xml"}, wantErr: "xml"},
		{name: "REFERD_SMTP_URL of another scheme", env: map[string]string{"REFERD_SMTP_URL": "http://mail.test", "REFERD_MAIL_FROM": "a@b.test"}, wantErr: "smtp://"},
		{name: "REFERD_SMTP_URL without REFERD_MAIL_FROM", env: map[string]string{"REFERD_SMTP_URL": "smtp://mail.test"}, wantErr: "REFERD_MAIL_FROM"},
		{
			name: "REFERD_SMTP_URL turns email on",
			env:  map[string]string{"REFERD_SMTP_URL": "smtps://u:p@mail.test", "REFERD_MAIL_FROM": "Acme <rewards@acme.test>"},
			check: func(t *testing.T, c config) {
				if c.Mail == nil || c.Mail.Host() != "mail.test:465" {
					t.Errorf("mail = %+v, want a sender to mail.test:465", c.Mail)
				}
			},
		},
		{name: "email off without REFERD_SMTP_URL", env: map[string]string{}, check: func(t *testing.T, c config) {
			if c.Mail != nil {
				t.Errorf("mail = %+v, want nil", c.Mail)
			}
		}},
		{name: "REFERD_SECRET_KEY of 16 bytes", env: map[string]string{"REFERD_SECRET_KEY": "AAAAAAAAAAAAAAAAAAAAAA=="}, wantErr: "REFERD_SECRET_KEY is 16 bytes"},
		{name: "REFERD_SECRET_KEY not base64", env: map[string]string{"REFERD_SECRET_KEY": "correct horse battery staple"}, wantErr: "REFERD_SECRET_KEY is not base64"},
		{name: "REFERD_STRIPE_API_URL not a URL", env: map[string]string{"REFERD_STRIPE_API_URL": "localhost:12111"}, wantErr: "REFERD_STRIPE_API_URL"},
		{
			name: "REFERD_SECRET_KEY and REFERD_STRIPE_API_URL",
			env:  map[string]string{"REFERD_SECRET_KEY": "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=", "REFERD_STRIPE_API_URL": "http://127.0.0.1:12111"},
			check: func(t *testing.T, c config) {
				if c.SecretKey == nil || c.Stripe == nil || c.StripeAPIURL != "http://127.0.0.1:12111" {
					t.Errorf("secret key %v, stripe %v at %q", c.SecretKey, c.Stripe, c.StripeAPIURL)
				}
			},
		},
		{name: "no REFERD_SECRET_KEY: no key, calls go to Stripe", env: map[string]string{}, check: func(t *testing.T, c config) {
			if c.SecretKey != nil || c.StripeAPIURL != "https://api.stripe.com" || c.Stripe == nil {
				t.Errorf("secret key %v, Stripe API at %q", c.SecretKey, c.StripeAPIURL)
			}
		}},
		{name: "several bad variables are all reported", env: map[string]string{"PORT": "x", "REFERD_CONCURRENCY": "y"}, wantErr: "REFERD_CONCURRENCY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := configFromEnv(func(k string) string { return tc.env[k] })
			if tc.args != nil {
				fs := flag.NewFlagSet("test", flag.ContinueOnError)
				fs.SetOutput(io.Discard)
				c.serverFlags(fs)
				if err := fs.Parse(tc.args); err != nil {
					t.Fatalf("parsing %q: %v", tc.args, err)
				}
			}
			err := c.finish()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("finish() = %v, want an error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("finish(): %v", err)
			}
			tc.check(t, c)
		})
	}
}

func wantPublicURL(port int, publicURL string) func(*testing.T, config) {
	return func(t *testing.T, c config) {
		t.Helper()
		if c.Port != port || c.PublicURL != publicURL {
			t.Errorf("port %d public URL %q, want %d %q", c.Port, c.PublicURL, port, publicURL)
		}
	}
}

// documented is the part of config that docs/design.md §2 specifies;
// settings added later do not break the comparison.
type documented struct {
	DatabaseURL, RedisURL, Host string
	Port                        int
	PublicURL, AdminToken       string
	AllowPrivate                bool
	RetrySchedule               string
	Concurrency                 int
	LogFormat                   string
}

func wantDocumented(t *testing.T, c config, want documented) {
	t.Helper()
	got := documented{
		DatabaseURL: c.DatabaseURL, RedisURL: c.RedisURL, Host: c.Host, Port: c.Port,
		PublicURL: c.PublicURL, AdminToken: c.AdminToken, AllowPrivate: c.AllowPrivate,
		RetrySchedule: c.RetrySchedule, Concurrency: c.Concurrency, LogFormat: c.LogFormat,
	}
	if got != want {
		t.Errorf("config = %+v\nwant     %+v", got, want)
	}
}

// The worker role runs the task handlers and the scheduler, and stops cleanly.
func TestWorker(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewWithURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"worker", "--database-url", dbURL, "--redis-url", "", "--concurrency", "2"}, io.Discard, &stderr)
	}()
	deadline := time.Now().Add(wait)
	for !strings.Contains(stderr.String(), "workers started") {
		select {
		case err := <-done:
			t.Fatalf("worker exited early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf(`"periodic":%d`, len(jobs.Schedule())+1)) {
		t.Errorf("worker runs no periodic tasks:\n%s", stderr.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("worker returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop")
	}
}

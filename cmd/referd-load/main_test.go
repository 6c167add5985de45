package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/stripe/stripe-go/v76/webhook"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const testKey = "test-secret"

// fakeServer mimics POST /v1/customers of referd and records what it saw.
type fakeServer struct {
	failEvery int // if > 0, every failEvery-th non-referrer create gets 409

	mu           sync.Mutex
	keys         map[string]int // key -> times seen
	referrers    map[string]bool
	created      int // non-referrer creates
	referred     int // non-referrer creates carrying referring_customer
	unknownRefs  int // referring_customer naming a key not created before
	badRequests  []string
	duplicateKey int
}

func newFakeServer() *fakeServer {
	return &fakeServer{keys: make(map[string]int), referrers: make(map[string]bool)}
}

func (f *fakeServer) bad(msg string) {
	f.mu.Lock()
	f.badRequests = append(f.badRequests, msg)
	f.mu.Unlock()
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/customers" {
		f.bad(r.Method + " " + r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		f.bad("bad Authorization header: " + got)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.bad("bad Content-Type: " + ct)
	}
	var body customerBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.bad("bad body: " + err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if body.Key == "" || body.Email != body.Key+"@load.test" || body.Name == "" {
		f.bad("bad fields: " + body.Key + " " + body.Email + " " + body.Name)
	}

	f.mu.Lock()
	f.keys[body.Key]++
	if f.keys[body.Key] > 1 {
		f.duplicateKey++
	}
	isReferrer := strings.Contains(body.Key, "-ref-")
	status := http.StatusCreated
	if isReferrer {
		f.referrers[body.Key] = true
	} else {
		f.created++
		if body.ReferringCustomer != nil {
			f.referred++
			if !f.referrers[body.ReferringCustomer.Key] {
				f.unknownRefs++
			}
		}
		if f.failEvery > 0 && f.created%f.failEvery == 0 {
			status = http.StatusConflict
		}
	}
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, `{"data":{},"status":1}`)
}

func testConfig(url string) config {
	return config{
		URL:           url,
		Key:           testKey,
		Concurrency:   8,
		Duration:      30 * time.Second,
		MaxRequests:   500,
		Scenario:      "customers",
		Warmup:        0,
		ReferrerRatio: 0.5,
		KeyPattern:    "seed-r-%d",
		KeyCount:      10000,
	}
}

func TestRunCustomers(t *testing.T) {
	fake := newFakeServer()
	srv := httptest.NewServer(fake)
	defer srv.Close()

	sum, err := run(context.Background(), testConfig(srv.URL), io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	if sum.Requests != 500 {
		t.Errorf("requests = %d, want 500", sum.Requests)
	}
	if sum.Successes != 500 || sum.Failures != 0 || sum.TransportErrs != 0 || sum.Aborted != 0 {
		t.Errorf("successes=%d failures=%d transport=%d aborted=%d, want 500/0/0/0 (kinds %v, status %v)",
			sum.Successes, sum.Failures, sum.TransportErrs, sum.Aborted, sum.ErrorKinds, sum.StatusCounts)
	}
	if len(sum.RunID) != 8 || strings.Trim(sum.RunID, "0123456789abcdef") != "" {
		t.Errorf("run id %q is not 8 lowercase hex chars", sum.RunID)
	}
	if sum.Throughput <= 0 || sum.DurationSec < 0 {
		t.Errorf("throughput=%v duration=%v", sum.Throughput, sum.DurationSec)
	}
	l := sum.Latency
	if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) || l.Max <= 0 {
		t.Errorf("latency not monotonic or empty: %+v", l)
	}
	if code := exitCode(sum); code != 0 {
		t.Errorf("exitCode = %d, want 0", code)
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.badRequests) > 0 {
		t.Errorf("server saw %d bad requests, first: %s", len(fake.badRequests), fake.badRequests[0])
	}
	if fake.duplicateKey != 0 {
		t.Errorf("server saw %d duplicate keys", fake.duplicateKey)
	}
	if len(fake.referrers) != numReferrers {
		t.Errorf("referrers created = %d, want %d", len(fake.referrers), numReferrers)
	}
	if fake.created != 500 {
		t.Errorf("server saw %d customer creates, want 500", fake.created)
	}
	if fake.unknownRefs != 0 {
		t.Errorf("%d bodies referenced a referrer that was not created", fake.unknownRefs)
	}
	if frac := float64(fake.referred) / float64(fake.created); frac < 0.3 || frac > 0.7 {
		t.Errorf("referred fraction = %.2f (%d/%d), want about 0.5", frac, fake.referred, fake.created)
	}
}

func TestRunCountsStatusFailures(t *testing.T) {
	fake := newFakeServer()
	fake.failEvery = 10
	srv := httptest.NewServer(fake)
	defer srv.Close()

	cfg := testConfig(srv.URL)
	cfg.MaxRequests = 200
	sum, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Requests != 200 || sum.Failures != 20 || sum.StatusCounts[http.StatusConflict] != 20 {
		t.Errorf("requests=%d failures=%d status=%v, want 200, 20, {409:20}", sum.Requests, sum.Failures, sum.StatusCounts)
	}
	if code := exitCode(sum); code != 1 {
		t.Errorf("exitCode = %d, want 1 for 10%% failures", code)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	srv := httptest.NewServer(newFakeServer())
	defer srv.Close()

	cfg := testConfig(srv.URL)
	cfg.MaxRequests = 0
	cfg.Duration = 200 * time.Millisecond
	cfg.Warmup = 100 * time.Millisecond
	begin := time.Now()
	sum, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("run took %v, want about 300ms", took)
	}
	if sum.Requests == 0 || sum.Failures != 0 {
		t.Errorf("requests=%d failures=%d", sum.Requests, sum.Failures)
	}
	if sum.DurationSec < 0.19 || sum.DurationSec > 2 {
		t.Errorf("measured duration = %vs, want about 0.2s", sum.DurationSec)
	}
}

// failTransport fails the test if any request is attempted.
type failTransport struct{ calls atomic.Int64 }

func (f *failTransport) RoundTrip(*http.Request) (*http.Response, error) {
	f.calls.Add(1)
	return nil, errors.New("must not send")
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{
		"http://192.0.2.1:8080",
		"http://[2001:db8::1]:8080",
		"http://10.0.0.1",
		"http://0.0.0.0:8080",
	} {
		rt := &failTransport{}
		cfg := testConfig(u)
		cfg.transport = rt
		sum, err := run(context.Background(), cfg, io.Discard)
		if !errors.Is(err, errNotLoopback) {
			t.Errorf("%s: err = %v, want errNotLoopback", u, err)
		}
		if sum != nil {
			t.Errorf("%s: got a summary, want none", u)
		}
		if n := rt.calls.Load(); n != 0 {
			t.Errorf("%s: %d requests were sent", u, n)
		}
	}

	var stderr bytes.Buffer
	code := realMain([]string{"-url", "http://192.0.2.1:8080", "-d", "1s", "-warmup", "0"}, io.Discard, &stderr)
	if code != 2 {
		t.Errorf("realMain exit = %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "non-loopback") {
		t.Errorf("stderr = %q, want a non-loopback message", stderr.String())
	}
}

func TestCheckLoopbackAllows(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "127.1.2.3", "::1"} {
		if err := checkLoopback(context.Background(), h); err != nil {
			t.Errorf("checkLoopback(%q) = %v, want nil", h, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	base := testConfig("http://127.0.0.1:8080")
	cases := map[string]func(*config){
		"zero concurrency": func(c *config) { c.Concurrency = 0 },
		"too long":         func(c *config) { c.Duration = 11 * time.Minute },
		"zero duration":    func(c *config) { c.Duration = 0 },
		"negative n":       func(c *config) { c.MaxRequests = -1 },
		"ratio > 1":        func(c *config) { c.ReferrerRatio = 1.5 },
		"unknown scenario": func(c *config) { c.Scenario = "nope" },
		"bad scheme":       func(c *config) { c.URL = "ftp://127.0.0.1" },
		"zero key count":   func(c *config) { c.KeyCount = 0 },
		"no %d in pattern": func(c *config) { c.KeyPattern = "seed" },
	}
	for name, mut := range cases {
		cfg := base
		mut(&cfg)
		if _, err := validate(cfg); !errors.Is(err, errUsage) {
			t.Errorf("%s: err = %v, want errUsage", name, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	var ten []time.Duration
	for i := 1; i <= 10; i++ {
		ten = append(ten, time.Duration(i)*time.Millisecond)
	}
	one := []time.Duration{7 * time.Millisecond}
	cases := []struct {
		data []time.Duration
		p    float64
		want time.Duration
	}{
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 90, 90 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 100, 100 * time.Millisecond},
		{hundred, 0, 1 * time.Millisecond},
		{ten, 50, 5 * time.Millisecond},
		{ten, 90, 9 * time.Millisecond},
		{ten, 99, 10 * time.Millisecond},
		{ten, 100, 10 * time.Millisecond},
		{one, 50, 7 * time.Millisecond},
		{one, 99, 7 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(c.data, c.p); got != c.want {
			t.Errorf("percentile(n=%d, p=%v) = %v, want %v", len(c.data), c.p, got, c.want)
		}
	}
	if got := ms(1234567 * time.Nanosecond); got != 1.23 {
		t.Errorf("ms(1.234567ms) = %v, want 1.23", got)
	}
}

func TestShortError(t *testing.T) {
	op := &net.OpError{
		Op:     "read",
		Net:    "tcp",
		Source: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 45170},
		Addr:   &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080},
		Err:    os.NewSyscallError("read", syscall.ECONNRESET),
	}
	err := &url.Error{Op: "Post", URL: "http://127.0.0.1:8080/v1/customers", Err: op}
	if got, want := shortError(err), "read tcp: read: connection reset by peer"; got != want {
		t.Errorf("shortError = %q, want %q", got, want)
	}
	if got, want := shortError(&url.Error{Op: "Post", URL: "http://x", Err: io.EOF}), "EOF"; got != want {
		t.Errorf("shortError = %q, want %q", got, want)
	}
}

// fakeTxServer mimics POST /v1/customers and POST /v1/transactions of referd
// for the transactions scenario and records what it saw.
type fakeTxServer struct {
	mu          sync.Mutex
	referrers   map[string]bool
	friends     map[string]bool
	txKeys      map[string]bool
	txCustomers map[string]int // friend key -> transactions
	badRequests []string
	failSuffix  string // if set, creating a friend whose key ends so answers 500
}

func newFakeTxServer() *fakeTxServer {
	return &fakeTxServer{
		referrers:   make(map[string]bool),
		friends:     make(map[string]bool),
		txKeys:      make(map[string]bool),
		txCustomers: make(map[string]int),
	}
}

func (f *fakeTxServer) bad(msg string) {
	f.mu.Lock()
	f.badRequests = append(f.badRequests, msg)
	f.mu.Unlock()
}

var amountRE = regexp.MustCompile(`^\d+\.\d{2}$`)

func (f *fakeTxServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		f.bad("bad Authorization header: " + got)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.bad("bad Content-Type: " + ct)
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/customers":
		f.createCustomer(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/transactions":
		f.createTransaction(w, r)
	default:
		f.bad(r.Method + " " + r.URL.Path)
		http.NotFound(w, r)
	}
}

func (f *fakeTxServer) createCustomer(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Key               string `json:"key"`
		ReferringCustomer *struct {
			Key string `json:"key"`
		} `json:"referring_customer"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		f.bad("bad customer body: " + err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.referrers[body.Key] || f.friends[body.Key] {
		f.badRequests = append(f.badRequests, "duplicate customer "+body.Key)
		w.WriteHeader(http.StatusConflict)
		return
	}
	switch {
	case strings.Contains(body.Key, "-ref-") && body.ReferringCustomer == nil:
		f.referrers[body.Key] = true
	case strings.Contains(body.Key, "-f-") && body.ReferringCustomer != nil:
		if !f.referrers[body.ReferringCustomer.Key] {
			f.badRequests = append(f.badRequests, "friend "+body.Key+" names unknown referrer "+body.ReferringCustomer.Key)
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		if f.failSuffix != "" && strings.HasSuffix(body.Key, f.failSuffix) {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":"boom"}`)
			return
		}
		f.friends[body.Key] = true
	default:
		f.badRequests = append(f.badRequests, "unexpected customer "+body.Key)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"data":{},"status":1}`)
}

func (f *fakeTxServer) createTransaction(w http.ResponseWriter, r *http.Request) {
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		f.bad("bad transaction body: " + err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var (
		customer struct {
			Key string `json:"key"`
		}
		key, action string
	)
	errs := []error{
		json.Unmarshal(raw["customer"], &customer),
		json.Unmarshal(raw["key"], &key),
		json.Unmarshal(raw["action"], &action),
	}
	if err := errors.Join(errs...); err != nil || len(raw) != 4 {
		f.bad("bad transaction fields: " + string(mustJSON(raw)))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// The amount must be a JSON number written as exact decimal text.
	amount := string(raw["amount"])
	if !amountRE.MatchString(amount) {
		f.bad("bad amount text: " + amount)
	} else {
		whole, frac, _ := strings.Cut(amount, ".")
		w, _ := strconv.Atoi(whole)
		c, _ := strconv.Atoi(frac)
		if cents := w*100 + c; cents < 100 || cents > 50000 {
			f.bad("amount out of range: " + amount)
		}
	}
	if action != "sale" {
		f.bad("bad action: " + action)
	}
	if !strings.Contains(key, "-t-") {
		f.bad("bad transaction key: " + key)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.txKeys[key] {
		f.badRequests = append(f.badRequests, "duplicate transaction key "+key)
	}
	f.txKeys[key] = true
	if !f.friends[customer.Key] {
		f.badRequests = append(f.badRequests, "transaction for unknown customer "+customer.Key)
	}
	f.txCustomers[customer.Key]++
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"data":{},"status":1}`)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestRunTransactions(t *testing.T) {
	fake := newFakeTxServer()
	srv := httptest.NewServer(fake)
	defer srv.Close()

	cfg := testConfig(srv.URL)
	cfg.Scenario = "transactions"
	cfg.MaxRequests = 300
	sum, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Requests != 300 || sum.Successes != 300 || sum.Failures != 0 || sum.Aborted != 0 {
		t.Errorf("requests=%d successes=%d failures=%d aborted=%d, want 300/300/0/0 (kinds %v, status %v)",
			sum.Requests, sum.Successes, sum.Failures, sum.Aborted, sum.ErrorKinds, sum.StatusCounts)
	}
	if code := exitCode(sum); code != 0 {
		t.Errorf("exitCode = %d, want 0", code)
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.badRequests) > 0 {
		t.Errorf("server saw %d bad requests, first: %s", len(fake.badRequests), fake.badRequests[0])
	}
	if len(fake.referrers) != txReferrers || len(fake.friends) != txFriends {
		t.Errorf("setup created %d referrers and %d friends, want %d and %d",
			len(fake.referrers), len(fake.friends), txReferrers, txFriends)
	}
	if len(fake.txKeys) != 300 {
		t.Errorf("server saw %d distinct transactions, want 300", len(fake.txKeys))
	}
	for k := range fake.txKeys {
		if !strings.HasPrefix(k, sum.RunID+"-t-") {
			t.Errorf("transaction key %q lacks run prefix %q", k, sum.RunID)
			break
		}
	}
	// 300 consecutive n spread over 300 distinct friends (300 < 1024).
	if len(fake.txCustomers) != 300 {
		t.Errorf("transactions went to %d distinct friends, want 300", len(fake.txCustomers))
	}
}

func TestRunTransactionsSetupFailure(t *testing.T) {
	fake := newFakeTxServer()
	fake.failSuffix = "-f-500"
	srv := httptest.NewServer(fake)
	defer srv.Close()

	cfg := testConfig(srv.URL)
	cfg.Scenario = "transactions"
	cfg.MaxRequests = 10
	sum, err := run(context.Background(), cfg, io.Discard)
	if err == nil || sum != nil {
		t.Fatalf("run = %v, %v; want a setup error", sum, err)
	}
	if errors.Is(err, errUsage) || !strings.Contains(err.Error(), "friend 500") || !strings.Contains(err.Error(), "HTTP 500") {
		t.Errorf("err = %v, want a setup error naming friend 500 and HTTP 500", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.txKeys) != 0 {
		t.Errorf("%d measured requests were sent after the failed setup", len(fake.txKeys))
	}
}

// fakeReadServer answers GET /v1/customers/<key>/<what> for keys in a fixed
// set and records what it saw.
type fakeReadServer struct {
	what  string
	known map[string]bool

	mu          sync.Mutex
	seen        map[string]int
	badRequests []string
}

func newFakeReadServer(what, pattern string, count int) *fakeReadServer {
	f := &fakeReadServer{what: what, known: make(map[string]bool), seen: make(map[string]int)}
	for i := range count {
		f.known[fmt.Sprintf(pattern, i)] = true
	}
	return f
}

func (f *fakeReadServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bad := func(msg string) {
		f.badRequests = append(f.badRequests, msg)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		bad("bad Authorization header: " + got)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/customers/")
	key, ok2 := strings.CutSuffix(rest, "/"+f.what)
	if r.Method != http.MethodGet || !ok || !ok2 || r.URL.RawQuery != "" {
		bad(r.Method + " " + r.URL.String())
		http.NotFound(w, r)
		return
	}
	if b, _ := io.ReadAll(r.Body); len(b) != 0 || r.ContentLength > 0 {
		bad("GET with a body")
	}
	if !f.known[key] {
		bad("unknown customer key " + strconv.Quote(key))
		http.NotFound(w, r)
		return
	}
	f.seen[key]++
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"data":{},"status":1}`)
}

func TestRunReadScenarios(t *testing.T) {
	cases := []struct {
		scenario string
		pattern  string
		count    int
	}{
		{"stats", "seed-r-%d", 10000},
		{"stats", "seed-r-%d", 37},
		{"balance", "seed-r-%d", 10000},
		// A literal percent sign and a slash must survive path escaping.
		{"balance", "b%%/x %d", 37},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s/%s/%d", c.scenario, c.pattern, c.count)
		t.Run(name, func(t *testing.T) {
			fake := newFakeReadServer(c.scenario, c.pattern, c.count)
			srv := httptest.NewServer(fake)
			defer srv.Close()

			cfg := testConfig(srv.URL)
			cfg.Scenario = c.scenario
			cfg.KeyPattern = c.pattern
			cfg.KeyCount = c.count
			cfg.MaxRequests = 300
			sum, err := run(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if sum.Requests != 300 || sum.Successes != 300 || sum.Failures != 0 || sum.Aborted != 0 {
				t.Errorf("requests=%d successes=%d failures=%d aborted=%d, want 300/300/0/0 (kinds %v, status %v)",
					sum.Requests, sum.Successes, sum.Failures, sum.Aborted, sum.ErrorKinds, sum.StatusCounts)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if len(fake.badRequests) > 0 {
				t.Errorf("server saw %d bad requests, first: %s", len(fake.badRequests), fake.badRequests[0])
			}
			total := 0
			for _, n := range fake.seen {
				total += n
			}
			if want := min(300, c.count); total != 300 || len(fake.seen) != want {
				t.Errorf("server answered %d requests for %d keys, want 300 for %d", total, len(fake.seen), want)
			}
		})
	}
}

func TestCheckKeyPattern(t *testing.T) {
	for _, p := range []string{"seed-r-%d", "%d", "a%%b-%d", "%d%%"} {
		if err := checkKeyPattern(p); err != nil {
			t.Errorf("checkKeyPattern(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "seed", "%d-%d", "%s", "seed-%s-%d", "%5d", "%-d", "seed-%", "%%d", "%v"} {
		if err := checkKeyPattern(p); err == nil {
			t.Errorf("checkKeyPattern(%q) = nil, want an error", p)
		}
	}
	for _, args := range [][]string{
		{"-scenario", "stats", "-key-pattern", "seed-r"},
		{"-scenario", "stats", "-key-pattern", "seed-%d-%d"},
		{"-scenario", "balance", "-key-pattern", "seed-%s"},
		{"-scenario", "stats", "-key-count", "0"},
	} {
		// Validation fails before any connection is made.
		var stderr bytes.Buffer
		if code := realMain(append(args, "-d", "1s", "-warmup", "0"), io.Discard, &stderr); code != 2 {
			t.Errorf("realMain(%q) exit = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "-key-") {
			t.Errorf("realMain(%q) stderr = %q, want it to name the flag", args, stderr.String())
		}
	}
}

func TestTxAmount(t *testing.T) {
	seen := make(map[string]bool)
	for n := int64(0); n < 200000; n++ {
		a := txAmount(n)
		cents := 100 + (n*7919)%49901
		if want := fmt.Sprintf("%d.%02d", cents/100, cents%100); a != want {
			t.Fatalf("txAmount(%d) = %q, want %q", n, a, want)
		}
		if !amountRE.MatchString(a) || cents < 100 || cents > 50000 {
			t.Fatalf("txAmount(%d) = %q out of [1.00, 500.00]", n, a)
		}
		seen[a] = true
	}
	if len(seen) != 49901 || !seen["1.00"] || !seen["500.00"] {
		t.Errorf("got %d distinct amounts (1.00: %v, 500.00: %v), want all 49901",
			len(seen), seen["1.00"], seen["500.00"])
	}
	if got := txAmount(1 << 62); !amountRE.MatchString(got) {
		t.Errorf("txAmount(2^62) = %q", got)
	}
}

// The ingest-stripe scenario's events verify with stripe-go's own check and never
// repeat an event id.
func TestRunIngestStripe(t *testing.T) {
	const secret = "whsec_load_test_secret"
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/ingest/stripe/prg1" {
			w.WriteHeader(404)
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), secret,
			webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		if err != nil || ev.Type != "invoice.paid" {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[ev.ID] {
			w.WriteHeader(409)
			return
		}
		seen[ev.ID] = true
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Scenario, cfg.Program, cfg.Secret, cfg.MaxRequests = "ingest-stripe", "prg1", secret, 300
	sum, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 300 || sum.Successes != 300 {
		t.Errorf("summary %+v", sum)
	}
	cfg.Secret = "whsec_wrong"
	if sum, err := run(context.Background(), cfg, io.Discard); err != nil || sum.Successes != 0 {
		t.Errorf("wrongly signed events accepted: %+v %v", sum, err)
	}
}

func TestValidateRate(t *testing.T) {
	t.Parallel()
	base := testConfig("http://127.0.0.1:8080")
	for _, r := range []float64{0, 0.5, 10, 2000, maxRate} {
		cfg := base
		cfg.Rate = r
		if _, err := validate(cfg); err != nil {
			t.Errorf("rate %v: err = %v, want nil", r, err)
		}
	}
	for _, r := range []float64{-1, -0.001, math.NaN(), math.Inf(1), math.Inf(-1), maxRate * 2} {
		cfg := base
		cfg.Rate = r
		if _, err := validate(cfg); !errors.Is(err, errUsage) {
			t.Errorf("rate %v: err = %v, want errUsage", r, err)
		}
	}
	// Validation fails before any connection is made.
	var stderr bytes.Buffer
	if code := realMain([]string{"-rate", "-5", "-d", "1s", "-warmup", "0"}, io.Discard, &stderr); code != 2 {
		t.Errorf("realMain(-rate -5) exit = %d, want 2 (stderr %q)", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "-rate") {
		t.Errorf("stderr = %q, want it to name -rate", stderr.String())
	}
}

// fakeClock is a settable clock for the pacer.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// While clients wait ahead of the schedule, the pacer hands out the exact
// grid origin + k/rate in order; after a gap it continues from now without a
// burst of past slots.
func TestPacerSlots(t *testing.T) {
	t.Parallel()
	origin := time.Date(2025, 5, 9, 17, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: origin}
	p := newPacer(100, origin, clock.now) // 10ms apart
	if p.interval != 10*time.Millisecond {
		t.Fatalf("interval = %v, want 10ms", p.interval)
	}
	const n = 50
	for k := range n {
		if got, want := p.reserve(), origin.Add(time.Duration(k)*10*time.Millisecond); !got.Equal(want) {
			t.Fatalf("slot %d = %v, want %v", k, got.Sub(origin), want.Sub(origin))
		}
	}
	// The clock moving forward inside the reserved range changes nothing.
	clock.set(origin.Add(200 * time.Millisecond))
	if got, want := p.reserve(), origin.Add(n*10*time.Millisecond); !got.Equal(want) {
		t.Fatalf("slot %d = %v, want %v", n, got.Sub(origin), want.Sub(origin))
	}
	// All clients were busy for a while: the next slot is now, not a past one.
	late := origin.Add(time.Hour)
	clock.set(late)
	for k := range 3 {
		if got, want := p.reserve(), late.Add(time.Duration(k)*10*time.Millisecond); !got.Equal(want) {
			t.Fatalf("slot after gap %d = %v, want %v", k, got.Sub(origin), want.Sub(origin))
		}
	}
	// A fractional rate rounds the interval to whole nanoseconds.
	if p := newPacer(3, origin, clock.now); p.interval != 333333333 {
		t.Errorf("interval at 3/s = %d, want 333333333ns", p.interval)
	}
}

// Concurrent clients get N distinct slots for N reservations, together
// exactly the grid.
func TestPacerConcurrent(t *testing.T) {
	t.Parallel()
	origin := time.Unix(1_700_000_000, 0)
	clock := &fakeClock{t: origin}
	p := newPacer(1000, origin, clock.now)
	const clients, each = 16, 200
	slots := make([][]time.Time, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for range each {
				slots[c] = append(slots[c], p.reserve())
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	for c := range slots {
		for i, s := range slots[c] {
			if i > 0 && !s.After(slots[c][i-1]) {
				t.Fatalf("client %d got slot %v after %v", c, s.Sub(origin), slots[c][i-1].Sub(origin))
			}
			all = append(all, s.Sub(origin))
		}
	}
	slices.Sort(all)
	if len(all) != clients*each {
		t.Fatalf("got %d slots, want %d", len(all), clients*each)
	}
	for k, d := range all {
		if want := time.Duration(k) * time.Millisecond; d != want {
			t.Fatalf("slot %d = %v, want %v", k, d, want)
		}
	}
}

// A paced run still counts exactly -n requests and reports the target rate.
// (Timing is not asserted: the fake server is fast, the rate low.)
func TestRunRate(t *testing.T) {
	t.Parallel()
	fake := newFakeServer()
	srv := httptest.NewServer(fake)
	defer srv.Close()

	cfg := testConfig(srv.URL)
	cfg.Rate = 400
	cfg.MaxRequests = 20
	sum, err := run(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Requests != 20 || sum.Successes != 20 || sum.TargetRate != 400 || sum.AchievedRate <= 0 {
		t.Errorf("requests=%d successes=%d target=%v achieved=%v, want 20/20/400/>0",
			sum.Requests, sum.Successes, sum.TargetRate, sum.AchievedRate)
	}
	var out bytes.Buffer
	printText(&out, sum)
	if !strings.Contains(out.String(), "(target 400.00)") {
		t.Errorf("text summary lacks the rate line:\n%s", out.String())
	}
}

// startSink runs runSink on a fresh 127.0.0.1:0 listener until the returned
// stop function is called; stop returns the summary.
func startSink(t *testing.T) (base string, stop func() *sinkSummary) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		sum *sinkSummary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := runSink(ctx, ln, time.Minute, io.Discard)
		done <- result{sum, err}
	}()
	return "http://" + ln.Addr().String(), func() *sinkSummary {
		cancel()
		r := <-done
		if r.err != nil {
			t.Fatalf("runSink: %v", r.err)
		}
		return r.sum
	}
}

// postSink POSTs body with the webhook-id header (if id != "") and checks
// the 204 with an empty body.
func postSink(t *testing.T, client *http.Client, url, id, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set("webhook-id", id)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(b) != 0 {
		t.Errorf("POST %s: HTTP %d with %d body bytes, want 204 and none", id, resp.StatusCode, len(b))
	}
}

func webhookBody(event string, created time.Time) string {
	ts := created.UTC().Format(webhookTimeLayout)
	return fmt.Sprintf(`{"event":%q,"webhook_key":"wh_test","created_at":%q,"data":{"key":"k1","created_at":%q}}`,
		event, time.Now().UTC().Format(webhookTimeLayout), ts)
}

// Two transaction.created deliveries, one of them sent twice with the same
// webhook-id, and one customer.created: 4 deliveries, 1 duplicate, and 2
// latency samples (the duplicate's is left out).
func TestSink(t *testing.T) {
	t.Parallel()
	base, stop := startSink(t)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	created := time.Now().Add(-time.Hour)
	postSink(t, client, base+"/hook", "msg_1", webhookBody("transaction.created", created))
	postSink(t, client, base+"/hook", "msg_2", webhookBody("transaction.created", created))
	postSink(t, client, base+"/hook", "msg_2", webhookBody("transaction.created", created))
	postSink(t, client, base+"/", "msg_3", webhookBody("customer.created", created))
	sum := stop()

	if sum.Deliveries != 4 || sum.Duplicates != 1 || sum.Invalid != 0 || sum.MissingID != 0 {
		t.Errorf("deliveries=%d duplicates=%d invalid=%d missing=%d, want 4/1/0/0",
			sum.Deliveries, sum.Duplicates, sum.Invalid, sum.MissingID)
	}
	if want := map[string]int64{"transaction.created": 3, "customer.created": 1}; !maps.Equal(sum.Events, want) {
		t.Errorf("events = %v, want %v", sum.Events, want)
	}
	l := sum.TxLatency
	if l.Count != 2 || l.BadTime != 0 {
		t.Errorf("latency count=%d bad=%d, want 2 and 0", l.Count, l.BadTime)
	}
	if hour := float64(time.Hour / time.Millisecond); l.P50 < hour || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Errorf("latency = %+v, want at least 1h and monotonic", l)
	}
	if sum.First.IsZero() || sum.Last.Before(sum.First) || sum.First.Before(sum.Start) {
		t.Errorf("start=%v first=%v last=%v", sum.Start, sum.First, sum.Last)
	}
	var perSec int64
	for _, sc := range sum.PerSecond {
		perSec += sc.Count
	}
	if perSec != 4 || len(sum.PerSecond) == 0 {
		t.Errorf("per-second counts %v add up to %d, want 4", sum.PerSecond, perSec)
	}

	var out bytes.Buffer
	printSinkText(&out, sum)
	for _, want := range []string{`deliveries: +4 `, `duplicates: +1 `, `\n +transaction\.created +3\n`, `\n +customer\.created +1\n`, `n=2`, `per second`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("text summary does not match %q:\n%s", want, out.String())
		}
	}
	b, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil || back["deliveries"] != 4.0 || back["duplicates"] != 1.0 {
		t.Errorf("JSON summary %s (%v)", b, err)
	}
}

// Bodies that are not webhooks still count as deliveries (and as invalid),
// other methods are refused and not counted.
func TestSinkOddRequests(t *testing.T) {
	t.Parallel()
	base, stop := startSink(t)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	postSink(t, client, base, "", webhookBody("transaction.created", time.Now()))                 // no webhook-id
	postSink(t, client, base, "m1", `{"event":"transaction.created","data":{}}`)                  // no data.created_at
	postSink(t, client, base, "m2", `not json`)                                                   // invalid
	postSink(t, client, base, "m3", `{"data":{}}`)                                                // no event: invalid
	postSink(t, client, base, "m4", `{"event":"x","pad":"`+strings.Repeat("a", maxSinkBody)+`"}`) // too large
	resp, err := client.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: HTTP %d, want 405", resp.StatusCode)
	}
	sum := stop()
	if sum.Deliveries != 5 || sum.Invalid != 3 || sum.MissingID != 1 || sum.Duplicates != 0 {
		t.Errorf("deliveries=%d invalid=%d missing=%d duplicates=%d, want 5/3/1/0",
			sum.Deliveries, sum.Invalid, sum.MissingID, sum.Duplicates)
	}
	if sum.Events["transaction.created"] != 2 || sum.TxLatency.Count != 1 || sum.TxLatency.BadTime != 1 {
		t.Errorf("events=%v latency=%+v, want 2 transaction.created, 1 sample, 1 bad time", sum.Events, sum.TxLatency)
	}
}

func TestParseWebhookTime(t *testing.T) {
	t.Parallel()
	want := time.Date(2025, 5, 9, 17, 42, 13, 123456000, time.UTC)
	for _, s := range []string{"2025-05-09T17:42:13.123456Z", "2025-05-09T19:42:13.123456+02:00"} {
		if got, err := parseWebhookTime(s); err != nil || !got.Equal(want) {
			t.Errorf("parseWebhookTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := parseWebhookTime("yesterday"); err == nil {
		t.Error("parseWebhookTime(yesterday) = nil error")
	}
}

func TestSinkRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"192.0.2.1:18099", "0.0.0.0:18099", ":18099", "[2001:db8::1]:18099", "[::]:18099"} {
		var stderr bytes.Buffer
		if code := realMain([]string{"-sink", addr, "-d", "1s"}, io.Discard, &stderr); code != 2 {
			t.Errorf("-sink %s: exit = %d, want 2 (stderr %q)", addr, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "non-loopback") {
			t.Errorf("-sink %s: stderr = %q, want a non-loopback message", addr, stderr.String())
		}
	}
	for _, args := range [][]string{
		{"-sink", "127.0.0.1"},                         // no port
		{"-sink", "127.0.0.1:0", "-d", "11m"},          // too long
		{"-sink", "127.0.0.1:0", "-url", "http://x:1"}, // a load flag
		{"-sink", "127.0.0.1:0", "-rate", "5"},         // a load flag
	} {
		var stderr bytes.Buffer
		if code := realMain(args, io.Discard, &stderr); code != 2 {
			t.Errorf("realMain(%q) exit = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A sink that receives nothing stops after -d, prints its JSON summary and
// exits 1; meanwhile it prints progress to stderr once a second.
func TestSinkMainNoDeliveries(t *testing.T) {
	t.Parallel()
	var stdout, stderr syncBuffer
	code := realMain([]string{"-sink", "127.0.0.1:0", "-d", "1500ms", "-json"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit = %d, want 1 (stderr %q)", code, stderr.String())
	}
	var sum sinkSummary
	if err := json.Unmarshal([]byte(stdout.String()), &sum); err != nil || sum.Deliveries != 0 || !strings.HasPrefix(sum.Addr, "127.0.0.1:") {
		t.Errorf("stdout %q: %+v, %v", stdout.String(), sum, err)
	}
	if !strings.Contains(stderr.String(), "sink: 0 deliveries (+0)") {
		t.Errorf("stderr = %q, want a progress line", stderr.String())
	}
}

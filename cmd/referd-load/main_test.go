package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
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

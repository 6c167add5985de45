package webhook

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// answer starts a server that runs h and returns its URL.
func answer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// deliver makes one attempt to url with a fresh secret through a client that
// allows loopback.
func deliver(t *testing.T, ctx context.Context, c *http.Client, url string) Attempt {
	t.Helper()
	if c == nil {
		c = NewClient(true)
	}
	return Deliver(ctx, c, url, Message{ID: "msg_1", Body: []byte(`{}`), Secrets: []string{newSecret(t)}})
}

func TestOutcomeByStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		want   OutcomeKind
	}{
		{200, Succeeded},
		{201, Succeeded},
		{204, Succeeded},
		{299, Succeeded},
		{301, Retry},
		{304, Retry},
		{400, Retry},
		{401, Retry},
		{404, Retry},
		{410, Gone},
		{429, Retry},
		{500, Retry},
		{503, Retry},
	} {
		url := answer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) })
		a := deliver(t, context.Background(), nil, url)
		if a.Err != nil || a.StatusCode != tc.status {
			t.Errorf("status %d: attempt %+v", tc.status, a)
		}
		if got := a.Outcome(time.Now()); got.Kind != tc.want || got.RetryAfter != 0 {
			t.Errorf("status %d: outcome %+v, want %v", tc.status, got, tc.want)
		}
	}
}

func TestOutcomeRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		status     int
		retryAfter string
		want       time.Duration
	}{
		{429, "120", 2 * time.Minute},
		{503, now.Add(90 * time.Second).UTC().Format(http.TimeFormat), 90 * time.Second},
		{500, "30", 30 * time.Second},
		{429, "999999", 24 * time.Hour},
		{429, "soon", 0},
		{200, "120", 0},
		{410, "120", 0},
	} {
		url := answer(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", tc.retryAfter)
			w.WriteHeader(tc.status)
		})
		a := deliver(t, context.Background(), nil, url)
		if a.RetryAfter != tc.retryAfter {
			t.Errorf("%d %q: attempt kept Retry-After %q", tc.status, tc.retryAfter, a.RetryAfter)
		}
		if got := a.Outcome(now).RetryAfter; got != tc.want {
			t.Errorf("%d %q: RetryAfter = %s, want %s", tc.status, tc.retryAfter, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{" 5 ", 5 * time.Second},
		{"86400", 24 * time.Hour},
		{"86401", 24 * time.Hour},
		{"99999999999999999999999", 24 * time.Hour},
		{"-5", 0},
		{"+5", 0},
		{"1.5", 0},
		{"Wed, 04 Mar 2026 05:08:07 GMT", 2 * time.Minute},
		{"Wednesday, 04-Mar-26 05:08:07 GMT", 2 * time.Minute}, // RFC 850
		{"Wed Mar  4 05:08:07 2026", 2 * time.Minute},          // ANSI C asctime
		{"Wed, 04 Mar 2026 05:00:00 GMT", 0},                   // past
		{"Wed, 04 Mar 2027 05:00:00 GMT", 24 * time.Hour},
		{"tomorrow", 0},
	} {
		if got := parseRetryAfter(tc.v, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestResponseKeptTo1KiB(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"short", []byte("ok"), "ok"},
		{"1 MiB ASCII", bytes.Repeat([]byte("a"), 1<<20), strings.Repeat("a", 1024)},
		// One ASCII byte then two-byte runes: byte 1024 cuts "é" in half.
		{"rune cut at the limit", append([]byte("x"), bytes.Repeat([]byte("é"), 1<<19)...), "x" + strings.Repeat("é", 511)},
		{"Latin-1, not UTF-8", bytes.Repeat([]byte{0xe9}, 1<<20), strings.Repeat("\uFFFD", 341)},
		{"short invalid", []byte("caf\xe9"), "caf\uFFFD"},
	} {
		url := answer(t, func(w http.ResponseWriter, _ *http.Request) { w.Write(tc.body) })
		a := deliver(t, context.Background(), nil, url)
		if a.Err != nil {
			t.Fatalf("%s: %v", tc.name, a.Err)
		}
		if len(a.Response) > 1024 || !utf8.ValidString(a.Response) || a.Response != tc.want {
			t.Errorf("%s: Response has %d bytes (valid UTF-8: %v), want %d", tc.name,
				len(a.Response), utf8.ValidString(a.Response), len(tc.want))
		}
	}
}

// hanging starts a server that never answers until the test ends.
func hanging(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	url := answer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return url
}

func TestHangingServerContextDeadline(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	a := deliver(t, ctx, nil, hanging(t))
	if !errors.Is(a.Err, context.DeadlineExceeded) || a.StatusCode != 0 {
		t.Errorf("attempt %+v, want a deadline error", a)
	}
	if k := a.Outcome(time.Now()).Kind; k != Retry {
		t.Errorf("outcome %v, want retry", k)
	}
}

func TestHangingServerClientTimeout(t *testing.T) {
	t.Parallel()
	c := NewClientWith(Options{AllowPrivate: true, Timeout: 200 * time.Millisecond})
	a := deliver(t, context.Background(), c, hanging(t))
	if a.Err == nil || a.Outcome(time.Now()).Kind != Retry {
		t.Errorf("attempt %+v, want a timeout error", a)
	}
}

func TestDeliverBadSecretSendsNothing(t *testing.T) {
	t.Parallel()
	srv, hits := counter(t)
	a := Deliver(context.Background(), NewClient(true), srv.URL, Message{ID: "m", Secrets: []string{"nope"}})
	if !errors.Is(a.Err, ErrInvalidSecret) || hits.Load() != 0 {
		t.Errorf("attempt %+v, %d hits; want ErrInvalidSecret and no request", a, hits.Load())
	}
}

package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestForbidden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"fc00::1", true},
		{"fdff:ffff::1", true},
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"febf::1", true},
		{"100.64.0.1", true},
		{"100.100.100.200", true},
		{"100.127.255.255", true},
		{"100.128.0.1", false},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"ff0e::1", true},
		{"255.255.255.255", true},
		{"fd00:ec2::254", true},
		// IPv4-mapped IPv6 forms.
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.1.2.3", true},
		{"::ffff:172.16.0.1", true},
		{"::ffff:192.168.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:100.64.0.1", true},
		{"::ffff:0.0.0.0", true},
		{"::ffff:224.0.0.1", true},
		{"::ffff:255.255.255.255", true},
		{"::ffff:8.8.8.8", false},
		// NAT64 forms.
		{"64:ff9b::7f00:1", true},
		{"64:ff9b::a9fe:a9fe", true},
		{"64:ff9b::808:808", false},
		// Public.
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"93.184.216.34", false},
		{"2606:4700::1111", false},
		{"2001:4860:4860::8888", false},
	} {
		if got := forbidden(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("forbidden(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if !forbidden(netip.Addr{}) {
		t.Error("the zero Addr is allowed")
	}
}

// counter starts a server that counts requests and answers 200.
func counter(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestDialRefusesLoopback(t *testing.T) {
	t.Parallel()
	srv, hits := counter(t)
	msg := Message{ID: "msg_1", Body: []byte(`{}`), Secrets: []string{newSecret(t)}}

	a := Deliver(context.Background(), NewClient(false), srv.URL, msg)
	if !errors.Is(a.Err, ErrForbiddenTarget) {
		t.Errorf("private refused: Err = %v, want ErrForbiddenTarget", a.Err)
	}
	if a.Outcome(time.Now()).Kind != Retry {
		t.Errorf("private refused: outcome %v, want retry", a.Outcome(time.Now()).Kind)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server got %d requests while refused", n)
	}

	a = Deliver(context.Background(), NewClient(true), srv.URL, msg)
	if a.Err != nil || a.Outcome(time.Now()).Kind != Succeeded || hits.Load() != 1 {
		t.Errorf("private allowed: %+v, %d hits", a, hits.Load())
	}
}

// TestDialRefusesNameResolvingToLoopback shows the check is on the resolved
// address: the URL names a host, not an IP.
func TestDialRefusesNameResolvingToLoopback(t *testing.T) {
	t.Parallel()
	srv, hits := counter(t)
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	a := Deliver(context.Background(), NewClient(false), url, Message{ID: "m", Secrets: []string{newSecret(t)}})
	if !errors.Is(a.Err, ErrForbiddenTarget) || hits.Load() != 0 {
		t.Errorf("Deliver(%s) Err = %v, %d hits; want ErrForbiddenTarget, 0 hits", url, a.Err, hits.Load())
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	target, hits := counter(t)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	t.Cleanup(redirect.Close)

	a := Deliver(context.Background(), NewClient(true), redirect.URL, Message{ID: "m", Secrets: []string{newSecret(t)}})
	if a.Err != nil || a.StatusCode != http.StatusFound {
		t.Errorf("Deliver = %+v, want a 302 attempt", a)
	}
	if k := a.Outcome(time.Now()).Kind; k != Retry {
		t.Errorf("outcome = %v, want retry", k)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("redirect target got %d requests", n)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		insecure     bool
		err          error
	}{
		{"https://example.com/hooks", false, false, nil},
		{"HTTPS://Example.com:8443/hooks?x=1", false, false, nil},
		{"http://example.com/hooks", false, true, nil},
		{"https://8.8.8.8/", false, false, nil},
		{"https://[2606:4700::1111]/", false, false, nil},
		{"ftp://example.com/", false, false, ErrInvalidURL},
		{"example.com/hooks", false, false, ErrInvalidURL},
		{"/hooks", false, false, ErrInvalidURL},
		{"https:///hooks", false, false, ErrInvalidURL},
		{"https:example.com", false, false, ErrInvalidURL},
		{"https://user:pass@example.com/", false, false, ErrInvalidURL},
		{"https://user@example.com/", false, false, ErrInvalidURL},
		{"https://exa mple.com/", false, false, ErrInvalidURL},
		{"https://example.com:99999999/", false, false, ErrInvalidURL},
		{"https://example.com:0/", false, false, ErrInvalidURL},
		{"", false, false, ErrInvalidURL},
		{"http://127.0.0.1:8080/", false, false, ErrForbiddenTarget},
		{"http://169.254.169.254/latest/meta-data", false, false, ErrForbiddenTarget},
		{"http://[::1]/", false, false, ErrForbiddenTarget},
		{"http://[::ffff:10.0.0.1]/", false, false, ErrForbiddenTarget},
		{"http://[fd00:ec2::254]/", false, false, ErrForbiddenTarget},
		{"http://localhost:3000/", false, false, ErrForbiddenTarget},
		{"http://LocalHost./", false, false, ErrForbiddenTarget},
		{"http://app.localhost/", false, false, ErrForbiddenTarget},
		{"http://127.0.0.1:8080/", true, true, nil},
		{"http://localhost:3000/", true, true, nil},
	} {
		insecure, err := CheckURL(tc.url, tc.allowPrivate)
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("CheckURL(%q, %v) error = %v, want %v", tc.url, tc.allowPrivate, err, tc.err)
			continue
		}
		if err == nil && insecure != tc.insecure {
			t.Errorf("CheckURL(%q, %v) insecure = %v, want %v", tc.url, tc.allowPrivate, insecure, tc.insecure)
		}
	}
}

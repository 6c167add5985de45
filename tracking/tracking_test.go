package tracking

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// env is a tracking handler on a fresh schema, served over loopback HTTP.
type env struct {
	t   testing.TB
	db  *store.DB
	h   *Handler
	srv *httptest.Server
}

func newEnv(t testing.TB) *env {
	db := storetest.New(t)
	h := New(db, nil)
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, db: db, h: h, srv: srv}
}

// program creates a program on website with the tracking settings in trackingJSON
// (merged over the defaults; "" keeps them).
func (e *env) program(website, trackingJSON string) store.Program {
	e.t.Helper()
	ctx := context.Background()
	p, _, err := referral.CreateProgram(ctx, e.db, "Shop", website)
	if err != nil {
		e.t.Fatal(err)
	}
	if trackingJSON != "" {
		if p, err = referral.UpdateProgram(ctx, e.db, p.PK, referral.ProgramPatch{Tracking: json.RawMessage(trackingJSON)}); err != nil {
			e.t.Fatal(err)
		}
	}
	return p
}

func (e *env) customer(p store.Program, key string) store.Customer {
	e.t.Helper()
	k := referral.Text(key)
	c, err := referral.CreateCustomer(context.Background(), e.db, p, referral.CustomerInput{Key: &k})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) stats(c store.Customer) (clicks, unique int64) {
	e.t.Helper()
	s, err := store.CustomerStats(context.Background(), e.db, c.PK)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.Clicks, s.UniqueClicks
}

func (e *env) wantStats(c store.Customer, clicks, unique int64) {
	e.t.Helper()
	if gc, gu := e.stats(c); gc != clicks || gu != unique {
		e.t.Errorf("customer %s: clicks, unique_clicks = %d, %d; want %d, %d", c.Key, gc, gu, clicks, unique)
	}
}

// visitor is who sends a request: the address the proxy in front of referd saw,
// and the browser.
type visitor struct {
	ip, ua string
}

var alice = visitor{"203.0.113.7", "Mozilla/5.0 (alice)"}

func (e *env) do(method, path, contentType, body string, v visitor) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if v.ip != "" {
		req.Header.Set("X-Forwarded-For", v.ip)
	}
	req.Header.Set("User-Agent", v.ua)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(b)
}

// beacon sends a click beacon as sendBeacon does (text/plain) and wants a 204.
func (e *env) beacon(p store.Program, key string, v visitor) {
	e.t.Helper()
	resp, body := e.do("POST", "/track/click", "text/plain;charset=UTF-8", fmt.Sprintf(`{"program": %q, "key": %q}`, p.ID, key), v)
	if resp.StatusCode != http.StatusNoContent {
		e.t.Fatalf("beacon %s: %d %s", key, resp.StatusCode, body)
	}
}

func wantHeader(t *testing.T, resp *http.Response, name, want string) {
	t.Helper()
	if got := resp.Header.Get(name); got != want {
		t.Errorf("%s = %q, want %q", name, got, want)
	}
}

// docs/design.md §7: the script, with the browser calls and the referral widget,
// stays at most 12 KB uncompressed.
func TestScriptSize(t *testing.T) {
	if len(script) > 12<<10 {
		t.Errorf("universal.js is %d bytes; it must stay at most 12 KB", len(script))
	}
}

func TestScriptCaching(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	etag := `"` + ScriptVersion + `"`
	for _, tc := range []struct {
		query, cache string
	}{
		{"", "public, max-age=300"},
		{"?v1763712", "public, max-age=300"}, // the loader snippet's cache buster
		{"?v=" + ScriptVersion, "public, max-age=31536000, immutable"},
		{"?v=0123456789ab", "public, max-age=300"}, // an older version: not kept for good
	} {
		resp, body := e.do("GET", "/js/universal.js"+tc.query, "", "", alice)
		if resp.StatusCode != 200 || body != string(script) {
			t.Errorf("GET %s: %d, %d bytes", tc.query, resp.StatusCode, len(body))
		}
		wantHeader(t, resp, "Cache-Control", tc.cache)
		wantHeader(t, resp, "ETag", etag)
		wantHeader(t, resp, "Content-Type", "text/javascript; charset=utf-8")
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/js/universal.js", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match the current version: %d, want 304", resp.StatusCode)
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", `{"link_format": "path", "param": "via", "cookie_days": 0, "attribution": "first_click", "cookie_domain": "shop.test"}`)

	resp, body := e.do("GET", "/track/program/"+p.ID, "", "", alice)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
	wantHeader(t, resp, "Cache-Control", "public, max-age=60")
	wantHeader(t, resp, "Content-Type", "application/json")
	want := `{"data":{"id":"` + p.ID + `","link_format":"path","param":"via","cookie_name":"partnero_referral","cookie_days":0,"attribution":"first_click","cookie_domain":"shop.test","browser_signups":true},"status":1}` + "\n"
	if body != want {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}

	resp, body = e.do("GET", "/track/program/nosuchprogram", "", "", alice)
	if resp.StatusCode != 200 || body != `{"data":null,"status":1}`+"\n" {
		t.Errorf("unknown program: %d %s; want 200 and null settings", resp.StatusCode, body)
	}
	wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req, _ := http.NewRequest("OPTIONS", e.srv.URL+"/track/click", nil)
	req.Header.Set("Origin", "https://shop.test")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("status %d, want 204", resp.StatusCode)
	}
	wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
	wantHeader(t, resp, "Access-Control-Allow-Methods", "POST, OPTIONS")
	wantHeader(t, resp, "Access-Control-Allow-Headers", "Content-Type")
}

func TestClickCounting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	ann, bob := e.customer(p, "ann"), e.customer(p, "bob")
	link, err := referral.CreateLink(context.Background(), e.db, p, referral.LinkInput{CustomerKey: ptr(referral.Text("ann")), Key: ptr(referral.Text("ann-spring"))})
	if err != nil {
		t.Fatal(err)
	}

	e.beacon(p, "ann", alice)
	e.wantStats(ann, 1, 1)
	e.beacon(p, "ann", alice) // the same visitor again that day
	e.wantStats(ann, 2, 1)
	e.beacon(p, link.Key, alice) // another link of the same referrer
	e.wantStats(ann, 3, 1)
	e.beacon(p, "ann", visitor{"198.51.100.1", alice.ua}) // another address
	e.wantStats(ann, 4, 2)
	e.beacon(p, "ann", visitor{alice.ip, "Mozilla/5.0 (other browser)"})
	e.wantStats(ann, 5, 3)
	e.beacon(p, "bob", alice) // unique per referrer
	e.wantStats(bob, 1, 1)
	e.wantStats(ann, 5, 3)

	// JSON as fetch sends it, with the optional fields.
	resp, body := e.do("POST", "/track/click", "application/json", `{"program": "`+p.ID+`", "key": "bob", "url": "https://shop.test/?ref=bob", "referrer": "https://t.co/x"}`, alice)
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Errorf("JSON beacon: %d %q", resp.StatusCode, body)
	}
	wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
	e.wantStats(bob, 2, 1)
}

// The day's visitors start afresh the next day, under a new salt.
func TestClickNextDay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	ann := e.customer(p, "ann")
	day := time.Date(2026, 11, 21, 23, 59, 0, 0, time.UTC)
	e.h.now = func() time.Time { return day }
	e.beacon(p, "ann", alice)
	e.beacon(p, "ann", alice)
	day = day.Add(2 * time.Minute)
	e.beacon(p, "ann", alice)
	e.wantStats(ann, 3, 2)
}

func TestClickErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	gone := e.customer(p, "gone")
	if _, err := referral.DeleteCustomer(context.Background(), e.db, p, "gone"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"not JSON", `program=x&key=y`, 400},
		{"a JSON list", `[]`, 400},
		{"no key", `{"program": "` + p.ID + `"}`, 422},
		{"empty program", `{"program": " ", "key": "ann"}`, 422},
		{"unknown program", `{"program": "nosuchprogram", "key": "gone"}`, 404},
		{"unknown key", `{"program": "` + p.ID + `", "key": "nobody"}`, 404},
		{"deleted referrer", `{"program": "` + p.ID + `", "key": "gone"}`, 404},
		{"too big", `{"program": "` + p.ID + `", "key": "gone", "url": "` + strings.Repeat("x", 5000) + `"}`, 413},
	} {
		resp, body := e.do("POST", "/track/click", "text/plain", tc.body, alice)
		var env struct {
			Status  *int                `json:"status"`
			Message string              `json:"message"`
			Errors  map[string][]string `json:"errors"`
		}
		if resp.StatusCode != tc.status || json.Unmarshal([]byte(body), &env) != nil || env.Status == nil || *env.Status != 0 || env.Message == "" || env.Errors == nil {
			t.Errorf("%s: %d %s; want %d and the error envelope", tc.name, resp.StatusCode, body, tc.status)
		}
		wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
		wantHeader(t, resp, "Content-Type", "application/json")
	}
	e.wantStats(gone, 0, 0)
}

// A burst of concurrent beacons is counted exactly.
func TestClickBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	refs := []store.Customer{e.customer(p, "r0"), e.customer(p, "r1"), e.customer(p, "r2"), e.customer(p, "r3"), e.customer(p, "r4")}
	// 200 beacons: visitor i clicks referrer i%5; visitors 0-49 come twice.
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			v := visitor{fmt.Sprintf("203.0.113.%d", i%150), "burst"}
			body := fmt.Sprintf(`{"program": %q, "key": "r%d"}`, p.ID, i%150%5)
			req, _ := http.NewRequest("POST", e.srv.URL+"/track/click", strings.NewReader(body))
			req.Header.Set("X-Forwarded-For", v.ip)
			req.Header.Set("User-Agent", v.ua)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				errs <- resp.Status
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, c := range refs {
		e.wantStats(c, n/5, 150/5)
	}
}

func TestShareLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	query := e.program("https://shop.test/app?lang=en", "")
	path := e.program("https://path.test/", `{"link_format": "path", "param": "via"}`)
	ann, pat := e.customer(query, "ann"), e.customer(path, "pat")
	ctx := context.Background()
	dest := "https://shop.test/pricing?plan=pro"
	if _, err := referral.CreateLink(ctx, e.db, query, referral.LinkInput{CustomerKey: ptr(referral.Text("ann")), Key: ptr(referral.Text("ann-pro")), DestinationURL: &dest}); err != nil {
		t.Fatal(err)
	}
	e.customer(query, "gone")
	if _, err := referral.DeleteCustomer(ctx, e.db, query, "gone"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		path, location string
	}{
		{"/r/" + query.ID + "/ann", "https://shop.test/app?lang=en&ref=ann"},
		{"/r/" + query.ID + "/ann-pro", "https://shop.test/pricing?plan=pro&ref=ann-pro"},
		{"/r/" + path.ID + "/pat", "https://path.test/via/pat"},
		{"/r/" + query.ID + "/gone", "https://shop.test/app?lang=en"}, // refers nobody new, counts nothing
	} {
		resp, _ := e.do("GET", tc.path, "", "", alice)
		if resp.StatusCode != http.StatusFound {
			t.Errorf("GET %s: %d, want 302", tc.path, resp.StatusCode)
		}
		wantHeader(t, resp, "Location", tc.location)
		wantHeader(t, resp, "Cache-Control", "no-store")
	}
	e.wantStats(ann, 2, 1)
	e.wantStats(pat, 1, 1)

	resp, _ := e.do("HEAD", "/r/"+path.ID+"/pat", "", "", alice)
	if resp.StatusCode != http.StatusFound {
		t.Errorf("HEAD: %d, want 302", resp.StatusCode)
	}
	e.wantStats(pat, 1, 1) // a link checker is not a visit

	for _, p := range []string{"/r/nosuchprogram/ann", "/r/" + query.ID + "/nobody"} {
		resp, body := e.do("GET", p, "", "", alice)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `"status":0`) {
			t.Errorf("GET %s: %d %s, want 404 and the error envelope", p, resp.StatusCode, body)
		}
	}
}

// The site's script reports the visit a share link sent it, once: that beacon is
// the same click, not a second one.
func TestShareLinkEcho(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	ann := e.customer(p, "ann")
	e.do("GET", "/r/"+p.ID+"/ann", "", "", alice)
	e.beacon(p, "ann", alice) // the echo
	e.wantStats(ann, 1, 1)
	e.beacon(p, "ann", alice) // a visit of its own
	e.wantStats(ann, 2, 1)
	e.do("GET", "/r/"+p.ID+"/ann", "", "", alice)
	e.beacon(p, "ann", visitor{"198.51.100.9", alice.ua}) // someone else: no echo
	e.wantStats(ann, 4, 2)
}

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"198.51.100.1:5000", "", "198.51.100.1"},
		{"198.51.100.1:5000", "203.0.113.9", "198.51.100.1"}, // a public peer is the visitor
		{"10.0.0.2:5000", "203.0.113.9", "203.0.113.9"},      // behind a load balancer
		{"10.0.0.2:5000", "1.2.3.4, 203.0.113.9", "203.0.113.9"},
		{"10.0.0.2:5000", "203.0.113.9, 10.0.0.3", "203.0.113.9"}, // two proxies inside
		{"127.0.0.1:5000", "192.168.1.5, 10.0.0.3", "192.168.1.5"},
		{"[::1]:5000", "2001:db8::1", "2001:db8::1"},
		{"127.0.0.1:5000", "garbage", "127.0.0.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := ClientIP(r); got != netip.MustParseAddr(tc.want) {
			t.Errorf("ClientIP(%s, XFF %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

// FuzzClientIP: whatever the peer and X-Forwarded-For hold, the address is one they
// named, and a public peer is never overridden.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.2:5000", "1.2.3.4, 203.0.113.9")
	f.Add("[::1]:80", "::ffff:1.2.3.4,,garbage")
	f.Add("bad", "")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := ClientIP(r)
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			host = remote
		}
		peer, _ := netip.ParseAddr(host)
		named := []netip.Addr{peer.Unmap()}
		for _, field := range strings.Split(xff, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(field)); err == nil {
				named = append(named, a.Unmap())
			}
		}
		if got.IsValid() && !slices.Contains(named, got) {
			t.Errorf("ClientIP(%q, %q) = %s, which neither names", remote, xff, got)
		}
		if !internal(peer.Unmap()) && got != peer.Unmap() {
			t.Errorf("ClientIP(%q, %q) = %s, not the public peer", remote, xff, got)
		}
	})
}

func ptr[T any](v T) *T { return &v }

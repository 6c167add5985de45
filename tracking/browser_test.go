package tracking

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/referd/referd/browsertest"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// The browser tests drive Debian's Chromium, headless, through the DevTools
// protocol. A shop's page served by the test carries Partnero's loader snippet
// (seed 001) with its URL pointed at referd; the shop and referd are different
// sites, as in production.

// shopDomain is the shop's domain: Chromium resolves every name under it to
// 127.0.0.1 (--host-resolver-rules), so cookie domains can be tested; cookies on
// an IP address can have none.
const shopDomain = "shop.test"

// browser is one headless Chromium for a test; each tab has a browser context
// (a profile) of its own, so tabs share no cookies.
type browser struct {
	ctx  context.Context
	e    *env
	shop string // the shop's base URL without the host: ":port"
	// extra holds more po() calls for the page of a program id.
	extra sync.Map
}

func newBrowser(t *testing.T, e *env) *browser {
	b := &browser{ctx: browsertest.Start(t, shopDomain), e: e}
	// The shop's pages: /{program id}/anything, with the loader for that program.
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		program, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		extra := ""
		if v, ok := b.extra.Load(program); ok {
			extra = v.(string)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html>\n<html><head><title>Shop</title>\n%s\n</head><body><h1>Shop</h1></body></html>\n",
			browsertest.Loader(e.srv.URL, program, extra))
	}))
	t.Cleanup(shop.Close)
	b.shop = shop.URL[strings.LastIndex(shop.URL, ":"):]
	return b
}

// tab is a page in a fresh profile, with what its page said in the console.
type tab struct {
	*browsertest.Tab
	t   *testing.T
	b   *browser
	ctx context.Context
}

func (b *browser) tab(t *testing.T) *tab {
	bt := browsertest.NewTab(t, b.ctx)
	return &tab{Tab: bt, t: t, b: b, ctx: bt.Ctx}
}

// url is a page of the shop for program p on host (under shopDomain) at path.
func (tb *tab) url(host, programID, path string) string {
	return "http://" + host + tb.b.shop + "/" + programID + path
}

// visit loads the page and waits until universal.js has finished with the
// program, and returns its state (ready, tracked, unknown or error).
func (tb *tab) visit(url, programID string) string {
	tb.t.Helper()
	tb.Navigate(url)
	return tb.WaitProgram(programID)
}

func (tb *tab) wantCookie(url, name, value string, days float64) *network.Cookie {
	tb.t.Helper()
	c := tb.Cookie(url, name)
	if c == nil {
		tb.t.Fatalf("no cookie %s for %s", name, url)
	}
	if c.Value != value || c.Path != "/" || c.SameSite != network.CookieSameSiteLax || c.Session {
		tb.t.Errorf("cookie %s = %q (path %s, SameSite %s, session %v); want %q, path /, SameSite Lax, not a session cookie",
			name, c.Value, c.Path, c.SameSite, c.Session, value)
	}
	if days > 0 {
		want := float64(time.Now().Unix()) + days*86400
		if math.Abs(c.Expires-want) > 300 {
			tb.t.Errorf("cookie %s expires %s, want about %s (in %g days)", name, unix(c.Expires), unix(want), days)
		}
	}
	return c
}

func unix(sec float64) string { return time.Unix(int64(sec), 0).UTC().Format(time.RFC3339) }

// waitClicks waits until the customer's counters reach clicks and unique: the
// beacon is sent as the page finishes, and counted a moment later.
func (e *env) waitClicks(t *testing.T, c store.Customer, clicks, unique int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		gc, gu := e.stats(c)
		if gc == clicks && gu == unique {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("customer %s: clicks, unique_clicks = %d, %d; want %d, %d", c.Key, gc, gu, clicks, unique)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := newBrowser(t, e)

	t.Run("last click", func(t *testing.T) {
		t.Parallel()
		p := e.program("https://"+shopDomain, "") // defaults: ?ref=, 30 days, last click
		ann, bob := e.customer(p, "ann"), e.customer(p, "bob")
		tb := b.tab(t)
		u := tb.url(shopDomain, p.ID, "/pricing?ref=ann&utm_source=x")
		if s := tb.visit(u, p.ID); s != "tracked" {
			t.Fatalf("state %s, want tracked", s)
		}
		c := tb.wantCookie(u, "partnero_referral", "ann", 30)
		if c.Domain != shopDomain {
			t.Errorf("cookie domain %q, want host-only %q", c.Domain, shopDomain)
		}
		e.waitClicks(t, ann, 1, 1)
		tb.visit(tb.url(shopDomain, p.ID, "/?ref=bob"), p.ID)
		tb.wantCookie(u, "partnero_referral", "bob", 30) // the last click wins
		e.waitClicks(t, bob, 1, 1)
		tb.visit(tb.url(shopDomain, p.ID, "/about"), p.ID) // no referral: the cookie stays
		tb.wantCookie(u, "partnero_referral", "bob", 30)
		e.waitClicks(t, bob, 1, 1)
		tb.NoErrors()
	})

	t.Run("first click, lifetime", func(t *testing.T) {
		t.Parallel()
		p := e.program("https://"+shopDomain, `{"attribution": "first_click", "cookie_days": 0, "cookie_name": "ref_key"}`)
		ann, bob := e.customer(p, "ann"), e.customer(p, "bob")
		tb := b.tab(t)
		u := tb.url(shopDomain, p.ID, "/?ref=ann")
		tb.visit(u, p.ID)
		// The script asks for 10 years; Chromium keeps a cookie at most 400 days.
		c := tb.wantCookie(u, "ref_key", "ann", 0)
		if min, max := float64(time.Now().AddDate(0, 0, 399).Unix()), float64(time.Now().AddDate(10, 0, 1).Unix()); c.Expires < min || c.Expires > max {
			t.Errorf("lifetime cookie expires %s; want as late as Chromium allows (400 days) and at most 10 years", unix(c.Expires))
		}
		tb.visit(tb.url(shopDomain, p.ID, "/?ref=bob"), p.ID)
		if c := tb.Cookie(u, "ref_key"); c == nil || c.Value != "ann" {
			t.Errorf("first click: cookie %+v, want ann kept", c)
		}
		e.waitClicks(t, bob, 1, 1) // the second link's click counts all the same
		e.waitClicks(t, ann, 1, 1)
		tb.NoErrors()
	})

	t.Run("path format", func(t *testing.T) {
		t.Parallel()
		p := e.program("https://"+shopDomain, `{"link_format": "path", "param": "via", "cookie_days": 7}`)
		pat := e.customer(p, "pat")
		tb := b.tab(t)
		u := tb.url(shopDomain, p.ID, "/via/pat")
		if s := tb.visit(u, p.ID); s != "tracked" {
			t.Fatalf("state %s, want tracked", s)
		}
		tb.wantCookie(u, "partnero_referral", "pat", 7)
		e.waitClicks(t, pat, 1, 1)
		tb.NoErrors()
	})

	t.Run("cookie domain", func(t *testing.T) {
		t.Parallel()
		p := e.program("https://"+shopDomain, `{"cookie_domain": "`+shopDomain+`"}`)
		other := e.program("https://"+shopDomain, `{"cookie_domain": "elsewhere.example"}`)
		e.customer(p, "dom")
		e.customer(other, "dom")
		tb := b.tab(t)
		u := tb.url("www."+shopDomain, p.ID, "/?ref=dom")
		tb.visit(u, p.ID)
		if c := tb.wantCookie(u, "partnero_referral", "dom", 30); c.Domain != "."+shopDomain {
			t.Errorf("cookie domain %q, want .%s", c.Domain, shopDomain)
		}
		if c := tb.Cookie(tb.url("app."+shopDomain, p.ID, "/"), "partnero_referral"); c == nil {
			t.Error("the cookie does not reach the other hosts of cookie_domain")
		}
		// A domain the page is not on is refused by the browser: host-only instead.
		tb2 := b.tab(t)
		u2 := tb2.url("www."+shopDomain, other.ID, "/?ref=dom")
		tb2.visit(u2, other.ID)
		if c := tb2.wantCookie(u2, "partnero_referral", "dom", 30); c.Domain != "www."+shopDomain {
			t.Errorf("cookie domain %q, want host-only www.%s", c.Domain, shopDomain)
		}
		tb.NoErrors()
		tb2.NoErrors()
	})

	t.Run("cookies blocked", func(t *testing.T) {
		t.Parallel()
		p := e.program("https://"+shopDomain, "")
		ann := e.customer(p, "ann")
		tb := b.tab(t)
		if _, err := chromedp.Call(tb.ctx, emulation.SetDocumentCookieDisabled, emulation.SetDocumentCookieDisabledParams{Disabled: true}); err != nil {
			t.Fatal(err)
		}
		u := tb.url(shopDomain, p.ID, "/?ref=ann")
		if s := tb.visit(u, p.ID); s != "tracked" {
			t.Fatalf("state %s, want tracked", s)
		}
		e.waitClicks(t, ann, 1, 1)
		tb.NoErrors()
	})

	t.Run("unknown program", func(t *testing.T) {
		t.Parallel()
		tb := b.tab(t)
		u := tb.url(shopDomain, "nosuchprogram", "/?ref=ann")
		if s := tb.visit(u, "nosuchprogram"); s != "unknown" {
			t.Errorf("state %s, want unknown", s)
		}
		title, err := chromedp.Run(tb.ctx, chromedp.Title())
		if err != nil || title != "Shop" {
			t.Errorf("the page did not load: title %q, %v", title, err)
		}
		if c := tb.Cookie(u, "partnero_referral"); c != nil {
			t.Errorf("cookie %q set for a program that does not exist", c.Value)
		}
		tb.NoErrors()
	})

	t.Run("unknown key", func(t *testing.T) {
		t.Parallel()
		p := e.program("https://"+shopDomain, "")
		ann := e.customer(p, "ann")
		tb := b.tab(t)
		u := tb.url(shopDomain, p.ID, "/?ref=nobody")
		tb.visit(u, p.ID)
		// As Partnero's script does, the cookie keeps whatever key the link carried;
		// referd checks it when the site creates the customer.
		tb.wantCookie(u, "partnero_referral", "nobody", 30)
		// The page goes on working: a later link counts.
		tb.visit(tb.url(shopDomain, p.ID, "/?ref=ann"), p.ID)
		e.waitClicks(t, ann, 1, 1)
		// The beacon of the unknown key is answered 404, which Chromium prints.
		tb.NoErrors("/track/click")
	})

	t.Run("referd unreachable", func(t *testing.T) {
		t.Parallel()
		// The settings cannot be fetched: the request fails, nothing is thrown.
		b.extra.Store("unreachable", "\npo('settings','api_host','http://127.0.0.1:9');")
		tb := b.tab(t)
		if s := tb.visit(tb.url(shopDomain, "unreachable", "/?ref=ann"), "unreachable"); s != "error" {
			t.Errorf("state %s, want error", s)
		}
		tb.NoErrors("127.0.0.1:9/track/program/unreachable")
	})

	t.Run("createCustomer", func(t *testing.T) {
		t.Parallel()
		p := e.program("https://"+shopDomain, "")
		e.customer(p, "ann")
		// Queued before universal.js loads, as the site's sign-up page does.
		b.extra.Store(p.ID, "\npo('createCustomer', {email: 'friend@shop.test', name: 'Fred'});")
		tb := b.tab(t)
		if s := tb.visit(tb.url(shopDomain, p.ID, "/welcome?ref=ann"), p.ID); s != "tracked" {
			t.Fatalf("state %s, want tracked", s)
		}
		friend := e.waitCustomer(t, p, store.CustomerFilter{Email: "friend@shop.test"})
		// And once it has loaded, on a later page: the referrer comes from the cookie.
		chained, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`typeof po('createCustomer', {key: 'pal', name: '<b>Pal</b>'}) === 'function'`))
		if err != nil || !chained {
			t.Fatalf("po('createCustomer') after load: %v, %v; want a function returned, as the loader's stub does", chained, err)
		}
		e.waitCustomer(t, p, store.CustomerFilter{Key: "pal"})
		for key, name := range map[string]string{friend.Key: "Fred", "pal": "<b>Pal</b>"} {
			if c := e.apiCustomer(p, key); c["source"] != "js" || refKey(c) != "ann" || c["name"] != name {
				t.Errorf("customer %s = %v; want source js, referred by ann, named %s", key, c, name)
			}
		}
		tb.NoErrors()
	})

	t.Run("browser sign-ups off", func(t *testing.T) {
		t.Parallel()
		p := e.program("https://"+shopDomain, `{"browser_signups": false}`)
		e.customer(p, "ann")
		b.extra.Store(p.ID, "\npo('createCustomer', {email: 'friend@shop.test'});")
		tb := b.tab(t)
		tb.visit(tb.url(shopDomain, p.ID, "/?ref=ann"), p.ID)
		e.waitClicks(t, e.customerByKey(p, "ann"), 1, 1) // the beacon sent before it would be
		time.Sleep(200 * time.Millisecond)
		if n := countCustomers(t, e, p); n != 1 {
			t.Errorf("%d customers; want only ann: the script sends nothing when browser_signups is false", n)
		}
		tb.NoErrors() // nor does a refused request reach the console
	})

	t.Run("same visitor twice", func(t *testing.T) {
		t.Parallel()
		// The second page gets universal.js?v... from the browser's cache.
		p := e.program("https://"+shopDomain, "")
		ann := e.customer(p, "ann")
		tb := b.tab(t)
		tb.visit(tb.url(shopDomain, p.ID, "/?ref=ann"), p.ID)
		tb.visit(tb.url(shopDomain, p.ID, "/?ref=ann"), p.ID)
		e.waitClicks(t, ann, 2, 1) // the same visitor twice
		tb.NoErrors()
	})
}

// waitCustomer waits until the program has a customer matching f: the script
// creates it as the page loads, a moment later.
func (e *env) waitCustomer(t *testing.T, p store.Program, f store.CustomerFilter) store.Customer {
	t.Helper()
	f.ProgramPK, f.Limit = p.PK, 1
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs, _, err := referral.ListCustomers(context.Background(), e.db, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 1 {
			return cs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no customer %+v was created", f)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) customerByKey(p store.Program, key string) store.Customer {
	e.t.Helper()
	c, err := referral.GetCustomer(context.Background(), e.db, p, key)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

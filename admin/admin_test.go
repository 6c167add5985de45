package admin_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/referd/referd/admin"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// env is a console on a fresh database, with a program and its API key.
type env struct {
	t   testing.TB
	db  *store.DB
	srv *httptest.Server
	p   store.Program
	key string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := storetest.New(t)
	p, key, err := referral.CreateProgram(context.Background(), db, "Acme", "https://acme.test")
	if err != nil {
		t.Fatal(err)
	}
	e := newConsole(t, db)
	e.p, e.key = p, key
	return e
}

// newConsole serves a console on db.
func newConsole(tb testing.TB, db *store.DB) *env {
	c := admin.New(db, "http://referd.test", nil)
	srv := httptest.NewServer(c.Handler())
	tb.Cleanup(srv.Close)
	return &env{t: tb, db: db, srv: srv}
}

// client is a browser without JavaScript: it keeps cookies and does not follow
// redirects, so each answer can be checked.
type client struct {
	e    *env
	http *http.Client
	csrf string
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches path and remembers the page's CSRF token.
func (c *client) get(path string) (int, string, http.Header) {
	c.e.t.Helper()
	res, err := c.http.Get(c.e.srv.URL + path)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if m := csrfRE.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return res.StatusCode, string(b), res.Header
}

// post posts a form; the page's CSRF token is added unless form sets csrf.
func (c *client) post(path string, form url.Values) (int, string, http.Header) {
	c.e.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", c.csrf)
	}
	res, err := c.http.PostForm(c.e.srv.URL+path, form)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func (c *client) signin(key string) (int, string, http.Header) {
	c.e.t.Helper()
	c.get("/admin/signin")
	return c.post("/admin/signin", url.Values{"api_key": {key}})
}

func TestSignInSessionAndSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client()
	// Signed out, the console sends to the sign-in form.
	if code, _, h := c.get("/admin/customers?q=x"); code != http.StatusSeeOther || h.Get("Location") != "/admin/signin?next=%2Fadmin%2Fcustomers%3Fq%3Dx" {
		t.Fatalf("signed out: %d %s", code, h.Get("Location"))
	}
	if code, body, _ := c.get("/admin/signin"); code != 200 || !strings.Contains(body, `name="api_key"`) {
		t.Fatalf("sign-in form: %d", code)
	}
	// A wrong key says so, and nothing about the program.
	if code, body, _ := c.signin("rfd_wrong"); code != http.StatusUnauthorized || !strings.Contains(body, "That API key is not valid.") {
		t.Fatalf("wrong key: %d\n%s", code, body)
	}
	// Without the form's CSRF token, no sign-in even with the right key.
	if code, _, _ := c.post("/admin/signin", url.Values{"api_key": {e.key}, "csrf": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("sign-in without its CSRF token: %d", code)
	}
	code, _, h := c.signin(e.key)
	if code != http.StatusSeeOther || h.Get("Location") != "/admin" {
		t.Fatalf("sign in: %d %s", code, h.Get("Location"))
	}
	ck := cookieOf(h, "referd_admin")
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/admin" || ck.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, path /admin, not Secure on http", ck)
	}
	if code, body, _ := c.get("/admin"); code != 200 || !strings.Contains(body, "Overview") || !strings.Contains(body, "Acme") {
		t.Fatalf("overview: %d", code)
	}
	// A POST without the session's CSRF token is refused and changes nothing.
	if code, _, _ := c.post("/admin/signout", url.Values{"csrf": {"nope"}}); code != http.StatusForbidden {
		t.Fatalf("sign out without CSRF: %d", code)
	}
	if code, _, _ := c.get("/admin"); code != 200 {
		t.Fatalf("still signed in: %d", code)
	}
	if code, _, h := c.post("/admin/signout", url.Values{}); code != http.StatusSeeOther || h.Get("Location") != "/admin/signin" {
		t.Fatalf("sign out: %d", code)
	}
	// The old cookie, replayed, opens nothing: the session is gone on the server.
	replay := e.client()
	replay.http.Jar.SetCookies(mustURL(e.srv.URL+"/admin"), []*http.Cookie{{Name: "referd_admin", Value: ck.Value, Path: "/admin"}})
	if code, _, _ := replay.get("/admin"); code != http.StatusSeeOther {
		t.Fatalf("the signed-out cookie: %d, want a redirect to sign in", code)
	}
	forged := e.client()
	forged.http.Jar.SetCookies(mustURL(e.srv.URL+"/admin"), []*http.Cookie{{Name: "referd_admin", Value: strings.Repeat("A", 43), Path: "/admin"}})
	if code, _, _ := forged.get("/admin"); code != http.StatusSeeOther {
		t.Fatalf("a forged cookie: %d", code)
	}
}

func TestSignInRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client()
	for i := range 10 {
		if code, _, _ := c.signin("rfd_wrong"); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, code)
		}
	}
	if code, _, _ := c.signin(e.key); code != http.StatusTooManyRequests {
		t.Fatalf("the 11th attempt in a minute: %d, want 429 even with the right key", code)
	}
}

func TestCustomersAndCredit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	name := `<script>alert("x")</script>`
	ann, err := referral.CreateCustomer(ctx, e.db, e.p, referral.CustomerInput{Key: ptr(referral.Text("ann")), Name: &name, Email: ptr("ann@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bob", "cat"} {
		ref := referral.Text("ann")
		if _, err := referral.CreateCustomer(ctx, e.db, e.p, referral.CustomerInput{Key: ptr(referral.Text(k)), ReferringCustomer: &referral.CustomerRefInput{Key: &ref}}); err != nil {
			t.Fatal(err)
		}
	}
	other, otherKey, _ := referral.CreateProgram(ctx, e.db, "Other", "https://other.test")
	stranger, _ := referral.CreateCustomer(ctx, e.db, other, referral.CustomerInput{Key: ptr(referral.Text("stranger"))})

	c := e.client()
	c.signin(e.key)
	code, body, _ := c.get("/admin/customers?q=ann%40example")
	if code != 200 || !strings.Contains(body, "/admin/customers/"+ann.ID) || strings.Contains(body, "/admin/customers/"+stranger.ID) {
		t.Fatalf("search: %d\n%s", code, body)
	}
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert") {
		t.Errorf("a name with HTML is not escaped in the list")
	}
	code, body, _ = c.get("/admin/customers/ann")
	if code != 200 || !strings.Contains(body, "Referrals <span class=\"muted\">(2)</span>") || !strings.Contains(body, "https://acme.test?ref=ann") {
		t.Fatalf("customer page: %d\n%s", code, body)
	}
	// Another program's customer, and an unknown one: a 404 page.
	for _, path := range []string{"/admin/customers/" + stranger.ID, "/admin/customers/nobody", "/admin/nowhere"} {
		if code, _, _ := c.get(path); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	// A manual credit goes through ledger.CreditBalance: the API's balance shows it;
	// the same form posted twice credits once.
	c.get("/admin/customers/ann")
	form := url.Values{"direction": {"credit"}, "amount": {"12.50"}, "units": {"usd"}, "note": {"goodwill"}, "key": {"console_once"}}
	for range 2 {
		if code, body, h := c.post("/admin/customers/ann/credit", form); code != http.StatusSeeOther || h.Get("Location") != "/admin/customers/ann?done=credited" {
			t.Fatalf("credit: %d %s\n%s", code, h.Get("Location"), body)
		}
	}
	if _, bs, err := ledger.CustomerBalance(ctx, e.db, e.p, "ann"); err != nil || len(bs) != 1 || bs[0].Amount != 1250 {
		t.Fatalf("balance after the credit: %+v %v", bs, err)
	}
	// A debit beyond the balance: the form again, with the API's message by the field.
	c.get("/admin/customers/ann")
	code, body, _ = c.post("/admin/customers/ann/credit", url.Values{"direction": {"debit"}, "amount": {"100"}, "units": {"usd"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "The debit is larger than the balance.") {
		t.Fatalf("debit beyond the balance: %d\n%s", code, body)
	}
	if _, bs, _ := ledger.CustomerBalance(ctx, e.db, e.p, "ann"); bs[0].Amount != 1250 {
		t.Fatalf("the refused debit changed the balance: %+v", bs)
	}
	// Another program's key sees none of this program's customers.
	o := e.client()
	o.signin(otherKey)
	if code, _, _ := o.get("/admin/customers/ann"); code != http.StatusNotFound {
		t.Errorf("another program's console: %d, want 404", code)
	}
	if _, body, _ := o.get("/admin/customers"); strings.Contains(body, ann.ID) {
		t.Errorf("another program's console lists this program's customer")
	}
}

func ptr[T any](v T) *T { return &v }

func cookieOf(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// A session past its time opens nothing: the browser is sent to sign in again.
func TestExpiredSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.client()
	c.signin(e.key)
	if code, _, _ := c.get("/admin"); code != http.StatusOK {
		t.Fatalf("signed in: %d", code)
	}
	if _, err := e.db.Exec(`UPDATE admin_sessions SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if code, _, h := c.get("/admin/customers"); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/admin/signin") {
		t.Errorf("an expired session: %d %s, want a redirect to sign in", code, h.Get("Location"))
	}
	if code, _, _ := c.post("/admin/signout", url.Values{}); code != http.StatusForbidden {
		t.Errorf("a POST with an expired session: %d, want 403", code)
	}
}

// The limit holds across the processes that serve the console (several `referd api`
// behind a load balancer): the failures are counted in PostgreSQL.
func TestSignInRateLimitAcrossProcesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := newConsole(t, e.db) // a second process on the same database
	other.p, other.key = e.p, e.key
	a, b := e.client(), other.client()
	for i := range 10 {
		c := a
		if i%2 == 1 {
			c = b
		}
		if code, _, _ := c.signin("rfd_wrong"); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, code)
		}
	}
	for name, c := range map[string]*client{"first": a, "second": b} {
		if code, _, _ := c.signin(e.key); code != http.StatusTooManyRequests {
			t.Errorf("the %s process after 10 failures between them: %d, want 429", name, code)
		}
	}
}

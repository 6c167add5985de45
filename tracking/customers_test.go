package tracking

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/api"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// apiCustomer is the customer as GET /v1/customers/{key} shows it, or nil when the API
// answers 404.
func (e *env) apiCustomer(p store.Program, key string) map[string]any {
	e.t.Helper()
	apiKey, err := referral.CreateAPIKey(context.Background(), e.db, p.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(e.db, "http://referd.test", slog.New(slog.NewTextHandler(io.Discard, nil)), 4).Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/customers/"+key, nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var body struct {
		Data map[string]any `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("GET /v1/customers/%s: %d %v", key, resp.StatusCode, err)
	}
	return body.Data
}

// signup posts a po('createCustomer') body as universal.js does (text/plain).
func (e *env) signup(body string, v visitor) (*http.Response, string) {
	e.t.Helper()
	return e.do("POST", "/track/customer", "text/plain;charset=UTF-8", body, v)
}

// wantAccepted posts body and wants 202 with no body.
func (e *env) wantAccepted(body string, v visitor) {
	e.t.Helper()
	resp, b := e.signup(body, v)
	if resp.StatusCode != http.StatusAccepted || b != "" {
		e.t.Fatalf("POST /track/customer %s: %d %q; want 202 and no body", body, resp.StatusCode, b)
	}
	wantHeader(e.t.(*testing.T), resp, "Access-Control-Allow-Origin", "*")
}

func refKey(c map[string]any) any {
	if r, ok := c["referring_customer"].(map[string]any); ok {
		return r["key"]
	}
	return c["referring_customer"]
}

func TestCreateCustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	e.customer(p, "ann")
	link, err := referral.CreateLink(context.Background(), e.db, p, referral.LinkInput{CustomerKey: ptr(referral.Text("ann")), Key: ptr(referral.Text("ann-spring"))})
	if err != nil {
		t.Fatal(err)
	}
	gone := e.customer(p, "gone")
	if _, err := referral.DeleteCustomer(context.Background(), e.db, p, gone.Key); err != nil {
		t.Fatal(err)
	}
	v := func(i int) visitor { return visitor{"198.51.100." + string(rune('1'+i)), "ua"} } // under the rate limit

	// A friend referred by ann's cookie, with only an email: the key is generated.
	e.wantAccepted(`{"program": "`+p.ID+`", "email": "Friend@Example.com", "name": "Fred", "referral_key": "ann"}`, v(0))
	cs, _, err := referral.ListCustomers(context.Background(), e.db, store.CustomerFilter{ProgramPK: p.PK, Email: "friend@example.com", Limit: 10})
	if err != nil || len(cs) != 1 {
		t.Fatalf("customers with the friend's email: %v, %v", cs, err)
	}
	c := e.apiCustomer(p, cs[0].Key)
	if c["source"] != "js" || refKey(c) != "ann" || c["email"] != "Friend@Example.com" || c["name"] != "Fred" {
		t.Errorf("customer = %v; want source js, referred by ann", c)
	}

	// Create-only: the same email or key again changes nothing and still answers 202.
	e.wantAccepted(`{"program": "`+p.ID+`", "email": "friend@example.com", "name": "Mallory", "referral_key": "ann"}`, v(1))
	e.wantAccepted(`{"program": "`+p.ID+`", "key": "`+cs[0].Key+`", "email": "other@example.com", "name": "Mallory"}`, v(1))
	e.wantAccepted(`{"program": "`+p.ID+`", "key": "ann", "name": "Mallory"}`, v(1))
	if c := e.apiCustomer(p, cs[0].Key); c["name"] != "Fred" {
		t.Errorf("after a second sign-up: %v; want it unchanged", c)
	}
	if c := e.apiCustomer(p, "ann"); c["name"] != nil {
		t.Errorf("ann after a sign-up with her key: %v; want her unchanged", c)
	}
	if n := countCustomers(t, e, p); n != 3 {
		t.Errorf("%d customers, want 3 (ann, gone, the friend)", n)
	}

	// The cookie may hold an extra link key.
	e.wantAccepted(`{"program": "`+p.ID+`", "key": "viaLink", "referral_key": "`+link.Key+`"}`, v(2))
	// An unknown key, a deleted referrer's, the customer's own: no referrer, still created.
	e.wantAccepted(`{"program": "`+p.ID+`", "key": "stray", "referral_key": "nobody"}`, v(2))
	e.wantAccepted(`{"program": "`+p.ID+`", "key": "orphan", "referral_key": "gone"}`, v(2))
	e.wantAccepted(`{"program": "`+p.ID+`", "key": "self", "referral_key": "self"}`, v(2))
	// Numbers are text; HTML is stored as given (the API answers JSON).
	e.wantAccepted(`{"program": "`+p.ID+`", "key": 12345, "name": "<script>alert(1)</script>", "surname": "O'Brien & \"Co\""}`, v(3))
	for _, tc := range []struct {
		key     string
		ref     any
		name    any
		surname any
	}{
		{"viaLink", "ann", nil, nil},
		{"stray", nil, nil, nil},
		{"orphan", nil, nil, nil},
		{"self", nil, nil, nil},
		{"12345", nil, "<script>alert(1)</script>", `O'Brien & "Co"`},
	} {
		c := e.apiCustomer(p, tc.key)
		if c == nil {
			t.Errorf("%s: not created", tc.key)
			continue
		}
		if refKey(c) != tc.ref || c["source"] != "js" || c["name"] != tc.name || c["surname"] != tc.surname {
			t.Errorf("%s = %v; want referrer %v, name %v, surname %v, source js", tc.key, c, tc.ref, tc.name, tc.surname)
		}
	}

	// Invalid fields, or neither key nor email: 202, nothing stored.
	before := countCustomers(t, e, p)
	for _, body := range []string{
		`{"program": "` + p.ID + `", "email": "not an email"}`,
		`{"program": "` + p.ID + `", "key": "has space"}`,
		`{"program": "` + p.ID + `", "name": "Nobody"}`,
		`{"program": "` + p.ID + `"}`,
		`{"program": "` + p.ID + `", "key": "k", "name": "` + strings.Repeat("x", 300) + `"}`,
	} {
		e.wantAccepted(body, v(4))
	}
	if n := countCustomers(t, e, p); n != before {
		t.Errorf("%d customers after invalid sign-ups, want %d", n, before)
	}
}

func countCustomers(t *testing.T, e *env, p store.Program) int {
	t.Helper()
	_, n, err := referral.ListCustomers(context.Background(), e.db, store.CustomerFilter{ProgramPK: p.PK, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateCustomerErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	off := e.program("https://shop.test", `{"browser_signups": false}`)
	for i, tc := range []struct {
		name, body string
		status     int
	}{
		{"not JSON", `email=a@b.test`, 400},
		{"a JSON list", `[]`, 400},
		{"a field of the wrong type", `{"program": "` + p.ID + `", "email": {"a": 1}}`, 400},
		{"too big", `{"program": "` + p.ID + `", "email": "a@b.test", "name": "` + strings.Repeat("x", 9000) + `"}`, 400},
		{"unknown program", `{"program": "nosuchprogram", "email": "a@b.test"}`, 404},
		{"no program", `{"email": "a@b.test"}`, 404},
		{"browser sign-ups off", `{"program": "` + off.ID + `", "email": "a@b.test"}`, 403},
	} {
		resp, body := e.signup(tc.body, visitor{"192.0.2." + string(rune('1'+i)), "ua"})
		var env struct {
			Status  *int                `json:"status"`
			Message string              `json:"message"`
			Errors  map[string][]string `json:"errors"`
		}
		if resp.StatusCode != tc.status || json.Unmarshal([]byte(body), &env) != nil || env.Status == nil || *env.Status != 0 || env.Message == "" || env.Errors == nil {
			t.Errorf("%s: %d %s; want %d and the error envelope", tc.name, resp.StatusCode, body, tc.status)
		}
		wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
	}
	if n := countCustomers(t, e, p) + countCustomers(t, e, off); n != 0 {
		t.Errorf("%d customers created by failed sign-ups", n)
	}

	// The preflight, for a page that sends application/json.
	resp, _ := e.do("OPTIONS", "/track/customer", "", "", alice)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("preflight: %d, want 204", resp.StatusCode)
	}
	wantHeader(t, resp, "Access-Control-Allow-Methods", "POST, OPTIONS")
}

// At most 20 sign-ups a minute from one client address (as unique clicks find it).
func TestCreateCustomerRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	e.h.now = func() time.Time { return now }
	body := func(i int) string {
		return `{"program": "` + p.ID + `", "key": "k` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `"}`
	}
	for i := range 20 {
		e.wantAccepted(body(i), alice)
	}
	resp, b := e.signup(body(20), alice)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(b, `"status":0`) {
		t.Fatalf("21st sign-up in a minute: %d %s; want 429 and the error envelope", resp.StatusCode, b)
	}
	wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
	// Behind the same proxy, another visitor has a budget of their own...
	e.wantAccepted(body(21), visitor{"198.51.100.9", alice.ua})
	// ...but a visitor cannot claim another address past a proxy: the last public
	// address in X-Forwarded-For is who connected to the proxy.
	if resp, _ := e.signup(body(22), visitor{"198.51.100.77, " + alice.ip, alice.ua}); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a forged X-Forwarded-For: %d, want 429", resp.StatusCode)
	}
	// The bucket refills at 20 a minute: one more after 3 s, all after a minute.
	now = now.Add(3 * time.Second)
	e.wantAccepted(body(23), alice)
	if resp, _ := e.signup(body(24), alice); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after 3 s, second sign-up: %d, want 429", resp.StatusCode)
	}
	now = now.Add(time.Minute)
	for i := range 20 {
		e.wantAccepted(body(30+i), alice)
	}
	if n := countCustomers(t, e, p); n != 42 {
		t.Errorf("%d customers, want 42 (the 429s created none)", n)
	}
}

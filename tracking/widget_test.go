package tracking

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/referd/referd/referral"
)

// The widget's data answers only to the customer's own token: a token for another
// customer, one made with another secret, or one made before a rotation is a 401 that
// says nothing of whether the customer exists; the right one shows the customer's
// link, share links and counts, and a deleted customer is a 404.
func TestWidgetCustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	other := e.program("https://other.test", "")
	e.customer(p, "ann")
	e.customer(p, "bob")
	if p.WidgetSecret == "" || p.WidgetSecret == other.WidgetSecret {
		t.Fatalf("widget secrets %q and %q: every program needs its own", p.WidgetSecret, other.WidgetSecret)
	}
	get := func(program, key, token string) (int, map[string]any) {
		t.Helper()
		q := url.Values{"program": {program}, "customer_key": {key}, "token": {token}}
		resp, body := e.do("GET", "/widget/customer?"+q.Encode(), "", "", alice)
		wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		return resp.StatusCode, v
	}
	code, v := get(p.ID, "ann", WidgetToken(p.WidgetSecret, "ann"))
	data, _ := v["data"].(map[string]any)
	if code != http.StatusOK || data["referral_link"] != "https://shop.test?ref=ann" {
		t.Fatalf("ann's widget: %d %v", code, v)
	}
	if links, _ := data["sharing_links"].(map[string]any); links["twitter"] == nil {
		t.Errorf("sharing links %v", data["sharing_links"])
	}
	if stats, _ := data["stats"].(map[string]any); stats["clicks"] != float64(0) || stats["successful_referrals"] != float64(0) {
		t.Errorf("stats %v", data["stats"])
	}
	for name, c := range map[string]struct{ program, key, token string }{
		"another customer's token": {p.ID, "ann", WidgetToken(p.WidgetSecret, "bob")},
		"another program's secret": {p.ID, "ann", WidgetToken(other.WidgetSecret, "ann")},
		"no token":                 {p.ID, "ann", ""},
		"an unknown customer":      {p.ID, "nobody", WidgetToken(other.WidgetSecret, "nobody")},
		"upper-case hex":           {p.ID, "ann", "X" + WidgetToken(p.WidgetSecret, "ann")[1:]},
	} {
		if code, v := get(c.program, c.key, c.token); code != http.StatusUnauthorized || v["status"] != float64(0) {
			t.Errorf("%s: %d %v, want 401", name, code, v)
		}
	}
	if code, _ := get(p.ID, "nobody", WidgetToken(p.WidgetSecret, "nobody")); code != http.StatusNotFound {
		t.Errorf("an unknown customer with its token: %d, want 404", code)
	}
	if code, _ := get("prg_unknown", "ann", WidgetToken(p.WidgetSecret, "ann")); code != http.StatusNotFound {
		t.Errorf("an unknown program: %d, want 404", code)
	}
	// Rotating the secret ends the old tokens at once in this process.
	rotated, err := referral.UpdateProgram(context.Background(), e.db, p.PK, referral.ProgramPatch{RotateWidgetSecret: true})
	if err != nil || rotated.WidgetSecret == p.WidgetSecret || rotated.WidgetSecret == "" {
		t.Fatalf("rotation: %q → %q (%v)", p.WidgetSecret, rotated.WidgetSecret, err)
	}
	e.h.ProgramChanged(rotated)
	if code, _ := get(p.ID, "ann", WidgetToken(p.WidgetSecret, "ann")); code != http.StatusUnauthorized {
		t.Errorf("a token of the old secret: %d, want 401", code)
	}
	if code, _ := get(p.ID, "ann", WidgetToken(rotated.WidgetSecret, "ann")); code != http.StatusOK {
		t.Errorf("a token of the new secret: %d, want 200", code)
	}
	if _, err := referral.DeleteCustomer(context.Background(), e.db, rotated, "bob"); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(p.ID, "bob", WidgetToken(rotated.WidgetSecret, "bob")); code != http.StatusNotFound {
		t.Errorf("a deleted customer: %d, want 404", code)
	}
}

// The token is what the README's Node and Python lines compute (checked with both).
func TestWidgetTokenKnownAnswer(t *testing.T) {
	if got := WidgetToken("wgs_test", "ann"); got != "515d30047aad4bbe765c261ce3a1641c17e7be02bb97b077e096ba345321b90d" {
		t.Errorf("WidgetToken = %s", got)
	}
}

// The widget's invitations: queued for each address once, from the customer's own
// token, with the customer's link; an invalid address, more than ten, a wrong token
// or email switched off queue nothing; past fifty a day for one customer, 429.
func TestWidgetInvite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.program("https://shop.test", "")
	name, surname := "Ann\r\nBcc: x@evil.test", "<b>Lee</b>"
	if _, err := referral.CreateCustomer(context.Background(), e.db, p, referral.CustomerInput{Key: ptr(referral.Text("ann")), Name: &name, Surname: &surname}); err != nil {
		t.Fatal(err)
	}
	e.customer(p, "bob")
	token := WidgetToken(p.WidgetSecret, "ann")
	invite := func(key, token string, emails ...string) (int, string) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"program": p.ID, "customer_key": key, "token": token, "emails": emails, "message": "Try <i>it</i>"})
		resp, body := e.do("POST", "/widget/invite", "text/plain;charset=UTF-8", string(b), alice)
		wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
		return resp.StatusCode, body
	}
	queued := func() int {
		var n int
		if err := e.db.Get(&n, `SELECT count(*) FROM emails`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if code, _ := invite("ann", token, "f1@example.com"); code != http.StatusUnprocessableEntity || queued() != 0 {
		t.Errorf("email off: %d, %d queued; want 422 and nothing", code, queued())
	}
	e.h.Email = true
	if code, body := invite("ann", token, "f1@example.com", "F1@example.com", "f2@example.com"); code != http.StatusAccepted || body != "" {
		t.Fatalf("invite: %d %q, want 202", code, body)
	}
	var subjects []string
	if err := e.db.Select(&subjects, `SELECT subject FROM emails WHERE text_body LIKE '%https://shop.test?ref=ann%' ORDER BY to_address`); err != nil || len(subjects) != 2 {
		t.Fatalf("queued %v (%v), want two invitations with ann's link", subjects, err)
	}
	for _, s := range subjects {
		if strings.ContainsAny(s, "\r\n") || !strings.Contains(s, "invites you to Shop") {
			t.Errorf("subject %q", s)
		}
	}
	for name, c := range map[string]struct {
		key, token string
		emails     []string
		want       int
	}{
		"an invalid address":       {"ann", token, []string{"f3@example.com", "not an address"}, http.StatusUnprocessableEntity},
		"eleven addresses":         {"ann", token, strings.Split("a@x.test b@x.test c@x.test d@x.test e@x.test f@x.test g@x.test h@x.test i@x.test j@x.test k@x.test", " "), http.StatusUnprocessableEntity},
		"no address":               {"ann", token, nil, http.StatusUnprocessableEntity},
		"another customer's token": {"bob", token, []string{"f3@example.com"}, http.StatusUnauthorized},
		"no token":                 {"ann", "", []string{"f3@example.com"}, http.StatusUnauthorized},
	} {
		if code, body := invite(c.key, c.token, c.emails...); code != c.want || queued() != 2 {
			t.Errorf("%s: %d %s (%d queued), want %d and nothing queued", name, code, body, queued(), c.want)
		} else if name == "an invalid address" && !strings.Contains(body, "not an address") {
			t.Errorf("%s: %s does not name it", name, body)
		}
	}
	// Fifty a day: 2 so far, 48 more fit, the next is refused.
	for i := range 5 {
		var batch []string
		for j := range 10 {
			if n := i*10 + j; n < 48 {
				batch = append(batch, fmt.Sprintf("g%d@example.com", n))
			}
		}
		if len(batch) == 0 {
			break
		}
		if code, body := invite("ann", token, batch...); code != http.StatusAccepted {
			t.Fatalf("batch %d: %d %s", i, code, body)
		}
	}
	if code, _ := invite("ann", token, "late@example.com"); code != http.StatusTooManyRequests || queued() != 50 {
		t.Errorf("the 51st invitation: %d with %d queued, want 429 and 50", code, queued())
	}
	if code, _ := invite("bob", WidgetToken(p.WidgetSecret, "bob"), "h@example.com"); code != http.StatusAccepted {
		t.Errorf("another customer's own budget: %d", code)
	}
}

// Bad input to the invite form: an unknown program, a body that is not JSON or is
// too big, a thousand addresses; each a clear 4xx in the error envelope, nothing queued.
func TestWidgetInviteBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.h.Email = true
	p := e.program("https://shop.test", "")
	e.customer(p, "ann")
	token := WidgetToken(p.WidgetSecret, "ann")
	body := func(program string, emails []string) string {
		b, _ := json.Marshal(map[string]any{"program": program, "customer_key": "ann", "token": token, "emails": emails})
		return string(b)
	}
	thousand := make([]string, 1000)
	for i := range thousand {
		thousand[i] = fmt.Sprintf("f%d@x.co", i)
	}
	for name, c := range map[string]struct {
		body string
		want int
	}{
		"an unknown program":  {body("prg_nope", []string{"f@example.com"}), http.StatusNotFound},
		"not JSON":            {"emails=f@example.com", http.StatusBadRequest},
		"a JSON array":        {`["f@example.com"]`, http.StatusBadRequest},
		"over 16 KiB":         {body(p.ID, []string{strings.Repeat("a", 17<<10) + "@example.com"}), http.StatusBadRequest},
		"1,000 addresses":     {body(p.ID, thousand), http.StatusUnprocessableEntity},
		"a CR/LF in an email": {body(p.ID, []string{"f@example.com\r\nBcc: x@evil.test"}), http.StatusUnprocessableEntity},
	} {
		resp, got := e.do("POST", "/widget/invite", "text/plain", c.body, alice)
		var env struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		}
		if resp.StatusCode != c.want || json.Unmarshal([]byte(got), &env) != nil || env.Message == "" {
			t.Errorf("%s: %d %s, want %d with a message", name, resp.StatusCode, got, c.want)
		}
	}
	var n int
	if err := e.db.Get(&n, `SELECT count(*) FROM emails`); err != nil || n != 0 {
		t.Errorf("%d emails queued (%v), want none", n, err)
	}
}

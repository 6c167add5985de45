package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/referd/referd/browsertest"
	"github.com/referd/referd/mail/mailtest"
	"github.com/referd/referd/store/storetest"
)

// The customer's side on `referd serve`, from outside as a shop and its customers
// meet it: Alice's account page renders the referral widget with a token the shop's
// backend computed (as the README shows); she invites a friend from it; the
// invitation arrives at the SMTP server with her link; the friend follows the link
// from the email, signs up through po('createCustomer') and is Alice's referral.
// Every run also takes the README's screenshot of the email (REFERD_SCREENSHOTS=docs
// replaces it).
func TestServeReferralWidgetEndToEnd(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewWithURL(t)
	mp := mailtest.Start(t)
	base, _ := startServe(t, dbURL, "--smtp-url", mp.URL(), "--mail-from", "Acme <rewards@acme.test>")

	// The shop, on a site of its own: a landing page, Alice's account page with the
	// widget, a sign-up page; each with the loader snippet.
	const domain = "shop.test"
	var programID, widgetSecret atomic.Value
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls := ""
		switch r.URL.Path {
		case "/account": // the shop's backend knows it is Alice and signs her key
			m := hmac.New(sha256.New, []byte(widgetSecret.Load().(string)))
			m.Write([]byte("alice"))
			token := hex.EncodeToString(m.Sum(nil))
			calls = fmt.Sprintf("\ndocument.write('<style>* { all: unset } div { display: none }</style><div id=\"w\"></div>');\n"+
				"po('renderReferralWidget', {container: '#w', customer_key: 'alice', token: %q, show_stats: true});", token)
		case "/signup":
			calls = "\npo('createCustomer', {key: 'fred', email: 'fred@example.com', name: 'Fred'});"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html>\n<html><head><title>Shop</title>\n%s\n</head><body><h1>Shop</h1></body></html>\n",
			browsertest.Loader(base, programID.Load().(string), calls))
	}))
	t.Cleanup(shop.Close)
	site := "http://" + domain + shop.URL[strings.LastIndex(shop.URL, ":"):]

	prog := createProgram(t, dbURL, "Acme", site)
	programID.Store(prog.Program["id"].(string))
	api := func(method, path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+prog.APIKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode >= 300 {
			t.Fatalf("%s %s: %s, %v", method, path, res.Status, err)
		}
		if data, ok := out["data"].(map[string]any); ok {
			return data
		}
		return out
	}
	api("POST", "/v1/customers", `{"key": "alice", "email": "alice@example.com", "name": "Alice"}`)
	widgetSecret.Store(api("GET", "/v1/program", "")["widget_secret"].(string))

	browser := browsertest.Start(t, domain)

	// Alice invites Fred from her account page.
	alice := browsertest.NewTab(t, browser)
	alice.Navigate(site + "/account")
	alice.WaitProgram(programID.Load().(string))
	shadow := `document.querySelector('#w').shadowRoot`
	link, err := browsertest.Poll[string](alice, `(function(){ var r = `+shadow+`; var i = r && r.querySelector('input#l'); return i ? i.value : null })()`, 20*time.Second)
	if want := site + "?ref=alice"; err != nil || link != want {
		t.Fatalf("the widget shows %q (%v), want %q", link, err, want)
	}
	if _, err := chromedp.Run(alice.Ctx, chromedp.Evaluate[any](`(function(){ var r = `+shadow+`; r.querySelector('input#e').value = 'fred@example.com'; r.querySelector('form').requestSubmit() })()`)); err != nil {
		t.Fatal(err)
	}
	if status, err := browsertest.Poll[string](alice, `(function(){ var s = `+shadow+`.querySelector('[role=status]').textContent; return s || null })()`, 20*time.Second); err != nil || status != "Invitations sent." {
		t.Fatalf("invite form: %q (%v)", status, err)
	}
	alice.NoErrors()

	// The invitation, at the SMTP server.
	got := mp.Wait(1)[0]
	if len(got.To) != 1 || got.To[0].Address != "fred@example.com" || got.Subject != "Alice invites you to Acme" || got.From.Address != "rewards@acme.test" {
		t.Fatalf("invitation: to %v, from %v, subject %q", got.To, got.From, got.Subject)
	}
	m := regexp.MustCompile(`<a href="([^"]+)"`).FindStringSubmatch(got.HTML)
	if m == nil || m[1] != link || !strings.Contains(got.Text, link) {
		t.Fatalf("the invitation does not link to %s:\n%s\n%s", link, got.Text, got.HTML)
	}

	// Fred follows it in a browser of his own, and signs up.
	fred := browsertest.NewTab(t, browser)
	fred.Navigate(m[1])
	if state := fred.WaitProgram(programID.Load().(string)); state != "tracked" {
		t.Fatalf("following the invitation's link: universal.js says %q, want tracked", state)
	}
	fred.Navigate(site + "/signup")
	fred.WaitProgram(programID.Load().(string))
	deadline := time.Now().Add(wait)
	for {
		req, _ := http.NewRequest("GET", base+"/v1/customers/fred", nil)
		req.Header.Set("Authorization", "Bearer "+prog.APIKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Data struct {
				Source    string `json:"source"`
				Email     string `json:"email"`
				Referring *struct {
					Key string `json:"key"`
				} `json:"referring_customer"`
			} `json:"data"`
		}
		json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			if d := body.Data; d.Referring == nil || d.Referring.Key != "alice" || d.Source != "js" || d.Email != "fred@example.com" {
				t.Fatalf("fred = %+v, want alice's referral from js", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/customers/fred: %s after %s", res.Status, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fred.NoErrors()
	stats := api("GET", "/v1/customers/alice/stats", "")
	if stats["clicks"] != 1.0 || stats["total_referrals"] != 1.0 {
		t.Errorf("alice's stats %v, want 1 click and 1 referral", stats)
	}

	// The README's picture of the invitation, as an email client draws its HTML.
	dir := os.Getenv("REFERD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	view := browsertest.NewTab(t, browser)
	if err := chromedp.Do(view.Ctx, chromedp.EmulateViewport(600, 420)); err != nil {
		t.Fatal(err)
	}
	view.Navigate("data:text/html;charset=utf-8;base64," + base64.StdEncoding.EncodeToString([]byte(got.HTML)))
	png, err := chromedp.Run(view.Ctx, chromedp.CaptureScreenshot())
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot of %d bytes: %v", len(png), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "invitation-email.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	view.NoErrors()
}

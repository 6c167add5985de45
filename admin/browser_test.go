package admin_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/referd/referd/browsertest"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// demo fills e's program with a month of activity: referrers with friends, sales
// and their rewards, clicks on most days. It returns the top referrer's key.
func (e *env) demo(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	rules := `[{"name": "20% of each sale", "recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 20, "amount_type": "percent"}]`
	if _, err := e.db.ExecContext(ctx, `UPDATE programs SET rewards = $2 WHERE pk = $1`, e.p.PK, rules); err != nil {
		t.Fatal(err)
	}
	p, err := store.ProgramByPK(ctx, e.db, e.p.PK)
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	now := time.Now().UTC()
	names := []string{"Alice Martin", "Bruno Costa", "Chen Wei", "Dana Levi"}
	for i, n := range names {
		first, last, _ := strings.Cut(n, " ")
		key := strings.ToLower(first)
		if _, err := referral.CreateCustomer(ctx, e.db, p, referral.CustomerInput{Key: ptr(referral.Text(key)), Name: &first, Surname: &last,
			Email: ptr(key + "@example.com")}); err != nil {
			t.Fatal(err)
		}
		// Friends over the last 30 days, more for the first referrers, each buying.
		for j := 0; j < 24/(i+1); j++ {
			day := now.AddDate(0, 0, -((j*7 + i*3) % 30))
			friend := fmt.Sprintf("%s-friend-%d", key, j)
			ref := referral.Text(key)
			c, err := referral.CreateCustomer(ctx, e.db, p, referral.CustomerInput{Key: ptr(referral.Text(friend)), Email: ptr(friend + "@example.com"),
				Name: ptr(fmt.Sprintf("Friend %d", j)), ReferringCustomer: &referral.CustomerRefInput{Key: &ref}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.db.ExecContext(ctx, `UPDATE customers SET created_at = $2 WHERE pk = $1`, c.PK, day); err != nil {
				t.Fatal(err)
			}
			if _, _, err := ledger.RecordTransaction(ctx, e.db, p, ledger.Sale{CustomerKey: friend, Key: "sale-" + friend,
				Amount: int64(2900 + 1000*(j%4)), Units: "usd", CreatedAt: day}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := e.db.ExecContext(ctx, `UPDATE rewards r SET created_at = t.created_at FROM transactions t WHERE t.pk = r.transaction_pk`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, `INSERT INTO click_days (program_pk, day, shard, clicks)
		SELECT $1, $2::date - d, 0, 5 + (d * 37) % 23 FROM generate_series(0, 29) d WHERE d % 9 <> 4`, p.PK, now.Format(time.DateOnly)); err != nil {
		t.Fatal(err)
	}
	return "alice"
}

// The console in Chromium, as the business uses it: sign in with the API key, every
// page renders with the program's data and no console error (the pages' strict
// Content-Security-Policy included), a search finds a customer, a manual credit
// changes the balance the API reports, signing out ends the session. It takes the
// README's screenshots (REFERD_SCREENSHOTS=docs replaces them).
func TestBrowserConsole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	top := e.demo(t)
	browser := browsertest.Start(t)
	tab := browsertest.NewTab(t, browser)
	ctx, cancel := context.WithTimeout(tab.Ctx, 90*time.Second)
	defer cancel()
	tab.Ctx = ctx
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1200, 900)); err != nil {
		t.Fatal(err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(function(){ var e = document.querySelector(%q); return e ? e.innerText : '' })()`, sel)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	submit := func(form string, fields map[string]string) {
		t.Helper()
		js := fmt.Sprintf(`(function(){ var f = document.querySelector(%q); var v = %s; for (var k in v) f.elements[k].value = v[k]; f.requestSubmit(); })()`, form, jsObject(fields))
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](js)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.WaitReady("body")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	tab.Navigate(e.srv.URL + "/admin/customers")
	if h := text("h1"); h != "referd" {
		t.Fatalf("signed out, /admin/customers shows %q, want the sign-in form", h)
	}
	submit("form", map[string]string{"api_key": "rfd_not_a_key"})
	if msg := text("[role=alert]"); msg != "That API key is not valid." {
		t.Fatalf("a wrong key: %q", msg)
	}
	tab.Navigate(e.srv.URL + "/admin/customers")
	submit("form", map[string]string{"api_key": e.key})
	if h := text("h1"); h != "Customers" {
		t.Fatalf("after signing in: %q, want to be back on Customers", h)
	}

	dir := os.Getenv("REFERD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil || len(png) < 1000 {
			t.Fatalf("screenshot %s: %d bytes, %v", name, len(png), err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	tab.Navigate(e.srv.URL + "/admin?days=30")
	if charts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.chart rect').length`)); err != nil || charts < 5*30 {
		t.Errorf("overview: %d bars (%v), want 30 for each of at least 5 charts", charts, err)
	}
	if total := text(".chart-card .total"); total == "" || total == "0" {
		t.Errorf("overview: clicks total %q", total)
	}
	shot("console-overview.png")

	tab.Navigate(e.srv.URL + "/admin/customers")
	submit("form.search", map[string]string{"q": "chen@"})
	if rows := text("table.list tbody"); !strings.Contains(rows, "Chen Wei") || strings.Contains(rows, "Alice") {
		t.Errorf("search for chen@: %q", rows)
	}

	tab.Navigate(e.srv.URL + "/admin/customers/" + top)
	if h := text("h1"); h != "Alice Martin" {
		t.Fatalf("customer page: %q", h)
	}
	_, before, _ := ledger.CustomerBalance(context.Background(), e.db, e.p, top)
	submit("form.inline-form", map[string]string{"amount": "5", "units": "usd", "note": "Thank-you bonus"})
	if n := text(".notice"); n != "The balance was changed." {
		t.Fatalf("after the credit: %q", n)
	}
	_, after, _ := ledger.CustomerBalance(context.Background(), e.db, e.p, top)
	if len(before) != 1 || len(after) != 1 || after[0].Amount-before[0].Amount != 500 {
		t.Errorf("balance %+v → %+v, want 5.00 usd more", before, after)
	}
	shot("console-customer.png")
	tab.NoErrors("/admin/signin") // the wrong key's 401, on purpose

	// Signing out ends the session: the pages send to the sign-in form again.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.querySelector('form.signout').requestSubmit()`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	tab.Navigate(e.srv.URL + "/admin/customers/" + top)
	if h := text("h1"); h != "referd" {
		t.Errorf("after signing out: %q, want the sign-in form", h)
	}
}

func jsObject(m map[string]string) string {
	var b strings.Builder
	b.WriteString("{")
	for k, v := range m {
		fmt.Fprintf(&b, "%q: %q,", k, v)
	}
	b.WriteString("}")
	return b.String()
}

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
	"github.com/referd/referd/dispatch"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/promo"
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
	if _, err := promo.Create(ctx, e.db, p, promo.Input{Customer: &referral.CustomerRefInput{Key: ptr(referral.Text("alice"))}, Code: ptr(referral.Text("ALICE20")),
		ProviderIDs: &promo.ProviderIDs{Stripe: ptr("promo_1AliceSpring")}}, nil); err != nil {
		t.Fatal(err)
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
	e.withStripe(e.p)
	lost := e.invoicePaid(e.p, "evt_lost", "in_lost", "newbie", 4900, "") // nobody referd knows yet: unattributed
	if _, err := dispatch.CreateWebhook(context.Background(), e.db, e.p, dispatch.WebhookInput{Key: ptr(referral.Text("accounting")), Name: ptr("Accounting"),
		URL: ptr("https://hooks.acme.test/referd")}, false); err != nil {
		t.Fatal(err)
	}
	delivery := e.delivery("accounting", "msg_1", "Service Unavailable")
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
	if body := text("main"); !strings.Contains(body, "ALICE20") || !strings.Contains(body, "Stripe promo_1AliceSpring") {
		t.Errorf("the customer page does not show her promotion code:\n%.800s", body)
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

	// Every other page renders this program's data.
	for path, want := range map[string]string{
		"/admin/transactions": "sale-alice-friend-0", "/admin/events": "evt_lost", "/admin/webhooks": "Accounting",
		"/admin/settings": "20% of each sale", "/admin/events/" + fmt.Sprint(lost): "unattributed",
	} {
		tab.Navigate(e.srv.URL + path)
		if body := text("main"); !strings.Contains(body, want) {
			t.Errorf("%s does not show %q:\n%.600s", path, want, body)
		}
	}
	post := func(path, action string) {
		t.Helper()
		tab.Navigate(e.srv.URL + path)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](fmt.Sprintf(`document.querySelector('form[action=%q]').requestSubmit()`, action))); err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := chromedp.Do(ctx, chromedp.WaitReady(".notice")); err != nil {
			t.Fatalf("%s: no notice: %v", action, err)
		}
	}
	// A refund, as DELETE /v1/transactions/{key} would.
	post("/admin/transactions/sale-alice-friend-0", "/admin/transactions/sale-alice-friend-0/refund")
	if tx, err := ledger.GetTransaction(context.Background(), e.db, e.p, "sale-alice-friend-0"); err != nil || !tx.DeletedAt.Valid || tx.Refunded != tx.Amount {
		t.Errorf("after the console's refund: %+v %v", tx, err)
	}
	// A replay: the friend now exists, so the stored payment is attributed.
	ref := referral.Text("alice")
	if _, err := referral.CreateCustomer(context.Background(), e.db, e.p, referral.CustomerInput{Key: ptr(referral.Text("newbie")), ReferringCustomer: &referral.CustomerRefInput{Key: &ref}}); err != nil {
		t.Fatal(err)
	}
	post(fmt.Sprintf("/admin/events/%d", lost), fmt.Sprintf("/admin/events/%d/replay", lost))
	if st := e.eventStatus(lost); st != store.EventProcessed {
		t.Errorf("after the console's replay the event is %s, want processed", st)
	}
	// A delivery retry, as POST /v1/webhooks/{key}/deliveries/{id}/retry would.
	post("/admin/webhooks/accounting", "/admin/webhooks/accounting/deliveries/msg_1/retry")
	if !e.retryRequested(delivery) {
		t.Error("the console's retry did not ask for another attempt")
	}
	tab.NoErrors("/admin/signin") // the wrong key's 401, on purpose

	// A form whose CSRF token is not the session's is refused, and changes nothing.
	tab.Navigate(e.srv.URL + "/admin/transactions/sale-alice-friend-1")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`(function(){ var f = document.querySelector('form[action$="/refund"]'); f.elements.csrf.value = 'forged'; f.requestSubmit() })()`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if h := text("h1"); !strings.HasPrefix(h, "403") {
		t.Errorf("a forged CSRF token: %q, want the 403 page", h)
	}
	if tx, _ := ledger.GetTransaction(context.Background(), e.db, e.p, "sale-alice-friend-1"); tx.Refunded != 0 {
		t.Errorf("the refused form refunded %d", tx.Refunded)
	}

	// Another program's key sees none of this program's data.
	_, otherKey, err := referral.CreateProgram(context.Background(), e.db, "Other", "https://other.test")
	if err != nil {
		t.Fatal(err)
	}
	other := browsertest.NewTab(t, browser)
	octx, ocancel := context.WithTimeout(other.Ctx, 60*time.Second)
	defer ocancel()
	other.Navigate(e.srv.URL + "/admin/signin")
	if _, err := chromedp.Run(octx, chromedp.Evaluate[any](fmt.Sprintf(`(function(){ var f = document.querySelector('form'); f.elements.api_key.value = %q; f.requestSubmit() })()`, otherKey))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	for _, path := range []string{"/admin/customers/alice", "/admin/transactions/sale-alice-friend-1", fmt.Sprintf("/admin/events/%d", lost), "/admin/webhooks/accounting"} {
		other.Navigate(e.srv.URL + path)
		h, _ := chromedp.Run(octx, chromedp.Evaluate[string](`document.querySelector('h1').innerText`))
		if !strings.HasPrefix(h, "404") {
			t.Errorf("another program's console on %s: %q, want the 404 page", path, h)
		}
	}
	if list, _ := chromedp.Run(octx, chromedp.Evaluate[string](`(function(){ return fetch('/admin/customers').then(r => r.text()) })()`, chromedp.EvalAwaitPromise)); strings.Contains(list, "Alice") {
		t.Error("another program's customer list shows Alice")
	}

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

package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/referd/referd/admin"
	"github.com/referd/referd/browsertest"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// newEnvWith is newEnv with the console's fields set by configure before it serves.
func newEnvWith(t *testing.T, configure func(*admin.Console)) *env {
	t.Helper()
	e := newEnv(t)
	c := admin.New(e.db, "http://referd.test", nil)
	configure(c)
	e.srv = httptest.NewServer(c.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// program reads the program as GET /v1/program does.
func (e *env) program() store.Program {
	e.t.Helper()
	p, err := store.ProgramByID(context.Background(), e.db, e.p.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) rules() []referral.RewardRule {
	e.t.Helper()
	rules, err := referral.ProgramRules(e.program())
	if err != nil {
		e.t.Fatal(err)
	}
	return rules
}

func signedIn(t *testing.T, e *env) *client {
	t.Helper()
	c := e.client()
	if code, _, _ := c.signin(e.key); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	if code, _, _ := c.get("/admin/settings"); code != 200 {
		t.Fatalf("settings: %d", code)
	}
	return c
}

func wantRedirect(t *testing.T, what string, code int, body string, h http.Header, location string) {
	t.Helper()
	if code != http.StatusSeeOther || h.Get("Location") != location {
		t.Fatalf("%s: %d %q, want 303 to %q\n%s", what, code, h.Get("Location"), location, body)
	}
}

func TestSettingsPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := signedIn(t, e)
	code, body, _ := c.get("/admin/settings")
	if code != 200 {
		t.Fatalf("settings: %d", code)
	}
	for _, want := range []string{
		`<a href="/admin/settings" aria-current="page">`,
		`name="website_url" value="https://acme.test"`,
		`name="param" value="ref"`,
		`name="cookie_name" value="partnero_referral"`,
		`<option value="last_click" selected>`,
		`name="browser_signups" value="on" checked`,
		"No reward rules",
		// The widget secret is there to reveal, inside a closed <details>.
		"<summary>Reveal</summary>",
		`id="widget-secret" readonly value="` + e.p.WidgetSecret + `"`,
		// Every provider's ingest URL, to copy before it is connected.
		`value="http://referd.test/ingest/stripe/` + e.p.ID + `"`,
		`value="http://referd.test/ingest/paddle/` + e.p.ID + `"`,
		`value="http://referd.test/ingest/chargebee/` + e.p.ID + `"`,
		`data-copy="ingest-stripe"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the settings page lacks %s", want)
		}
	}
	if strings.Index(body, "<details>") > strings.Index(body, e.p.WidgetSecret) {
		t.Errorf("the widget secret is not inside <details>")
	}
}

func TestSettingsProgramAndTracking(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var changed []store.Program
	e := newEnvWith(t, func(c *admin.Console) {
		c.ProgramChanged = func(p store.Program) { mu.Lock(); changed = append(changed, p); mu.Unlock() }
	})
	c := signedIn(t, e)
	code, body, h := c.post("/admin/settings/tracking", url.Values{
		"link_format": {"path"}, "param": {"via"}, "cookie_name": {"acme_ref"}, "cookie_days": {"60"},
		"attribution": {"first_click"}, "cookie_domain": {".Acme.test"}})
	wantRedirect(t, "tracking", code, body, h, "/admin/settings?done=saved")
	tr := e.program().Tracking
	if tr.LinkFormat != "path" || tr.Param != "via" || tr.CookieName != "acme_ref" || tr.CookieDays != 60 ||
		tr.Attribution != "first_click" || tr.CookieDomain == nil || *tr.CookieDomain != ".acme.test" || tr.BrowserSignups {
		t.Fatalf("tracking after the form: %+v", tr)
	}
	mu.Lock()
	if len(changed) != 1 || changed[0].Tracking.Param != "via" {
		t.Errorf("ProgramChanged was told %+v", changed)
	}
	mu.Unlock()
	if _, body, _ := c.get("/admin/settings?done=saved"); !strings.Contains(body, "Saved.") || !strings.Contains(body, `name="cookie_domain" value=".acme.test"`) {
		t.Errorf("the page after saving does not show the new tracking")
	}

	// A bad value: the API's message by its field, and nothing changes.
	code, body, _ = c.post("/admin/settings/tracking", url.Values{
		"link_format": {"path"}, "param": {"no spaces"}, "cookie_name": {"acme_ref"}, "cookie_days": {"lots"}, "attribution": {"first_click"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="e-tracking.cookie_days"`) || !strings.Contains(body, `value="no spaces"`) {
		t.Fatalf("bad tracking: %d\n%s", code, body)
	}
	code, body, _ = c.post("/admin/settings/tracking", url.Values{
		"link_format": {"path"}, "param": {"no spaces"}, "cookie_name": {"acme_ref"}, "cookie_days": {"1"}, "attribution": {"first_click"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `<p class="field-error" id="e-tracking.param">The tracking.param must be 1-32 letters`) {
		t.Fatalf("bad param: %d\n%s", code, body)
	}
	if tr := e.program().Tracking; tr.Param != "via" || tr.CookieDays != 60 {
		t.Fatalf("a refused form changed the tracking: %+v", tr)
	}

	// Name, website, currency; a name with HTML is shown escaped; an over-long one is refused.
	code, body, h = c.post("/admin/settings/program", url.Values{"name": {`Acme <script>x()</script>`}, "website_url": {"https://shop.acme.test"}, "currency": {"EUR"}})
	wantRedirect(t, "program", code, body, h, "/admin/settings?done=saved")
	if p := e.program(); p.Name != `Acme <script>x()</script>` || p.WebsiteURL != "https://shop.acme.test" || p.Currency != "eur" {
		t.Fatalf("program after the form: %+v", p)
	}
	if _, body, _ := c.get("/admin/settings"); strings.Contains(body, "<script>x()") || !strings.Contains(body, "Acme &lt;script&gt;x()") {
		t.Errorf("the program's name is not escaped")
	}
	code, body, _ = c.post("/admin/settings/program", url.Values{"name": {"Nul\x00"}, "website_url": {"https://shop.acme.test"}, "currency": {"eur"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "The form holds a value that cannot be stored") {
		t.Fatalf("a name PostgreSQL cannot store: %d\n%s", code, body)
	}
	code, body, _ = c.post("/admin/settings/program", url.Values{"name": {strings.Repeat("n", 300)}, "website_url": {"https://shop.acme.test"}, "currency": {"eur"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "The name must not be greater than 255 characters.") {
		t.Fatalf("an over-long name: %d\n%s", code, body)
	}
	if p := e.program(); p.Name != `Acme <script>x()</script>` {
		t.Fatalf("the refused name was stored: %q", p.Name)
	}

	// Notifications.
	c.get("/admin/settings")
	code, body, h = c.post("/admin/settings/notifications", url.Values{"reward_earned": {"on"}})
	wantRedirect(t, "notifications", code, body, h, "/admin/settings?done=saved")
	if !e.program().Notifications.RewardEarned {
		t.Fatalf("reward_earned is still off")
	}
	c.post("/admin/settings/notifications", url.Values{})
	if e.program().Notifications.RewardEarned {
		t.Fatalf("reward_earned is still on")
	}
}

func TestSettingsRewardRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := signedIn(t, e)
	add := url.Values{"name": {"Welcome"}, "recipient": {"referred"}, "trigger": {"signup"}, "type": {"credit"},
		"amount": {"5"}, "amount_type": {"fixed"}, "hold_days": {"14"}}
	code, body, h := c.post("/admin/settings/rewards", add)
	wantRedirect(t, "add a rule", code, body, h, "/admin/settings?done=saved")
	add = url.Values{"recipient": {"referrer"}, "trigger": {"purchase"}, "type": {"cash"},
		"amount": {"10"}, "amount_type": {"percent"}, "min_purchase": {"20"}, "max_purchases": {"3"}}
	code, body, h = c.post("/admin/settings/rewards", add)
	wantRedirect(t, "add another", code, body, h, "/admin/settings?done=saved")
	rules := e.rules()
	if len(rules) != 2 || rules[0].Name != "Welcome" || rules[0].Amount != "5" || rules[0].Currency != "usd" || rules[0].HoldDays != 14 ||
		rules[1].Type != "cash" || rules[1].AmountType != "percent" || rules[1].MinPurchase == nil || *rules[1].MinPurchase != "20" || rules[1].MaxPurchases != 3 {
		t.Fatalf("rules after two adds: %+v", rules)
	}

	// Edit: the form is filled with the rule; saving replaces that rule only.
	code, body, _ = c.get("/admin/settings?edit=1")
	if code != 200 || !strings.Contains(body, `action="/admin/settings/rewards/1"`) || !strings.Contains(body, `name="min_purchase" value="20"`) {
		t.Fatalf("edit form: %d\n%s", code, body)
	}
	edit := url.Values{"recipient": {"referrer"}, "trigger": {"purchase"}, "type": {"cash"},
		"amount": {"12.5"}, "amount_type": {"percent"}, "min_purchase": {"20"}, "max_purchases": {"3"}}
	code, body, h = c.post("/admin/settings/rewards/1", edit)
	wantRedirect(t, "edit", code, body, h, "/admin/settings?done=saved")
	if rules := e.rules(); len(rules) != 2 || rules[1].Amount != "12.5" || rules[0].Name != "Welcome" {
		t.Fatalf("rules after the edit: %+v", rules)
	}

	// A bad rule: the API's message (rewards.1.amount) by the form's amount field,
	// and the rules stay as they were.
	before := e.program().Rewards
	bad := url.Values{"recipient": {"referrer"}, "trigger": {"purchase"}, "type": {"credit"}, "amount": {"-5"}, "amount_type": {"fixed"}}
	code, body, _ = c.post("/admin/settings/rewards/1", bad)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `<p class="field-error" id="e-rule.amount">The amount must be greater than 0.</p>`) ||
		!strings.Contains(body, `action="/admin/settings/rewards/1"`) || !strings.Contains(body, `name="amount" value="-5"`) ||
		!strings.Contains(body, `Nothing was saved. <a href="#rule-form">`) {
		t.Fatalf("a bad edit: %d\n%s", code, body)
	}
	bad = url.Values{"recipient": {"referrer"}, "trigger": {"signup"}, "type": {"credit"}, "amount": {"10"}, "amount_type": {"percent"}}
	code, body, _ = c.post("/admin/settings/rewards", bad)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="e-rule.amount_type">A signup credit reward has no purchase to take a percent of`) {
		t.Fatalf("a bad new rule: %d\n%s", code, body)
	}
	code, body, _ = c.post("/admin/settings/rewards", url.Values{"recipient": {"nobody"}, "trigger": {"purchase"}, "type": {"credit"}, "amount": {"ten"}, "amount_type": {"fixed"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="e-rule.amount">The amount must be a number`) {
		t.Fatalf("an amount that is not a number: %d\n%s", code, body)
	}
	if after := e.program().Rewards; after != before {
		t.Fatalf("refused rules changed the program: %s → %s", before, after)
	}

	// A form from a page shown before the rules changed (in another tab, through
	// the API) changes nothing: rule 0 is no longer the rule it showed.
	_, body, _ = c.get("/admin/settings")
	stale := rulesVersionRE.FindStringSubmatch(body)
	if stale == nil {
		t.Fatalf("no rules_version in the page")
	}
	rules = e.rules()
	changed, _ := json.Marshal(append([]referral.RewardRule{{Recipient: "referrer", Trigger: "signup", Type: "credit", Amount: "1", AmountType: "fixed"}}, rules...))
	if _, err := referral.UpdateProgram(context.Background(), e.db, e.p.PK, referral.ProgramPatch{Rewards: changed}); err != nil {
		t.Fatal(err)
	}
	before = e.program().Rewards
	for _, path := range []string{"/admin/settings/rewards/0/delete", "/admin/settings/rewards/0", "/admin/settings/rewards"} {
		code, body, _ = c.post(path, url.Values{"rules_version": {stale[1]}, "recipient": {"referrer"}, "trigger": {"purchase"}, "type": {"credit"}, "amount": {"3"}, "amount_type": {"fixed"}})
		if code != http.StatusConflict || !strings.Contains(body, "The reward rules changed after this page was shown") {
			t.Errorf("%s with a stale rules_version: %d", path, code)
		}
	}
	if after := e.program().Rewards; after != before {
		t.Fatalf("a stale form changed the rules: %s → %s", before, after)
	}
	_, body, _ = c.get("/admin/settings")
	fresh := rulesVersionRE.FindStringSubmatch(body)
	code, body, h = c.post("/admin/settings/rewards/0/delete", url.Values{"rules_version": {fresh[1]}})
	wantRedirect(t, "remove with the page's version", code, body, h, "/admin/settings?done=deleted")

	// Remove the first: the second is now the only one.
	code, body, h = c.post("/admin/settings/rewards/0/delete", url.Values{})
	wantRedirect(t, "remove", code, body, h, "/admin/settings?done=deleted")
	if rules := e.rules(); len(rules) != 1 || rules[0].Type != "cash" {
		t.Fatalf("rules after removing the first: %+v", rules)
	}
	for _, path := range []string{"/admin/settings/rewards/5", "/admin/settings/rewards/5/delete", "/admin/settings/rewards/x/delete"} {
		if code, _, _ := c.post(path, url.Values{"amount": {"1"}}); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	if code, _, _ := c.get("/admin/settings?edit=7"); code != http.StatusNotFound {
		t.Errorf("editing a rule that does not exist: %d", code)
	}
}

func TestSettingsWidgetSecretAndIntegrations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	c := signedIn(t, e)
	old := e.program().WidgetSecret
	code, body, h := c.post("/admin/settings/widget-secret", url.Values{})
	wantRedirect(t, "rotate", code, body, h, "/admin/settings?done=rotated")
	now := e.program().WidgetSecret
	if now == old || !strings.HasPrefix(now, "wgs_") {
		t.Fatalf("widget secret %q after rotating %q", now, old)
	}
	if _, body, _ := c.get("/admin/settings"); !strings.Contains(body, now) || strings.Contains(body, old) {
		t.Errorf("the page does not show the new widget secret")
	}

	// Connect Stripe: the page lists it with its ingest URL and its secret masked.
	secret := "whsec_abcdefghijklmnopqrstuv9876"
	code, body, h = c.post("/admin/settings/integrations/stripe", url.Values{"webhook_secrets": {secret + "\r\n\r\nwhsec_second_secret_000001111"}})
	wantRedirect(t, "connect", code, body, h, "/admin/settings?done=saved")
	i, err := referral.GetIntegration(ctx, e.db, e.p, "stripe")
	if err != nil || len(i.WebhookSecrets) != 2 || i.WebhookSecrets[0] != secret {
		t.Fatalf("stripe after connecting: %+v %v", i, err)
	}
	_, body, _ = c.get("/admin/settings")
	stripe := body[strings.Index(body, `id="integration-stripe"`):]
	stripe = stripe[:strings.Index(stripe, `id="integration-paddle"`)]
	for _, want := range []string{"connected", `value="http://referd.test/ingest/stripe/` + e.p.ID + `"`, "<code>****9876</code>", "<code>****1111</code>", "Disconnect Stripe"} {
		if !strings.Contains(stripe, want) {
			t.Errorf("the Stripe integration lacks %s:\n%s", want, stripe)
		}
	}
	if strings.Contains(body, secret) {
		t.Errorf("the page shows a signing secret in full")
	}
	// Chargebee without a password: the API's message by the field, nothing stored.
	code, body, _ = c.post("/admin/settings/integrations/chargebee", url.Values{"username": {"cb"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "The password field is required for Chargebee.") {
		t.Fatalf("chargebee without a password: %d\n%s", code, body)
	}
	if _, err := referral.GetIntegration(ctx, e.db, e.p, "chargebee"); !isNotFound(err) {
		t.Fatalf("a refused integration was stored: %v", err)
	}
	if code, _, _ := c.post("/admin/settings/integrations/acmepay", url.Values{"webhook_secrets": {"x"}}); code != http.StatusNotFound {
		t.Errorf("an unknown provider: %d", code)
	}
	code, body, h = c.post("/admin/settings/integrations/stripe/delete", url.Values{})
	wantRedirect(t, "disconnect", code, body, h, "/admin/settings?done=deleted")
	if _, err := referral.GetIntegration(ctx, e.db, e.p, "stripe"); !isNotFound(err) {
		t.Fatalf("stripe after disconnecting: %v", err)
	}
	if code, _, _ := c.post("/admin/settings/integrations/stripe/delete", url.Values{}); code != http.StatusNotFound {
		t.Errorf("disconnecting twice: %d", code)
	}
}

// Without the session's CSRF token no form changes anything; another program's
// console sees nothing of this program's settings.
func TestSettingsCSRFAndTenancy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	c := signedIn(t, e)
	c.post("/admin/settings/rewards", url.Values{"recipient": {"referrer"}, "trigger": {"purchase"}, "type": {"credit"}, "amount": {"5"}, "amount_type": {"fixed"}})
	before := e.program()
	forms := map[string]url.Values{
		"/admin/settings/program":                url.Values{"name": {"Hijacked"}, "website_url": {"https://evil.test"}, "currency": {"eur"}},
		"/admin/settings/tracking":               url.Values{"link_format": {"query"}, "param": {"evil"}, "cookie_name": {"x"}, "cookie_days": {"1"}, "attribution": {"last_click"}},
		"/admin/settings/widget-secret":          url.Values{},
		"/admin/settings/notifications":          url.Values{"reward_earned": {"on"}},
		"/admin/settings/rewards":                url.Values{"recipient": {"referrer"}, "trigger": {"purchase"}, "type": {"credit"}, "amount": {"99"}, "amount_type": {"fixed"}},
		"/admin/settings/rewards/0/delete":       url.Values{},
		"/admin/settings/integrations/stripe":    url.Values{"webhook_secrets": {"whsec_evil_evil_evil"}},
		"/admin/settings/integrations/chargebee": url.Values{"username": {"u"}, "password": {"p"}},
	}
	for path, form := range forms {
		for _, token := range []string{"", "forged"} {
			form.Set("csrf", token)
			if code, _, _ := c.post(path, form); code != http.StatusForbidden {
				t.Errorf("%s with csrf %q: %d, want 403", path, token, code)
			}
		}
	}
	after := e.program()
	if after.Name != before.Name || after.Tracking.Param != before.Tracking.Param || after.WidgetSecret != before.WidgetSecret ||
		after.Rewards != before.Rewards || after.Notifications != before.Notifications {
		t.Fatalf("a form without its CSRF token changed the program:\n%+v\n%+v", before, after)
	}
	if ints, _ := referral.Integrations(ctx, e.db, e.p); len(ints) != 0 {
		t.Fatalf("a form without its CSRF token connected %+v", ints)
	}

	// Another program's console: its own settings, nothing of this program's.
	_, otherKey, err := referral.CreateProgram(ctx, e.db, "Other", "https://other.test")
	if err != nil {
		t.Fatal(err)
	}
	o := e.client()
	o.signin(otherKey)
	_, body, _ := o.get("/admin/settings")
	if !strings.Contains(body, "https://other.test") || strings.Contains(body, e.p.ID) || strings.Contains(body, before.WidgetSecret) || strings.Contains(body, "acme.test") {
		t.Errorf("another program's settings show this program's")
	}
	o.post("/admin/settings/rewards/0/delete", url.Values{})
	if e.program().Rewards != before.Rewards {
		t.Errorf("another program's console changed this program's rules")
	}
}

var rulesVersionRE = regexp.MustCompile(`name="rules_version" value="([0-9a-f]+)"`)

func isNotFound(err error) bool {
	var nf *referral.NotFoundError
	return err != nil && (store.IsNotFound(err) || errors.As(err, &nf))
}

// In Chromium: the widget secret shows only once "Reveal" is clicked, the copy
// button hands the ingest URL to the clipboard, and a refused rule shows its message
// by the field; the pages throw nothing and break no CSP rule.
func TestSettingsInBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := browsertest.Start(t)
	tab := browsertest.NewTab(t, b)
	tab.Navigate(e.srv.URL + "/admin/signin?next=%2Fadmin%2Fsettings")
	if _, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[any](`(function(){ var f = document.querySelector('form');
		f.querySelector('input[name=api_key]').value = '`+e.key+`'; f.requestSubmit() })()`)); err != nil {
		t.Fatal(err)
	}
	// The form navigates; polling during the navigation fails, so poll again.
	for deadline := time.Now().Add(15 * time.Second); ; {
		_, err := browsertest.Poll[bool](tab, `document.querySelector('#widget-secret') ? true : null`, time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the settings page after signing in: %v", err)
		}
	}
	visible := `(function(){ var el = document.getElementById('widget-secret'); return el.checkVisibility() && el.getBoundingClientRect().height > 0 })()`
	if shown, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[bool](visible)); err != nil || shown {
		t.Fatalf("the widget secret is visible before Reveal (%v)", err)
	}
	if shown, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[bool](`(function(){ document.querySelector('#widget summary').click(); return `+visible+` })()`)); err != nil || !shown {
		t.Fatalf("the widget secret is hidden after Reveal (%v)", err)
	}
	copied, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](`(function(){ var got = '';
		var fake = { writeText: function (s) { got = s; return Promise.resolve() } };
		if (navigator.clipboard) navigator.clipboard.writeText = fake.writeText;
		else Object.defineProperty(navigator, 'clipboard', { value: fake, configurable: true }); // http: no Clipboard API
		document.querySelector('button[data-copy="ingest-paddle"]').click(); return got })()`))
	if want := "http://referd.test/ingest/paddle/" + e.p.ID; err != nil || copied != want {
		t.Errorf("the copy button copied %q (%v), want %q", copied, err, want)
	}
	if _, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[any](`(function(){ var i = document.getElementById('f-rule.amount');
		i.value = '0'; i.form.requestSubmit() })()`)); err != nil {
		t.Fatal(err)
	}
	var msg string
	for deadline := time.Now().Add(15 * time.Second); ; {
		msg, err = browsertest.Poll[string](tab, `(function(){ var p = document.getElementById('e-rule.amount'); return p ? p.textContent : null })()`, time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || msg != "The amount must be greater than 0." {
		t.Fatalf("the refused rule's message: %q (%v)", msg, err)
	}
	tab.NoErrors("/admin/settings/rewards", "favicon.ico") // the 422 of the refused rule
	if rules := e.rules(); len(rules) != 0 {
		t.Fatalf("the refused rule was stored: %+v", rules)
	}
}

// A rule form's patch applies only to the list it was made from, checked under the
// program's lock: a list changed in between (another tab, the API) is kept.
func TestRulesPatchIsConditional(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	read := e.program().Rewards // what the console's request read
	rule := json.RawMessage(`[{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 5, "amount_type": "fixed"}]`)
	if _, err := referral.UpdateProgram(ctx, e.db, e.p.PK, referral.ProgramPatch{Rewards: rule}); err != nil {
		t.Fatal(err) // the change in between
	}
	_, err := referral.UpdateProgram(ctx, e.db, e.p.PK, referral.ProgramPatch{Rewards: json.RawMessage(`[]`), IfRewards: &read})
	if !errors.Is(err, referral.ErrRulesChanged) {
		t.Fatalf("a patch of a list that changed: %v, want ErrRulesChanged", err)
	}
	if rules := e.rules(); len(rules) != 1 {
		t.Errorf("rules %+v, want the one added in between", rules)
	}
	now := e.program().Rewards
	if _, err := referral.UpdateProgram(ctx, e.db, e.p.PK, referral.ProgramPatch{Rewards: json.RawMessage(`[]`), IfRewards: &now}); err != nil || len(e.rules()) != 0 {
		t.Errorf("a patch of the list as it is: %v, %d rules", err, len(e.rules()))
	}
}

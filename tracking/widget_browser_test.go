package tracking

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/referd/referd/referral"
)

// The referral widget in Chromium, on a page whose CSS is hostile (every element
// unset, every div hidden, the widget's container included): it shows the
// customer's link, the copy button copies it, the share links open the right URLs,
// the invite form queues invitations; a forged token shows nothing and warns once.
func TestBrowserReferralWidget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.h.Email = true
	b := newBrowser(t, e)
	p := e.program("https://"+shopDomain, "")
	name := "<b>Ann</b>"
	if _, err := referral.CreateCustomer(context.Background(), e.db, p, referral.CustomerInput{Key: ptr(referral.Text("ann")), Name: &name}); err != nil {
		t.Fatal(err)
	}
	hostile := `document.write('<style>* { all: unset } div { display: none } button, a, input { color: red; font-size: 40px }</style><div id="w"></div>');`
	render := func(token, theme string) string {
		return fmt.Sprintf("\n%s\npo('renderReferralWidget', {container: '#w', customer_key: 'ann', token: %q, theme: %q});", hostile, token, theme)
	}
	shadow := `document.querySelector('#w').shadowRoot`
	show := func(t *testing.T, token, theme string) *tab {
		t.Helper()
		b.extra.Store(p.ID, render(token, theme))
		tb := b.tab(t)
		tb.visit(tb.url(shopDomain, p.ID, "/account"), p.ID)
		return tb
	}
	for _, theme := range []string{"light", "dark"} {
		t.Run(theme, func(t *testing.T) {
			tb := show(t, WidgetToken(p.WidgetSecret, "ann"), theme)
			link, err := chromedp.Run(tb.ctx, chromedp.Poll[string](
				`(function(){ var r = `+shadow+`; var i = r && r.querySelector('input#l'); return i ? i.value : null })()`,
				chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
			if err != nil || link != "https://shop.test?ref=ann" {
				t.Fatalf("the widget's link %q (%v)", link, err)
			}
			height, err := chromedp.Run(tb.ctx, chromedp.Evaluate[float64](`document.querySelector('#w').getBoundingClientRect().height`))
			if err != nil {
				t.Fatal(err)
			}
			shares, err := chromedp.Run(tb.ctx, chromedp.Evaluate[map[string]string](
				`(function(){ var o = {}; `+shadow+`.querySelectorAll('a[data-share]').forEach(function(a){ o[a.dataset.share] = a.href }); return o })()`))
			if err != nil {
				t.Fatal(err)
			}
			if height < 50 {
				t.Errorf("the widget is %v px high: the page's CSS hid it", height)
			}
			enc := url.QueryEscape("https://shop.test?ref=ann")
			if shares["twitter"] != "https://twitter.com/intent/tweet?url="+enc || shares["facebook"] != "https://www.facebook.com/sharer/sharer.php?u="+enc || len(shares) != 5 {
				t.Errorf("share links %v", shares)
			}
			if theme != "light" {
				return
			}
			// Copy: the button hands the link to the clipboard (headless Chromium keeps no
			// clipboard of its own to read back, so the test listens to the call).
			copied, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`(function(){ var got = '';
				var fake = { writeText: function (s) { got = s; return Promise.resolve() } };
				if (navigator.clipboard) navigator.clipboard.writeText = fake.writeText;
				else Object.defineProperty(navigator, 'clipboard', { value: fake, configurable: true }); // http: no Clipboard API
				var b = `+shadow+`.querySelector('button'); b.click(); return got + '|' + b.textContent })()`))
			if err != nil || copied != "https://shop.test?ref=ann|Copied" {
				t.Errorf("the copy button: %q (%v)", copied, err)
			}
			// Invite two friends through the form.
			if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[any](`(function(){ var r = `+shadow+`; r.querySelector('input#e').value = 'f1@example.com, f2@example.com'; r.querySelector('form').requestSubmit() })()`)); err != nil {
				t.Fatal(err)
			}
			status, err := chromedp.Run(tb.ctx, chromedp.Poll[string](`(function(){ var s = `+shadow+`.querySelector('[role=status]').textContent; return s || null })()`,
				chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
			var n int
			e.db.Get(&n, `SELECT count(*) FROM emails WHERE text_body LIKE '%https://shop.test?ref=ann%'`)
			if err != nil || status != "Invitations sent." || n != 2 {
				t.Errorf("invite form: %q (%v), %d queued; want sent and 2", status, err, n)
			}
			tb.NoErrors()
		})
	}
	t.Run("forged token", func(t *testing.T) {
		tb := show(t, WidgetToken("wgs_forged", "ann"), "light")
		time.Sleep(500 * time.Millisecond)
		if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](`(function(){ return `+shadow+` ? true : null })()`,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(2*time.Second))); err == nil {
			t.Error("a forged token rendered the widget")
		}
		console, exceptions := tb.Console()
		if len(console) != 1 || !strings.Contains(console[0], "referral widget") {
			t.Errorf("console %q, want one warning", console)
		}
		if len(exceptions) > 0 {
			t.Errorf("exceptions %v", exceptions)
		}
	})
}

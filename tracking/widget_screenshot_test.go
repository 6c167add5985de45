package tracking

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/referd/referd/referral"
)

// The README's screenshots of the widget, light and dark, taken in Chromium on a plain
// page: every run takes them (into a temporary directory); with
// REFERD_SCREENSHOTS=docs they replace the README's.
func TestWidgetScreenshots(t *testing.T) {
	t.Parallel()
	dir := os.Getenv("REFERD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	e := newEnv(t)
	e.h.Email = true
	b := newBrowser(t, e)
	p := e.program("https://"+shopDomain, "")
	name := "Ann"
	if _, err := referral.CreateCustomer(context.Background(), e.db, p, referral.CustomerInput{Key: ptr(referral.Text("ann")), Name: &name}); err != nil {
		t.Fatal(err)
	}
	for _, theme := range []string{"light", "dark"} {
		b.extra.Store(p.ID, fmt.Sprintf("\ndocument.write('<div id=\"w\" style=\"width:480px;margin:16px\"></div>');\npo('renderReferralWidget', {container: '#w', customer_key: 'ann', token: %q, theme: %q});", WidgetToken(p.WidgetSecret, "ann"), theme))
		tb := b.tab(t)
		ctx, cancel := context.WithTimeout(tb.ctx, 40*time.Second)
		tb.ctx = ctx
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(520, 330)); err != nil {
			t.Fatal(err)
		}
		tb.visit(tb.url(shopDomain, p.ID, "/account"), p.ID)
		if _, err := chromedp.Run(ctx, chromedp.Poll[string](`(function(){ var r = document.querySelector('#w').shadowRoot; var i = r && r.querySelector('input#l'); return i ? i.value : null })()`,
			chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.querySelector('h1').remove()`)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil || len(png) < 1000 {
			t.Fatalf("screenshot of %d bytes: %v", len(png), err)
		}
		if err := os.WriteFile(filepath.Join(dir, "widget-"+theme+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

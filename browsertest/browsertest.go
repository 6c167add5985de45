// Package browsertest drives Debian's Chromium, headless, through the DevTools
// protocol (chromedp) for the tests of what people look at: the tracking script, the
// referral widget, emails, the admin console. It fails a test that needs Chromium
// when it is missing, with the command that installs it; it never skips.
package browsertest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Install is the command that installs what Start needs (.ci/run runs it).
const Install = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver"

// Chromium returns the path of Chromium's binary, or fails t with the command that
// installs it.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium was not found, and the browser tests need it. Install it with: " + Install + " (.ci/run does)")
	return ""
}

// Start starts a headless Chromium for t, stopped when t ends, and returns its
// context. Every name under each of domains resolves to 127.0.0.1, so that pages
// can be served by the test on sites of their own (cookies on an IP address can
// have no domain).
func Start(t testing.TB, domains ...string) context.Context {
	t.Helper()
	exe := Chromium(t)
	var rules []string
	for _, d := range domains {
		rules = append(rules, "MAP *."+d+" 127.0.0.1", "MAP "+d+" 127.0.0.1")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		// Stay on http: the test servers speak nothing else.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,HttpsUpgrades,HttpsFirstBalancedModeAutoEnable"),
	)
	if len(rules) > 0 {
		opts = append(opts, chromedp.Flag("host-resolver-rules", strings.Join(rules, ", ")))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting Chromium (%s): %v", exe, err)
	}
	return ctx
}

// Tab is a page in a fresh profile (a browser context of its own, so tabs share no
// cookies), with what its page threw and said in the console.
type Tab struct {
	T   testing.TB
	Ctx context.Context

	mu         sync.Mutex
	exceptions []string
	console    []string // console.error and console.warn calls
	logged     []*cdplog.Entry
}

// NewTab opens a tab in the browser of browserCtx (Start), closed when t ends.
func NewTab(t testing.TB, browserCtx context.Context) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb := &Tab{T: t, Ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			tb.exceptions = append(tb.exceptions, fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, a.Description+string(a.Value))
				}
				tb.console = append(tb.console, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *cdplog.EventEntryAdded:
			tb.logged = append(tb.logged, ev.Entry)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// Navigate loads url and fails the test when it cannot.
func (tb *Tab) Navigate(url string) {
	tb.T.Helper()
	if err := chromedp.Do(tb.Ctx, chromedp.Navigate(url)); err != nil {
		tb.T.Fatalf("visiting %s: %v", url, err)
	}
}

// Poll evaluates expr until it is neither null nor undefined, for up to timeout,
// and returns its value.
func Poll[T any](tb *Tab, expr string, timeout time.Duration) (T, error) {
	return chromedp.Run(tb.Ctx, chromedp.Poll[T](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
}

// Console returns the console.error and console.warn calls of the page so far, and
// what it threw.
func (tb *Tab) Console() (console, exceptions []string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.console...), append([]string(nil), tb.exceptions...)
}

// Cookie returns the cookie of this name that the page at url would send, or nil.
func (tb *Tab) Cookie(url, name string) *network.Cookie {
	tb.T.Helper()
	res, err := chromedp.Call(tb.Ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		tb.T.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// NoErrors says the page threw nothing and its console shows no error or warning
// (console calls, and what Chromium logs itself, such as failed requests), apart
// from failed requests to URLs containing one of allowedFailures.
func (tb *Tab) NoErrors(allowedFailures ...string) {
	tb.T.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, ex := range tb.exceptions {
		tb.T.Errorf("uncaught exception: %s", ex)
	}
	for _, c := range tb.console {
		tb.T.Errorf("%s", c)
	}
next:
	for _, en := range tb.logged {
		if en.Level != cdplog.EntryLevelError && en.Level != cdplog.EntryLevelWarning {
			continue
		}
		for _, a := range allowedFailures {
			if en.Source == cdplog.EntrySourceNetwork && strings.Contains(en.URL, a) {
				continue next
			}
		}
		tb.T.Errorf("console %s (%s): %s %s", en.Level, en.Source, en.Text, en.URL)
	}
}

// Loader is Partnero's loader snippet (the seed's 001) as a site puts it in its
// pages, with the script loaded from referdURL, the program programID, and more po()
// calls (calls, JavaScript) before the program loads.
func Loader(referdURL, programID, calls string) string {
	return fmt.Sprintf(`<!-- PartneroJS -->
<script>
(function(p,t,n,e,r,o){p['__partnerObject']=r;function f(){
var c={a:arguments,q:[]};var r=this.push(c);return "number"!=typeof r?r:f.bind(c.q);}
f.q=f.q||[];p[r]=p[r]||f.bind(f.q);p[r].q=p[r].q||f.q;o=t.createElement(n);
var _=t.getElementsByTagName(n)[0];o.async=1;o.src=e+'?v'+(~~(new Date().getTime()/1e6));
_.parentNode.insertBefore(o,_);})(window,document,'script','%s/js/universal.js','po');
po('settings','assets_host','https://assets.partnero.com');%s
po('program','%s','load');
</script>
<!-- End PartneroJS -->`, referdURL, calls, programID)
}

// WaitProgram waits until universal.js has finished loading program programID on
// the tab's page, and returns its state (ready, tracked, unknown or error).
func (tb *Tab) WaitProgram(programID string) string {
	tb.T.Helper()
	state, err := Poll[string](tb, fmt.Sprintf(
		`(function(){ var s = window.po && window.po.programs && window.po.programs[%q]; return s && s !== 'loading' ? s : null })()`, programID),
		30*time.Second)
	if err != nil {
		tb.T.Fatalf("universal.js did not finish with program %s: %v", programID, err)
	}
	return state
}

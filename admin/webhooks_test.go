package admin_test

import (
	"context"
	"database/sql"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/referd/referd/dispatch"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// outboxPK numbers the test deliveries' outbox events: one delivery per event and endpoint.
var outboxPK atomic.Int64

var secretRE = regexp.MustCompile(`id="webhook-secret" readonly value="(whsec_[^"]+)"`)

// delivery stores a delivery to the endpoint key with one failed attempt.
func (e *env) delivery(key, id, response string) int64 {
	e.t.Helper()
	ctx := context.Background()
	ep, err := store.GetWebhookEndpoint(ctx, e.db, e.p.PK, key)
	if err != nil {
		e.t.Fatal(err)
	}
	pks, err := store.InsertDeliveries(ctx, e.db, []store.WebhookDelivery{{ID: id, WebhookID: id, ProgramPK: e.p.PK,
		EndpointPK: ep.PK, OutboxPK: outboxPK.Add(1), Event: "customer.created", Body: "{}", CreatedAt: store.Now()}})
	if err != nil || len(pks) != 1 {
		e.t.Fatalf("InsertDeliveries: %v %v", pks, err)
	}
	failed := store.Attempt{At: store.Now(), StatusCode: 503, DurationMS: 42, Error: "", Response: response}
	if err := store.RecordAttempts(ctx, e.db, []store.AttemptRecord{{DeliveryPK: pks[0], EndpointPK: ep.PK, Attempt: failed, Status: "failed",
		Next: sql.NullTime{Time: store.Now().Add(time.Hour), Valid: true}}}); err != nil {
		e.t.Fatal(err)
	}
	return pks[0]
}

func (e *env) retryRequested(pk int64) bool {
	e.t.Helper()
	var at sql.NullTime
	if err := e.db.Get(&at, `SELECT retry_requested_at FROM webhook_deliveries WHERE pk = $1`, pk); err != nil {
		e.t.Fatal(err)
	}
	return at.Valid
}

func TestWebhooksCreateEditRotateDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	c.signin(e.key)
	if code, body, _ := c.get("/admin/webhooks"); code != 200 || !strings.Contains(body, "No webhook endpoints yet.") || !strings.Contains(body, `value="reward.created"`) {
		t.Fatalf("webhooks: %d\n%s", code, body)
	}
	// Create: the endpoint's page, with its signing secret this once.
	code, body, h := c.post("/admin/webhooks", url.Values{"name": {`Zapier <b>x</b>`}, "url": {"https://hooks.example.com/in?a=1&b=<i>"}, "key": {"zap"},
		"events": {"customer.created", "reward.created"}, "is_active": {"on"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/admin/webhooks/zap?done=created" {
		t.Fatalf("create: %d %s\n%s", code, h.Get("Location"), body)
	}
	code, body, _ = c.get(h.Get("Location"))
	m := secretRE.FindStringSubmatch(body)
	ep, err := dispatch.GetWebhook(ctx, e.db, e.p, "zap")
	if err != nil || m == nil || html.UnescapeString(m[1]) != ep.Secret {
		t.Fatalf("the page after creating shows %v; the secret is %q (%v)", m, ep.Secret, err)
	}
	if ep.Name != "Zapier <b>x</b>" || ep.URL != "https://hooks.example.com/in?a=1&b=<i>" || !ep.IsActive || strings.Join(ep.Events, ",") != "customer.created,reward.created" {
		t.Fatalf("endpoint after creating: %+v", ep)
	}
	if strings.Contains(body, "<b>x</b>") || strings.Contains(body, "b=<i>") || !strings.Contains(body, "Zapier &lt;b&gt;x&lt;/b&gt;") {
		t.Errorf("the endpoint's name or URL is not escaped:\n%s", body)
	}
	// Shown once: the page again (a reload) shows it no more.
	if _, again, _ := c.get("/admin/webhooks/zap?done=created"); secretRE.MatchString(again) {
		t.Error("reloading the page after creating shows the secret again")
	}
	// Shown once: the endpoint's page and the list show it masked.
	_, body, _ = c.get("/admin/webhooks/zap")
	if strings.Contains(html.UnescapeString(body), ep.Secret) || !strings.Contains(html.UnescapeString(body), "whsec_****"+ep.Secret[len(ep.Secret)-4:]) {
		t.Errorf("the endpoint's page shows its secret in full, or not masked")
	}
	_, body, _ = c.get("/admin/webhooks")
	if strings.Contains(html.UnescapeString(body), ep.Secret) || !strings.Contains(body, `href="/admin/webhooks/zap"`) || strings.Contains(body, "<b>x</b>") {
		t.Errorf("the list: %s", body)
	}

	// A refused form: the API's messages by the fields, nothing stored.
	code, body, _ = c.post("/admin/webhooks", url.Values{"name": {strings.Repeat("n", 300)}, "url": {"ftp://x"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="e-name">The name must not be greater than 255 characters.`) ||
		!strings.Contains(body, `id="e-url">The url must be an absolute http or https URL`) {
		t.Fatalf("a bad endpoint: %d\n%s", code, body)
	}
	code, body, _ = c.post("/admin/webhooks", url.Values{"url": {"https://x.example.com/" + strings.Repeat("a", 2100)}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "The url must not be greater than 2048 characters.") {
		t.Fatalf("an over-long url: %d", code)
	}
	code, body, _ = c.post("/admin/webhooks", url.Values{"url": {"http://127.0.0.1:9000/hook"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "loopback") {
		t.Fatalf("a loopback url: %d", code)
	}
	code, body, _ = c.post("/admin/webhooks", url.Values{"key": {"zap"}, "url": {"https://hooks.example.com/again"}})
	if code != http.StatusConflict || !strings.Contains(body, `id="e-key">The key has already been taken.`) {
		t.Fatalf("a key taken: %d\n%s", code, body)
	}
	if _, n, _ := dispatch.Webhooks(ctx, e.db, e.p, 10, 0); n != 1 {
		t.Fatalf("%d endpoints after refused forms, want 1", n)
	}

	// Edit: rename, all events, disabled.
	c.get("/admin/webhooks/zap")
	code, body, h = c.post("/admin/webhooks/zap", url.Values{"name": {"Zapier"}, "url": {"https://hooks.example.com/v2"}})
	wantRedirect(t, "edit", code, body, h, "/admin/webhooks/zap?done=saved")
	ep, _ = dispatch.GetWebhook(ctx, e.db, e.p, "zap")
	if ep.Name != "Zapier" || ep.URL != "https://hooks.example.com/v2" || ep.IsActive || len(ep.Events) != 0 {
		t.Fatalf("endpoint after editing: %+v", ep)
	}
	code, body, _ = c.post("/admin/webhooks/zap", url.Values{"name": {"Zapier"}, "url": {""}, "is_active": {"on"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "The url must not be empty.") {
		t.Fatalf("an edit without url: %d\n%s", code, body)
	}
	if ep, _ := dispatch.GetWebhook(ctx, e.db, e.p, "zap"); ep.IsActive {
		t.Fatalf("a refused edit changed the endpoint")
	}

	// Rotate: a new secret, shown once; the old one still signs for a while.
	old := ep.Secret
	code, _, h = c.post("/admin/webhooks/zap/rotate", url.Values{})
	if code != http.StatusSeeOther || h.Get("Location") != "/admin/webhooks/zap?done=rotated" {
		t.Fatalf("rotate: %d %s", code, h.Get("Location"))
	}
	code, body, _ = c.get(h.Get("Location"))
	ep, _ = dispatch.GetWebhook(ctx, e.db, e.p, "zap")
	m = secretRE.FindStringSubmatch(body)
	if code != 200 || ep.Secret == old || m == nil || html.UnescapeString(m[1]) != ep.Secret || ep.PreviousSecret.String != old {
		t.Fatalf("rotate: %d, shown %v, secret %q (was %q)", code, m, ep.Secret, old)
	}
	if v := dispatch.WebhookJSON(ep, false); v.Signature != "whsec_****"+ep.Secret[len(ep.Secret)-4:] {
		t.Fatalf("the API shows %q after the rotation", v.Signature)
	}

	// Delete.
	c.get("/admin/webhooks/zap")
	code, body, h = c.post("/admin/webhooks/zap/delete", url.Values{})
	wantRedirect(t, "delete", code, body, h, "/admin/webhooks?done=deleted")
	if _, err := dispatch.GetWebhook(ctx, e.db, e.p, "zap"); !isNotFound(err) {
		t.Fatalf("after deleting: %v", err)
	}
	for _, path := range []string{"/admin/webhooks/zap", "/admin/webhooks/nothing"} {
		if code, _, _ := c.get(path); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
}

func TestWebhookDeliveriesAndRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := dispatch.CreateWebhook(ctx, e.db, e.p, dispatch.WebhookInput{Key: nil, Name: ptr("hook"), URL: ptr("https://hooks.example.com/x")}, false); err != nil {
		t.Fatal(err)
	}
	eps, _, _ := dispatch.Webhooks(ctx, e.db, e.p, 1, 0)
	key := eps[0].Key
	pk := e.delivery(key, "msg_first", `<script>alert(1)</script>`+strings.Repeat("x", 1000))
	for i := range 55 {
		e.delivery(key, fmt.Sprintf("msg_%02d", i), "ok")
	}
	c := e.client()
	c.signin(e.key)
	code, body, _ := c.get("/admin/webhooks/" + key)
	if code != 200 || !strings.Contains(body, "Deliveries <span class=\"muted\">(56)</span>") || !strings.Contains(body, "msg_54") ||
		strings.Contains(body, "msg_first") || !strings.Contains(body, `rel="next"`) {
		t.Fatalf("the delivery log's first page: %d\n%s", code, body)
	}
	if n := strings.Count(body, `class="delivery"`); n != 50 {
		t.Errorf("%d deliveries on the first page, want 50", n)
	}
	code, body, _ = c.get("/admin/webhooks/" + key + "?page=2")
	if code != 200 || !strings.Contains(body, "msg_first") || strings.Contains(body, "msg_54") {
		t.Fatalf("the second page: %d", code)
	}
	for _, want := range []string{"503", "42 ms", "&lt;script&gt;alert(1)&lt;/script&gt;xxx", "…</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the attempt lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert") || strings.Contains(body, strings.Repeat("x", 400)) {
		t.Errorf("the response is not escaped, or not cut to an excerpt")
	}

	// Retry: the relay is asked for an attempt now, as the API's retry does.
	if e.retryRequested(pk) {
		t.Fatal("a retry is requested before any")
	}
	code, body, h := c.post("/admin/webhooks/"+key+"/deliveries/msg_first/retry", url.Values{"page": {"2"}})
	wantRedirect(t, "retry", code, body, h, "/admin/webhooks/"+key+"?page=2&done=retried")
	if !e.retryRequested(pk) {
		t.Fatal("no retry requested after the console's retry")
	}
	if _, body, _ := c.get(h.Get("Location")); !strings.Contains(body, "The delivery was queued for another attempt.") {
		t.Errorf("no notice after the retry")
	}
	if code, _, _ := c.post("/admin/webhooks/"+key+"/deliveries/msg_nothing/retry", url.Values{}); code != http.StatusNotFound {
		t.Errorf("retrying an unknown delivery: %d", code)
	}
}

// Without the CSRF token nothing changes; another program's console sees none of
// this program's endpoints or deliveries, and changes none.
func TestWebhooksCSRFAndTenancy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ep, err := dispatch.CreateWebhook(ctx, e.db, e.p, dispatch.WebhookInput{Key: nil, Name: ptr("Mine"), URL: ptr("https://hooks.example.com/mine")}, false)
	if err != nil {
		t.Fatal(err)
	}
	pk := e.delivery(ep.Key, "msg_mine", "nope")
	c := e.client()
	c.signin(e.key)
	c.get("/admin/webhooks")
	for path, form := range map[string]url.Values{
		"/admin/webhooks":                                          {"url": {"https://hooks.example.com/evil"}},
		"/admin/webhooks/" + ep.Key:                                {"name": {"Evil"}, "url": {"https://hooks.example.com/evil"}},
		"/admin/webhooks/" + ep.Key + "/rotate":                    {},
		"/admin/webhooks/" + ep.Key + "/delete":                    {},
		"/admin/webhooks/" + ep.Key + "/deliveries/msg_mine/retry": {},
	} {
		form.Set("csrf", "forged")
		if code, _, _ := c.post(path, form); code != http.StatusForbidden {
			t.Errorf("%s without the CSRF token: %d, want 403", path, code)
		}
	}
	after, err := dispatch.GetWebhook(ctx, e.db, e.p, ep.Key)
	if err != nil || after.Name != "Mine" || after.Secret != ep.Secret || !after.IsActive || e.retryRequested(pk) {
		t.Fatalf("forms without the CSRF token changed %+v (%v)", after, err)
	}
	if _, n, _ := dispatch.Webhooks(ctx, e.db, e.p, 10, 0); n != 1 {
		t.Fatalf("%d endpoints", n)
	}

	other, otherKey, err := referral.CreateProgram(ctx, e.db, "Other", "https://other.test")
	if err != nil {
		t.Fatal(err)
	}
	o := e.client()
	o.signin(otherKey)
	if _, body, _ := o.get("/admin/webhooks"); strings.Contains(body, ep.Key) || strings.Contains(body, "Mine") {
		t.Errorf("another program's list shows this program's endpoint")
	}
	for _, path := range []string{"/admin/webhooks/" + ep.Key, "/admin/webhooks/" + ep.Key + "?page=2"} {
		if code, body, _ := o.get(path); code != http.StatusNotFound || strings.Contains(body, "msg_mine") {
			t.Errorf("another program's %s: %d", path, code)
		}
	}
	for _, path := range []string{"/admin/webhooks/" + ep.Key, "/admin/webhooks/" + ep.Key + "/rotate", "/admin/webhooks/" + ep.Key + "/delete",
		"/admin/webhooks/" + ep.Key + "/deliveries/msg_mine/retry"} {
		if code, _, _ := o.post(path, url.Values{"name": {"Evil"}, "url": {"https://hooks.example.com/evil"}}); code != http.StatusNotFound {
			t.Errorf("another program's POST %s: %d, want 404", path, code)
		}
	}
	after, err = dispatch.GetWebhook(ctx, e.db, e.p, ep.Key)
	if err != nil || after.Name != "Mine" || after.Secret != ep.Secret || e.retryRequested(pk) {
		t.Fatalf("another program's console changed %+v (%v)", after, err)
	}
	if _, n, _ := dispatch.Webhooks(ctx, e.db, other, 10, 0); n != 0 {
		t.Fatalf("the other program has %d endpoints", n)
	}
	// The other program's endpoint of the same key has none of this one's deliveries.
	same := ep.Key
	if _, err := dispatch.CreateWebhook(ctx, e.db, other, dispatch.WebhookInput{Key: (*referral.Text)(&same), URL: ptr("https://hooks.example.com/theirs")}, false); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := o.get("/admin/webhooks/" + ep.Key); code != 200 || strings.Contains(body, "msg_mine") || !strings.Contains(body, "hooks.example.com/theirs") {
		t.Errorf("the other program's endpoint of the same key: %d\n%s", code, body)
	}
	if code, _, _ := o.post("/admin/webhooks/"+ep.Key+"/deliveries/msg_mine/retry", url.Values{}); code != http.StatusNotFound || e.retryRequested(pk) {
		t.Errorf("retrying this program's delivery through the other's endpoint of the same key: %d", code)
	}
}

// The list of endpoints comes a page at a time; one the system disabled says why.
func TestWebhooksListPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for i := range 51 {
		k := referral.Text(fmt.Sprintf("hook_%02d", i))
		if _, err := dispatch.CreateWebhook(ctx, e.db, e.p, dispatch.WebhookInput{Key: &k, URL: ptr("https://hooks.example.com/" + string(k))}, false); err != nil {
			t.Fatal(err)
		}
	}
	ep, _ := store.GetWebhookEndpoint(ctx, e.db, e.p.PK, "hook_50")
	if err := store.DisableEndpoint(ctx, e.db, ep.PK, "failing for 5 days", store.Now()); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signin(e.key)
	_, body, _ := c.get("/admin/webhooks")
	if n := strings.Count(body, `href="/admin/webhooks/hook_`); n != 50 || !strings.Contains(body, "51 endpoints") || !strings.Contains(body, `href="/admin/webhooks?page=2" rel="next"`) {
		t.Fatalf("the first page lists %d endpoints\n%s", n, body)
	}
	_, body, _ = c.get("/admin/webhooks?page=2")
	if n := strings.Count(body, `href="/admin/webhooks/hook_`); n != 1 || !strings.Contains(body, "hook_50") ||
		!strings.Contains(body, `<span class="badge bad">disabled</span> <small class="muted">failing for 5 days</small>`) {
		t.Fatalf("the second page lists %d endpoints\n%s", n, body)
	}
}

package api_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/api"
	"github.com/referd/referd/store"
)

var (
	apiTimeRE  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)
	genKeyRE   = regexp.MustCompile(`^wh_[a-z0-9]{16}$`)
	fullSecret = regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{32}$`)
)

// masked is how a secret shows outside the replies that reveal it.
func masked(secret string) string { return "whsec_****" + secret[len(secret)-4:] }

func TestWebhookEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// Create: 201, a generated key, the full secret shown once, defaults.
	a := e.must(201, "POST", "/v1/webhooks", `{"url": "https://hooks.example.com/referd", "events": ["customer.created", "reward.approved", "customer.created"]}`).data()
	keyA, _ := a["key"].(string)
	secretA, _ := a["signature"].(string)
	if !genKeyRE.MatchString(keyA) {
		t.Errorf("generated key %q, want wh_ and 16 lowercase alphanumerics", keyA)
	}
	if !fullSecret.MatchString(secretA) {
		t.Errorf("signature on create = %q, want the full whsec_ secret", secretA)
	}
	if a["is_active"] != true || a["insecure"] != false || a["disabled_reason"] != nil || a["name"] != "" ||
		a["url"] != "https://hooks.example.com/referd" {
		t.Errorf("created = %v", a)
	}
	if ev := a["events"].([]any); len(ev) != 2 || ev[0] != "customer.created" || ev[1] != "reward.approved" {
		t.Errorf("events = %v, want the two distinct events in order", ev)
	}
	for _, f := range []string{"created_at", "updated_at"} {
		if s, _ := a[f].(string); !apiTimeRE.MatchString(s) {
			t.Errorf("%s = %q, want the form 2025-05-09T17:42:13.000000Z", f, a[f])
		}
	}

	// An http:// URL is accepted and flagged; given key and name are kept; no events
	// means all of them.
	b := e.must(201, "POST", "/v1/webhooks", `{"key": "orders.hook-1", "name": "Orders", "url": "http://hooks.example.com/plain", "is_active": false}`).data()
	if b["key"] != "orders.hook-1" || b["name"] != "Orders" || b["insecure"] != true || b["is_active"] != false ||
		len(b["events"].([]any)) != 0 || !fullSecret.MatchString(b["signature"].(string)) {
		t.Errorf("created = %v", b)
	}

	// List and get mask the secret.
	lr := e.must(200, "GET", "/v1/webhooks", nil)
	l := lr.list()
	if len(l) != 2 || l[0].(map[string]any)["key"] != keyA || l[1].(map[string]any)["key"] != "orders.hook-1" {
		t.Fatalf("list = %s", lr.Raw)
	}
	if sig := l[0].(map[string]any)["signature"]; sig != masked(secretA) {
		t.Errorf("listed signature = %v, want %q", sig, masked(secretA))
	}
	if meta := lr.Body["meta"].(map[string]any); meta["total"] != float64(2) || meta["per_page"] != float64(15) {
		t.Errorf("meta = %v", meta)
	}
	if links, _ := lr.Body["links"].(map[string]any); links == nil || links["next"] != nil {
		t.Errorf("links = %v", lr.Body["links"])
	}
	if l := e.must(200, "GET", "/v1/webhooks?limit=1&page=2", nil).list(); len(l) != 1 || l[0].(map[string]any)["key"] != "orders.hook-1" {
		t.Errorf("page 2 of 1 = %v", l)
	}
	wantError(t, e.offSpec().call("GET", "/v1/webhooks?limit=251", nil), 422, "limit")
	g := e.must(200, "GET", "/v1/webhooks/"+keyA, `[]`)
	if g.data()["signature"] != masked(secretA) {
		t.Errorf("get signature = %v", g.data()["signature"])
	}
	for _, raw := range []string{string(lr.Raw), string(g.Raw)} {
		if strings.Contains(raw, secretA) {
			t.Errorf("the secret leaked: %s", raw)
		}
	}

	// A partial update changes only what it names.
	u := e.must(200, "PUT", "/v1/webhooks/"+keyA, `{"name": "Renamed", "events": []}`).data()
	if u["name"] != "Renamed" || u["url"] != "https://hooks.example.com/referd" || len(u["events"].([]any)) != 0 ||
		u["signature"] != masked(secretA) || u["is_active"] != true {
		t.Errorf("updated = %v", u)
	}
	if u["created_at"] != a["created_at"] {
		t.Errorf("created_at changed by an update: %v, was %v", u["created_at"], a["created_at"])
	}
	u = e.must(200, "PUT", "/v1/webhooks/"+keyA, `{"url": "http://hooks.example.com/v2", "events": ["transaction.created"]}`).data()
	if u["name"] != "Renamed" || u["insecure"] != true || len(u["events"].([]any)) != 1 {
		t.Errorf("updated = %v", u)
	}

	// Rotation shows the new secret once and keeps the old one signing for a day.
	rot := e.must(200, "PUT", "/v1/webhooks/"+keyA, `{"rotate_signature": true}`).data()
	secretA2, _ := rot["signature"].(string)
	if !fullSecret.MatchString(secretA2) || secretA2 == secretA {
		t.Errorf("rotated signature = %q (old %q), want a new full secret", secretA2, secretA)
	}
	if sig := e.must(200, "GET", "/v1/webhooks/"+keyA, nil).data()["signature"]; sig != masked(secretA2) {
		t.Errorf("signature after rotation = %v, want %q", sig, masked(secretA2))
	}
	var prev struct {
		Secret string    `db:"secret"`
		Prev   string    `db:"previous_secret"`
		Until  time.Time `db:"previous_secret_until"`
	}
	if err := e.db.Get(&prev, `SELECT secret, previous_secret, previous_secret_until FROM webhook_endpoints WHERE program_pk = $1 AND key = $2`,
		e.prog.PK, keyA); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(prev.Until); prev.Secret != secretA2 || prev.Prev != secretA || d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("stored after rotation: secret %q previous %q until %v, want previous = the old secret for 24h", prev.Secret, prev.Prev, prev.Until)
	}

	// Renaming the key: the old one is gone, the new one answers.
	e.must(200, "PUT", "/v1/webhooks/"+keyA, `{"key": "primary"}`)
	wantError(t, e.call("GET", "/v1/webhooks/"+keyA, nil), 404, "")
	e.must(200, "GET", "/v1/webhooks/primary", nil)

	// Validation.
	for _, c := range []struct {
		body, field string
		offSpec     bool // the body breaks openapi.json
	}{
		{`{}`, "url", true},
		{`{"url": ""}`, "url", false},
		{`{"url": "ftp://hooks.example.com/x"}`, "url", false},
		{`{"url": "not a url"}`, "url", false},
		{`{"url": "https://user:pw@hooks.example.com/x"}`, "url", false},
		{`{"url": "http://127.0.0.1:8080/hook"}`, "url", false},
		{`{"url": "http://localhost/hook"}`, "url", false},
		{`{"url": "http://169.254.169.254/latest/meta-data"}`, "url", false},
		{`{"url": "https://hooks.example.com", "events": ["customer.created", "order.paid"]}`, "events", true},
		{`{"url": "https://hooks.example.com", "events": "customer.created"}`, "events", true},
		{`{"url": "https://hooks.example.com", "key": "a b"}`, "key", true},
		{`{"url": "https://hooks.example.com", "key": "a/b"}`, "key", true},
		{`{"url": "https://hooks.example.com", "key": "` + strings.Repeat("k", 65) + `"}`, "key", true},
		{`{"url": "https://hooks.example.com", "name": "` + strings.Repeat("n", 256) + `"}`, "name", true},
		{`{"url": "https://hooks.example.com", "is_active": "yes"}`, "is_active", true},
	} {
		wantError(t, e.offSpecIf(c.offSpec).call("POST", "/v1/webhooks", c.body), 422, c.field)
	}
	wantError(t, e.offSpec().call("POST", "/v1/webhooks", `{"url": `), 400, "")
	wantError(t, e.call("PUT", "/v1/webhooks/primary", `{"url": "http://10.0.0.7/hook"}`), 422, "url")
	wantError(t, e.offSpec().call("PUT", "/v1/webhooks/primary", `{"events": ["reward.paid"]}`), 422, "events")
	wantError(t, e.offSpec().call("PUT", "/v1/webhooks/primary", `{"key": ""}`), 422, "key")
	if n := len(e.must(200, "GET", "/v1/webhooks", nil).list()); n != 2 {
		t.Errorf("%d endpoints after rejected requests, want 2", n)
	}

	// Duplicate keys.
	wantError(t, e.call("POST", "/v1/webhooks", `{"key": "primary", "url": "https://hooks.example.com/dup"}`), 409, "key")
	wantError(t, e.call("PUT", "/v1/webhooks/orders.hook-1", `{"key": "primary"}`), 409, "key")

	// Unknown endpoints.
	wantError(t, e.call("GET", "/v1/webhooks/nope", nil), 404, "")
	wantError(t, e.call("PUT", "/v1/webhooks/nope", `{"name": "x"}`), 404, "")
	wantError(t, e.call("DELETE", "/v1/webhooks/nope", nil), 404, "")
	wantError(t, e.call("GET", "/v1/webhooks/nope/deliveries", nil), 404, "")

	// Delete answers the deleted object, masked, then it is gone.
	del := e.must(200, "DELETE", "/v1/webhooks/orders.hook-1", `[]`).data()
	if del["key"] != "orders.hook-1" || del["name"] != "Orders" || !strings.HasPrefix(del["signature"].(string), "whsec_****") {
		t.Errorf("delete answered %v", del)
	}
	wantError(t, e.call("GET", "/v1/webhooks/orders.hook-1", nil), 404, "")
	wantError(t, e.call("DELETE", "/v1/webhooks/orders.hook-1", nil), 404, "")

	// Another program sees none of it, and may use the same key.
	_, keyB := e.newProgram("Beta", "https://beta.test")
	if r := e.callKey(keyB, "GET", "/v1/webhooks", nil); r.Status != 200 || len(r.list()) != 0 {
		t.Errorf("program B lists %s", r.Raw)
	}
	wantError(t, e.callKey(keyB, "GET", "/v1/webhooks/primary", nil), 404, "")
	wantError(t, e.callKey(keyB, "PUT", "/v1/webhooks/primary", `{"rotate_signature": true}`), 404, "")
	wantError(t, e.callKey(keyB, "DELETE", "/v1/webhooks/primary", nil), 404, "")
	wantError(t, e.callKey(keyB, "GET", "/v1/webhooks/primary/deliveries", nil), 404, "")
	if r := e.callKey(keyB, "POST", "/v1/webhooks", `{"key": "primary", "url": "https://beta.example.com/hook"}`); r.Status != 201 {
		t.Errorf("program B creating key primary: %d %s", r.Status, r.Raw)
	}
	if got := e.must(200, "GET", "/v1/webhooks/primary", nil).data(); got["url"] != "http://hooks.example.com/v2" {
		t.Errorf("program A's endpoint after B's create = %v", got)
	}
	wantError(t, e.offSpec().callKey("", "GET", "/v1/webhooks", nil), 401, "")
}

// An endpoint the system disabled shows why; activating it clears the reason and
// its failure streak.
func TestWebhookReactivation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.must(201, "POST", "/v1/webhooks", `{"key": "hook", "url": "https://hooks.example.com/x"}`)
	ep, err := store.GetWebhookEndpoint(ctx, e.db, e.prog.PK, "hook")
	if err != nil {
		t.Fatal(err)
	}
	pks, err := store.InsertDeliveries(ctx, e.db, []store.WebhookDelivery{{ID: "msg_r1", WebhookID: "msg_r1", ProgramPK: e.prog.PK,
		EndpointPK: ep.PK, OutboxPK: 1, Event: "customer.created", Body: "{}", CreatedAt: store.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	failed := store.Attempt{At: store.Now(), StatusCode: 503, DurationMS: 12}
	if err := store.RecordAttempts(ctx, e.db, []store.AttemptRecord{{DeliveryPK: pks[0], EndpointPK: ep.PK, Attempt: failed, Status: "failed", Next: sql.NullTime{Time: store.Now().Add(time.Minute), Valid: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := store.DisableEndpoint(ctx, e.db, ep.PK, "failing for 5 days", store.Now()); err != nil {
		t.Fatal(err)
	}
	d := e.must(200, "GET", "/v1/webhooks/hook", nil).data()
	if d["is_active"] != false || d["disabled_reason"] != "failing for 5 days" {
		t.Errorf("disabled endpoint = %v", d)
	}
	// Renaming it leaves it disabled.
	if d := e.must(200, "PUT", "/v1/webhooks/hook", `{"name": "still off"}`).data(); d["is_active"] != false || d["disabled_reason"] != "failing for 5 days" {
		t.Errorf("after a rename = %v", d)
	}
	d = e.must(200, "PUT", "/v1/webhooks/hook", `{"is_active": true}`).data()
	if d["is_active"] != true || d["disabled_reason"] != nil {
		t.Errorf("reactivated endpoint = %v", d)
	}
	var failingSince sql.NullTime
	if err := e.db.Get(&failingSince, `SELECT failing_since FROM webhook_endpoints WHERE pk = $1`, ep.PK); err != nil {
		t.Fatal(err)
	}
	if failingSince.Valid {
		t.Errorf("failing_since = %v after reactivation, want NULL", failingSince.Time)
	}
	// Switched off by hand: no reason given by the system.
	if d := e.must(200, "PUT", "/v1/webhooks/hook", `{"is_active": false}`).data(); d["is_active"] != false || d["disabled_reason"] != nil {
		t.Errorf("deactivated endpoint = %v", d)
	}
}

// With REFERD_ALLOW_PRIVATE_TARGETS, loopback and private URLs are accepted.
func TestWebhookPrivateTargetsAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := api.New(e.db, "http://referd.test", slog.New(slog.NewTextHandler(io.Discard, nil)), 8)
	s.AllowPrivateTargets = true
	priv := *e
	priv.srv = e.serve(s)
	for _, u := range []string{"http://127.0.0.1:8080/hook", "http://localhost/hook", "https://10.1.2.3/hook"} {
		if d := priv.must(201, "POST", "/v1/webhooks", map[string]any{"url": u}).data(); d["url"] != u {
			t.Errorf("created %v", d)
		}
	}
	priv.must(200, "PUT", "/v1/webhooks/"+priv.must(200, "GET", "/v1/webhooks", nil).list()[0].(map[string]any)["key"].(string),
		`{"url": "http://192.168.1.1/x"}`)
	// The default server still refuses them.
	wantError(t, e.call("POST", "/v1/webhooks", `{"url": "http://127.0.0.1:8080/hook"}`), 422, "url")
}

func TestWebhookDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.must(201, "POST", "/v1/webhooks", `{"key": "hook", "url": "https://hooks.example.com/x"}`)
	e.must(201, "POST", "/v1/webhooks", `{"key": "other", "url": "https://hooks.example.com/y"}`)
	ep, err := store.GetWebhookEndpoint(ctx, e.db, e.prog.PK, "hook")
	if err != nil {
		t.Fatal(err)
	}
	other, err := store.GetWebhookEndpoint(ctx, e.db, e.prog.PK, "other")
	if err != nil {
		t.Fatal(err)
	}
	base := store.Now().Add(-time.Hour)
	var ds []store.WebhookDelivery
	for i, ev := range []string{"customer.created", "transaction.created", "reward.created"} {
		id := "msg_" + string(rune('a'+i))
		ds = append(ds, store.WebhookDelivery{ID: id, WebhookID: id, ProgramPK: e.prog.PK, EndpointPK: ep.PK,
			OutboxPK: int64(i + 1), Event: ev, Body: `{"event":"` + ev + `"}`, CreatedAt: base.Add(time.Duration(i) * time.Minute)})
	}
	ds = append(ds, store.WebhookDelivery{ID: "msg_other", WebhookID: "msg_other", ProgramPK: e.prog.PK, EndpointPK: other.PK,
		OutboxPK: 1, Event: "customer.created", Body: `{}`, CreatedAt: base})
	pks, err := store.InsertDeliveries(ctx, e.db, ds)
	if err != nil || len(pks) != 4 {
		t.Fatalf("InsertDeliveries: %v %v", pks, err)
	}
	// msg_a: a timeout, then a 500; msg_b: delivered.
	first := store.Attempt{At: base.Add(time.Second), DurationMS: 10000, Error: "context deadline exceeded"}
	second := store.Attempt{At: base.Add(time.Minute), StatusCode: 500, DurationMS: 42, Response: "oops"}
	next := base.Add(time.Hour)
	for _, a := range []store.Attempt{first, second} {
		if err := store.RecordAttempts(ctx, e.db, []store.AttemptRecord{{DeliveryPK: pks[0], EndpointPK: ep.PK, Attempt: a, Status: "failed", Next: sql.NullTime{Time: next, Valid: true}}}); err != nil {
			t.Fatal(err)
		}
	}
	ok := store.Attempt{At: base.Add(2 * time.Minute), StatusCode: 204, DurationMS: 7}
	if err := store.RecordAttempts(ctx, e.db, []store.AttemptRecord{{DeliveryPK: pks[1], EndpointPK: ep.PK, Attempt: ok, Status: "succeeded", Next: sql.NullTime{}}}); err != nil {
		t.Fatal(err)
	}

	r := e.must(200, "GET", "/v1/webhooks/hook/deliveries", nil)
	l := r.list()
	if len(l) != 3 {
		t.Fatalf("deliveries = %s", r.Raw)
	}
	var ids []string
	for _, x := range l {
		ids = append(ids, x.(map[string]any)["id"].(string))
	}
	if strings.Join(ids, ",") != "msg_c,msg_b,msg_a" {
		t.Errorf("deliveries in order %v, want newest first", ids)
	}
	if meta := r.Body["meta"].(map[string]any); meta["total"] != float64(3) {
		t.Errorf("meta = %v", meta)
	}
	c, b, a := l[0].(map[string]any), l[1].(map[string]any), l[2].(map[string]any)
	if c["event"] != "reward.created" || c["webhook_id"] != "msg_c" || c["status"] != "pending" || len(c["attempts"].([]any)) != 0 ||
		!apiTimeRE.MatchString(c["created_at"].(string)) || !apiTimeRE.MatchString(c["next_attempt_at"].(string)) {
		t.Errorf("pending delivery = %v", c)
	}
	if b["status"] != "succeeded" || b["next_attempt_at"] != nil || len(b["attempts"].([]any)) != 1 {
		t.Errorf("delivered = %v", b)
	}
	if a["status"] != "failed" || a["event"] != "customer.created" || a["next_attempt_at"] != next.UTC().Format("2006-01-02T15:04:05.000000Z") {
		t.Errorf("failed delivery = %v", a)
	}
	atts := a["attempts"].([]any)
	if len(atts) != 2 {
		t.Fatalf("attempts = %v", atts)
	}
	at0, at1 := atts[0].(map[string]any), atts[1].(map[string]any)
	if at0["at"] != first.At.UTC().Format("2006-01-02T15:04:05.000000Z") || at0["status_code"] != nil ||
		at0["duration_ms"] != float64(10000) || at0["error"] != "context deadline exceeded" || at0["response"] != "" {
		t.Errorf("first attempt = %v", at0)
	}
	if at1["status_code"] != float64(500) || at1["duration_ms"] != float64(42) || at1["error"] != nil || at1["response"] != "oops" {
		t.Errorf("second attempt = %v", at1)
	}
	for _, k := range []string{"id", "event", "webhook_id", "status", "attempts", "next_attempt_at", "created_at"} {
		if _, ok := a[k]; !ok {
			t.Errorf("delivery lacks %q: %v", k, a)
		}
	}
	pr := e.must(200, "GET", "/v1/webhooks/hook/deliveries?limit=2&page=2", nil)
	if l := pr.list(); len(l) != 1 || l[0].(map[string]any)["id"] != "msg_a" {
		t.Errorf("page 2 = %s", pr.Raw)
	}
	if links := pr.Body["links"].(map[string]any); links["prev"] == nil || links["next"] != nil {
		t.Errorf("links = %v", links)
	}
	wantError(t, e.offSpec().call("GET", "/v1/webhooks/hook/deliveries?limit=0", nil), 422, "limit")

	// Retry: the request is recorded for the relay and the delivery answered.
	retryAt := func(id string) sql.NullTime {
		t.Helper()
		var at sql.NullTime
		if err := e.db.Get(&at, `SELECT retry_requested_at FROM webhook_deliveries WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		return at
	}
	if retryAt("msg_a").Valid {
		t.Fatal("retry requested before any was asked for")
	}
	rd := e.must(200, "POST", "/v1/webhooks/hook/deliveries/msg_a/retry", nil).data()
	if rd["id"] != "msg_a" || rd["webhook_id"] != "msg_a" || len(rd["attempts"].([]any)) != 2 {
		t.Errorf("retry answered %v", rd)
	}
	if at := retryAt("msg_a"); !at.Valid || time.Since(at.Time) > time.Minute {
		t.Errorf("retry_requested_at = %v, want about now", at)
	}
	e.must(200, "POST", "/v1/webhooks/hook/deliveries/msg_b/retry", `[]`)
	if !retryAt("msg_b").Valid {
		t.Error("retry of msg_b not recorded")
	}
	wantError(t, e.call("POST", "/v1/webhooks/hook/deliveries/msg_zzz/retry", nil), 404, "")
	// A delivery of another endpoint is not this one's.
	wantError(t, e.call("POST", "/v1/webhooks/hook/deliveries/msg_other/retry", nil), 404, "")
	wantError(t, e.call("POST", "/v1/webhooks/nope/deliveries/msg_a/retry", nil), 404, "")
	if retryAt("msg_other").Valid || retryAt("msg_c").Valid {
		t.Error("a retry was recorded for a delivery nobody retried")
	}
	if l := e.must(200, "GET", "/v1/webhooks/other/deliveries", nil).list(); len(l) != 1 || l[0].(map[string]any)["id"] != "msg_other" {
		t.Errorf("other's deliveries = %v", l)
	}

	// Another program cannot see or retry them.
	_, keyB := e.newProgram("Beta", "https://beta.test")
	wantError(t, e.callKey(keyB, "GET", "/v1/webhooks/hook/deliveries", nil), 404, "")
	wantError(t, e.callKey(keyB, "POST", "/v1/webhooks/hook/deliveries/msg_c/retry", nil), 404, "")
	if retryAt("msg_c").Valid {
		t.Error("program B requested a retry of A's delivery")
	}
}

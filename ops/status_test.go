package ops_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/jobs/jobstest"
	"github.com/referd/referd/ops"
	"github.com/referd/referd/store"
)

// troubled gives e an unattributed event, an endpoint failing for a day, one that
// referd disabled, and an undispatched outbox row (customer.created of "ref").
func (e *env) troubled() {
	e.t.Helper()
	pk := e.invoicePaid("evt_u", "in_u", "stranger", 1000, "usd", true)
	if got := e.status(pk); got != "unattributed" {
		e.t.Fatalf("event is %s, want unattributed", got)
	}
	for _, key := range []string{"wh_failing", "wh_gone"} {
		ep := store.WebhookEndpoint{ProgramPK: e.p.PK, Key: key, URL: "https://hooks.test/" + key, IsActive: true, Secret: "whsec_x", CreatedAt: store.Now()}
		if err := store.InsertWebhookEndpoint(e.ctx, e.db, &ep); err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.db.Exec(`UPDATE webhook_endpoints SET failing_since = now() - interval '1 day' WHERE pk = $1`, ep.PK); err != nil {
			e.t.Fatal(err)
		}
		if key == "wh_gone" {
			if err := store.DisableEndpoint(e.ctx, e.db, ep.PK, "the endpoint answered 410 Gone", store.Now()); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// checkDatabasePart checks what troubled left in the report.
func (e *env) checkDatabasePart(r ops.Report) {
	e.t.Helper()
	if r.ProviderEvents.Unattributed != 1 || r.ProviderEvents.Failed != 0 || r.ProviderEvents.StaleReceived != 0 {
		e.t.Errorf("provider events %+v", r.ProviderEvents)
	}
	if r.Outbox.Undispatched < 1 || r.Outbox.Oldest == nil {
		e.t.Errorf("outbox %+v, want the customer.created rows", r.Outbox)
	}
	if r.EndpointsTotal != 2 || len(r.Endpoints) != 2 {
		e.t.Fatalf("endpoints %+v (total %d)", r.Endpoints, r.EndpointsTotal)
	}
	f, g := r.Endpoints[0], r.Endpoints[1]
	if f.Key != "wh_failing" || !f.Active || f.FailingSince == nil || f.ProgramID != e.p.ID || f.URL != "https://hooks.test/wh_failing" {
		e.t.Errorf("failing endpoint %+v", f)
	}
	if g.Key != "wh_gone" || g.Active || g.DisabledReason != "the endpoint answered 410 Gone" {
		e.t.Errorf("disabled endpoint %+v", g)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.troubled()
	opt := jobstest.Redis(t)
	queue := jobstest.Queue(t, opt)
	client := asynq.NewClient(opt)
	defer client.Close()
	for _, d := range []time.Duration{0, time.Hour} {
		if _, err := client.Enqueue(asynq.NewTask("ops_test:status", nil), asynq.Queue(queue), asynq.ProcessIn(d)); err != nil {
			t.Fatal(err)
		}
	}

	r, err := ops.Status(e.ctx, e.db, opt)
	if err != nil {
		t.Fatal(err)
	}
	if r.RedisError != "" {
		t.Fatalf("redis error %q", r.RedisError)
	}
	e.checkDatabasePart(r)
	var q *ops.QueueStatus
	for i := range r.Queues {
		if r.Queues[i].Name == queue {
			q = &r.Queues[i]
		}
	}
	if q == nil || q.Size != 2 || q.Pending != 1 || q.Scheduled != 1 || q.Active != 0 || q.Archived != 0 {
		t.Fatalf("queue %s: %+v", queue, q)
	}

	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Queues", queue, "unattributed", "Webhook endpoints failing or disabled: 2",
		"wh_failing", "disabled: the endpoint answered 410 Gone", "undispatched"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	json.Unmarshal(b, &back)
	for _, k := range []string{"at", "queues", "provider_events", "outbox", "failing_endpoints", "failing_endpoints_total"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON report lacks %q: %s", k, b)
		}
	}
	if _, ok := back["redis_error"]; ok {
		t.Errorf("JSON report has a redis_error: %s", b)
	}
}

// With Redis unreachable the report still has the database part.
func TestStatusWithoutRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.troubled()
	r, err := ops.Status(e.ctx, e.db, asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.RedisError == "" || len(r.Queues) != 0 {
		t.Errorf("redis error %q, queues %+v", r.RedisError, r.Queues)
	}
	e.checkDatabasePart(r)
	var text strings.Builder
	r.WriteText(&text)
	if !strings.Contains(text.String(), "Redis unavailable: ") || !strings.Contains(text.String(), "wh_failing") {
		t.Errorf("text report:\n%s", text.String())
	}
}

package jobs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/referd/referd/dispatch"
	"github.com/referd/referd/jobs"
	"github.com/referd/referd/jobs/jobstest"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/webhook"
)

// receiver is a local webhook endpoint that records what arrives and answers with
// the statuses it is given, then 200.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []received
	statuses []int
	arrived  chan struct{}
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, arrived: make(chan struct{}, 1000)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), body})
		status := 200
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, "ok")
		r.arrived <- struct{}{}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// webhookEnv runs workers and the relay for one program on a queue of its own.
type webhookEnv struct {
	*processEnv
	queue      string
	deliverer  *dispatch.Deliverer
	stopRunner func() error
	runner     *jobs.Runner
}

func newWebhookEnv(t *testing.T, allowPrivate bool, schedule ...time.Duration) *webhookEnv {
	e := &webhookEnv{processEnv: newProcessEnv(t)}
	// What the setup wrote is not this test's to deliver.
	if _, err := e.db.Exec(`UPDATE outbox SET dispatched_at = now()`); err != nil {
		t.Fatal(err)
	}
	opt := jobstest.Redis(t)
	queue := jobstest.Queue(t, opt)
	e.deliverer = &dispatch.Deliverer{DB: e.db, Client: webhook.NewClient(allowPrivate), Schedule: schedule, PerEndpoint: 2}
	e.runner = &jobs.Runner{Redis: opt, Concurrency: 8, Log: testLogger(t),
		Mux:    jobs.HandlersWith(e.db, testLogger(t), jobs.Options{Deliverer: e.deliverer, Redis: opt}),
		Queues: map[string]int{queue: 1}, ShutdownTimeout: time.Second}
	e.queue = queue
	e.stopRunner = startRunner(t, e.runner)
	relay := &jobs.Relay{DB: e.db, Redis: opt, Queue: queue, Interval: 10 * time.Millisecond, Log: testLogger(t),
		Consumers: []jobs.Consumer{jobs.DispatchWebhooks(len(schedule))},
		Pollers:   []jobs.Poller{jobs.WebhookRetries(len(schedule))}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *webhookEnv) endpoint(url string, events ...string) store.WebhookEndpoint {
	e.t.Helper()
	secret, err := webhook.NewSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	ep := store.WebhookEndpoint{ProgramPK: e.p.PK, Key: "wh_" + uniqueName(), URL: url, IsActive: true, Events: events,
		Secret: secret, CreatedAt: store.Now()}
	if err := store.InsertWebhookEndpoint(e.ctx, e.db, &ep); err != nil {
		e.t.Fatal(err)
	}
	return ep
}

func (e *webhookEnv) customer(key string) {
	e.t.Helper()
	if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text(key)}); err != nil {
		e.t.Fatal(err)
	}
}

// eventually polls cond until it holds, failing after the failure bound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *webhookEnv) deliveries(ep store.WebhookEndpoint) []store.WebhookDelivery {
	ds, _, err := store.ListDeliveries(e.ctx, e.db, ep.PK, 250, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

// A receiver that fails twice then succeeds gets the same webhook-id three times,
// each signature verified by the Standard Webhooks reference library.
func TestWebhookRetriedWithTheSameID(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, 20*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond)
	rcv := newReceiver(t, 500, 503)
	ep := e.endpoint(rcv.URL, "customer.created")
	e.customer("alice")
	eventually(t, "the delivery to succeed", func() bool {
		ds := e.deliveries(ep)
		return len(ds) == 1 && ds[0].Status == "succeeded"
	})
	reqs := rcv.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		if id := r.header.Get("webhook-id"); id != reqs[0].header.Get("webhook-id") || id == "" {
			t.Errorf("request %d: webhook-id %q, first %q", i, id, reqs[0].header.Get("webhook-id"))
		}
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Errorf("request %d: signature: %v", i, err)
		}
		var body struct {
			Event      string          `json:"event"`
			WebhookKey string          `json:"webhook_key"`
			CreatedAt  string          `json:"created_at"`
			Data       json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil || body.Event != "customer.created" || body.WebhookKey != ep.Key ||
			body.CreatedAt == "" || !strings.Contains(string(body.Data), `"key":"alice"`) {
			t.Errorf("request %d: body %s (%v)", i, r.body, err)
		}
	}
	var attempts []store.Attempt
	d := e.deliveries(ep)[0]
	json.Unmarshal([]byte(d.Attempts), &attempts)
	if len(attempts) != 3 || attempts[0].StatusCode != 500 || attempts[2].StatusCode != 200 || d.WebhookID != reqs[0].header.Get("webhook-id") {
		t.Errorf("delivery log %+v, webhook id %s", attempts, d.WebhookID)
	}
	// A manual retry is one more attempt with the same webhook-id.
	if err := store.RequestRetry(e.ctx, e.db, d.PK, store.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the manual attempt", func() bool { return len(rcv.requests()) == 4 })
	if id := rcv.requests()[3].header.Get("webhook-id"); id != d.WebhookID {
		t.Errorf("manual retry webhook-id %q, want %q", id, d.WebhookID)
	}
}

// 410 disables the endpoint; an endpoint not subscribed to an event gets nothing.
func TestWebhookGoneDisablesEndpoint(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, 20*time.Millisecond)
	gone := newReceiver(t, 410)
	other := newReceiver(t)
	ep := e.endpoint(gone.URL)
	unsubscribed := e.endpoint(other.URL, "transaction.created")
	e.customer("bob")
	eventually(t, "the endpoint to be disabled", func() bool {
		got, _ := store.GetWebhookEndpoint(e.ctx, e.db, e.p.PK, ep.Key)
		return !got.IsActive && got.DisabledReason.Valid
	})
	e.customer("carol") // after the 410: not delivered
	time.Sleep(100 * time.Millisecond)
	if n := len(gone.requests()); n != 1 {
		t.Errorf("the gone endpoint got %d requests, want 1", n)
	}
	if ds := e.deliveries(ep); len(ds) != 1 || ds[0].Status != "exhausted" {
		t.Errorf("deliveries to the gone endpoint: %+v", ds)
	}
	if n := len(other.requests()); n != 0 || len(e.deliveries(unsubscribed)) != 0 {
		t.Errorf("the unsubscribed endpoint got %d requests", n)
	}
}

// Without REFERD_ALLOW_PRIVATE_TARGETS a loopback receiver is refused at dial time.
func TestWebhookPrivateTargetRefused(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, false, time.Hour)
	rcv := newReceiver(t)
	ep := e.endpoint(rcv.URL)
	e.customer("dave")
	eventually(t, "the refused attempt to be logged", func() bool {
		ds := e.deliveries(ep)
		return len(ds) == 1 && ds[0].Status == "failed"
	})
	d := e.deliveries(ep)[0]
	if !strings.Contains(d.Attempts, "forbidden target") || !d.NextAttemptAt.Valid {
		t.Errorf("attempts %s next %v", d.Attempts, d.NextAttemptAt)
	}
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("the private receiver got %d requests", n)
	}
}

// An endpoint that hangs holds at most its share of the workers: everything for a
// healthy endpoint arrives while the hanging one has still answered nothing.
func TestHangingEndpointDoesNotHoldBackOthers(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, time.Hour)
	release := make(chan struct{})
	var hung sync.WaitGroup
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		defer hung.Done()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hanging.Close() })
	healthy := newReceiver(t)
	e.endpoint(hanging.URL)
	e.endpoint(healthy.URL)
	const n = 30
	for i := range n {
		e.customer(fmt.Sprintf("c%d", i))
	}
	eventually(t, "every delivery to the healthy endpoint", func() bool { return len(healthy.requests()) == n })
	select {
	case <-release:
		t.Fatal("released early")
	default:
	}
}

// Restarting the workers while a delivery waits for its retry loses nothing: the
// retry is in Redis and the delivery in PostgreSQL.
func TestWebhookRetrySurvivesWorkerRestart(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, 500*time.Millisecond)
	rcv := newReceiver(t, 500)
	ep := e.endpoint(rcv.URL)
	e.customer("erin")
	eventually(t, "the first, failed attempt", func() bool { return len(rcv.requests()) == 1 })
	if err := e.stopRunner(); err != nil {
		t.Fatal(err)
	}
	startRunner(t, &jobs.Runner{Redis: e.runner.Redis, Concurrency: 2, Log: testLogger(t), Queues: e.runner.Queues,
		Mux: jobs.HandlersWith(e.db, testLogger(t), jobs.Options{Deliverer: e.deliverer, Redis: e.runner.Redis})})
	eventually(t, "the retry after the restart", func() bool {
		ds := e.deliveries(ep)
		return len(ds) == 1 && ds[0].Status == "succeeded"
	})
	if reqs := rcv.requests(); len(reqs) != 2 || reqs[0].header.Get("webhook-id") != reqs[1].header.Get("webhook-id") {
		t.Errorf("%d requests", len(reqs))
	}
}

// The ingest request's id follows its billing event into the job, the outbox events
// the job writes, and the webhook deliveries made from them.
func TestRequestIDFollowsTheEvent(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, time.Hour)
	rcv := newReceiver(t)
	ep := e.endpoint(rcv.URL, "transaction.created")
	e.customer("friend-x")
	if _, err := e.db.Exec(`UPDATE customers SET referrer_pk = (SELECT pk FROM customers WHERE key = 'ref') WHERE key = 'friend-x'`); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"id": "evt_rid", "object": "event", "created": %d, "livemode": true, "type": "invoice.paid", "data": {"object":
		{"id": "in_rid", "object": "invoice", "amount_paid": 900, "currency": "usd", "customer": "cus_rid", "metadata": {"customer_key": "friend-x"}}}}`, time.Now().Unix())
	evs := []store.ProviderEvent{{ProgramPK: e.p.PK, Provider: "stripe", EventID: "evt_rid", Type: "invoice.paid", Payload: []byte(body),
		ReceivedAt: store.Now(), RequestID: sql.NullString{String: "req_follow_me", Valid: true}}}
	if _, err := store.InsertProviderEvents(e.ctx, e.db, evs); err != nil {
		t.Fatal(err)
	}
	if err := jobs.ProcessEvent(e.ctx, e.db, evs[0].PK); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := e.db.Select(&ids, `SELECT DISTINCT coalesce(request_id, '') FROM outbox WHERE event IN ('transaction.created', 'reward.created')`); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != "req_follow_me" {
		t.Errorf("outbox request ids %q", ids)
	}
	eventually(t, "the delivery", func() bool { return len(e.deliveries(ep)) == 1 })
	if d := e.deliveries(ep)[0]; d.RequestID.String != "req_follow_me" {
		t.Errorf("delivery request id %q", d.RequestID.String)
	}
}

// An endpoint that has failed for five days is disabled by its next failure.
func TestWebhookFailingFiveDaysDisables(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, time.Hour)
	rcv := newReceiver(t, 500)
	ep := e.endpoint(rcv.URL)
	if _, err := e.db.Exec(`UPDATE webhook_endpoints SET failing_since = now() - interval '5 days 1 minute' WHERE pk = $1`, ep.PK); err != nil {
		t.Fatal(err)
	}
	e.customer("frank")
	eventually(t, "the endpoint to be disabled", func() bool {
		got, _ := store.GetWebhookEndpoint(e.ctx, e.db, e.p.PK, ep.Key)
		return !got.IsActive && strings.Contains(got.DisabledReason.String, "failed")
	})
	if ds := e.deliveries(ep); len(ds) != 1 || ds[0].Status != "exhausted" {
		t.Errorf("deliveries %+v", ds)
	}
}

// The first attempts of one endpoint's new deliveries go in one task; each delivery
// that fails there goes on with a task of its own, on its own schedule, counting the
// attempt the batch made: here the odd ones fail once and then succeed, and one
// always fails and is exhausted after the schedule's two retries (three attempts),
// while the others are delivered once. Each keeps its webhook-id throughout.
func TestFirstAttemptsBatchedPerEndpoint(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, true, 20*time.Millisecond, 20*time.Millisecond)
	var mu sync.Mutex
	seen := map[string]int{} // requests per body
	ids := map[string]map[string]bool{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[string(body)]++
		if ids[string(body)] == nil {
			ids[string(body)] = map[string]bool{}
		}
		ids[string(body)][r.Header.Get("webhook-id")] = true
		var n int
		fmt.Sscanf(string(body), `{"n":%d}`, &n)
		fail := n == 5 || (n%2 == 1 && seen[string(body)] == 1)
		mu.Unlock()
		if fail {
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(rcv.Close)
	ep := e.endpoint(rcv.URL)
	var ds []store.WebhookDelivery
	for i := range 8 {
		ds = append(ds, store.WebhookDelivery{ID: fmt.Sprintf("dlv_b%d", i), WebhookID: fmt.Sprintf("msg_b%d", i), ProgramPK: e.p.PK,
			EndpointPK: ep.PK, OutboxPK: int64(-1 - i), Event: "customer.created", Body: fmt.Sprintf(`{"n":%d}`, i), CreatedAt: store.Now()})
	}
	pks, err := store.InsertDeliveries(e.ctx, e.db, ds)
	if err != nil || len(pks) != 8 {
		t.Fatalf("InsertDeliveries: %v %v", pks, err)
	}
	client := asynq.NewClient(e.runner.Redis)
	defer client.Close()
	task, opts := jobs.DeliverFirstTask(pks, 2)
	if _, err := client.Enqueue(task, append(opts, asynq.Queue(e.queue))...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every delivery to end", func() bool {
		var open int
		e.db.Get(&open, `SELECT count(*) FROM webhook_deliveries WHERE endpoint_pk = $1 AND status NOT IN ('succeeded', 'exhausted')`, ep.PK)
		return open == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, d := range e.deliveries(ep) {
		var attempts []store.Attempt
		json.Unmarshal([]byte(d.Attempts), &attempts)
		var n int
		fmt.Sscanf(d.Body, `{"n":%d}`, &n)
		want, status := 1, "succeeded"
		switch {
		case n == 5:
			want, status = 3, "exhausted"
		case n%2 == 1:
			want = 2
		}
		if len(attempts) != want || d.Status != status || seen[d.Body] != want {
			t.Errorf("delivery %s: %s after %d attempts (%d requests), want %s after %d", d.Body, d.Status, len(attempts), seen[d.Body], status, want)
		}
		if len(ids[d.Body]) != 1 || !ids[d.Body][d.WebhookID] {
			t.Errorf("delivery %s went out under webhook-ids %v, want only %s", d.Body, ids[d.Body], d.WebhookID)
		}
	}
}

package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/jobs/jobstest"
	"github.com/referd/referd/logging"
	"github.com/referd/referd/metrics"
	"github.com/referd/referd/store/storetest"
)

func TestOpsEndpoints(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	opt, err := asynq.ParseRedisURI(jobstest.Database(t, 11))
	if err != nil {
		t.Fatal(err)
	}
	get := func(h http.Handler, path string, auth func(*http.Request)) (int, string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if auth != nil {
			auth(req)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	mux := http.NewServeMux()
	mountOps(mux, "serve", config{AdminToken: "s3cret"}, db, opt)
	if code, _ := get(mux, "/ops/queues", nil); code != http.StatusUnauthorized {
		t.Errorf("/ops/queues without the token: %d, want 401", code)
	}
	if code, _ := get(mux, "/ops/queues", func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong") }); code != http.StatusUnauthorized {
		t.Errorf("/ops/queues with a wrong token: %d, want 401", code)
	}
	if code, body := get(mux, "/ops/queues", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }); code != http.StatusOK || !strings.Contains(body, "<html") {
		t.Errorf("/ops/queues with the bearer token: %d %.80q", code, body)
	}
	if code, _ := get(mux, "/ops/queues/api/queues", func(r *http.Request) { r.SetBasicAuth("ops", "s3cret") }); code != http.StatusOK {
		t.Errorf("asynqmon's API with the basic-auth password: %d", code)
	}
	if code, body := get(mux, "/readyz", nil); code != http.StatusOK ||
		body != `{"status":"ok","checks":{"postgres":{"status":"up"},"redis":{"status":"up"}}}`+"\n" {
		t.Errorf("/readyz: %d %s", code, body)
	}

	// /metrics, after traffic, carries referd's own series and asynq's queue metrics.
	client := asynq.NewClient(opt)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("ops:test", nil), asynq.Queue("ops_test")); err != nil {
		t.Fatal(err)
	}
	measured := metrics.HTTP(mux)
	get(measured, "/healthz", nil)
	found := false
	for range 20 { // serve, run by other tests in this process, may watch its own broker meanwhile
		metrics.WatchQueues(opt)
		_, body := get(measured, "/metrics", nil)
		if strings.Contains(body, `asynq_tasks_enqueued_total{queue="ops_test",state="pending"} 1`) &&
			strings.Contains(body, `referd_http_requests_total{code="200",route="GET /healthz"}`) &&
			strings.Contains(body, "go_goroutines") {
			found = true
			break
		}
	}
	if !found {
		_, body := get(measured, "/metrics", nil)
		t.Errorf("/metrics lacks asynq's queue metrics or referd's own:\n%s", body)
	}

	closed := http.NewServeMux()
	mountOps(closed, "api", config{}, db, opt)
	if code, _ := get(closed, "/ops/queues", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }); code != http.StatusForbidden {
		t.Errorf("/ops/queues with no token configured: %d, want 403", code)
	}

	// Redis down: not ready; the process itself is alive.
	down := http.NewServeMux()
	mountOps(down, "serve", config{}, db, asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	code, body := get(down, "/readyz", nil)
	var ready readiness
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusServiceUnavailable || ready.Status != "unavailable" ||
		ready.Checks["postgres"].Status != "up" || ready.Checks["redis"].Status != "down" ||
		!strings.Contains(ready.Checks["redis"].Error, "127.0.0.1:1") {
		t.Errorf("/readyz with Redis down: %d %s, want 503 naming redis down at 127.0.0.1:1 and postgres up", code, body)
	}
	// A role without Redis says so.
	noRedis := http.NewServeMux()
	mountOps(noRedis, "api", config{}, db, nil)
	if code, body := get(noRedis, "/readyz", nil); code != http.StatusOK || !strings.Contains(body, `"redis":{"status":"not_configured"}`) {
		t.Errorf("/readyz without Redis: %d %s", code, body)
	}
	if code, _ := get(down, "/healthz", nil); code != http.StatusOK {
		t.Errorf("/healthz with Redis down: %d", code)
	}
}

// buildReferd builds the binary once for the tests that run it as a process.
var buildReferd = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "referd-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "referd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// startReferd runs the binary with args and env until the test ends; it returns the
// process and a channel closed when it exits.
func startReferd(t *testing.T, env []string, args ...string) (*exec.Cmd, <-chan struct{}, *syncBuffer) {
	t.Helper()
	bin, err := buildReferd()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	var stderr syncBuffer
	cmd.Env, cmd.Stdout, cmd.Stderr = append(os.Environ(), env...), io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	return cmd, exited, &stderr
}

func waitHealthy(t *testing.T, base string, exited <-chan struct{}, stderr *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("referd exited:\n%s", stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("referd not healthy:\n%s", stderr.String())
		}
	}
}

// SIGTERM while signed billing events pour in: every event that was answered 200 is
// in PostgreSQL, and after a restart every one of them is processed (its task was
// either done or still in Redis).
func TestSIGTERMLosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	db, dbURL := storetest.NewWithURL(t)
	redisURL := jobstest.Database(t, 12)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + redisURL, fmt.Sprintf("PORT=%d", port), "REFERD_HOST=127.0.0.1",
		"REFERD_LOG_FORMAT=json", "REFERD_CONCURRENCY=4"}
	cmd, exited, stderr := startReferd(t, env, "serve")
	waitHealthy(t, base, exited, stderr)

	prog := createProgram(t, dbURL, "Acme", "https://acme.test")
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/integrations/stripe", strings.NewReader(`{"webhook_secrets": ["whsec_t"]}`))
	req.Header.Set("Authorization", "Bearer "+prog.APIKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT integration: %v %v", resp, err)
	}
	programID := prog.Program["id"].(string)

	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	client := &http.Client{Timeout: wait}
	for s := range 16 {
		senders.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("evt_%d_%d", s, n)
				now := time.Now().Unix()
				body := fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,"livemode":false,"type":"invoice.paid",`+
					`"data":{"object":{"id":"in_%s","object":"invoice","amount_paid":1000,"currency":"usd","customer":"cus_x","customer_email":"nobody@x.test","metadata":{}}}}`,
					id, now, id)
				mac := hmac.New(sha256.New, []byte("whsec_t"))
				fmt.Fprintf(mac, "%d.%s", now, body)
				req, _ := http.NewRequest(http.MethodPost, base+"/ingest/stripe/"+programID, strings.NewReader(body))
				req.Header.Set("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", now, hex.EncodeToString(mac.Sum(nil))))
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		})
	}
	// Let load build up, then SIGTERM.
	deadline := time.Now().Add(wait)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("referd did not exit after SIGTERM:\n%s", stderr.String())
	}
	close(stop)
	senders.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM\n%s", code, stderr.String())
	}
	if len(acked) == 0 {
		t.Fatal("no event was acknowledged before SIGTERM")
	}
	stored := map[string]bool{}
	var ids []string
	if err := db.Select(&ids, `SELECT event_id FROM provider_events`); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		stored[id] = true
	}
	for id := range acked {
		if !stored[id] {
			t.Errorf("event %s was acknowledged but is not stored", id)
		}
	}

	// Restarted, the workers finish what was queued: nothing stays received.
	_, exited2, stderr2 := startReferd(t, env, "serve")
	waitHealthy(t, base, exited2, stderr2)
	deadline = time.Now().Add(wait)
	for {
		var left int
		if err := db.Get(&left, `SELECT count(*) FROM provider_events WHERE status = 'received'`); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still received after the restart\n%s", left, stderr2.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d events acknowledged before SIGTERM, %d stored", len(acked), len(stored))
}

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	var seen string
	h := withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = logging.RequestID(r.Context()) }))
	for _, tc := range []struct{ header, want string }{
		{"abc-123", "abc-123"},
		{"bad id with spaces", ""},
		{strings.Repeat("x", 65), ""},
		{"", ""},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.header != "" {
			req.Header.Set("X-Request-Id", tc.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if got != seen || (tc.want != "" && got != tc.want) || (tc.want == "" && !strings.HasPrefix(got, "req_")) {
			t.Errorf("X-Request-Id %q: answered %q, context %q", tc.header, got, seen)
		}
	}
}

func TestEventsReplayAndStatusCommands(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewWithURL(t)
	stdout, stderr, err := runCmd(t, "events", "replay", "--database-url", dbURL, "--since", "72h")
	if err != nil || !strings.HasPrefix(stdout, "replayed 0 events") {
		t.Errorf("events replay: %q %v\n%s", stdout, err, stderr)
	}
	if _, _, err := runCmd(t, "events", "replay", "--database-url", dbURL, "--since", "yesterday"); err == nil {
		t.Error("a bad --since was accepted")
	}
	stdout, stderr, err = runCmd(t, "status", "--json", "--database-url", dbURL, "--redis-url", jobstest.Database(t, 13))
	if err != nil || !strings.Contains(stdout, `"provider_events"`) || strings.Contains(stdout, `"redis_error": "`) {
		t.Errorf("status --json: %v\n%s\n%s", err, stdout, stderr)
	}
}

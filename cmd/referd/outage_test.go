package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/referd/referd/store/storetest"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

// With Redis down, referd keeps serving and says so in a few structured lines: one
// per cause per 30 s, however many of asynq's loops, the Redis client's pools, the
// metrics collector and asynqmon run into it. /readyz names Redis as the problem.
func TestRedisDownLogsAFewStructuredLines(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewWithURL(t)
	redisAddr := closedPort(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := []string{"DATABASE_URL=" + dbURL, "REDIS_URL=redis://" + redisAddr + "/0", fmt.Sprintf("PORT=%d", port),
		"REFERD_HOST=127.0.0.1", "REFERD_LOG_FORMAT=json", "REFERD_CONCURRENCY=4", "REFERD_ADMIN_TOKEN=t0ken"}
	cmd, exited, stderr := startReferd(t, env, "serve")
	waitHealthy(t, base, exited, stderr)

	client := &http.Client{Timeout: wait}
	get := func(path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// Five seconds of an outage, with an operator looking at every page that touches Redis.
	for start := time.Now(); time.Since(start) < 5*time.Second; {
		get("/metrics")
		get("/ops/queues/api/queues")
		code, body := get("/readyz")
		var ready readiness
		if err := json.Unmarshal(body, &ready); err != nil || code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz with Redis down: %d %s (%v), want 503 and JSON", code, body, err)
		}
		if r := ready.Checks["redis"]; r.Status != "down" || !strings.Contains(r.Error, redisAddr) {
			t.Errorf("/readyz redis = %+v, want down, naming %s", r, redisAddr)
		}
		if p := ready.Checks["postgres"]; p.Status != "up" {
			t.Errorf("/readyz postgres = %+v, want up", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(wait + 30*time.Second):
		t.Fatalf("referd did not stop after SIGTERM:\n%s", stderr.String())
	}

	out := strings.TrimSpace(stderr.String())
	lines := strings.Split(out, "\n")
	mentions := 0
	for _, line := range lines {
		var rec struct {
			Level, Msg, Component string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Msg == "" {
			t.Errorf("an unstructured line: %q", line)
			continue
		}
		if strings.Contains(line, redisAddr) {
			mentions++
		}
	}
	// One line for the outage, plus the ordinary start and stop lines.
	if mentions != 1 || len(lines) > 8 {
		t.Errorf("%d lines, %d of them about %s; want the outage said once in at most 8 lines:\n%s", len(lines), mentions, redisAddr, out)
	}
}

// serve with no PostgreSQL where DATABASE_URL points exits 1 with one line that says
// what it tried (never the password) and how to start PostgreSQL.
func TestServeWithoutPostgreSQL(t *testing.T) {
	t.Parallel()
	pgAddr := closedPort(t)
	env := []string{"DATABASE_URL=postgres://alice:s3cret@" + pgAddr + "/shop?sslmode=disable",
		fmt.Sprintf("PORT=%d", freePort(t)), "REFERD_HOST=127.0.0.1", "REFERD_LOG_FORMAT=json", "REDIS_URL=redis://" + closedPort(t)}
	cmd, exited, stderr := startReferd(t, env, "serve")
	select {
	case <-exited:
	case <-time.After(wait):
		t.Fatalf("serve still runs without PostgreSQL:\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	out := strings.TrimSpace(stderr.String())
	for _, want := range []string{pgAddr, `"shop"`, `"alice"`, "connection refused", "Start PostgreSQL"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "\n") != 0 || strings.Contains(out, "s3cret") {
		t.Errorf("stderr is not one line without the password:\n%s", out)
	}
}

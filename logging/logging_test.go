package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clock is a test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// newTest returns a logger deduping every 30 s on clk, and the lines it wrote.
func newTest(t *testing.T) (*slog.Logger, *clock, func() []map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	h := Dedupe(slog.NewJSONHandler(&buf, nil), 30*time.Second).(*dedupe)
	h.s.now = clk.now
	lines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("not a JSON line: %q", l)
			}
			out = append(out, m)
		}
		buf.Reset()
		return out
	}
	return slog.New(h), clk, lines
}

func TestDedupeOneLinePerCausePerInterval(t *testing.T) {
	l, clk, lines := newTest(t)
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	asynq := l.With("component", "asynq")

	// A Redis that is down, reported every 100 ms by several loops in their own words.
	for i := 0; i < 100; i++ {
		asynq.Error("Dequeue error: UNKNOWN: redis eval error: " + refused.Error())
		asynq.Error("Failed to forward scheduled tasks: INTERNAL_ERROR: redis eval error: " + refused.Error())
		l.Warn("ingest: enqueueing a stored event failed", "pk", i, "err", refused)
		l.Info("request", "n", i) // not a warning: always written
		clk.add(100 * time.Millisecond)
	}
	got := lines()
	var warnings []map[string]any
	for _, m := range got {
		if m["level"] != "INFO" {
			warnings = append(warnings, m)
		}
	}
	if len(got)-len(warnings) != 100 {
		t.Errorf("%d info lines written, want all 100", len(got)-len(warnings))
	}
	// 10 s of one cause: one line.
	if len(warnings) != 1 || warnings[0]["component"] != "asynq" {
		t.Fatalf("warnings written in 10 s of one cause: %v, want the first one only", warnings)
	}

	// 30 s after that line, the next one says how many were left out.
	clk.add(20 * time.Second)
	l.Error("redis: connection pool: failed to dial after 5 attempts: " + refused.Error())
	got = lines()
	if len(got) != 1 || got[0][SuppressedKey] != 299.0 {
		t.Fatalf("the line after the interval: %v, want one with %s=299", got, SuppressedKey)
	}
	// Another cause is written at once.
	l.Warn("Could not clear scheduler history for entry \"15646e21-4610-40f8-87d3-905c76c9d836\": OOM")
	l.Warn("Could not clear scheduler history for entry \"780e7ea4-3424-4109-970d-a541cb316520\": OOM")
	l.Warn("Failed to collect metrics data: failed to get queue names: read tcp 127.0.0.1:50412->10.0.0.5:6379: i/o timeout")
	l.Warn("Failed to collect metrics data: failed to get queue names: read tcp 127.0.0.1:50999->10.0.0.5:6379: i/o timeout")
	if got := lines(); len(got) != 2 {
		t.Errorf("two new causes, twice each, wrote %d lines, want 2: %v", len(got), got)
	}
}

// A cause that goes quiet has its last left-out line written when a warning of
// another cause arrives after its interval; then it is forgotten.
func TestDedupeWritesAQuietCausesCount(t *testing.T) {
	l, clk, lines := newTest(t)
	for i := 0; i < 5; i++ {
		l.Warn("disk almost full", "err", errors.New("97% used"))
	}
	lines()
	clk.add(31 * time.Second)
	l.Warn("something else")
	got := lines()
	if len(got) != 2 || got[0]["msg"] != "disk almost full" || got[0][SuppressedKey] != 3.0 || got[1]["msg"] != "something else" {
		t.Fatalf("after the interval: %v, want the last left-out line (with the 3 before it) and the new one", got)
	}
	// Written, the quiet cause's window started again: still one line per interval.
	l.Warn("disk almost full", "err", errors.New("98% used"))
	if got := lines(); len(got) != 0 {
		t.Errorf("a second line of the cause within the interval: %v", got)
	}
	clk.add(31 * time.Second)
	l.Warn("disk almost full", "err", errors.New("99% used"))
	if got := lines(); len(got) != 1 || got[0][SuppressedKey] != 1.0 {
		t.Errorf("after the next interval: %v, want one line with %s=1", got, SuppressedKey)
	}
}

func TestLibrariesWriteStructuredLines(t *testing.T) {
	var buf syncBuffer
	Libraries(slog.New(Dedupe(slog.NewJSONHandler(&buf, nil), 30*time.Second)))
	defer log.SetOutput(nopWriter{})

	// A client of a closed port: go-redis's pool reports every failed dial.
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer rc.Close()
	for range 3 {
		rc.Ping(context.Background())
	}
	log.Printf("Failed to collect metrics data: failed to get queue names: %v", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"))
	log.Printf("error: could not run task with id %q: %v", "t1", errors.New("NOT_FOUND"))

	var components []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		components = append(components, m["component"].(string))
	}
	// The pool's failures and the metrics collector's are one cause: the first of them.
	if strings.Join(components, " ") != "redis log" {
		t.Errorf("lines from %v, want one from redis (the closed port) and one from log (the task):\n%s", components, buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

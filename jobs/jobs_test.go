package jobs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/jobs/jobstest"
)

// wait is the failure bound for anything the tests wait for; it is never a
// performance assertion.
const wait = 15 * time.Second

// testLogger writes to the test's output, shown on failure or with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startRunner runs r until the returned stop is called (or the test ends) and
// returns what Run returned. A Run that ends early is reported on stop.
func startRunner(t *testing.T, r *jobs.Runner) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var (
		once sync.Once
		err  error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(wait):
				err = errors.New("Runner.Run did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitFor waits until ch is closed, failing the test after the failure bound.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("timed out after %s waiting for %s", wait, what)
	}
}

// closer closes its channel once, however often it is called.
type closer struct {
	ch   chan struct{}
	once sync.Once
}

func newCloser() *closer { return &closer{ch: make(chan struct{})} }
func (c *closer) close() { c.once.Do(func() { close(c.ch) }) }
func uniqueName() string { b := make([]byte, 6); rand.Read(b); return hex.EncodeToString(b) }

func TestRunnerProcessesTasksOnEmbeddedRedis(t *testing.T) {
	t.Parallel()
	e, err := jobs.StartEmbedded()
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Close)
	opt := asynq.RedisClientOpt{Addr: e.Addr()}

	var uniqueRuns, scheduledRuns, periodicRuns atomic.Int32
	uniqueDone, scheduledDone, periodicDone := newCloser(), newCloser(), newCloser()
	mux := asynq.NewServeMux()
	mux.HandleFunc("test:unique", func(ctx context.Context, task *asynq.Task) error {
		uniqueRuns.Add(1)
		uniqueDone.close()
		return nil
	})
	mux.HandleFunc("test:scheduled", func(ctx context.Context, task *asynq.Task) error {
		if string(task.Payload()) != "later" {
			t.Errorf("scheduled task payload = %q, want %q", task.Payload(), "later")
		}
		scheduledRuns.Add(1)
		scheduledDone.close()
		return nil
	})
	mux.HandleFunc("test:periodic", func(ctx context.Context, task *asynq.Task) error {
		periodicRuns.Add(1)
		periodicDone.close()
		return nil
	})

	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	// Both enqueues happen before the workers start, so the first task is still
	// queued when the second one claims its id.
	if _, err := client.Enqueue(asynq.NewTask("test:unique", nil), asynq.TaskID("unique-1")); err != nil {
		t.Fatalf("first enqueue with TaskID: %v", err)
	}
	if _, err := client.Enqueue(asynq.NewTask("test:unique", nil), asynq.TaskID("unique-1")); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Fatalf("second enqueue with the same TaskID: err = %v, want asynq.ErrTaskIDConflict", err)
	}
	info, err := client.Enqueue(asynq.NewTask("test:scheduled", []byte("later")), asynq.ProcessIn(time.Second))
	if err != nil {
		t.Fatalf("enqueue with ProcessIn: %v", err)
	}
	if info.State != asynq.TaskStateScheduled {
		t.Fatalf("ProcessIn task state = %v, want scheduled", info.State)
	}

	stop := startRunner(t, &jobs.Runner{
		Redis:       opt,
		Concurrency: 4,
		Log:         testLogger(t),
		Mux:         mux,
		Periodic:    []jobs.Periodic{{Spec: "@every 1s", Task: asynq.NewTask("test:periodic", nil)}},
	})

	waitFor(t, uniqueDone.ch, "the TaskID task to run")
	waitFor(t, scheduledDone.ch, "the scheduled (ProcessIn) task to be forwarded and run")
	waitFor(t, periodicDone.ch, "the @every 1s periodic task to fire")

	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	if n := uniqueRuns.Load(); n != 1 {
		t.Errorf("task enqueued twice with one TaskID ran %d times, want 1", n)
	}
	if n := scheduledRuns.Load(); n != 1 {
		t.Errorf("scheduled task ran %d times, want 1", n)
	}
	if n := periodicRuns.Load(); n < 1 {
		t.Errorf("periodic task ran %d times, want at least 1", n)
	}
}

func TestRunnerRejectsBadPeriodicSpec(t *testing.T) {
	t.Parallel()
	e, err := jobs.StartEmbedded()
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Close)
	r := &jobs.Runner{
		Redis:    asynq.RedisClientOpt{Addr: e.Addr()},
		Log:      testLogger(t),
		Periodic: []jobs.Periodic{{Spec: "every now and then", Task: asynq.NewTask("test:bad", nil)}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "test:bad") {
		t.Fatalf("Run with a bad cron spec: err = %v, want an error naming the task", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Run returned only after its context ended; want it to fail at start")
	}
}

func TestBroker(t *testing.T) {
	t.Parallel()

	t.Run("empty URL starts an embedded Redis with a warning", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		opt, stop, err := jobs.Broker("", log)
		if err != nil {
			t.Fatalf("Broker(\"\"): %v", err)
		}
		defer stop()
		out := buf.String()
		if !strings.Contains(out, "level=WARN") {
			t.Errorf("Broker(\"\") logged %q, want a WARN", out)
		}
		if !strings.Contains(strings.ToLower(out), "lost") {
			t.Errorf("Broker(\"\") logged %q, want a warning that queued work is lost", out)
		}
		// The option reaches a working Redis.
		rc, ok := opt.MakeRedisClient().(redis.UniversalClient)
		if !ok {
			t.Fatalf("MakeRedisClient returned %T", opt.MakeRedisClient())
		}
		defer rc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := rc.Ping(ctx).Err(); err != nil {
			t.Fatalf("ping embedded Redis: %v", err)
		}
		client := asynq.NewClient(opt)
		defer client.Close()
		if _, err := client.Enqueue(asynq.NewTask("test:any", nil)); err != nil {
			t.Fatalf("enqueue on embedded Redis: %v", err)
		}
	})

	t.Run("redis URL parses", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		opt, stop, err := jobs.Broker("redis://127.0.0.1:6379/0", slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil {
			t.Fatalf("Broker(redis://...): %v", err)
		}
		defer stop()
		co, ok := opt.(asynq.RedisClientOpt)
		if !ok {
			t.Fatalf("Broker(redis://...) returned %T, want asynq.RedisClientOpt", opt)
		}
		if co.Addr != "127.0.0.1:6379" || co.DB != 0 {
			t.Errorf("Broker(redis://127.0.0.1:6379/0) = addr %q db %d", co.Addr, co.DB)
		}
		if strings.Contains(buf.String(), "level=WARN") {
			t.Errorf("Broker with a URL warned: %q", buf.String())
		}
	})

	t.Run("bad scheme errors", func(t *testing.T) {
		t.Parallel()
		_, _, err := jobs.Broker("bogus://x", slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
		if err == nil {
			t.Fatal("Broker(bogus://x) returned no error")
		}
		if !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("Broker(bogus://x) error %q does not name REDIS_URL", err)
		}
	})
}

func TestRunnerOnRealRedis(t *testing.T) {
	t.Parallel()
	opt := jobstest.Redis(t)
	// A queue of its own keeps this test away from anything else using the server.
	queue := jobstest.Queue(t, opt)

	done := newCloser()
	var got atomic.Value
	mux := asynq.NewServeMux()
	mux.HandleFunc("test:real", func(ctx context.Context, task *asynq.Task) error {
		q, _ := asynq.GetQueueName(ctx)
		got.Store(q + "|" + string(task.Payload()))
		done.close()
		return nil
	})
	stop := startRunner(t, &jobs.Runner{
		Redis:       opt,
		Concurrency: 2,
		Log:         testLogger(t),
		Mux:         mux,
		Queues:      map[string]int{queue: 1},
	})

	client := asynq.NewClient(opt)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("test:real", []byte("hello")), asynq.Queue(queue)); err != nil {
		t.Fatalf("enqueue on real Redis: %v", err)
	}
	waitFor(t, done.ch, "the task on the real Redis to run")
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	if v := got.Load(); v != queue+"|hello" {
		t.Errorf("handler saw %v, want %q", v, queue+"|hello")
	}
}

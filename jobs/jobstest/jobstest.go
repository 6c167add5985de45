// Package jobstest gives tests the real Redis that referd's queues run on: a
// connection checked to answer, and queues or databases of a test's own, so tests run
// in parallel on one server.
package jobstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// StartHint says how to start the test Redis when it does not answer.
const StartHint = `start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`

// URL is the test Redis: TEST_REDIS_URL, else redis://127.0.0.1:6379/0.
func URL() string {
	if url := os.Getenv("TEST_REDIS_URL"); url != "" {
		return url
	}
	return "redis://127.0.0.1:6379/0"
}

// Redis returns the connection option of the test Redis after checking that it
// answers; a silent server fails the test, saying how to start it.
func Redis(t testing.TB) asynq.RedisConnOpt {
	t.Helper()
	return connect(t, URL(), false)
}

// Database returns the URL of database n of the test Redis, emptied first, for a test
// that runs referd whole (its queue names are fixed, so such tests cannot share one).
func Database(t testing.TB, n int) string {
	t.Helper()
	opt, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("TEST_REDIS_URL=%q: %v", URL(), err)
	}
	opt.DB = n
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, n)
	if opt.Password != "" {
		url = fmt.Sprintf("redis://:%s@%s/%d", opt.Password, opt.Addr, n)
	}
	connect(t, url, true)
	return url
}

func connect(t testing.TB, url string, flush bool) asynq.RedisConnOpt {
	t.Helper()
	ropts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("Redis URL %q: %v", url, err)
	}
	rc := redis.NewClient(ropts)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis is not reachable at %s (%v); %s", url, err, StartHint)
	}
	if flush {
		if err := rc.FlushDB(ctx).Err(); err != nil {
			t.Fatalf("emptying %s: %v", url, err)
		}
	}
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatalf("asynq.ParseRedisURI(%q): %v", url, err)
	}
	return opt
}

// Queue returns the name of an asynq queue of the test's own on opt's server,
// deleted with its tasks and its counters when the test ends.
func Queue(t testing.TB, opt asynq.RedisConnOpt) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	queue := "referd_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		insp := asynq.NewInspector(opt)
		defer insp.Close()
		if err := insp.DeleteQueue(queue, true); err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Errorf("deleting queue %s: %v", queue, err)
		}
		// DeleteQueue leaves the processed and failed counters behind.
		rc, ok := opt.MakeRedisClient().(redis.UniversalClient)
		if !ok {
			return
		}
		defer rc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rc.Scan(ctx, 0, "asynq:{"+queue+"}:*", 100).Iterator()
		for iter.Next(ctx) {
			rc.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("deleting the counters of queue %s: %v", queue, err)
		}
	})
	return queue
}

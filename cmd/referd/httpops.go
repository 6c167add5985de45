package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/logging"
	"github.com/referd/referd/metrics"
	"github.com/referd/referd/store"
)

// mountOps adds what operators use to mux: /healthz (the process answers), /readyz
// (PostgreSQL and, when the role has one, Redis answer within a second; the body
// names each with its state and error), /metrics
// (Prometheus), and for serve and api, asynqmon at /ops/queues behind
// REFERD_ADMIN_TOKEN. redis is nil for a role without a broker.
func mountOps(mux *http.ServeMux, role string, cfg config, db *store.DB, redisOpt asynq.RedisConnOpt) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	rc := readinessClient(redisOpt)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		ready := readiness{Status: "ok", Checks: map[string]dependency{"redis": {Status: "not_configured"}}}
		var pg, rd error
		var wg sync.WaitGroup
		wg.Go(func() { pg = db.PingContext(ctx) })
		if rc != nil {
			wg.Go(func() { rd = rc.Ping(ctx).Err() })
		}
		wg.Wait()
		ready.Checks["postgres"] = dependencyState(pg)
		if rc != nil {
			ready.Checks["redis"] = dependencyState(rd)
		}
		w.Header().Set("Content-Type", "application/json")
		if pg != nil || rd != nil {
			ready.Status = "unavailable"
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		writeJSONLine(w, ready)
	})
	mux.Handle("GET /metrics", metrics.Handler())
	if role != "serve" && role != "api" {
		return
	}
	var queues http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opsError(w, http.StatusServiceUnavailable, "asynqmon needs REDIS_URL: this process has no queue broker")
	})
	if redisOpt != nil {
		queues = asynqmon.New(asynqmon.Options{RootPath: "/ops/queues", RedisConnOpt: redisOpt,
			PayloadFormatter: asynqmon.PayloadFormatterFunc(jobs.FormatPayload)})
	}
	guarded := adminOnly(cfg.AdminToken, queues)
	mux.Handle("/ops/queues", guarded)
	mux.Handle("/ops/queues/", guarded)
	mux.Handle("/ops/", adminOnly(cfg.AdminToken, http.NotFoundHandler()))
}

// readiness is the body of /readyz: "ok" or "unavailable", and each dependency's state.
type readiness struct {
	Status string                `json:"status"`
	Checks map[string]dependency `json:"checks"`
}

// dependency is one dependency's state: "up", "down" (with the error) or
// "not_configured" (a role without Redis).
type dependency struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func dependencyState(err error) dependency {
	if err != nil {
		return dependency{Status: "down", Error: err.Error()}
	}
	return dependency{Status: "up"}
}

// readinessClient is the Redis client /readyz pings, nil for a role without Redis.
// For a single Redis it dials once per attempt: the client asynq builds retries a
// refused dial with backoff for longer than the check's second, and /readyz would
// then report a deadline instead of the reason.
func readinessClient(opt asynq.RedisConnOpt) redis.UniversalClient {
	switch o := opt.(type) {
	case nil:
		return nil
	case asynq.RedisClientOpt:
		return redis.NewClient(&redis.Options{Network: o.Network, Addr: o.Addr, Username: o.Username,
			Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig, DialTimeout: time.Second,
			DialerRetries: 1, PoolSize: 2, MaxRetries: -1})
	}
	rc, _ := opt.MakeRedisClient().(redis.UniversalClient)
	return rc
}

// adminOnly lets through requests that carry token as a bearer token or as the
// basic-auth password; without a token configured, /ops is closed to everyone.
func adminOnly(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			opsError(w, http.StatusForbidden, "/ops is closed: set REFERD_ADMIN_TOKEN to open it")
			return
		}
		given := ""
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			given = strings.TrimSpace(b)
		} else if _, pass, ok := r.BasicAuth(); ok {
			given = pass
		}
		if subtle.ConstantTimeCompare([]byte(given), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="referd ops"`)
			opsError(w, http.StatusUnauthorized, "Unauthenticated: the admin token is missing or wrong.")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func opsError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	writeJSONLine(w, map[string]any{"status": 0, "message": msg, "errors": map[string]any{}})
}

// withRequestID gives every request an id: the caller's X-Request-Id when it is a
// sane token, else a new one. It is answered in X-Request-Id, logged with the
// request's records, and stored with what the request causes (logging.WithRequestID).
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID(id) {
			id = "req_" + strings.ToLower(rand.Text()[:20])
		}
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
	})
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return false
		}
	}
	return true
}

func writeJSONLine(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	w.Write(append(b, '\n'))
}

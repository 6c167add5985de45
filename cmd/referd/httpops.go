package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/metrics"
	"github.com/referd/referd/store"
)

// mountOps adds what operators use to mux: /healthz (the process answers), /readyz
// (PostgreSQL and, when the role has one, Redis answer within a second), /metrics
// (Prometheus), and for serve and api, asynqmon at /ops/queues behind
// REFERD_ADMIN_TOKEN. redis is nil for a role without a broker.
func mountOps(mux *http.ServeMux, role string, cfg config, db *store.DB, redisOpt asynq.RedisConnOpt) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	var rc redis.UniversalClient
	if redisOpt != nil {
		rc, _ = redisOpt.MakeRedisClient().(redis.UniversalClient)
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		problems := []string{}
		if err := db.PingContext(ctx); err != nil {
			problems = append(problems, "postgres: "+err.Error())
		}
		if rc != nil {
			if err := rc.Ping(ctx).Err(); err != nil {
				problems = append(problems, "redis: "+err.Error())
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			writeJSONLine(w, map[string]any{"status": "unavailable", "problems": problems})
			return
		}
		io.WriteString(w, `{"status":"ok"}`)
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
// request's records, and stored with what the request causes (store.WithRequestID).
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID(id) {
			id = "req_" + strings.ToLower(rand.Text()[:20])
		}
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(store.WithRequestID(r.Context(), id)))
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

// Package metrics is referd's Prometheus instrumentation: one registry with the Go
// runtime and process collectors, HTTP requests by route and status, billing events
// received, background jobs, outgoing webhook deliveries, and asynq's own queue
// metrics. GET /metrics serves it.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every referd metric.
var Registry = prometheus.NewRegistry()

var (
	httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "referd_http_requests_total", Help: "HTTP requests answered, by route pattern and status code.",
	}, []string{"route", "code"})
	httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "referd_http_request_duration_seconds", Help: "Time to answer HTTP requests, by route pattern.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15},
	}, []string{"route"})
	ingestEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "referd_ingest_events_total",
		Help: "Billing webhooks received, by provider and outcome (stored, duplicate, bad_signature, too_large, malformed, not_found, unavailable).",
	}, []string{"provider", "outcome"})
	jobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "referd_jobs_total", Help: "Background tasks run, by task type and result (ok, error, deferred).",
	}, []string{"task", "result"})
	jobDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "referd_job_duration_seconds", Help: "Time to run background tasks, by task type.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, 60},
	}, []string{"task"})
	deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "referd_webhook_deliveries_total",
		Help: "Outgoing webhook attempts, by outcome (succeeded, retry, exhausted, gone, busy).",
	}, []string{"outcome"})
)

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		httpRequests, httpDuration, ingestEvents, jobs, jobDuration, deliveries)
}

// Handler serves the registry in Prometheus' text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}

// WatchQueues adds asynq's queue metrics (sizes, latency, processed and failed
// counts per queue) read from redis when scraped. Call it once per process.
func WatchQueues(redis asynq.RedisConnOpt) {
	queueMu.Lock()
	defer queueMu.Unlock()
	if queueCollector != nil {
		// A process that serves again (tests do) watches its new broker.
		Registry.Unregister(queueCollector)
	}
	queueCollector = asynqmetrics.NewQueueMetricsCollector(asynq.NewInspector(redis))
	Registry.MustRegister(queueCollector)
}

var (
	queueMu        sync.Mutex
	queueCollector prometheus.Collector
)

// IngestEvent counts a billing webhook by provider and outcome.
func IngestEvent(provider, outcome string) { ingestEvents.WithLabelValues(provider, outcome).Inc() }

// Delivery counts an outgoing webhook attempt by outcome.
func Delivery(outcome string) { deliveries.WithLabelValues(outcome).Inc() }

// deferrer is an error that says its task is put off on purpose, to be run again
// later (jobs.HeldError), rather than failed.
type deferrer interface{ Deferred() bool }

// Jobs is asynq middleware that counts and times every task, by type and result:
// ok, error, or deferred (a task put off on purpose).
func Jobs(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		result := "ok"
		var d deferrer
		switch {
		case errors.As(err, &d) && d.Deferred():
			result = "deferred" // waits by design (a held payment), not a failure
		case err != nil:
			result = "error"
		}
		jobs.WithLabelValues(t.Type(), result).Inc()
		jobDuration.WithLabelValues(t.Type()).Observe(time.Since(start).Seconds())
		return err
	})
}

// HTTP counts and times the requests h answers, labelled with the route pattern the
// ServeMux matched (r.Pattern, set on the request as it is routed), so paths with
// ids do not each become a series; requests that match no route are "unmatched".
func HTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		httpRequests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

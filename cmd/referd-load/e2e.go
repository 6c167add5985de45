package main

// End-to-end mode (-e2e): referd's ingest, its pipeline from a paid invoice to
// the transaction.created webhook, and its cost, each as a ratio to the
// machine's own PostgreSQL ceiling measured in the same run. See the package
// documentation.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// The stages of -e2e, in the order they run.
const (
	stageCeiling = "ceiling"
	stageIngest  = "ingest"
	stageDrain   = "drain"
	stagePaced   = "paced"
)

var e2eStages = []string{stageCeiling, stageIngest, stageDrain, stagePaced}

// Issue 14's targets, as ratios to the ceiling and as latencies.
const (
	ingestRatioTarget    = 0.6
	ingestP99Target      = 50 * time.Millisecond
	drainRatioTarget     = 0.25
	pacedRatio           = 0.05 // the paced stage's rate, × ceiling
	pacedE2EP99Target    = 100 * time.Millisecond
	pacedIngestP99Target = 20 * time.Millisecond
	peakRSSTarget        = 200 << 20 // bytes
)

const (
	// e2eRequestTimeout bounds one ingest request of the drain and paced
	// stages.
	e2eRequestTimeout = 30 * time.Second
	// waitPoll is how often the stages look whether every webhook arrived.
	waitPoll = 10 * time.Millisecond
	// maxDrainEvents bounds -drain-n.
	maxDrainEvents = 1_000_000
	// maxCeilingRate bounds -ceiling-rate.
	maxCeilingRate = 1e7
)

// e2eConfig holds what an -e2e run needs. It is filled from flags by
// realMain and directly by tests.
type e2eConfig struct {
	SinkAddr     string        // loopback host:port for referd's webhooks
	URL          string        // referd's base URL
	Program      string        // program id in /ingest/stripe/{program}
	Secret       string        // its Stripe webhook signing secret
	Senders      int           // concurrent senders of the ingest, drain and paced stages
	PG           string        // PostgreSQL for the ceiling
	PID          int           // referd's process, for CPU and peak RSS; 0 = none
	ReferdDB     string        // referd's database: count only its PostgreSQL backends; "" = every postgres process
	Commit       string        // shown in the table
	Stages       []string      // which of e2eStages run (always in that order)
	CeilingRate  float64       // rows/s to use when the ceiling stage does not run
	CeilingDur   time.Duration // measured period of the ceiling
	IngestWarmup time.Duration // warm-up of the ingest burst
	IngestDur    time.Duration // measured period of the ingest burst
	DrainEvents  int           // events of the burst drain
	PacedDur     time.Duration // how long the paced stage sends
	Wait         time.Duration // how long a stage waits for its last webhook after its last send

	// Set only by tests.
	ceilingDB    string       // scratch database; default ceilingDB
	procRoot     string       // default /proc
	sinkListener net.Listener // instead of listening on SinkAddr
}

// validateE2E checks cfg and returns referd's base URL (nil if no stage
// sends to it).
func validateE2E(cfg e2eConfig) (*url.URL, error) {
	if len(cfg.Stages) == 0 {
		return nil, fmt.Errorf("%w: -stages names no stage (have %s)", errUsage, strings.Join(e2eStages, ", "))
	}
	seen := map[string]bool{}
	for _, s := range cfg.Stages {
		if !slices.Contains(e2eStages, s) {
			return nil, fmt.Errorf("%w: -stages: unknown stage %q (have %s)", errUsage, s, strings.Join(e2eStages, ", "))
		}
		if seen[s] {
			return nil, fmt.Errorf("%w: -stages names %s twice", errUsage, s)
		}
		seen[s] = true
	}
	if math.IsNaN(cfg.CeilingRate) || cfg.CeilingRate < 0 || cfg.CeilingRate > maxCeilingRate {
		return nil, fmt.Errorf("%w: -ceiling-rate must be in [0, %g]", errUsage, float64(maxCeilingRate))
	}
	if !seen[stageCeiling] && cfg.CeilingRate == 0 {
		return nil, fmt.Errorf("%w: without the ceiling stage, -ceiling-rate must give the ceiling (every result is a ratio to it)", errUsage)
	}
	if seen[stageCeiling] && cfg.CeilingRate != 0 {
		return nil, fmt.Errorf("%w: -ceiling-rate replaces the ceiling stage; leave one of them out", errUsage)
	}
	for _, d := range []struct {
		flag string
		d    time.Duration
	}{{"-ceiling-d", cfg.CeilingDur}, {"-ingest-d", cfg.IngestDur}, {"-paced-d", cfg.PacedDur}, {"-wait", cfg.Wait}} {
		if d.d <= 0 || d.d > maxDuration {
			return nil, fmt.Errorf("%w: %s must be in (0, %v]", errUsage, d.flag, maxDuration)
		}
	}
	if cfg.IngestWarmup < 0 || cfg.IngestWarmup > maxWarmup {
		return nil, fmt.Errorf("%w: the ingest warm-up must be in [0, %v]", errUsage, maxWarmup)
	}
	if cfg.DrainEvents < 1 || cfg.DrainEvents > maxDrainEvents {
		return nil, fmt.Errorf("%w: -drain-n must be in [1, %d]", errUsage, maxDrainEvents)
	}
	if cfg.Senders < 1 {
		return nil, fmt.Errorf("%w: -c must be at least 1", errUsage)
	}
	if cfg.PID < 0 {
		return nil, fmt.Errorf("%w: -pid must not be negative", errUsage)
	}
	if !seen[stageIngest] && !seen[stageDrain] && !seen[stagePaced] {
		return nil, nil
	}
	if cfg.Program == "" || cfg.Secret == "" {
		return nil, fmt.Errorf("%w: the ingest, drain and paced stages need -program and -secret", errUsage)
	}
	if cfg.SinkAddr == "" && cfg.sinkListener == nil {
		return nil, fmt.Errorf("%w: -e2e needs the sink's address", errUsage)
	}
	return parseBaseURL(cfg.URL)
}

// ---------------------------------------------------------------------------
// Matching webhooks to sent events

// tracker matches the transaction.created webhooks arriving at the sink to
// the events the drain and paced stages sent, by transaction key (the
// webhook's data.key, which is "stripe:" and the invoice id). It is safe
// for concurrent use.
type tracker struct {
	mu        sync.Mutex
	byKey     map[string]*sentEvent
	otherKeys map[string]struct{} // transaction.created keys that no stage sent
	lastOther time.Time           // arrival of the latest of them
}

// stageLog is what one stage sent.
type stageLog struct {
	name    string
	prefix  string // event prefix: its keys are invoiceKey(prefix, n)
	events  []*sentEvent
	pending int // accepted and not arrived
}

// sentEvent is one event sent, and what became of it.
type sentEvent struct {
	key        string
	stage      *stageLog
	sent       time.Time     // just before the request went out
	acked      bool          // its response (or failure) is in
	status     int           // HTTP status; 0 = no response
	latency    time.Duration // of the ingest request, if status > 0
	first      time.Time     // arrival of its first transaction.created; zero = none yet
	created    time.Time     // that webhook's data.created_at (just before the sale's commit); zero = unparsable
	deliveries int           // transaction.created deliveries of its key
	ids        []string      // their distinct webhook-ids ("" for none)
}

func (e *sentEvent) accepted() bool { return e.status >= 200 && e.status < 300 }

func newTracker() *tracker {
	return &tracker{byKey: make(map[string]*sentEvent), otherKeys: make(map[string]struct{})}
}

func (t *tracker) newStage(name, prefix string) *stageLog {
	return &stageLog{name: name, prefix: prefix}
}

// send records that st is sending the event with this transaction key now,
// and returns its record for ack. Call it just before the request goes out.
func (t *tracker) send(st *stageLog, key string) *sentEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	ev := &sentEvent{key: key, stage: st}
	st.events = append(st.events, ev)
	t.byKey[key] = ev
	ev.sent = time.Now()
	return ev
}

// ack records the outcome of ev's ingest request: its HTTP status (0 if it
// failed without a response) and latency.
func (t *tracker) ack(ev *sentEvent, status int, latency time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ev.acked, ev.status, ev.latency = true, status, latency
	if ev.accepted() && ev.first.IsZero() {
		ev.stage.pending++
	}
}

// deliver is the sink's observer: it matches a transaction.created delivery
// to its sent event, or counts its key as another stage's.
func (t *tracker) deliver(d delivery) {
	if !d.valid || d.ev.Event != "transaction.created" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ev := t.byKey[d.ev.Data.Key]
	if ev == nil {
		t.otherKeys[d.ev.Data.Key] = struct{}{}
		if d.recv.After(t.lastOther) {
			t.lastOther = d.recv
		}
		return
	}
	ev.deliveries++
	if ev.first.IsZero() || d.recv.Before(ev.first) {
		if ev.first.IsZero() && ev.accepted() {
			ev.stage.pending--
		}
		ev.first = d.recv
		ev.created, _ = parseWebhookTime(d.ev.Data.CreatedAt)
	}
	if !slices.Contains(ev.ids, d.id) {
		ev.ids = append(ev.ids, d.id)
	}
}

// waitStage waits until every accepted event of st has its webhook, at most
// timeout, and reports whether they all arrived.
func (t *tracker) waitStage(ctx context.Context, st *stageLog, timeout time.Duration) bool {
	return pollUntil(ctx, timeout, func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		return st.pending == 0
	})
}

// waitOthers waits until transaction.created webhooks for at least n keys
// that no stage sent have arrived, at most timeout. It returns how many
// arrived, when the latest did, and whether there were n.
func (t *tracker) waitOthers(ctx context.Context, n int64, timeout time.Duration) (got int64, last time.Time, ok bool) {
	ok = pollUntil(ctx, timeout, func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		return int64(len(t.otherKeys)) >= n
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	return int64(len(t.otherKeys)), t.lastOther, ok
}

// pollUntil calls done every waitPoll until it returns true (then it returns
// true), timeout passes or ctx ends.
func pollUntil(ctx context.Context, timeout time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for !done() {
		if !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// stageResult is what a drain or paced stage measured.
type stageResult struct {
	Stage       string  `json:"stage"`
	EventPrefix string  `json:"event_prefix"` // its events are evt_<prefix>_<n>
	Senders     int     `json:"senders"`
	Sent        int     `json:"sent"`
	Accepted    int     `json:"accepted"`              // ingest answered 2xx
	Rejected    int     `json:"rejected"`              // another status, or no answer
	Arrived     int     `json:"arrived"`               // accepted, and their transaction.created arrived
	Missing     int     `json:"missing"`               // accepted, and none arrived before the wait ended
	Unexpected  int     `json:"arrived_after_refusal"` // not accepted, yet a transaction.created arrived
	DupSameID   int     `json:"duplicates_same_webhook_id"`
	DupOtherID  int     `json:"duplicates_other_webhook_id"` // a key delivered under more than one webhook-id
	SendSec     float64 `json:"send_s"`                      // first send to last send
	SpanSec     float64 `json:"span_s"`                      // first send to last arrival
	DrainRate   float64 `json:"drain_rate_per_s"`            // Arrived / SpanSec
	TargetRate  float64 `json:"target_rate_per_s,omitempty"` // paced: the rate asked for
	DurationSec float64 `json:"duration_s,omitempty"`        // paced: how long it sent
	SentRate    float64 `json:"sent_rate_per_s,omitempty"`   // paced: Sent / DurationSec
	// E2E is send → first transaction.created of each arrived event; Ingest
	// the ingest request's latency, of every request that got an answer.
	E2E    latencyMs `json:"send_to_webhook_ms"`
	Ingest latencyMs `json:"ingest_request_ms"`
	// E2E split at the webhook's data.created_at, stamped just before the
	// sale commits: send → created_at, and created_at → arrival (events
	// whose created_at parses).
	ToCommit  latencyMs `json:"send_to_created_at_ms"`
	ToWebhook latencyMs `json:"created_at_to_webhook_ms"`
}

// Duplicates is every transaction.created delivery of the stage's keys
// beyond the first.
func (r *stageResult) Duplicates() int { return r.DupSameID + r.DupOtherID }

// summarize computes st's result from what has arrived so far.
func (t *tracker) summarize(st *stageLog) *stageResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	return summarizeEvents(st.name, st.prefix, st.events)
}

// summarizeEvents computes a stage's result from its sent events.
func summarizeEvents(name, prefix string, events []*sentEvent) *stageResult {
	r := &stageResult{Stage: name, EventPrefix: prefix, Sent: len(events)}
	var firstSend, lastSend, lastArrival time.Time
	var e2e, ingest, toCommit, toWebhook []time.Duration
	for i, ev := range events {
		if i == 0 || ev.sent.Before(firstSend) {
			firstSend = ev.sent
		}
		if ev.sent.After(lastSend) {
			lastSend = ev.sent
		}
		if ev.status > 0 {
			ingest = append(ingest, ev.latency)
		}
		if ev.deliveries > 0 {
			r.DupSameID += ev.deliveries - len(ev.ids)
			r.DupOtherID += len(ev.ids) - 1
		}
		arrived := !ev.first.IsZero()
		switch {
		case !ev.accepted():
			r.Rejected++
			if arrived {
				r.Unexpected++
			}
		case arrived:
			r.Accepted++
			r.Arrived++
			e2e = append(e2e, ev.first.Sub(ev.sent))
			if !ev.created.IsZero() {
				toCommit = append(toCommit, ev.created.Sub(ev.sent))
				toWebhook = append(toWebhook, ev.first.Sub(ev.created))
			}
			if ev.first.After(lastArrival) {
				lastArrival = ev.first
			}
		default:
			r.Accepted++
			r.Missing++
		}
	}
	if r.Sent > 0 {
		r.SendSec = round2(lastSend.Sub(firstSend).Seconds())
	}
	if r.Arrived > 0 {
		span := lastArrival.Sub(firstSend)
		r.SpanSec = round2(span.Seconds())
		if span > 0 {
			r.DrainRate = round2(float64(r.Arrived) / span.Seconds())
		}
	}
	r.E2E, r.Ingest = latencies(e2e), latencies(ingest)
	r.ToCommit, r.ToWebhook = latencies(toCommit), latencies(toWebhook)
	return r
}

// latencies sorts d and returns its p50, p90, p99 and max in ms.
func latencies(d []time.Duration) latencyMs {
	slices.Sort(d)
	return latencyMs{P50: ms(percentile(d, 50)), P90: ms(percentile(d, 90)), P99: ms(percentile(d, 99)), Max: ms(percentile(d, 100))}
}

// ---------------------------------------------------------------------------
// The run

// e2eReport is the result of an -e2e run.
type e2eReport struct {
	Date        string         `json:"date"`
	Commit      string         `json:"commit,omitempty"`
	CeilingRate float64        `json:"ceiling_rows_per_s"` // every ratio's denominator
	Ceiling     *ceilingResult `json:"ceiling,omitempty"`  // nil when -ceiling-rate gave it
	Ingest      *ingestStage   `json:"ingest,omitempty"`
	Drain       *stageResult   `json:"drain,omitempty"`
	DrainCPU    *cpuPerEvent   `json:"drain_cpu,omitempty"`
	Paced       *stageResult   `json:"paced,omitempty"`
	PeakRSS     int64          `json:"referd_peak_rss_bytes,omitempty"` // VmHWM of -pid at the end
	LoadStart   string         `json:"load_average_start"`              // /proc/loadavg: 1, 5, 15 minutes
	LoadEnd     string         `json:"load_average_end"`
	Webhooks    *sinkSummary   `json:"webhooks,omitempty"` // everything the sink received
	Results     []resultRow    `json:"results"`
}

// ingestStage is the ingest burst: the load run's summary, and how its
// webhooks (sent while later stages wait) drained.
type ingestStage struct {
	Load           *summary `json:"load"`
	Ratio          float64  `json:"ratio"`            // events/s accepted ÷ ceiling
	BacklogWant    int64    `json:"backlog_events"`   // events accepted, warm-up included
	BacklogArrived int64    `json:"backlog_arrived"`  // transaction.created for them
	BacklogSec     float64  `json:"backlog_s"`        // end of the burst to the last of them
	BacklogDrained bool     `json:"backlog_drained"`  // all arrived before -wait ran out
	WaitedSec      float64  `json:"backlog_waited_s"` // how long the next stage waited for them
}

// cpuPerEvent is the CPU the burst drain cost, per event that arrived, in
// ms.
type cpuPerEvent struct {
	Events   int     `json:"events"`
	Seconds  float64 `json:"seconds"` // wall time sampled: first send to all arrived
	ReferdMs float64 `json:"referd_ms"`
	// PostgresMs is PostgresDBMs when -referd-db names referd's database,
	// else PostgresAllMs.
	PostgresMs    float64 `json:"postgres_ms"`
	PostgresDBMs  float64 `json:"postgres_referd_db_ms,omitempty"` // referd's backends and the server's own processes
	PostgresAllMs float64 `json:"postgres_all_ms"`                 // every process named postgres on the machine
	RedisMs       float64 `json:"redis_ms"`                        // every process named redis-server
	TotalMs       float64 `json:"total_ms"`                        // referd, PostgreSQL and Redis
	LoadMs        float64 `json:"load_generator_ms"`               // this process, not in TotalMs
	MachineMs     float64 `json:"machine_ms"`                      // every CPU's busy time, whatever ran
	MachineCores  float64 `json:"machine_busy_cores"`              // busy time ÷ Seconds
	ReferdOK      bool    `json:"referd_measured"`
	PostgresDBOK  bool    `json:"postgres_referd_db_measured"`
	PostgresProcs int     `json:"postgres_processes"`
	RedisProcs    int     `json:"redis_processes"`
}

func newCPUPerEvent(before, after cpuSample, events int, wall time.Duration) *cpuPerEvent {
	per := func(d time.Duration) float64 {
		if events == 0 {
			return 0
		}
		return round3(float64(d) / float64(time.Millisecond) / float64(events))
	}
	c := &cpuPerEvent{Events: events, Seconds: round2(wall.Seconds()), ReferdOK: before.referdOK && after.referdOK,
		PostgresDBOK: after.postgresDBOK, PostgresProcs: after.postgresProcs, RedisProcs: after.redisProcs}
	if c.ReferdOK {
		c.ReferdMs = per(after.referd - before.referd)
	}
	c.PostgresAllMs = per(grown(before.postgresPIDs, after.postgresPIDs))
	c.PostgresMs = c.PostgresAllMs
	if c.PostgresDBOK {
		c.PostgresDBMs = per(after.postgresDB - before.postgresDB)
		c.PostgresMs = c.PostgresDBMs
	}
	c.RedisMs = per(grown(before.redisPIDs, after.redisPIDs))
	c.TotalMs = round3(c.ReferdMs + c.PostgresMs + c.RedisMs)
	c.LoadMs = per(after.self - before.self)
	if before.machineOK && after.machineOK && wall > 0 {
		busy := after.machineBusy - before.machineBusy
		c.MachineMs = per(busy)
		c.MachineCores = round2(busy.Seconds() / wall.Seconds())
	}
	return c
}

// e2eRun is the state shared by the stages of one run.
type e2eRun struct {
	cfg       e2eConfig
	base      string // referd's base URL
	customers string // prefix of the Stripe customer ids of every stage
	client    *http.Client
	tr        *tracker
	logw      io.Writer
}

// runE2E runs cfg's stages in order and returns the report. Progress goes
// to logw. It sends load only to loopback addresses, and listens and
// connects to PostgreSQL only on them. On success the caller must call done
// (which drops the ceiling's scratch database, slowly) once it has used the
// report; on failure runE2E has cleaned up.
func runE2E(ctx context.Context, cfg e2eConfig, logw io.Writer) (rep *e2eReport, done func(), err error) {
	var cleanups []func()
	cleanup := func() {
		for _, f := range slices.Backward(cleanups) {
			f()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	if cfg.sinkListener != nil {
		// Closed by the sink's server, or here on failure before it serves.
		ln := cfg.sinkListener
		cleanups = append(cleanups, func() { ln.Close() })
	}
	u, err := validateE2E(cfg)
	if err != nil {
		return nil, nil, err
	}
	has := func(stage string) bool { return slices.Contains(cfg.Stages, stage) }
	if cfg.ceilingDB == "" {
		cfg.ceilingDB = ceilingDB
	}
	if cfg.procRoot == "" {
		cfg.procRoot = "/proc"
	}
	// Refuse every non-loopback address before doing anything.
	if has(stageCeiling) {
		pgcfg, err := pq.NewConfig(cfg.PG)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: -pg: %v", errUsage, err)
		}
		if err := checkPGLoopback(ctx, pgcfg); err != nil {
			return nil, nil, err
		}
	}
	rep = &e2eReport{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Commit: cfg.Commit,
		LoadStart: loadAvg(cfg.procRoot)}
	e := &e2eRun{cfg: cfg, customers: newRunID(), tr: newTracker(), logw: logw}
	var sk *sink
	if u != nil {
		if err := checkLoopback(ctx, u.Hostname()); err != nil {
			return nil, nil, err
		}
		e.base = strings.TrimRight(u.String(), "/")
		ln := cfg.sinkListener
		if ln == nil {
			if ln, err = listenSink(ctx, cfg.SinkAddr); err != nil {
				return nil, nil, err
			}
			cleanups = append(cleanups, func() { ln.Close() })
		}
		if addr, ok := ln.Addr().(*net.TCPAddr); !ok || !addr.IP.IsLoopback() {
			return nil, nil, fmt.Errorf("%w: sink bound to %s", errSinkNotLoopback, ln.Addr())
		}
		sk = newSink(time.Now())
		sk.observe = e.tr.deliver
		srv, serveErr := serveSink(ln, sk, logw)
		// The sink keeps answering until the report is used: referd retries
		// deliveries that fail.
		cleanups = append(cleanups, func() { stopSink(srv) })
		fmt.Fprintf(logw, "referd-load: e2e: receiving webhooks on %s\n", ln.Addr())
		go func() {
			if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(logw, "referd-load: e2e: sink: %v\n", err)
			}
		}()
		e.client = newClient(cfg.Senders, nil)
		e.client.Timeout = e2eRequestTimeout
		defer e.client.CloseIdleConnections()
	}

	if has(stageCeiling) {
		res, drop, err := measureCeiling(ctx, ceilingConfig{PG: cfg.PG, DB: cfg.ceilingDB, Clients: ceilingClients,
			Warmup: ceilingWarmup, Duration: cfg.CeilingDur}, logw)
		if drop != nil {
			cleanups = append(cleanups, drop)
		}
		if err == nil && res.Rows == 0 {
			err = errNoRows
		}
		if err != nil {
			return nil, nil, fmt.Errorf("ceiling: %w", err)
		}
		rep.Ceiling, rep.CeilingRate = res, res.RowsPerSec
		fmt.Fprintf(logw, "referd-load: e2e: ceiling %.0f rows/s\n", res.RowsPerSec)
	} else {
		rep.CeilingRate = cfg.CeilingRate
	}
	if has(stageIngest) {
		if rep.Ingest, err = e.ingest(ctx, rep.CeilingRate); err != nil {
			return nil, nil, err
		}
	}
	if has(stageDrain) {
		if rep.Drain, rep.DrainCPU, err = e.drain(ctx); err != nil {
			return nil, nil, err
		}
	}
	if has(stagePaced) {
		if rep.Paced, err = e.paced(ctx, pacedRatio*rep.CeilingRate); err != nil {
			return nil, nil, err
		}
	}
	rep.LoadEnd = loadAvg(cfg.procRoot)
	if cfg.PID > 0 {
		if rep.PeakRSS, err = peakRSS(cfg.procRoot, cfg.PID); err != nil {
			fmt.Fprintf(logw, "referd-load: e2e: peak RSS of pid %d: %v\n", cfg.PID, err)
		}
	}
	if sk != nil {
		rep.Webhooks = sk.summary(cfg.SinkAddr, time.Now())
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	rep.Results = resultRows(rep)
	return rep, cleanup, nil
}

// ingest runs the ingest burst (the ingest-stripe scenario at cfg.Senders
// for cfg.IngestDur after cfg.IngestWarmup), then waits until the webhooks
// of the events it stored have arrived, so that the next stage starts with
// referd idle.
func (e *e2eRun) ingest(ctx context.Context, ceiling float64) (*ingestStage, error) {
	fmt.Fprintf(e.logw, "referd-load: e2e: ingest burst\n")
	sum, err := run(ctx, config{URL: e.cfg.URL, Concurrency: e.cfg.Senders, Duration: e.cfg.IngestDur,
		Warmup: e.cfg.IngestWarmup, Scenario: "ingest-stripe", Program: e.cfg.Program, Secret: e.cfg.Secret,
		KeyPattern: "seed-r-%d", KeyCount: 1, customerPrefix: e.customers}, e.logw)
	if err != nil {
		return nil, fmt.Errorf("ingest burst: %w", err)
	}
	if sum.Successes == 0 {
		return nil, fmt.Errorf("ingest burst: no event was accepted (%d failures; are -program and -secret right?)", sum.Failures)
	}
	st := &ingestStage{Load: sum, Ratio: round3(sum.Throughput / ceiling), BacklogWant: sum.Successes + sum.WarmupOK}
	end := time.Now()
	fmt.Fprintf(e.logw, "referd-load: e2e: %.0f events/s accepted; waiting for the webhooks of %d events\n", sum.Throughput, st.BacklogWant)
	got, last, ok := e.tr.waitOthers(ctx, st.BacklogWant, e.cfg.Wait)
	st.BacklogArrived, st.BacklogDrained = got, ok
	st.WaitedSec = round2(time.Since(end).Seconds())
	if !last.IsZero() {
		st.BacklogSec = round2(last.Sub(end).Seconds())
	}
	if !ok {
		fmt.Fprintf(e.logw, "referd-load: e2e: only %d of %d webhooks arrived in %v; the next stage starts with a backlog\n", got, st.BacklogWant, e.cfg.Wait)
	}
	return st, ctx.Err()
}

// drain sends cfg.DrainEvents events as fast as cfg.Senders senders can,
// waits for their webhooks, and returns the result and the CPU it cost.
func (e *e2eRun) drain(ctx context.Context) (*stageResult, *cpuPerEvent, error) {
	n := int64(e.cfg.DrainEvents)
	fmt.Fprintf(e.logw, "referd-load: e2e: burst drain of %d events at %d senders\n", n, e.cfg.Senders)
	st := e.tr.newStage(stageDrain, newRunID())
	var claimed atomic.Int64
	before, t0 := sampleCPU(e.cfg.procRoot, e.cfg.PID, e.cfg.ReferdDB), time.Now()
	e.send(ctx, st, func() bool { return claimed.Add(1) <= n && ctx.Err() == nil })
	all := e.tr.waitStage(ctx, st, e.cfg.Wait)
	after, wall := sampleCPU(e.cfg.procRoot, e.cfg.PID, e.cfg.ReferdDB), time.Since(t0)
	res := e.tr.summarize(st)
	res.Senders = e.cfg.Senders
	if err := e.checkStage(ctx, res, all); err != nil {
		return nil, nil, err
	}
	return res, newCPUPerEvent(before, after, res.Arrived, wall), nil
}

// paced sends events at rate per second for cfg.PacedDur and waits for
// their webhooks.
func (e *e2eRun) paced(ctx context.Context, rate float64) (*stageResult, error) {
	if rate <= 0 || rate > maxRate {
		return nil, fmt.Errorf("paced: rate %g/s is out of (0, %g]", rate, float64(maxRate))
	}
	fmt.Fprintf(e.logw, "referd-load: e2e: paced at %.1f events/s for %v\n", rate, e.cfg.PacedDur)
	st := e.tr.newStage(stagePaced, newRunID())
	start := time.Now()
	end := start.Add(e.cfg.PacedDur)
	pace := newPacer(rate, start, time.Now)
	e.send(ctx, st, func() bool {
		slot := pace.reserve()
		return slot.Before(end) && sleepUntil(ctx, slot)
	})
	all := e.tr.waitStage(ctx, st, e.cfg.Wait)
	res := e.tr.summarize(st)
	res.Senders = e.cfg.Senders
	res.TargetRate = round2(rate)
	res.DurationSec = round2(e.cfg.PacedDur.Seconds())
	res.SentRate = round2(float64(res.Sent) / e.cfg.PacedDur.Seconds())
	return res, e.checkStage(ctx, res, all)
}

// checkStage logs how a stage went and fails it if it could not be carried
// out.
func (e *e2eRun) checkStage(ctx context.Context, r *stageResult, all bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.Accepted == 0 {
		return fmt.Errorf("%s: no event was accepted (%d sent; are -program and -secret right?)", r.Stage, r.Sent)
	}
	fmt.Fprintf(e.logw, "referd-load: e2e: %s: %d sent, %d accepted, %d webhooks arrived", r.Stage, r.Sent, r.Accepted, r.Arrived)
	if !all {
		fmt.Fprintf(e.logw, ", %d missing after waiting %v", r.Missing, e.cfg.Wait)
	}
	fmt.Fprintln(e.logw)
	return nil
}

// send runs cfg.Senders senders that each, while next() allows, send the
// stage's next signed invoice.paid event and record it with the tracker.
func (e *e2eRun) send(ctx context.Context, st *stageLog, next func() bool) {
	var (
		seq atomic.Int64
		wg  sync.WaitGroup
	)
	for range e.cfg.Senders {
		wg.Go(func() {
			for next() {
				n := seq.Add(1)
				body, sig := invoicePaid(st.prefix, e.customers, e.cfg.Secret, n, time.Now().Unix())
				req, err := newStripeRequest(ctx, e.base, e.cfg.Program, body, sig)
				if err != nil {
					// Only a programming error: the URL was checked.
					panic(err)
				}
				ev := e.tr.send(st, invoiceKey(st.prefix, n))
				status := 0
				resp, err := e.client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil {
						status = resp.StatusCode
					}
				}
				e.tr.ack(ev, status, time.Since(ev.sent))
			}
		})
	}
	wg.Wait()
}

// ---------------------------------------------------------------------------
// The results table

// resultRow is a line of the results table.
type resultRow struct {
	What     string `json:"what"`
	Measured string `json:"measured"`
	Ratio    string `json:"ratio,omitempty"`  // × ceiling
	Target   string `json:"target,omitempty"` // "" where there is none
	Result   string `json:"result,omitempty"` // "met" or "missed" where there is a target
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// resultRows turns a report into the lines of the results table.
func resultRows(r *e2eReport) []resultRow {
	rows := []resultRow{{What: "date", Measured: r.Date}}
	if r.Commit != "" {
		rows = append(rows, resultRow{What: "commit", Measured: r.Commit})
	}
	if r.LoadStart != "" || r.LoadEnd != "" {
		rows = append(rows, resultRow{What: "load average (1, 5, 15 min) at start → end", Measured: r.LoadStart + " → " + r.LoadEnd})
	}
	c := r.CeilingRate
	ratio := func(x float64) string { return fmt.Sprintf("%.2f", x/c) }
	if r.Ceiling != nil {
		rows = append(rows, resultRow{
			What: fmt.Sprintf("PostgreSQL ceiling: single-row INSERT … ON CONFLICT DO NOTHING of %s B JSONB, %d clients, a commit each, %gs",
				commas(float64(r.Ceiling.PayloadBytes)), r.Ceiling.Clients, r.Ceiling.DurationSec),
			Measured: commas(c) + " rows/s", Ratio: "1.00"})
	} else {
		rows = append(rows, resultRow{What: "PostgreSQL ceiling (given with -ceiling-rate, not measured)",
			Measured: commas(c) + " rows/s", Ratio: "1.00"})
	}
	if in := r.Ingest; in != nil {
		s := in.Load
		p99 := time.Duration(s.Latency.P99 * float64(time.Millisecond))
		rows = append(rows, resultRow{
			What:     fmt.Sprintf("ingest burst: %d senders, %gs", s.Concurrency, s.DurationSec),
			Measured: fmt.Sprintf("%s events/s, p99 %.1f ms, %d failed", commas(s.Throughput), s.Latency.P99, s.Failures),
			Ratio:    ratio(s.Throughput),
			Target:   fmt.Sprintf("≥ %.2f, p99 ≤ %d ms", ingestRatioTarget, ingestP99Target.Milliseconds()),
			Result:   metOrMissed(s.Throughput >= ingestRatioTarget*c && p99 <= ingestP99Target),
		})
	}
	if d := r.Drain; d != nil {
		rows = append(rows, resultRow{
			What:     fmt.Sprintf("burst drain: %s events at %d senders, first send → last transaction.created", commas(float64(d.Sent)), d.Senders),
			Measured: fmt.Sprintf("%s events/s (%.2f s)", commas(d.DrainRate), d.SpanSec),
			Ratio:    ratio(d.DrainRate),
			Target:   fmt.Sprintf("≥ %.2f", drainRatioTarget),
			Result:   metOrMissed(d.DrainRate >= drainRatioTarget*c && d.Missing == 0),
		}, missingRow("burst drain", d))
	}
	if p := r.Paced; p != nil {
		rows = append(rows, resultRow{
			What: fmt.Sprintf("paced at %.2f × ceiling = %s events/s for %gs (%s/s sent): send → transaction.created p50 / p90 / p99 / max",
				pacedRatio, commas(p.TargetRate), p.DurationSec, commas(p.SentRate)),
			Measured: fmt.Sprintf("%s / %s / %s / %s ms", ms1(p.E2E.P50), ms1(p.E2E.P90), ms1(p.E2E.P99), ms1(p.E2E.Max)),
			Ratio:    ratio(p.SentRate),
			Target:   fmt.Sprintf("p99 ≤ %d ms", pacedE2EP99Target.Milliseconds()),
			Result:   metOrMissed(p.Missing == 0 && p.Arrived > 0 && p.E2E.P99 <= float64(pacedE2EP99Target.Milliseconds())),
		}, resultRow{
			What:     "paced: ingest request p50 / p90 / p99",
			Measured: fmt.Sprintf("%s / %s / %s ms", ms1(p.Ingest.P50), ms1(p.Ingest.P90), ms1(p.Ingest.P99)),
			Target:   fmt.Sprintf("p99 ≤ %d ms", pacedIngestP99Target.Milliseconds()),
			Result:   metOrMissed(p.Ingest.P99 <= float64(pacedIngestP99Target.Milliseconds()) && p.Rejected == 0),
		}, missingRow("paced", p))
	}
	if cpu := r.DrainCPU; cpu != nil {
		referd := "not measured (no -pid)"
		if cpu.ReferdOK {
			referd = fmt.Sprintf("%.3f", cpu.ReferdMs)
		}
		pg := "PostgreSQL (all its processes)"
		if cpu.PostgresDBOK {
			pg = "PostgreSQL (referd's backends and the server's own processes)"
		}
		rows = append(rows, resultRow{
			What:     "CPU per event in the burst drain: referd + " + pg + " + Redis",
			Measured: fmt.Sprintf("%.3f ms (%s + %.3f + %.3f)", cpu.TotalMs, referd, cpu.PostgresMs, cpu.RedisMs),
		})
	}
	if r.PeakRSS > 0 {
		rows = append(rows, resultRow{
			What:     "referd peak RSS (VmHWM)",
			Measured: fmt.Sprintf("%.0f MiB", float64(r.PeakRSS)/(1<<20)),
			Target:   fmt.Sprintf("≤ %d MiB", peakRSSTarget>>20),
			Result:   metOrMissed(r.PeakRSS <= peakRSSTarget),
		})
	}
	return rows
}

// missingRow is a stage's line for missing and duplicate webhooks.
func missingRow(stage string, r *stageResult) resultRow {
	measured := fmt.Sprintf("%d / %d", r.Missing, r.Duplicates())
	if r.Rejected > 0 {
		measured += fmt.Sprintf(" (%d events refused by ingest)", r.Rejected)
	}
	return resultRow{
		What:     stage + ": webhooks missing / duplicated (same webhook-id again, or a key under a second webhook-id)",
		Measured: measured,
		Target:   "0 / 0",
		Result:   metOrMissed(r.Missing == 0 && r.Duplicates() == 0),
	}
}

// commas formats x rounded to an integer with thousands separators.
func commas(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ms1 formats milliseconds with one decimal below 100 and none above.
func ms1(x float64) string {
	if x >= 100 {
		return commas(x)
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// printE2EText writes the results table (markdown) and the details below it.
func printE2EText(w io.Writer, r *e2eReport) {
	fmt.Fprintln(w, "| | measured | × ceiling | target | |")
	fmt.Fprintln(w, "| --- | --- | ---: | --- | --- |")
	for _, row := range r.Results {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", row.What, row.Measured, row.Ratio, row.Target, row.Result)
	}
	fmt.Fprintln(w)
	if in := r.Ingest; in != nil {
		s := in.Load
		fmt.Fprintf(w, "- ingest burst: %d events accepted (and %d in the %gs warm-up), p50 %.1f / p90 %.1f / max %.1f ms; ",
			s.Successes, s.WarmupOK, s.WarmupSec, s.Latency.P50, s.Latency.P90, s.Latency.Max)
		if in.BacklogDrained {
			fmt.Fprintf(w, "their %d webhooks arrived within %.1f s after the burst\n", in.BacklogWant, in.BacklogSec)
		} else {
			fmt.Fprintf(w, "only %d of their %d webhooks arrived in %.1f s, so later stages ran with a backlog\n",
				in.BacklogArrived, in.BacklogWant, in.WaitedSec)
		}
	}
	if d := r.Drain; d != nil {
		fmt.Fprintf(w, "- burst drain: sent in %.2f s (%s/s), ingest p50 %.1f / p99 %.1f ms; send → webhook p50 %s / p99 %s / max %s ms, "+
			"of which send → commit (data.created_at) p50 %s / p99 %s and commit → webhook p50 %s / p99 %s\n",
			d.SendSec, commas(float64(d.Sent)/max(d.SendSec, 0.01)), d.Ingest.P50, d.Ingest.P99, ms1(d.E2E.P50), ms1(d.E2E.P99), ms1(d.E2E.Max),
			ms1(d.ToCommit.P50), ms1(d.ToCommit.P99), ms1(d.ToWebhook.P50), ms1(d.ToWebhook.P99))
	}
	if p := r.Paced; p != nil {
		fmt.Fprintf(w, "- paced: send → commit (data.created_at) p50 %s / p90 %s / p99 %s ms; commit → webhook p50 %s / p90 %s / p99 %s ms\n",
			ms1(p.ToCommit.P50), ms1(p.ToCommit.P90), ms1(p.ToCommit.P99), ms1(p.ToWebhook.P50), ms1(p.ToWebhook.P90), ms1(p.ToWebhook.P99))
	}
	if cpu := r.DrainCPU; cpu != nil {
		fmt.Fprintf(w, "- burst drain CPU, sampled from /proc over %.2f s: every postgres process (%d) %.3f ms/event, redis-server (%d, shared with whoever uses it) %.3f, "+
			"this load generator and sink %.3f (not in the table); the whole machine was busy %.2f cores of %d, %.3f ms/event\n",
			cpu.Seconds, cpu.PostgresProcs, cpu.PostgresAllMs, cpu.RedisProcs, cpu.RedisMs, cpu.LoadMs, cpu.MachineCores, runtime.NumCPU(), cpu.MachineMs)
	}
	if h := r.Webhooks; h != nil {
		fmt.Fprintf(w, "- webhooks received in all: %d (%d repeated webhook-ids, %d without one, %d invalid bodies)\n",
			h.Deliveries, h.Duplicates, h.MissingID, h.Invalid)
	}
}

// writeJSON writes v as one JSON object.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// ---------------------------------------------------------------------------
// Flags and main

// The flags that apply in -ceiling and -e2e mode, and those that apply
// only there (the load mode refuses them).
var (
	ceilingModeFlags = map[string]bool{"ceiling": true, "pg": true, "c": true, "ceiling-d": true, "json": true}
	e2eModeFlags     = map[string]bool{"e2e": true, "url": true, "program": true, "secret": true, "c": true,
		"pg": true, "pid": true, "referd-db": true, "commit": true, "stages": true, "ceiling-rate": true, "ceiling-d": true,
		"ingest-d": true, "drain-n": true, "paced-d": true, "wait": true, "json": true}
	modeOnlyFlags = map[string]bool{"pg": true, "pid": true, "referd-db": true, "commit": true, "stages": true, "ceiling-rate": true,
		"ceiling-d": true, "ingest-d": true, "drain-n": true, "paced-d": true, "wait": true}
)

// otherFlags returns the flags given on the command line that allowed does
// not name, as "-name".
func otherFlags(fs *flag.FlagSet, allowed map[string]bool) []string {
	return givenFlags(fs, func(name string) bool { return !allowed[name] })
}

// givenFlags returns the flags given on the command line for which keep is
// true, as "-name".
func givenFlags(fs *flag.FlagSet, keep func(name string) bool) []string {
	var out []string
	fs.Visit(func(f *flag.Flag) {
		if keep(f.Name) {
			out = append(out, "-"+f.Name)
		}
	})
	return out
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// flagList lists the names of flags as "-a, -b and -c", sorted.
func flagList(flags map[string]bool) string {
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, "-"+n)
	}
	slices.Sort(names)
	return inWords(names)
}

// inWords lists names as a sentence does: "a, b and c".
func inWords(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// e2eMain runs -e2e mode for realMain and returns the exit status: 0 when
// every stage ran, whether or not the targets were met.
func e2eMain(ctx context.Context, cfg e2eConfig, asJSON bool, stdout, stderr io.Writer) int {
	rep, done, err := runE2E(ctx, cfg, stderr)
	if done != nil {
		defer done()
	}
	return report(stdout, stderr, asJSON, rep, err, func() { printE2EText(stdout, rep) })
}

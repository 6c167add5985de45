// Command referd-load is a small HTTP load generator for the referd server.
// It is used to record the numbers in BENCHMARKS.md. It also measures the
// machine's own PostgreSQL ceiling (-ceiling), and referd end to end as
// ratios to that ceiling (-e2e; bash cmd/referd-load/e2e.sh runs it all).
//
// Usage:
//
//	go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -c 64 -d 20s
//	go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -scenario transactions -c 64 -d 20s
//	go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -scenario stats -key-pattern seed-r-%d -key-count 10000 -c 64 -d 20s
//	go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -scenario balance -key-pattern seed-r-%d -key-count 10000 -c 64 -d 20s
//	go run ./cmd/referd-load -url http://127.0.0.1:8080 -scenario ingest-stripe -program $PROGRAM_ID -secret $WHSEC -c 64 -d 20s
//	go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -scenario transactions -rate 500 -c 64 -d 20s
//	go run ./cmd/referd-load -sink 127.0.0.1:18099 -d 30s
//	go run ./cmd/referd-load -ceiling -ceiling-d 5s
//	go run ./cmd/referd-load -e2e 127.0.0.1:18096 -url http://127.0.0.1:18095 -program $PROGRAM_ID -secret $WHSEC -pid $REFERD_PID -referd-db referd_e2e
//	bash cmd/referd-load/e2e.sh
//
// Flags:
//
//	-url             base URL of the server (default http://127.0.0.1:8080)
//	-key             API key, sent as "Authorization: Bearer <key>"
//	-c               number of concurrent clients (default 64)
//	-d               measured duration (default 10s, at most 10m)
//	-n               maximum number of measured requests, 0 = unlimited;
//	                 the run stops at whichever of -d and -n comes first
//	-scenario        load scenario to run (default "customers")
//	-warmup          warm-up duration whose requests are not counted
//	                 (default 2s, at most 1m)
//	-referrer-ratio  fraction 0..1 of created customers that name a
//	                 referrer (default 0.5; customers scenario)
//	-key-pattern     fmt pattern with exactly one %d (and no other verb;
//	                 %% is a literal percent sign) giving the keys of the
//	                 existing customers read by the stats and balance
//	                 scenarios (default "seed-r-%d")
//	-key-count       number of such keys: request n reads key
//	                 fmt.Sprintf(pattern, n % count) (default 10000)
//	-rate            requests per second started across all clients, 0 =
//	                 unlimited (default 0, at most 1e6); see Measurement
//	-json            print the summary as one JSON object instead of text
//	-sink            ADDR: webhook receiver mode instead of load, see below
//	-ceiling         PostgreSQL ceiling mode instead of load, see below
//	-e2e             ADDR: end-to-end mode instead of load, see below
//
// Flags of -ceiling and -e2e only (the load mode refuses them):
//
//	-pg              PostgreSQL URL or key=value DSN, loopback only, where
//	                 the ceiling creates and drops its scratch database
//	                 referd_ceiling (default
//	                 postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
//	-ceiling-d       measured duration of the ceiling (default 5s, at most 10m)
//	-pid             referd's process id, for its CPU per event and peak
//	                 RSS; 0 = not measured (default 0; -e2e)
//	-referd-db       referd's database name: PostgreSQL's CPU then counts
//	                 only that database's backends and the server's own
//	                 processes; "" = every process named postgres (-e2e)
//	-commit          the commit measured, shown in the table (-e2e)
//	-stages          comma-separated stages to run, always in the order
//	                 ceiling, ingest, drain, paced (default all four; -e2e)
//	-ceiling-rate    the ceiling in rows/s, when -stages leaves out ceiling
//	                 (-e2e)
//	-ingest-d        measured duration of the ingest burst (default 5s; -e2e)
//	-drain-n         events of the burst drain (default 5000, at most 1e6;
//	                 -e2e)
//	-paced-d         how long the paced stage sends (default 20s; -e2e)
//	-wait            how long a stage waits for its last webhook after its
//	                 last send (default 1m; -e2e)
//
// Safety: load may only be sent to this machine. The tool refuses to run
// (exit status 2) unless the URL's host resolves only to loopback addresses
// (127.0.0.0/8 or ::1). In addition every dialed connection is checked to be
// a loopback address, redirects are not followed and proxy environment
// variables are ignored. The run is always bounded in time by -d. The same
// holds for -pg (PostgreSQL): every host it names (host, hostaddr, several
// hosts, or PGHOST when the DSN names none) must be a loopback address or a
// local Unix socket, and every connection is checked again when dialed.
//
// Scenarios:
//
//	customers  Creates 16 referrer customers first (not measured), then
//	           every request is POST /v1/customers creating a new customer
//	           with a unique key and email; with probability -referrer-ratio
//	           the body also carries "referring_customer" naming one of the
//	           16 referrers. Success is HTTP 201.
//
//	transactions
//	           Creates 64 referrers "<runid>-ref-<i>" and 1024 friends
//	           "<runid>-f-<i>", friend i referred by referrer i%64 (not
//	           measured; 16 requests in parallel). Then every request is
//	           POST /v1/transactions recording a "sale" with key
//	           "<runid>-t-<n>" for friend n%1024; the amount is a
//	           deterministic decimal in [1.00, 500.00] derived from n
//	           (100 + n*7919 mod 49901 cents). Success is HTTP 201.
//
//	stats      No setup and no writes. Every request is
//	           GET /v1/customers/<key>/stats for an existing customer, key
//	           from -key-pattern and -key-count. Success is HTTP 200.
//
//	balance    Like stats, but GET /v1/customers/<key>/balance.
//
// The stats and balance scenarios need customers that already exist, for
// example seeded ones named seed-r-0 ... seed-r-9999; requests for unknown
// keys fail (HTTP 404).
//
// Keys written by the customers scenario are "<runid>-<n>", those of the
// transactions scenario are prefixed with "<runid>-" too, where <runid> is 8
// random hex characters per run and <n> a global counter, so repeated runs
// against the same database never collide.
//
// Measurement: every client sends requests back to back on a shared,
// keep-alive HTTP/1.1 connection pool. With -rate R > 0 the load is paced
// (open loop) instead: one shared schedule hands out start slots 1/R apart,
// in order, across warm-up and measured phase, and a client waits for its
// slot before building and sending its next request. If all clients are
// busy when a slot comes, the schedule falls behind (it continues from the
// next free client, without a burst to catch up), so the achieved rate,
// counted requests started per second of measured time, is printed next to
// the target; raise -c if it falls short. The latency of a request is the time
// from sending it until its response body has been fully read. Only requests
// that start after the warm-up are counted. Latency percentiles are computed
// exactly (nearest rank) over the counted requests that received an HTTP
// response; throughput is successful requests per second of measured time.
// Requests still in flight when the run is interrupted, or that have not
// finished 10s after the end of the run, are reported as "aborted" and are
// not counted.
//
// Webhook receiver (-sink ADDR): sends no load. It listens on ADDR, which
// must be a loopback address such as 127.0.0.1:18099 (a host that is not
// loopback, or none, is refused with exit status 2), and answers every POST
// with 204 and an empty body, as a no-op endpoint for measuring the webhooks
// referd sends. Only -d (default 10s, at most 10m, from start) and -json
// apply; it also stops on SIGINT or SIGTERM. For every POST it reads the
// body (at most 1 MiB) as {"event", "webhook_key", "created_at", "data"},
// and counts deliveries per event type and duplicates by the webhook-id
// header (every repeat of an id already seen is one duplicate). For
// transaction.created it records the latency from data.created_at
// (2006-01-02T15:04:05.000000Z, UTC) to the time the request arrived, for
// the first delivery of each webhook-id only (duplicates are left out).
// Bodies that are too large, not JSON or have no "event" are counted as
// deliveries and as invalid. A line with the count so far goes to stderr
// every second. The summary gives the deliveries, duplicates, first and last
// receive time, the delivery rate (deliveries / (last - first) seconds),
// the counts per event type, the transaction.created latency p50, p90, p99
// and max in ms, and deliveries per second since start: every second for
// runs up to 120s, the 10 busiest seconds for longer ones (-json always has
// every second from first to last).
//
// PostgreSQL ceiling (-ceiling): sends no HTTP load; only -pg, -c (default 16
// in this mode, at most 64), -ceiling-d and -json apply. It creates the
// scratch database referd_ceiling on -pg (dropping one left over from an
// interrupted run), and in it a table shaped like referd's provider_events
// (an identity primary key, a unique text event id, a JSONB payload and a
// timestamp). Each of -c connections then inserts one row at a time, each its
// own commit (autocommit), with a prepared single-row INSERT ... ON CONFLICT
// (event_id) DO NOTHING of a 1,850-byte Stripe-like JSON event (hex padded, so
// that it hardly compresses, and short enough that the row is stored inline,
// not in TOAST). After 1s of warm-up, the commits that finish within
// -ceiling-d are counted: rows/s is that count divided by -ceiling-d. The
// summary also gives the commit latency p50, p90, p99 and max, and the run
// fails if the table does not hold exactly the rows inserted. At the end it
// drops the database, for which PostgreSQL waits for a checkpoint (seconds,
// or a minute on a busy machine; at most 3m). On a first SIGINT or SIGTERM it
// stops and still drops the database; a second one ends the process at once.
//
// End to end (-e2e ADDR): measures referd as issue 14 asks, every result as a
// ratio to the ceiling measured in the same run, because the machine's speed
// varies by ±30% between runs. ADDR must be a loopback host:port; there the
// run receives referd's webhooks with the -sink receiver's handler (so the
// -sink tallies are in the report too), and matches each transaction.created
// to the event it sent by data.key, the transaction key
// "stripe:<invoice id>". referd must have a program (-program) whose Stripe
// integration signs with -secret, a 10% referrer credit rule (any rule that
// makes every purchase a transaction does), a webhook endpoint for
// transaction.created at http://ADDR/..., and 1,024 referred friends with
// the emails load0@load.test ... load1023@load.test; every event is a signed
// Stripe invoice.paid of event n for friend n % 1024, as in the ingest-stripe
// scenario, and the Stripe customer ids are the same in every stage of a run
// (the ingest burst's first events introduce them, so the later stages pay as
// known customers). Only -url, -program, -secret, -c (senders, default 64),
// -json and the -ceiling/-e2e flags above apply. The stages, in this order:
//
//	ceiling  The -ceiling measurement above with 16 clients for -ceiling-d.
//	         Its scratch database is dropped only after the last stage,
//	         so that the checkpoint does not disturb the others. Without
//	         this stage -ceiling-rate gives the ceiling.
//	ingest   The ingest-stripe scenario at -c senders for -ingest-d after a
//	         1s warm-up: events/s accepted and p99. Target: at least 0.6 x
//	         ceiling with p99 at most 50 ms. Then it waits (at most -wait)
//	         until the webhooks of all the events it stored (warm-up
//	         included) have arrived, so that the next stage starts with
//	         referd idle.
//	drain    -drain-n events sent as fast as -c senders can. Drain rate =
//	         events whose webhook arrived / (last arrival - first send).
//	         Target: at least 0.25 x ceiling. It waits up to -wait after
//	         the last send; accepted events (HTTP 2xx) with no
//	         transaction.created by then are missing, and every delivery of a
//	         key beyond its first is a duplicate: the same webhook-id again,
//	         or the key under another webhook-id. Target: 0 and 0. It also
//	         samples CPU from /proc at the first send and once all arrived:
//	         utime+stime of -pid, of every postgres process (with the
//	         postmaster's waited-for children, so backends that exit still
//	         count) or, with -referd-db, only of that database's backends and
//	         the server's own processes, and of every redis-server process, per
//	         event that arrived, in ms; and, for scale, this process's own CPU
//	         and the whole machine's busy time from /proc/stat.
//	paced    Events at 0.05 x ceiling per second (the pacer of -rate) from -c
//	         senders for -paced-d, then up to -wait for the webhooks.
//	         Send-to-webhook latency, from just before the ingest request
//	         was sent to the arrival of its first transaction.created,
//	         p50/p90/p99/max, target p99 at most 100 ms; ingest request latency
//	         p50/p90/p99, target p99 at most 20 ms; missing and duplicates as
//	         in drain.
//
// At the end it reads referd's peak RSS (VmHWM of -pid, target at most 200
// MiB) and /proc/loadavg (also read at the start), and prints one markdown
// table: date, -commit, load average, the ceiling, and each measurement with
// its ratio to the ceiling, target and "met" or "missed" (nothing is
// asserted), followed by a few lines of detail. -json prints the whole
// report as one JSON object instead. Exit status 0 means every stage ran,
// whether or not the targets were met; 1 that a stage could not be carried
// out (no event accepted, PostgreSQL unreachable, interrupted).
//
// Exit status: 0 if the run completed, 1 if more than 1% of the counted
// requests failed, no request was counted (with -sink: no delivery
// arrived; with -ceiling: no row), or the run could not be carried out (for
// example scenario setup failed), 2 for invalid flags or a non-loopback URL,
// -sink or -e2e address or -pg host.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	maxDuration = 10 * time.Minute // upper bound for -d
	maxWarmup   = time.Minute      // upper bound for -warmup
	// drainGrace is how long in-flight requests may still run after the end
	// of the measured period before they are cancelled.
	drainGrace = 10 * time.Second
	// setupTimeout bounds a scenario's setup phase.
	setupTimeout = 30 * time.Second
	// maxErrorKinds is how many distinct transport error messages are kept.
	maxErrorKinds = 5
)

// errUsage marks configuration errors (exit status 2).
var errUsage = errors.New("usage error")

// errNotLoopback is returned when the target is not a loopback address.
var errNotLoopback = errors.New("refusing to send load to a non-loopback address")

// config holds everything a run needs. It is filled from flags by main and
// directly by tests.
type config struct {
	URL           string
	Key           string
	Concurrency   int
	Duration      time.Duration
	MaxRequests   int64
	Scenario      string
	Warmup        time.Duration
	ReferrerRatio float64
	KeyPattern    string  // stats, balance: fmt pattern with one %d
	KeyCount      int     // stats, balance: number of keys
	Program       string  // ingest-stripe: the program id in /ingest/stripe/{program}
	Secret        string  // ingest-stripe: the Stripe webhook signing secret
	Rate          float64 // requests per second across all clients, 0 = unlimited
	JSON          bool

	// customerPrefix, if set, names the Stripe customers of the
	// ingest-stripe scenario (cus_<prefix>_<i>) instead of the run id, so
	// that -e2e's later stages pay as the same, known customers.
	customerPrefix string

	// transport, if set, replaces the tuned loopback-only transport. It is
	// only used by tests.
	transport http.RoundTripper
}

// summary is the result of a run.
type summary struct {
	Scenario      string        `json:"scenario"`
	URL           string        `json:"url"`
	RunID         string        `json:"run_id"`
	Concurrency   int           `json:"concurrency"`
	WarmupSec     float64       `json:"warmup_s"`
	DurationSec   float64       `json:"duration_s"` // measured duration
	Requests      int64         `json:"requests"`   // counted requests
	Successes     int64         `json:"successes"`
	WarmupOK      int64         `json:"warmup_successes"` // successful warm-up requests, not counted elsewhere
	Failures      int64         `json:"failures"`
	FailureRate   float64       `json:"failure_rate"` // Failures / Requests
	Throughput    float64       `json:"throughput_rps"`
	TargetRate    float64       `json:"target_rate_rps,omitempty"`      // -rate, if set
	AchievedRate  float64       `json:"achieved_rate_rps"`              // counted requests started per second
	StatusCounts  map[int]int64 `json:"failed_status_counts,omitempty"` // unexpected HTTP status -> count
	TransportErrs int64         `json:"transport_errors"`
	ErrorKinds    []errorKind   `json:"transport_error_kinds,omitempty"` // first few distinct messages
	Aborted       int64         `json:"aborted"`
	Latency       latencyMs     `json:"latency_ms"`
}

type errorKind struct {
	Message string `json:"message"`
	Count   int64  `json:"count"`
}

type latencyMs struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// usageHeader is printed by -h before the flag defaults.
const usageHeader = `Usage of referd-load (loopback targets only):

  referd-load [flags]

Examples:

  go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -c 64 -d 20s
  go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -scenario transactions -c 64 -d 20s
  go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -scenario stats -key-pattern seed-r-%d -key-count 10000 -c 64 -d 20s
  go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -scenario balance -key-pattern seed-r-%d -key-count 10000 -c 64 -d 20s
  go run ./cmd/referd-load -url http://127.0.0.1:8080 -key $KEY -scenario transactions -rate 500 -c 64 -d 20s

Webhook receiver (no load; answers every POST with 204, counts deliveries,
duplicate webhook-ids and transaction.created latency; only -d and -json apply):

  go run ./cmd/referd-load -sink 127.0.0.1:18099 -d 30s

PostgreSQL ceiling (single-row commits/s in a scratch database referd_ceiling,
created and dropped; only -pg, -c, -ceiling-d and -json apply):

  go run ./cmd/referd-load -ceiling -ceiling-d 5s

End to end against the ceiling (ceiling, ingest burst, burst drain, paced run;
webhooks received on the -e2e address; see cmd/referd-load/e2e.sh for the setup):

  go run ./cmd/referd-load -e2e 127.0.0.1:18096 -url http://127.0.0.1:18095 -program $PROGRAM_ID -secret $WHSEC -pid $REFERD_PID

Scenarios:

  customers     POST /v1/customers, new customers, some referred (201)
  transactions  POST /v1/transactions, sales by 1024 referred friends
                created during setup (201)
  stats         GET /v1/customers/<key>/stats for existing keys (200)
  balance       GET /v1/customers/<key>/balance for existing keys (200)

Flags:

`

// realMain parses args, runs the load test and prints the summary. It
// returns the process exit status.
func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("referd-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base URL of the referd server (must be loopback)")
	fs.StringVar(&cfg.Key, "key", "", "API key, sent as 'Authorization: Bearer <key>'")
	fs.IntVar(&cfg.Concurrency, "c", 64, "number of concurrent clients")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "measured duration (max 10m); with -sink, how long to listen")
	fs.Int64Var(&cfg.MaxRequests, "n", 0, "max measured requests, 0 = unlimited (stops at whichever of -d/-n comes first)")
	fs.StringVar(&cfg.Scenario, "scenario", "customers", "scenario: "+strings.Join(scenarioNames(), ", "))
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "warm-up duration whose requests are not counted (max 1m)")
	fs.Float64Var(&cfg.ReferrerRatio, "referrer-ratio", 0.5, "fraction 0..1 of new customers that name a referrer (customers)")
	fs.StringVar(&cfg.Program, "program", "", "program id (ingest-stripe)")
	fs.StringVar(&cfg.Secret, "secret", "", "Stripe webhook signing secret configured for the program (ingest-stripe)")
	fs.StringVar(&cfg.KeyPattern, "key-pattern", "seed-r-%d", "keys of existing customers, a fmt pattern with exactly one %d (stats, balance)")
	fs.IntVar(&cfg.KeyCount, "key-count", 10000, "number of existing customer keys: request n uses pattern with n % count (stats, balance)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests per second started across all clients, 0 = unlimited (max 1e6)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the summary as one JSON object")
	var sinkAddr string
	fs.StringVar(&sinkAddr, "sink", "", "webhook receiver mode: listen on this loopback `ADDR` and answer POSTs with 204 (no load is sent)")
	var ceilingOnly bool
	fs.BoolVar(&ceilingOnly, "ceiling", false, "PostgreSQL ceiling mode: measure single-row commits per second in a scratch database (no HTTP load)")
	var e2e e2eConfig
	fs.StringVar(&e2e.SinkAddr, "e2e", "", "end-to-end mode: receive referd's webhooks on this loopback `ADDR` and run -stages")
	fs.StringVar(&e2e.PG, "pg", defaultPG, "PostgreSQL (loopback only) where the ceiling creates and drops its scratch database "+ceilingDB+" (-ceiling, -e2e)")
	fs.IntVar(&e2e.PID, "pid", 0, "referd's process id, for its CPU per event and peak RSS; 0 = not measured (-e2e)")
	fs.StringVar(&e2e.ReferdDB, "referd-db", "", "referd's database: its PostgreSQL CPU counts only that database's backends and the server's own processes; \"\" = every postgres process (-e2e)")
	fs.StringVar(&e2e.Commit, "commit", "", "the commit measured, shown in the results table (-e2e)")
	stages := fs.String("stages", strings.Join(e2eStages, ","), "comma-separated stages to run, in this order whatever the order given (-e2e)")
	fs.Float64Var(&e2e.CeilingRate, "ceiling-rate", 0, "use this ceiling in rows/s instead of measuring it; needs -stages without ceiling (-e2e)")
	fs.DurationVar(&e2e.CeilingDur, "ceiling-d", 5*time.Second, "measured duration of the ceiling (-ceiling, -e2e)")
	fs.DurationVar(&e2e.IngestDur, "ingest-d", 5*time.Second, "measured duration of the ingest burst (-e2e)")
	fs.IntVar(&e2e.DrainEvents, "drain-n", 5000, "events sent in the burst drain (-e2e)")
	fs.DurationVar(&e2e.PacedDur, "paced-d", 20*time.Second, "how long the paced stage sends (-e2e)")
	fs.DurationVar(&e2e.Wait, "wait", time.Minute, "how long a stage waits for its last webhook after its last send (-e2e)")
	fs.Usage = func() {
		io.WriteString(fs.Output(), usageHeader)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "referd-load: unexpected arguments: %q\n", fs.Args())
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal a second one ends the process at once: the
	// cleanup after the first may wait for PostgreSQL.
	context.AfterFunc(ctx, stop)

	switch {
	case sinkAddr != "":
		return sinkMain(ctx, fs, sinkAddr, cfg.Duration, cfg.JSON, stdout, stderr)
	case ceilingOnly:
		if bad := otherFlags(fs, ceilingModeFlags); len(bad) > 0 {
			fmt.Fprintf(stderr, "referd-load: %v: -ceiling sends no HTTP load; only %s apply, got %s\n", errUsage, flagList(ceilingModeFlags), bad)
			return 2
		}
		clients := ceilingClients
		if isSet(fs, "c") {
			clients = cfg.Concurrency
		}
		if clients < 1 || clients > maxCeilingClients {
			fmt.Fprintf(stderr, "referd-load: %v: -c must be in [1, %d] with -ceiling\n", errUsage, maxCeilingClients)
			return 2
		}
		if e2e.CeilingDur <= 0 || e2e.CeilingDur > maxDuration {
			fmt.Fprintf(stderr, "referd-load: %v: -ceiling-d must be in (0, %v]\n", errUsage, maxDuration)
			return 2
		}
		return ceilingMain(ctx, ceilingConfig{PG: e2e.PG, DB: ceilingDB, Clients: clients, Warmup: ceilingWarmup,
			Duration: e2e.CeilingDur}, cfg.JSON, stdout, stderr)
	case e2e.SinkAddr != "":
		if bad := otherFlags(fs, e2eModeFlags); len(bad) > 0 {
			fmt.Fprintf(stderr, "referd-load: %v: with -e2e only %s apply, got %s\n", errUsage, flagList(e2eModeFlags), bad)
			return 2
		}
		e2e.URL, e2e.Program, e2e.Secret, e2e.Senders = cfg.URL, cfg.Program, cfg.Secret, cfg.Concurrency
		e2e.IngestWarmup = time.Second
		e2e.Stages = nil
		for s := range strings.SplitSeq(*stages, ",") {
			if s = strings.TrimSpace(s); s != "" {
				e2e.Stages = append(e2e.Stages, s)
			}
		}
		return e2eMain(ctx, e2e, cfg.JSON, stdout, stderr)
	}
	if bad := givenFlags(fs, func(name string) bool { return modeOnlyFlags[name] }); len(bad) > 0 {
		fmt.Fprintf(stderr, "referd-load: %v: %s apply only to -ceiling or -e2e\n", errUsage, bad)
		return 2
	}
	sum, err := run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "referd-load: %v\n", err)
		if errors.Is(err, errUsage) || errors.Is(err, errNotLoopback) {
			return 2
		}
		return 1
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(sum); err != nil {
			fmt.Fprintf(stderr, "referd-load: %v\n", err)
			return 1
		}
	} else {
		printText(stdout, sum)
	}
	return exitCode(sum)
}

// exitCode maps a summary to the process exit status.
func exitCode(s *summary) int {
	if s.Requests == 0 || s.Failures*100 > s.Requests {
		return 1
	}
	return 0
}

// validate checks cfg and returns the parsed base URL.
func validate(cfg config) (*url.URL, error) {
	if cfg.Concurrency < 1 {
		return nil, fmt.Errorf("%w: -c must be at least 1", errUsage)
	}
	if cfg.Duration <= 0 || cfg.Duration > maxDuration {
		return nil, fmt.Errorf("%w: -d must be in (0, %v]", errUsage, maxDuration)
	}
	if cfg.Warmup < 0 || cfg.Warmup > maxWarmup {
		return nil, fmt.Errorf("%w: -warmup must be in [0, %v]", errUsage, maxWarmup)
	}
	if cfg.MaxRequests < 0 {
		return nil, fmt.Errorf("%w: -n must not be negative", errUsage)
	}
	if math.IsNaN(cfg.Rate) || cfg.Rate < 0 || cfg.Rate > maxRate {
		return nil, fmt.Errorf("%w: -rate must be in [0, %g] (0 = unlimited)", errUsage, float64(maxRate))
	}
	if math.IsNaN(cfg.ReferrerRatio) || cfg.ReferrerRatio < 0 || cfg.ReferrerRatio > 1 {
		return nil, fmt.Errorf("%w: -referrer-ratio must be in [0, 1]", errUsage)
	}
	if err := checkKeyPattern(cfg.KeyPattern); err != nil {
		return nil, fmt.Errorf("%w: -key-pattern %q: %v", errUsage, cfg.KeyPattern, err)
	}
	if cfg.KeyCount < 1 {
		return nil, fmt.Errorf("%w: -key-count must be at least 1", errUsage)
	}
	if _, ok := scenarios[cfg.Scenario]; !ok {
		return nil, fmt.Errorf("%w: unknown scenario %q (have %s)", errUsage, cfg.Scenario, strings.Join(scenarioNames(), ", "))
	}
	return parseBaseURL(cfg.URL)
}

// parseBaseURL checks -url: an absolute http(s) URL without a query or
// fragment.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: bad -url: %v", errUsage, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: -url must be an absolute http(s) URL, got %q", errUsage, raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: -url must not have a query or fragment", errUsage)
	}
	return u, nil
}

// checkKeyPattern accepts a fmt pattern with exactly one plain %d verb and no
// other verb; %% stands for a literal percent sign.
func checkKeyPattern(p string) error {
	verbs := 0
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		if i+1 >= len(p) {
			return errors.New("ends with a lone %")
		}
		i++
		switch p[i] {
		case '%':
		case 'd':
			verbs++
		default:
			return fmt.Errorf("only %%d and %%%% are allowed, found %%%c", p[i])
		}
	}
	if verbs != 1 {
		return fmt.Errorf("must contain exactly one %%d, found %d", verbs)
	}
	return nil
}

// checkLoopback returns nil only if host is a loopback IP or a name that
// resolves exclusively to loopback IPs.
func checkLoopback(ctx context.Context, host string) error {
	return checkLoopbackAs(ctx, host, errNotLoopback)
}

// checkLoopbackAs is checkLoopback with the errors wrapping refusal, which
// is errNotLoopback or wraps it.
func checkLoopbackAs(ctx context.Context, host string, refusal error) error {
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s (only 127.0.0.0/8 and ::1 are allowed)", refusal, host)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("%w: cannot resolve %q: %v", refusal, host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: %q resolves to no address", refusal, host)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%w: %q resolves to %s (only 127.0.0.0/8 and ::1 are allowed)", refusal, host, a.IP)
		}
	}
	return nil
}

// newClient returns the shared HTTP client: HTTP/1.1 only, keep-alive,
// one idle connection per client goroutine, no proxy, no redirects, and a
// dialer that refuses non-loopback addresses (defense against DNS changes
// after the initial check).
func newClient(concurrency int, rt http.RoundTripper) *http.Client {
	if rt == nil {
		dialer := &net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
			Control:   dialLoopbackOnly,
		}
		protocols := new(http.Protocols)
		protocols.SetHTTP1(true) // no HTTP/2
		rt = &http.Transport{
			Proxy:                 nil, // never go through a proxy
			DialContext:           dialer.DialContext,
			Protocols:             protocols,
			ForceAttemptHTTP2:     false,
			DisableKeepAlives:     false,
			DisableCompression:    true,
			MaxIdleConns:          concurrency,
			MaxIdleConnsPerHost:   concurrency,
			MaxConnsPerHost:       0,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	return &http.Client{
		Transport: rt,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// dialLoopbackOnly is a net.Dialer Control function that refuses every
// address that is not a loopback IP.
func dialLoopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: dial %s", errNotLoopback, address)
	}
	return nil
}

// newRunID returns 8 random lowercase hex characters.
func newRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ---------------------------------------------------------------------------
// Scenarios

// A scenario describes one kind of load. setup runs once before the timed
// run and is never measured. request builds the n-th request (n is unique
// within the run and increases) and returns the status code that counts as
// success. request is called concurrently from all clients.
type scenario interface {
	setup(ctx context.Context, client *http.Client) error
	request(ctx context.Context, n int64) (req *http.Request, wantStatus int, err error)
}

// target is what every scenario needs to build requests.
type target struct {
	base  string // base URL without trailing slash
	auth  string // full Authorization header value, "" for none
	runID string // random per-run prefix for unique keys
}

// newJSONRequest builds a request to base+path with the JSON body and the
// common headers.
func (t target) newJSONRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if t.auth != "" {
		req.Header.Set("Authorization", t.auth)
	}
	return req, nil
}

// newGetRequest builds a GET request to base+path with the common headers.
func (t target) newGetRequest(ctx context.Context, path string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if t.auth != "" {
		req.Header.Set("Authorization", t.auth)
	}
	return req, nil
}

// create POSTs v as JSON to path and expects HTTP 201.
func (t target) create(ctx context.Context, client *http.Client, path string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := t.newJSONRequest(ctx, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("got HTTP %d, want 201: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// setupParallelism is how many setup requests run at the same time.
const setupParallelism = 16

// createAll creates count objects, body(i) for i in [0, count), with
// setupParallelism concurrent requests. It stops at the first failure and
// returns it.
func (t target) createAll(ctx context.Context, client *http.Client, what, path string, count int, body func(i int) any) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(setupParallelism, count) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				if err := t.create(ctx, client, path, body(i)); err != nil {
					cancel(fmt.Errorf("creating %s %d: %w", what, i, err))
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// scenarios maps -scenario names to constructors.
var scenarios = map[string]func(t target, cfg config) scenario{
	"customers":     newCustomersScenario,
	"transactions":  newTransactionsScenario,
	"stats":         newReadScenario("stats"),
	"balance":       newReadScenario("balance"),
	"ingest-stripe": newIngestStripeScenario,
}

// ingestStripeScenario posts signed Stripe invoice.paid events, each with a new event
// id, to /ingest/stripe/{program}. Success is HTTP 200.
type ingestStripeScenario struct {
	t         target
	program   string
	secret    string
	customers string // prefix of the Stripe customer ids
}

func newIngestStripeScenario(t target, cfg config) scenario {
	customers := cfg.customerPrefix
	if customers == "" {
		customers = t.runID
	}
	return &ingestStripeScenario{t: t, program: cfg.Program, secret: cfg.Secret, customers: customers}
}

func (s *ingestStripeScenario) setup(ctx context.Context, client *http.Client) error {
	if s.program == "" || s.secret == "" {
		return errors.New("ingest-stripe needs -program and -secret")
	}
	return nil
}

func (s *ingestStripeScenario) request(ctx context.Context, n int64) (*http.Request, int, error) {
	body, sig := invoicePaid(s.t.runID, s.customers, s.secret, n, time.Now().Unix())
	req, err := newStripeRequest(ctx, s.t.base, s.program, body, sig)
	return req, http.StatusOK, err
}

func scenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for name := range scenarios {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// numReferrers is how many referrer customers the customers scenario creates.
const numReferrers = 16

// customersScenario creates customers, a fraction of them referred by one
// of numReferrers pre-created referrers.
type customersScenario struct {
	t     target
	ratio float64
}

func newCustomersScenario(t target, cfg config) scenario {
	return &customersScenario{t: t, ratio: cfg.ReferrerRatio}
}

type customerRef struct {
	Key string `json:"key"`
}

type customerBody struct {
	Key               string       `json:"key"`
	Email             string       `json:"email"`
	Name              string       `json:"name"`
	ReferringCustomer *customerRef `json:"referring_customer,omitempty"`
}

func (s *customersScenario) referrerKey(i int64) string {
	return s.t.runID + "-ref-" + strconv.FormatInt(i, 10)
}

func (s *customersScenario) setup(ctx context.Context, client *http.Client) error {
	for i := range int64(numReferrers) {
		key := s.referrerKey(i)
		body, err := json.Marshal(customerBody{
			Key:   key,
			Email: key + "@load.test",
			Name:  "Referrer " + strconv.FormatInt(i, 10),
		})
		if err != nil {
			return err
		}
		req, err := s.t.newJSONRequest(ctx, http.MethodPost, "/v1/customers", body)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("creating referrer %d: %w", i, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("creating referrer %d: got HTTP %d, want 201: %s", i, resp.StatusCode, bytes.TrimSpace(msg))
		}
	}
	return nil
}

func (s *customersScenario) request(ctx context.Context, n int64) (*http.Request, int, error) {
	num := strconv.FormatInt(n, 10)
	key := s.t.runID + "-" + num
	b := customerBody{Key: key, Email: key + "@load.test", Name: "Load " + num}
	if s.ratio > 0 && mrand.Float64() < s.ratio {
		b.ReferringCustomer = &customerRef{Key: s.referrerKey(n % numReferrers)}
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, 0, err
	}
	req, err := s.t.newJSONRequest(ctx, http.MethodPost, "/v1/customers", body)
	return req, http.StatusCreated, err
}

// Sizes of the transactions scenario's setup.
const (
	txReferrers = 64
	txFriends   = 1024
)

// transactionsScenario records sales by friends (referred customers) that
// its setup creates.
type transactionsScenario struct {
	t target
}

func newTransactionsScenario(t target, _ config) scenario {
	return &transactionsScenario{t: t}
}

// newCustomerBody is a minimal POST /v1/customers body.
type newCustomerBody struct {
	Key               string       `json:"key"`
	ReferringCustomer *customerRef `json:"referring_customer,omitempty"`
}

// transactionBody is the POST /v1/transactions body.
type transactionBody struct {
	Customer customerRef `json:"customer"`
	Key      string      `json:"key"`
	Amount   json.Number `json:"amount"`
	Action   string      `json:"action"`
}

func (s *transactionsScenario) referrerKey(i int) string {
	return s.t.runID + "-ref-" + strconv.Itoa(i)
}

func (s *transactionsScenario) friendKey(i int64) string {
	return s.t.runID + "-f-" + strconv.FormatInt(i, 10)
}

func (s *transactionsScenario) setup(ctx context.Context, client *http.Client) error {
	err := s.t.createAll(ctx, client, "referrer", "/v1/customers", txReferrers, func(i int) any {
		return newCustomerBody{Key: s.referrerKey(i)}
	})
	if err != nil {
		return err
	}
	return s.t.createAll(ctx, client, "friend", "/v1/customers", txFriends, func(i int) any {
		return newCustomerBody{
			Key:               s.friendKey(int64(i)),
			ReferringCustomer: &customerRef{Key: s.referrerKey(i % txReferrers)},
		}
	})
}

// txAmount returns the amount of the n-th transaction as exact decimal text
// in [1.00, 500.00], built from integer cents (no floating point).
func txAmount(n int64) string {
	if n < 0 {
		n = -n
	}
	cents := 100 + (n%49901)*7919%49901
	return fmt.Sprintf("%d.%02d", cents/100, cents%100)
}

func (s *transactionsScenario) request(ctx context.Context, n int64) (*http.Request, int, error) {
	body, err := json.Marshal(transactionBody{
		Customer: customerRef{Key: s.friendKey(n % txFriends)},
		Key:      s.t.runID + "-t-" + strconv.FormatInt(n, 10),
		Amount:   json.Number(txAmount(n)),
		Action:   "sale",
	})
	if err != nil {
		return nil, 0, err
	}
	req, err := s.t.newJSONRequest(ctx, http.MethodPost, "/v1/transactions", body)
	return req, http.StatusCreated, err
}

// readScenario reads GET /v1/customers/<key>/<what> for existing customers;
// it writes nothing.
type readScenario struct {
	t       target
	what    string // "stats" or "balance"
	pattern string
	count   int64
}

func newReadScenario(what string) func(t target, cfg config) scenario {
	return func(t target, cfg config) scenario {
		return &readScenario{t: t, what: what, pattern: cfg.KeyPattern, count: int64(cfg.KeyCount)}
	}
}

func (s *readScenario) setup(context.Context, *http.Client) error { return nil }

func (s *readScenario) request(ctx context.Context, n int64) (*http.Request, int, error) {
	key := fmt.Sprintf(s.pattern, n%s.count)
	req, err := s.t.newGetRequest(ctx, "/v1/customers/"+url.PathEscape(key)+"/"+s.what)
	return req, http.StatusOK, err
}

// ---------------------------------------------------------------------------
// Running

// workerStats is what one client goroutine records; merged after the run.
type workerStats struct {
	latencies     []time.Duration // counted requests that got a response
	requests      int64
	successes     int64
	warmupOK      int64 // successful warm-up requests
	statusFails   map[int]int64
	transportErrs int64
	aborted       int64
}

// errorTally keeps counts for the first maxErrorKinds distinct transport
// error messages; later distinct messages are counted under "other".
type errorTally struct {
	mu     sync.Mutex
	order  []string
	counts map[string]int64
	other  int64
}

func (e *errorTally) add(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.counts[msg]; ok {
		e.counts[msg]++
		return
	}
	if len(e.order) < maxErrorKinds {
		e.order = append(e.order, msg)
		e.counts[msg] = 1
		return
	}
	e.other++
}

func (e *errorTally) kinds() []errorKind {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []errorKind
	for _, m := range e.order {
		out = append(out, errorKind{Message: m, Count: e.counts[m]})
	}
	if e.other > 0 {
		out = append(out, errorKind{Message: "(other)", Count: e.other})
	}
	return out
}

// shortError returns a short message for err without the method, URL and
// (ephemeral) socket addresses, so equal failures group together.
func shortError(err error) string {
	var msg string
	var ue *url.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &oe):
		msg = fmt.Sprintf("%s %s: %v", oe.Op, oe.Net, oe.Err)
	case errors.As(err, &ue):
		msg = ue.Err.Error()
	default:
		msg = err.Error()
	}
	if len(msg) > 100 {
		msg = msg[:100] + "..."
	}
	return msg
}

// run executes one load test as described by cfg and returns its summary.
// Progress messages go to logw. It never sends anything unless the target
// is a loopback address.
func run(ctx context.Context, cfg config, logw io.Writer) (*summary, error) {
	u, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkLoopback(ctx, u.Hostname()); err != nil {
		return nil, err
	}

	t := target{base: strings.TrimRight(u.String(), "/"), runID: newRunID()}
	if cfg.Key != "" {
		t.auth = "Bearer " + cfg.Key
	}
	sc := scenarios[cfg.Scenario](t, cfg)
	client := newClient(cfg.Concurrency, cfg.transport)
	defer client.CloseIdleConnections()

	fmt.Fprintf(logw, "referd-load: run %s, scenario %s, target %s\n", t.runID, cfg.Scenario, t.base)
	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	err = sc.setup(setupCtx, client)
	cancelSetup()
	if err != nil {
		return nil, fmt.Errorf("scenario %s setup: %w", cfg.Scenario, err)
	}

	start := time.Now()
	measureStart := start.Add(cfg.Warmup)
	measureEnd := measureStart.Add(cfg.Duration)
	// In-flight requests get drainGrace after measureEnd to finish.
	reqCtx, cancelReqs := context.WithDeadline(ctx, measureEnd.Add(drainGrace))
	defer cancelReqs()

	// pace, if -rate is set, hands out the start slots of all requests,
	// warm-up included.
	var pace *pacer
	if cfg.Rate > 0 {
		pace = newPacer(cfg.Rate, start, time.Now)
	}

	if cfg.Warmup > 0 {
		fmt.Fprintf(logw, "referd-load: warming up for %v with %d clients\n", cfg.Warmup, cfg.Concurrency)
	}
	fmt.Fprintf(logw, "referd-load: measuring for %v", cfg.Duration)
	if cfg.MaxRequests > 0 {
		fmt.Fprintf(logw, " or %d requests", cfg.MaxRequests)
	}
	if pace != nil {
		fmt.Fprintf(logw, " at %g req/s", cfg.Rate)
	}
	fmt.Fprintln(logw)

	var (
		seq     atomic.Int64 // n for scenario requests, unique per run
		tickets atomic.Int64 // counted requests started, for -n
		errs    = errorTally{counts: make(map[string]int64)}
		stats   = make([]workerStats, cfg.Concurrency)
		wg      sync.WaitGroup
	)
	perWorker := 4096
	if cfg.MaxRequests > 0 {
		perWorker = int(min(cfg.MaxRequests/int64(cfg.Concurrency)+1, 1<<20))
	}

	for w := range stats {
		st := &stats[w]
		st.latencies = make([]time.Duration, 0, perWorker)
		st.statusFails = make(map[int]int64)
		wg.Go(func() {
			for {
				if ctx.Err() != nil {
					return
				}
				if pace != nil {
					slot := pace.reserve()
					if !slot.Before(measureEnd) || !sleepUntil(ctx, slot) {
						return
					}
				}
				now := time.Now()
				if !now.Before(measureEnd) {
					return
				}
				counted := !now.Before(measureStart)
				if counted && cfg.MaxRequests > 0 && tickets.Add(1) > cfg.MaxRequests {
					return
				}
				req, want, err := sc.request(reqCtx, seq.Add(1))
				if err != nil {
					// Building a request only fails on programming errors.
					errs.add("building request: " + err.Error())
					if counted {
						st.requests++
						st.transportErrs++
					}
					continue
				}
				sent := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lat := time.Since(sent)
				if !counted {
					if err == nil && resp.StatusCode == want {
						st.warmupOK++
					}
					continue
				}
				if err != nil {
					if reqCtx.Err() != nil {
						// Interrupted or past the drain deadline.
						st.aborted++
						continue
					}
					st.requests++
					st.transportErrs++
					errs.add(shortError(err))
					continue
				}
				st.requests++
				st.latencies = append(st.latencies, lat)
				if resp.StatusCode == want {
					st.successes++
				} else {
					st.statusFails[resp.StatusCode]++
				}
			}
		})
	}
	wg.Wait()
	elapsed := max(time.Since(measureStart), 0)

	sum := &summary{
		Scenario:     cfg.Scenario,
		URL:          t.base,
		RunID:        t.runID,
		Concurrency:  cfg.Concurrency,
		WarmupSec:    cfg.Warmup.Seconds(),
		DurationSec:  round2(elapsed.Seconds()),
		StatusCounts: make(map[int]int64),
		ErrorKinds:   errs.kinds(),
	}
	total := 0
	for i := range stats {
		total += len(stats[i].latencies)
	}
	all := make([]time.Duration, 0, total)
	for i := range stats {
		st := &stats[i]
		all = append(all, st.latencies...)
		sum.Requests += st.requests
		sum.Successes += st.successes
		sum.WarmupOK += st.warmupOK
		sum.TransportErrs += st.transportErrs
		sum.Aborted += st.aborted
		for code, n := range st.statusFails {
			sum.StatusCounts[code] += n
		}
	}
	sum.Failures = sum.Requests - sum.Successes
	if sum.Requests > 0 {
		sum.FailureRate = float64(sum.Failures) / float64(sum.Requests)
	}
	if elapsed > 0 {
		sum.Throughput = round2(float64(sum.Successes) / elapsed.Seconds())
		sum.AchievedRate = round2(float64(sum.Requests+sum.Aborted) / elapsed.Seconds())
	}
	sum.TargetRate = cfg.Rate
	slices.Sort(all)
	sum.Latency = latencyMs{
		P50: ms(percentile(all, 50)),
		P90: ms(percentile(all, 90)),
		P99: ms(percentile(all, 99)),
		Max: ms(percentile(all, 100)),
	}
	return sum, nil
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted using the
// nearest-rank method: the smallest sample such that at least p% of all
// samples are <= it. It returns 0 for no samples; p <= 0 gives the minimum.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n))) // 1-based
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// ms converts d to milliseconds rounded to 2 decimals.
func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }

// printText writes the human-readable summary.
func printText(w io.Writer, s *summary) {
	pct := 0.0
	if s.Requests > 0 {
		pct = 100 * float64(s.Failures) / float64(s.Requests)
	}
	fmt.Fprintf(w, "scenario:     %s (run %s)\n", s.Scenario, s.RunID)
	fmt.Fprintf(w, "target:       %s\n", s.URL)
	fmt.Fprintf(w, "concurrency:  %d\n", s.Concurrency)
	fmt.Fprintf(w, "warmup:       %.2fs\n", s.WarmupSec)
	fmt.Fprintf(w, "measured:     %.2fs\n", s.DurationSec)
	fmt.Fprintf(w, "requests:     %d\n", s.Requests)
	fmt.Fprintf(w, "successes:    %d\n", s.Successes)
	fmt.Fprintf(w, "failures:     %d (%.2f%%)\n", s.Failures, pct)
	codes := make([]int, 0, len(s.StatusCounts))
	for c := range s.StatusCounts {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "  HTTP %d:     %d\n", c, s.StatusCounts[c])
	}
	if s.TransportErrs > 0 {
		fmt.Fprintf(w, "  transport:  %d\n", s.TransportErrs)
		for _, k := range s.ErrorKinds {
			fmt.Fprintf(w, "    %d x %s\n", k.Count, k.Message)
		}
	}
	if s.Aborted > 0 {
		fmt.Fprintf(w, "aborted:      %d (in flight at stop, not counted)\n", s.Aborted)
	}
	fmt.Fprintf(w, "throughput:   %.2f req/s (successful)\n", s.Throughput)
	if s.TargetRate > 0 {
		fmt.Fprintf(w, "rate:         %.2f req/s started (target %.2f)\n", s.AchievedRate, s.TargetRate)
	}
	fmt.Fprintf(w, "latency ms:   p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
		s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.Max)
}

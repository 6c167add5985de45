package main

// Webhook receiver mode (-sink): a no-op HTTP endpoint for measuring the
// webhooks referd sends. See the package documentation.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

const (
	// maxSinkBody is the largest webhook body the sink reads; larger bodies
	// are counted as invalid.
	maxSinkBody = 1 << 20
	// sinkAllSeconds: text summaries of runs up to this long list every
	// second; longer runs list the sinkBusiest busiest seconds.
	sinkAllSeconds = 120 * time.Second
	sinkBusiest    = 10
	// sinkShutdown bounds how long in-flight deliveries may take to finish
	// when the sink stops.
	sinkShutdown = 5 * time.Second
	// webhookTimeLayout is the format of referd's timestamps.
	webhookTimeLayout = "2006-01-02T15:04:05.000000Z"
)

// errSinkNotLoopback is errNotLoopback (exit status 2) for -sink addresses.
var errSinkNotLoopback = &sentinelAlias{msg: "refusing to listen on a non-loopback address", is: errNotLoopback}

// sentinelAlias is an error with its own message that also matches is.
type sentinelAlias struct {
	msg string
	is  error
}

func (e *sentinelAlias) Error() string { return e.msg }
func (e *sentinelAlias) Unwrap() error { return e.is }

// sinkFlags are the only flags that apply together with -sink.
var sinkFlags = map[string]bool{"sink": true, "d": true, "json": true}

// sinkSummary is the result of a -sink run.
type sinkSummary struct {
	Addr         string           `json:"addr"`
	Start        time.Time        `json:"start"`
	DurationSec  float64          `json:"duration_s"` // from start until the sink stopped
	Deliveries   int64            `json:"deliveries"` // every POST received
	Duplicates   int64            `json:"duplicates"` // repeats of an already seen webhook-id
	MissingID    int64            `json:"missing_webhook_id"`
	Invalid      int64            `json:"invalid_bodies"` // unreadable, > 1 MiB, not JSON or no "event"
	First        time.Time        `json:"first_receive,omitzero"`
	Last         time.Time        `json:"last_receive,omitzero"`
	DeliveryRate float64          `json:"delivery_rate_per_s"` // Deliveries / (Last - First)
	Events       map[string]int64 `json:"events"`              // event type -> deliveries
	PerSecond    []secondCount    `json:"per_second"`          // every second from First to Last
	TxLatency    sinkLatency      `json:"transaction_created_latency_ms"`
}

// secondCount is the number of deliveries received in one second.
type secondCount struct {
	Second int64 `json:"second"` // whole seconds since Start
	Count  int64 `json:"count"`
}

// sinkLatency describes the time from a transaction's data.created_at to the
// receipt of its transaction.created delivery. Only the first delivery of
// each webhook-id counts (duplicates are left out); BadTime counts
// transaction.created bodies whose data.created_at could not be parsed.
type sinkLatency struct {
	Count   int   `json:"count"`
	BadTime int64 `json:"bad_created_at"`
	latencyMs
}

// sinkEvent is the part of a webhook body the sink looks at.
type sinkEvent struct {
	Event      string `json:"event"`
	WebhookKey string `json:"webhook_key"`
	CreatedAt  string `json:"created_at"`
	Data       struct {
		Key       string `json:"key"` // a transaction's key, for transaction.*
		CreatedAt string `json:"created_at"`
	} `json:"data"`
}

// delivery is one webhook POST as the sink read it.
type delivery struct {
	recv  time.Time // when the request arrived
	id    string    // its webhook-id header, "" if none
	valid bool      // the body was read, at most maxSinkBody, JSON with an "event"
	ev    sinkEvent // the body, if valid
}

// readDelivery reads r's body (at most maxSinkBody bytes) and webhook-id.
func readDelivery(r *http.Request, recv time.Time) delivery {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSinkBody+1))
	d := delivery{recv: recv, id: r.Header.Get("webhook-id")}
	d.valid = err == nil && len(body) <= maxSinkBody && json.Unmarshal(body, &d.ev) == nil && d.ev.Event != ""
	return d
}

// sink is the receiver's http.Handler and its tallies.
type sink struct {
	start time.Time
	// observe, if set, is called with every delivery after it is recorded
	// (-e2e matches transaction.created deliveries to the events it sent).
	observe func(delivery)

	mu         sync.Mutex
	total      int64
	dups       int64
	missingID  int64
	invalid    int64
	badTime    int64
	ids        map[string]struct{}
	events     map[string]int64
	perSec     map[int64]int64
	first      time.Time
	last       time.Time
	txLatency  []time.Duration
	lastLogged int64 // total at the previous progress line
}

func newSink(start time.Time) *sink {
	return &sink{
		start:  start,
		ids:    make(map[string]struct{}),
		events: make(map[string]int64),
		perSec: make(map[int64]int64),
	}
}

// parseWebhookTime parses referd's timestamp format, falling back to RFC 3339.
func parseWebhookTime(s string) (time.Time, error) {
	t, err := time.Parse(webhookTimeLayout, s)
	if err != nil {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	return t, err
}

// ServeHTTP records a delivery and answers 204 with an empty body. Every
// POST counts, whatever its body; other methods get 405 and are not counted.
func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	recv := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	d := readDelivery(r, recv)
	s.record(d)
	if s.observe != nil {
		s.observe(d)
	}
	w.WriteHeader(http.StatusNoContent)
}

// record adds d to the tallies.
func (s *sink) record(d delivery) {
	var (
		lat    time.Duration
		hasLat bool
	)
	if d.valid && d.ev.Event == "transaction.created" {
		if t, err := parseWebhookTime(d.ev.Data.CreatedAt); err == nil {
			lat, hasLat = d.recv.Sub(t), true
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if s.total == 1 || d.recv.Before(s.first) {
		s.first = d.recv
	}
	if d.recv.After(s.last) {
		s.last = d.recv
	}
	s.perSec[int64(d.recv.Sub(s.start)/time.Second)]++
	dup := false
	if d.id == "" {
		s.missingID++
	} else if _, dup = s.ids[d.id]; dup {
		s.dups++
	} else {
		s.ids[d.id] = struct{}{}
	}
	if !d.valid {
		s.invalid++
		return
	}
	s.events[d.ev.Event]++
	if d.ev.Event == "transaction.created" {
		switch {
		case !hasLat:
			s.badTime++
		case !dup:
			s.txLatency = append(s.txLatency, lat)
		}
	}
}

// progress returns the deliveries so far and since the previous call.
func (s *sink) progress() (total, delta int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delta = s.total - s.lastLogged
	s.lastLogged = s.total
	return s.total, delta
}

// summary returns the tallies of a sink that stopped at end.
func (s *sink) summary(addr string, end time.Time) *sinkSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := &sinkSummary{
		Addr:        addr,
		Start:       s.start.Round(0).UTC(),
		DurationSec: round2(end.Sub(s.start).Seconds()),
		Deliveries:  s.total,
		Duplicates:  s.dups,
		MissingID:   s.missingID,
		Invalid:     s.invalid,
		Events:      make(map[string]int64, len(s.events)),
		PerSecond:   []secondCount{},
	}
	for k, v := range s.events {
		sum.Events[k] = v
	}
	if s.total > 0 {
		sum.First, sum.Last = s.first.Round(0).UTC(), s.last.Round(0).UTC()
		if span := s.last.Sub(s.first); span > 0 {
			sum.DeliveryRate = round2(float64(s.total) / span.Seconds())
		}
		lo := int64(s.first.Sub(s.start) / time.Second)
		hi := int64(s.last.Sub(s.start) / time.Second)
		for sec := lo; sec <= hi; sec++ {
			sum.PerSecond = append(sum.PerSecond, secondCount{Second: sec, Count: s.perSec[sec]})
		}
	}
	lat := slices.Clone(s.txLatency)
	slices.Sort(lat)
	sum.TxLatency = sinkLatency{
		Count:   len(lat),
		BadTime: s.badTime,
		latencyMs: latencyMs{
			P50: ms(percentile(lat, 50)),
			P90: ms(percentile(lat, 90)),
			P99: ms(percentile(lat, 99)),
			Max: ms(percentile(lat, 100)),
		},
	}
	return sum
}

// listenSink checks that addr ("host:port") is a loopback address and
// listens on it.
func listenSink(ctx context.Context, addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: bad -sink address %q: %v", errUsage, addr, err)
	}
	if host == "" {
		return nil, fmt.Errorf("%w: -sink %q would listen on every interface; name a loopback host such as 127.0.0.1", errSinkNotLoopback, addr)
	}
	if err := checkLoopbackAs(ctx, host, errSinkNotLoopback); err != nil {
		return nil, err
	}
	return net.Listen("tcp", addr)
}

// runSink serves webhook deliveries on ln until d has passed since it
// started or ctx is done, then returns the summary. It refuses (and closes)
// a listener that is not bound to a loopback address. Progress lines go to
// logw once a second.
func runSink(ctx context.Context, ln net.Listener, d time.Duration, logw io.Writer) (*sinkSummary, error) {
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !addr.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("%w: sink bound to %s", errSinkNotLoopback, ln.Addr())
	}
	start := time.Now()
	s := newSink(start)
	srv, serveErr := serveSink(ln, s, logw)
	fmt.Fprintf(logw, "referd-load: sink listening on %s for %v\n", addr, d)

	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-timer.C:
			break loop
		case err = <-serveErr:
			break loop
		case <-tick.C:
			total, delta := s.progress()
			fmt.Fprintf(logw, "referd-load: sink: %d deliveries (+%d)\n", total, delta)
		}
	}
	end := time.Now()
	stopSink(srv)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return s.summary(addr.String(), end), nil
}

// serveSink serves s on ln (which the caller has checked to be loopback) in
// the background; Serve's error goes to the returned channel.
func serveSink(ln net.Listener, s *sink, logw io.Writer) (*http.Server, <-chan error) {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          log.New(logw, "referd-load: sink: ", 0),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	return srv, serveErr
}

// stopSink stops srv, giving in-flight deliveries up to sinkShutdown.
func stopSink(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), sinkShutdown)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		srv.Close()
	}
}

// sinkMain runs -sink mode for realMain and returns the exit status.
func sinkMain(ctx context.Context, fs *flag.FlagSet, addr string, d time.Duration, asJSON bool, stdout, stderr io.Writer) int {
	var extra []string
	fs.Visit(func(f *flag.Flag) {
		if !sinkFlags[f.Name] {
			extra = append(extra, "-"+f.Name)
		}
	})
	fail := func(err error) int {
		fmt.Fprintf(stderr, "referd-load: %v\n", err)
		if errors.Is(err, errUsage) || errors.Is(err, errNotLoopback) {
			return 2
		}
		return 1
	}
	if len(extra) > 0 {
		return fail(fmt.Errorf("%w: -sink sends no load; only -d and -json apply, got %s", errUsage, extra))
	}
	if d <= 0 || d > maxDuration {
		return fail(fmt.Errorf("%w: -d must be in (0, %v]", errUsage, maxDuration))
	}
	ln, err := listenSink(ctx, addr)
	if err != nil {
		return fail(err)
	}
	sum, err := runSink(ctx, ln, d, stderr)
	if err != nil {
		return fail(err)
	}
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(sum); err != nil {
			return fail(err)
		}
	} else {
		printSinkText(stdout, sum)
	}
	if sum.Deliveries == 0 {
		return 1
	}
	return 0
}

// printSinkText writes the human-readable -sink summary.
func printSinkText(w io.Writer, s *sinkSummary) {
	const stamp = "2006-01-02T15:04:05.000Z"
	fmt.Fprintf(w, "sink:         %s\n", s.Addr)
	fmt.Fprintf(w, "listened:     %.2fs from %s\n", s.DurationSec, s.Start.Format(stamp))
	fmt.Fprintf(w, "deliveries:   %d (%d invalid bodies)\n", s.Deliveries, s.Invalid)
	fmt.Fprintf(w, "duplicates:   %d (by webhook-id; %d without webhook-id)\n", s.Duplicates, s.MissingID)
	if s.Deliveries > 0 {
		fmt.Fprintf(w, "first:        %s\n", s.First.Format(stamp))
		fmt.Fprintf(w, "last:         %s\n", s.Last.Format(stamp))
	}
	fmt.Fprintf(w, "rate:         %.2f deliveries/s (between first and last)\n", s.DeliveryRate)
	if len(s.Events) > 0 {
		fmt.Fprintf(w, "events:\n")
		names := make([]string, 0, len(s.Events))
		for name := range s.Events {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(w, "  %-24s %d\n", name, s.Events[name])
		}
	}
	l := s.TxLatency
	fmt.Fprintf(w, "transaction.created latency ms (data.created_at to receipt, first deliveries, n=%d", l.Count)
	if l.BadTime > 0 {
		fmt.Fprintf(w, ", %d unparsable", l.BadTime)
	}
	fmt.Fprintf(w, "):\n              p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", l.P50, l.P90, l.P99, l.Max)
	if len(s.PerSecond) == 0 {
		return
	}
	secs := s.PerSecond
	if time.Duration(s.DurationSec*float64(time.Second)) <= sinkAllSeconds {
		fmt.Fprintf(w, "per second (seconds since start):\n")
	} else {
		secs = slices.Clone(secs)
		slices.SortStableFunc(secs, func(a, b secondCount) int { return cmp.Compare(b.Count, a.Count) })
		secs = secs[:min(sinkBusiest, len(secs))]
		fmt.Fprintf(w, "busiest seconds (seconds since start):\n")
	}
	for _, sc := range secs {
		fmt.Fprintf(w, "  %+5ds  %d\n", sc.Second, sc.Count)
	}
}

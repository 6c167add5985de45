package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// arrive makes a transaction.created delivery of key under webhook-id id,
// created (data.created_at) 1 ms before it arrives.
func arrive(key, id string, at time.Time) delivery {
	d := delivery{recv: at, id: id, valid: true}
	d.ev.Event = "transaction.created"
	d.ev.Data.Key = key
	d.ev.Data.CreatedAt = at.Add(-time.Millisecond).UTC().Format(webhookTimeLayout)
	return d
}

// The tracker matches deliveries to sent events by key, whichever comes
// first (the webhook may beat the ingest answer), counts other stages'
// keys once each, and ignores other events.
func TestTracker(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	st := tr.newStage("drain", "p1")
	a := tr.send(st, "stripe:in_p1_1")
	b := tr.send(st, "stripe:in_p1_2")
	c := tr.send(st, "stripe:in_p1_3")
	t0 := a.sent

	tr.deliver(arrive("stripe:in_p1_2", "msg_b", t0.Add(5*time.Millisecond))) // before its answer
	tr.ack(a, 200, time.Millisecond)
	tr.ack(b, 200, 2*time.Millisecond)
	tr.ack(c, 503, 3*time.Millisecond)
	if st.pending != 1 {
		t.Fatalf("pending = %d, want 1 (a accepted, not arrived)", st.pending)
	}
	ctx := context.Background()
	if tr.waitStage(ctx, st, 20*time.Millisecond) {
		t.Fatal("waitStage: true with a webhook missing")
	}
	tr.deliver(arrive("stripe:in_p1_1", "msg_a", t0.Add(9*time.Millisecond)))
	tr.deliver(arrive("stripe:in_p1_1", "msg_a", t0.Add(10*time.Millisecond)))  // same id again
	tr.deliver(arrive("stripe:in_p1_1", "msg_a2", t0.Add(11*time.Millisecond))) // a second id
	tr.deliver(arrive("stripe:in_p1_1", "msg_a3", t0.Add(8*time.Millisecond)))  // out of order: the first
	if !tr.waitStage(ctx, st, time.Second) || st.pending != 0 {
		t.Fatalf("waitStage: false or pending %d after every webhook arrived", st.pending)
	}
	// Other stages' keys count once each; other events and invalid bodies not at all.
	tr.deliver(arrive("stripe:in_other_1", "m1", t0.Add(time.Second)))
	tr.deliver(arrive("stripe:in_other_1", "m1", t0.Add(time.Second)))
	tr.deliver(arrive("stripe:in_other_2", "m2", t0.Add(2*time.Second)))
	other := arrive("stripe:in_p1_3", "m3", t0)
	other.ev.Event = "reward.created"
	tr.deliver(other)
	tr.deliver(delivery{recv: t0, valid: false})
	got, last, ok := tr.waitOthers(ctx, 2, time.Second)
	if got != 2 || !ok || !last.Equal(t0.Add(2*time.Second)) {
		t.Errorf("waitOthers = %d, %v, %v; want 2, t0+2s, true", got, last.Sub(t0), ok)
	}
	if got, _, ok := tr.waitOthers(ctx, 3, 20*time.Millisecond); got != 2 || ok {
		t.Errorf("waitOthers(3) = %d, %v; want 2, false", got, ok)
	}

	r := tr.summarize(st)
	if r.Sent != 3 || r.Accepted != 2 || r.Rejected != 1 || r.Arrived != 2 || r.Missing != 0 || r.Unexpected != 0 {
		t.Errorf("result %+v", r)
	}
	if r.DupSameID != 1 || r.DupOtherID != 2 || r.Duplicates() != 3 {
		t.Errorf("duplicates same id %d, other id %d, want 1 and 2", r.DupSameID, r.DupOtherID)
	}
	if a.first != t0.Add(8*time.Millisecond) {
		t.Errorf("first arrival of a = t0+%v, want the earliest, t0+8ms", a.first.Sub(t0))
	}
	// created_at is that of the first arrival (which has microseconds).
	if want := t0.Add(7 * time.Millisecond).Truncate(time.Microsecond); !a.created.Equal(want) {
		t.Errorf("created_at of a = t0+%v, want t0+%v", a.created.Sub(t0), want.Sub(t0))
	}
	// b was created at t0+4ms, sent just after t0.
	if wantB := ms(t0.Add(4 * time.Millisecond).Sub(b.sent)); r.ToWebhook.Max != 1 || r.ToCommit.Max != 7 || r.ToCommit.P50 != wantB {
		t.Errorf("split %+v / %+v, want commit → webhook 1 ms, send → commit %v and 7 ms", r.ToCommit, r.ToWebhook, wantB)
	}
}

func TestSummarizeEvents(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	ms := time.Millisecond
	ev := func(sentMs, status int, latMs int, firstMs int, ids ...string) *sentEvent {
		e := &sentEvent{sent: t0.Add(time.Duration(sentMs) * ms), acked: true, status: status,
			latency: time.Duration(latMs) * ms, ids: ids, deliveries: len(ids)}
		if firstMs >= 0 {
			e.first = t0.Add(time.Duration(firstMs) * ms)
		}
		return e
	}
	var events []*sentEvent
	// 100 accepted events sent 10 ms apart, arriving (k+1) ms after sending.
	for k := range 100 {
		events = append(events, ev(10*k, 200, 2, 10*k+k+1, "id"+strconv.Itoa(k)))
	}
	events = append(events,
		ev(5, 200, 3, -1),                   // accepted, missing
		ev(6, 503, 4, -1),                   // refused
		ev(7, 0, 0, -1),                     // no answer
		ev(8, 500, 1, 50, "x"),              // refused, yet it arrived
		ev(9, 200, 1, 20, "y", "y2"),        // two webhook-ids
		ev(-20, 200, 1, 10, "z"),            // the first send
		ev(11, 200, 1, 2000, "w", "w", "w"), // the last arrival; "w" three times
	)
	events[len(events)-1].ids = []string{"w"}
	r := summarizeEvents("drain", "pfx", events)
	if r.Stage != "drain" || r.EventPrefix != "pfx" || r.Sent != 107 {
		t.Errorf("stage %q prefix %q sent %d", r.Stage, r.EventPrefix, r.Sent)
	}
	if r.Accepted != 104 || r.Rejected != 3 || r.Arrived != 103 || r.Missing != 1 || r.Unexpected != 1 {
		t.Errorf("accepted %d rejected %d arrived %d missing %d unexpected %d, want 104 3 103 1 1",
			r.Accepted, r.Rejected, r.Arrived, r.Missing, r.Unexpected)
	}
	if r.DupSameID != 2 || r.DupOtherID != 1 {
		t.Errorf("duplicates same %d other %d, want 2 and 1", r.DupSameID, r.DupOtherID)
	}
	// First send at -20 ms, last send at 990 ms, last arrival at 2000 ms.
	if r.SendSec != 1.01 || r.SpanSec != 2.02 || r.DrainRate != round2(103/2.02) {
		t.Errorf("send %v s, span %v s, rate %v; want 1.01, 2.02, %v", r.SendSec, r.SpanSec, r.DrainRate, round2(103/2.02))
	}
	// E2E of the 103 arrivals: 1..100 ms, 11 ms (y), 30 ms (z), 1989 ms
	// (w). Nearest rank: p50 is the 52nd (50 ms), p90 the 93rd (91 ms),
	// p99 the 102nd (100 ms).
	if r.E2E.P50 != 50 || r.E2E.P90 != 91 || r.E2E.P99 != 100 || r.E2E.Max != 1989 {
		t.Errorf("send → webhook %+v, want p50 50, p90 91, p99 100, max 1989", r.E2E)
	}
	// Ingest latency of the 106 answered requests (not the one without).
	if r.Ingest.P50 != 2 || r.Ingest.Max != 4 {
		t.Errorf("ingest %+v, want p50 2 and max 4", r.Ingest)
	}
	if empty := summarizeEvents("paced", "p", nil); empty.Sent != 0 || empty.DrainRate != 0 || empty.E2E.Max != 0 {
		t.Errorf("empty stage %+v", empty)
	}
}

// row finds the results row whose What starts with prefix.
func row(t *testing.T, rows []resultRow, prefix string) resultRow {
	t.Helper()
	for _, r := range rows {
		if strings.HasPrefix(r.What, prefix) {
			return r
		}
	}
	t.Fatalf("no row %q in %+v", prefix, rows)
	return resultRow{}
}

// Each target is met exactly at its bound and missed just past it.
func TestResultRows(t *testing.T) {
	t.Parallel()
	const c = 4000.0
	report := func(ingest, ingestP99, drain float64, missing int, e2eP99, ingestPacedP99 float64, rss int64) *e2eReport {
		return &e2eReport{
			Date: "2026-12-03 15:00 UTC", Commit: "abc1234", CeilingRate: c, LoadStart: "1.00 2.00 3.00", LoadEnd: "4.00 5.00 6.00",
			Ceiling: &ceilingResult{RowsPerSec: c, Clients: 16, DurationSec: 5, PayloadBytes: ceilingPayloadSize},
			Ingest: &ingestStage{Load: &summary{Concurrency: 64, DurationSec: 5, Throughput: ingest,
				Latency: latencyMs{P99: ingestP99}}},
			Drain: &stageResult{Sent: 5000, Senders: 64, Arrived: 5000 - missing, Missing: missing, DrainRate: drain, SpanSec: 5},
			Paced: &stageResult{Sent: 4000, Arrived: 4000, TargetRate: 200, SentRate: 200, DurationSec: 20,
				E2E: latencyMs{P50: 10, P90: 20, P99: e2eP99, Max: 200}, Ingest: latencyMs{P99: ingestPacedP99}},
			DrainCPU: &cpuPerEvent{TotalMs: 1.5, ReferdMs: 0.5, PostgresMs: 0.75, RedisMs: 0.25, ReferdOK: true, PostgresDBOK: true},
			PeakRSS:  rss,
		}
	}
	met := resultRows(report(0.6*c, 50, 0.25*c, 0, 100, 20, 200<<20))
	missed := resultRows(report(0.599*c, 50, 0.249*c, 0, 100.01, 20.01, 200<<20+1))
	for _, what := range []string{"ingest burst", "burst drain: 5,000", "paced at", "paced: ingest", "referd peak RSS"} {
		if r := row(t, met, what); r.Result != "met" {
			t.Errorf("at the bound: %q = %q, want met", what, r.Result)
		}
		if r := row(t, missed, what); r.Result != "missed" {
			t.Errorf("past the bound: %q = %q, want missed", what, r.Result)
		}
	}
	if r := row(t, resultRows(report(c, 50.01, c, 0, 1, 1, 1)), "ingest burst"); r.Result != "missed" {
		t.Errorf("ingest p99 over 50 ms: %q, want missed", r.Result)
	}
	withMissing := resultRows(report(c, 1, c, 1, 1, 1, 1))
	if r := row(t, withMissing, "burst drain: webhooks missing"); r.Result != "missed" || !strings.HasPrefix(r.Measured, "1 / 0") {
		t.Errorf("a missing webhook: %+v", r)
	}
	if r := row(t, withMissing, "burst drain: 5,000"); r.Result != "missed" {
		t.Errorf("drain rate with a missing webhook: %q, want missed", r.Result)
	}
	if r := row(t, met, "ingest burst"); r.Ratio != "0.60" || r.Measured != "2,400 events/s, p99 50.0 ms, 0 failed" {
		t.Errorf("ingest row %+v", r)
	}
	if r := row(t, met, "PostgreSQL ceiling"); r.Measured != "4,000 rows/s" || r.Ratio != "1.00" {
		t.Errorf("ceiling row %+v", r)
	}
	if r := row(t, met, "CPU per event"); r.Measured != "1.500 ms (0.500 + 0.750 + 0.250)" || r.Result != "" {
		t.Errorf("CPU row %+v", r)
	}

	rep := report(0.6*c, 50, 0.25*c, 0, 100, 20, 200<<20)
	rep.Results = resultRows(rep)
	var out bytes.Buffer
	printE2EText(&out, rep)
	for _, want := range []string{
		"| | measured | × ceiling | target | |\n| --- | --- | ---: | --- | --- |\n| date | 2026-12-03 15:00 UTC |",
		"| commit | abc1234 |",
		"| load average (1, 5, 15 min) at start → end | 1.00 2.00 3.00 → 4.00 5.00 6.00 |",
		"| burst drain: 5,000 events at 64 senders, first send → last transaction.created | 1,000 events/s (5.00 s) | 0.25 | ≥ 0.25 | met |",
		"| paced at 0.05 × ceiling = 200 events/s for 20s (200/s sent): send → transaction.created p50 / p90 / p99 / max | 10.0 / 20.0 / 100 / 200 ms | 0.05 | p99 ≤ 100 ms | met |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}
	// Only the stages that ran have rows.
	rows := resultRows(&e2eReport{Date: "d", CeilingRate: 100})
	if len(rows) != 2 || !strings.Contains(rows[1].What, "given with -ceiling-rate") {
		t.Errorf("rows of a report with no stage: %+v", rows)
	}
}

func TestCommas(t *testing.T) {
	t.Parallel()
	for x, want := range map[float64]string{0: "0", 999.4: "999", 999.5: "1,000", 7100: "7,100", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := commas(x); got != want {
			t.Errorf("commas(%v) = %q, want %q", x, got, want)
		}
	}
}

// e2eArgs are valid -e2e arguments that need no ceiling measurement.
func e2eArgs(extra ...string) []string {
	return append([]string{"-e2e", "127.0.0.1:0", "-url", "http://127.0.0.1:1", "-program", "prg1",
		"-secret", "whsec_x", "-stages", "drain", "-ceiling-rate", "1000"}, extra...)
}

// Bad flags and non-loopback addresses exit 2 before anything is sent.
func TestE2EFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		e2eArgs("-e2e", "192.0.2.1:18096"),
		e2eArgs("-e2e", "0.0.0.0:18096"),
		e2eArgs("-url", "http://192.0.2.1:8080"),
		e2eArgs("-url", "ftp://127.0.0.1"),
		e2eArgs("-stages", "ceiling,drain", "-ceiling-rate", "0", "-pg", "postgres://postgres@192.0.2.1/postgres"),
		e2eArgs("-stages", "drain,flood"),
		e2eArgs("-stages", "drain,drain"),
		e2eArgs("-stages", ""),
		e2eArgs("-ceiling-rate", "0"),                     // no ceiling at all
		e2eArgs("-stages", "ceiling,paced"),               // a ceiling twice
		e2eArgs("-ceiling-rate", "-5"),                    // negative
		e2eArgs("-ceiling-rate", "NaN"),                   // not a number
		e2eArgs("-program", ""),                           // missing
		e2eArgs("-secret", ""),                            // missing
		e2eArgs("-drain-n", "0"),                          // no events
		e2eArgs("-wait", "0s"),                            // no wait
		e2eArgs("-paced-d", "11m"),                        // too long
		e2eArgs("-c", "0"),                                // no senders
		e2eArgs("-pid", "-1"),                             // negative
		e2eArgs("-rate", "5"),                             // a load flag
		e2eArgs("-key", "k"),                              // a load flag
		e2eArgs("-sink", "127.0.0.1:0"),                   // another mode
		e2eArgs("-ceiling"),                               // another mode
		{"-pid", "5", "-url", "http://127.0.0.1:1"},       // an -e2e flag in load mode
		{"-drain-n", "5", "-url", "http://127.0.0.1:1"},   // an -e2e flag in load mode
		{"-sink", "127.0.0.1:0", "-referd-db", "referd"},  // an -e2e flag with -sink
		{"-url", "http://127.0.0.1:1", "-stages", "ceil"}, // an -e2e flag in load mode
	} {
		var stderr bytes.Buffer
		if code := realMain(args, io.Discard, &stderr); code != 2 {
			t.Errorf("realMain(%q) exit = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
	var stderr bytes.Buffer
	realMain(e2eArgs("-url", "http://192.0.2.1:8080"), io.Discard, &stderr)
	if !strings.Contains(stderr.String(), "non-loopback") {
		t.Errorf("stderr = %q, want a non-loopback message", stderr.String())
	}
}

// fakeReferd stands in for referd: it checks each Stripe event's signature,
// answers ingest, and then POSTs a transaction.created webhook for the
// invoice to the sink, except that it refuses, drops or repeats events
// chosen by their number n.
type fakeReferd struct {
	t       *testing.T
	secret  string
	sinkURL string
	client  *http.Client
	faults  bool

	wg      sync.WaitGroup
	mu      sync.Mutex
	outcome map[string]string // transaction key -> refused, dropped, same-id, other-id, once
	badSig  int               // events whose signature did not verify (answered 400)
	bad     []string          // anything else unexpected
}

func (f *fakeReferd) fault(n int64) string {
	switch {
	case !f.faults:
		return "once"
	case n%41 == 0:
		return "refused"
	case n%37 == 0:
		return "dropped"
	case n%31 == 0:
		return "same-id"
	case n%29 == 0:
		return "other-id"
	}
	return "once"
}

func (f *fakeReferd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), f.secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if r.URL.Path != "/ingest/stripe/prg1" || err != nil || ev.Type != "invoice.paid" {
		f.mu.Lock()
		if r.URL.Path == "/ingest/stripe/prg1" && err != nil {
			f.badSig++
		} else {
			f.bad = append(f.bad, fmt.Sprintf("%s %s: type %q, %v", r.Method, r.URL.Path, ev.Type, err))
		}
		f.mu.Unlock()
		w.WriteHeader(400)
		return
	}
	invoice, _ := ev.Data.Object["id"].(string)
	n, _ := strconv.ParseInt(invoice[strings.LastIndexByte(invoice, '_')+1:], 10, 64)
	key := "stripe:" + invoice
	outcome := f.fault(n)
	f.mu.Lock()
	f.outcome[key] = outcome
	f.mu.Unlock()
	if outcome == "refused" {
		w.WriteHeader(503)
		return
	}
	io.WriteString(w, `{"ok":true,"message":"stored"}`)
	f.wg.Go(func() {
		now := time.Now().UTC().Format(webhookTimeLayout)
		hook := fmt.Sprintf(`{"event":"transaction.created","webhook_key":"wh_fake","created_at":%q,"data":{"key":%q,"created_at":%q}}`, now, key, now)
		switch outcome {
		case "once":
			f.post(hook, "msg_"+invoice)
		case "same-id":
			f.post(hook, "msg_"+invoice)
			f.post(hook, "msg_"+invoice)
		case "other-id":
			f.post(hook, "msg_"+invoice)
			f.post(hook, "msg_"+invoice+"_again")
		}
	})
}

func (f *fakeReferd) post(body, id string) {
	req, _ := http.NewRequest(http.MethodPost, f.sinkURL, strings.NewReader(body))
	req.Header.Set("webhook-id", id)
	resp, err := f.client.Do(req)
	if err != nil {
		f.mu.Lock()
		f.bad = append(f.bad, "delivery: "+err.Error())
		f.mu.Unlock()
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// count returns how many of the keys of stage prefix had outcome.
func (f *fakeReferd) count(prefix, outcome string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, o := range f.outcome {
		if o == outcome && strings.HasPrefix(k, "stripe:in_"+prefix+"_") {
			n++
		}
	}
	return n
}

// startFakeReferd starts a fake referd and a sink listener for it.
func startFakeReferd(t *testing.T, faults bool) (*fakeReferd, *httptest.Server, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeReferd{t: t, secret: "whsec_fake", sinkURL: "http://" + ln.Addr().String() + "/hook", faults: faults,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}, outcome: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		srv.Close()
		f.wg.Wait()
		f.client.CloseIdleConnections()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, b := range f.bad {
			t.Errorf("fake referd: %s", b)
		}
	})
	return f, srv, ln
}

func fakeE2EConfig(srv *httptest.Server, ln net.Listener, stages ...string) e2eConfig {
	return e2eConfig{sinkListener: ln, URL: srv.URL, Program: "prg1", Secret: "whsec_fake", Senders: 8,
		Stages: stages, CeilingRate: 2000, CeilingDur: time.Second, IngestWarmup: 100 * time.Millisecond,
		IngestDur: 300 * time.Millisecond, DrainEvents: 300, PacedDur: time.Second, Wait: 5 * time.Second,
		PID: os.Getpid()}
}

// Against a referd that delivers every webhook once, nothing is missing or
// repeated, the ingest burst's webhooks drain before the burst drain
// starts, and CPU and peak RSS are read for -pid.
func TestE2EAgainstFake(t *testing.T) {
	t.Parallel()
	fake, srv, ln := startFakeReferd(t, false)
	cfg := fakeE2EConfig(srv, ln, stagePaced, stageIngest, stageDrain) // they run in their own order
	var logw syncBuffer
	rep, done, err := runE2E(context.Background(), cfg, &logw)
	if err != nil {
		t.Fatalf("runE2E: %v\n%s", err, logw.String())
	}
	done()
	in := rep.Ingest
	if in == nil || in.Load.Successes == 0 || !in.BacklogDrained || in.BacklogArrived != in.BacklogWant ||
		in.BacklogWant != in.Load.Successes+in.Load.WarmupOK || in.Ratio != round3(in.Load.Throughput/2000) {
		t.Errorf("ingest %+v", in)
	}
	d := rep.Drain
	if d == nil || d.Sent != 300 || d.Accepted != 300 || d.Arrived != 300 || d.Missing != 0 || d.Duplicates() != 0 || d.Senders != 8 {
		t.Fatalf("drain %+v", d)
	}
	if fake.count(d.EventPrefix, "once") != 300 {
		t.Errorf("the fake saw %d of the drain's events", fake.count(d.EventPrefix, "once"))
	}
	if d.DrainRate <= 0 || d.E2E.P50 <= 0 || d.E2E.P50 > d.E2E.Max || d.Ingest.P50 <= 0 {
		t.Errorf("drain rate %v, send → webhook %+v, ingest %+v", d.DrainRate, d.E2E, d.Ingest)
	}
	p := rep.Paced
	if p == nil || p.Sent == 0 || p.Arrived != p.Sent || p.TargetRate != 100 || p.DurationSec != 1 || p.Missing != 0 {
		t.Errorf("paced %+v", p)
	}
	cpu := rep.DrainCPU
	if cpu == nil || cpu.Events != 300 || !cpu.ReferdOK || cpu.PostgresDBOK || cpu.TotalMs < cpu.ReferdMs {
		t.Errorf("CPU %+v", cpu)
	}
	if rep.PeakRSS <= 0 || rep.CeilingRate != 2000 || rep.Ceiling != nil {
		t.Errorf("peak RSS %d, ceiling %v (%+v)", rep.PeakRSS, rep.CeilingRate, rep.Ceiling)
	}
	wantHooks := in.BacklogWant + int64(d.Sent) + int64(p.Sent)
	if w := rep.Webhooks; w == nil || w.Deliveries != wantHooks || w.Duplicates != 0 || w.Invalid != 0 {
		t.Errorf("webhooks %+v, want %d deliveries", w, wantHooks)
	}
	if r := row(t, rep.Results, "burst drain: webhooks missing"); r.Result != "met" || r.Measured != "0 / 0" {
		t.Errorf("missing row %+v", r)
	}
	// The listener is closed once done.
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the sink still listens after done")
	}
}

// Against a referd that refuses, drops and repeats some events, each stage
// counts exactly those: refusals are not missing, a repeated webhook-id and
// a key under a second webhook-id are duplicates.
func TestE2EFaults(t *testing.T) {
	t.Parallel()
	fake, srv, ln := startFakeReferd(t, true)
	cfg := fakeE2EConfig(srv, ln, stageDrain, stagePaced)
	cfg.Wait = 500 * time.Millisecond // the dropped ones never come
	var stdout bytes.Buffer
	var logw syncBuffer
	rep, done, err := runE2E(context.Background(), cfg, &logw)
	if err != nil {
		t.Fatalf("runE2E: %v\n%s", err, logw.String())
	}
	done()
	for _, r := range []*stageResult{rep.Drain, rep.Paced} {
		refused, dropped := fake.count(r.EventPrefix, "refused"), fake.count(r.EventPrefix, "dropped")
		same, other := fake.count(r.EventPrefix, "same-id"), fake.count(r.EventPrefix, "other-id")
		if r.Stage == stageDrain && (refused == 0 || dropped == 0 || same == 0 || other == 0) {
			t.Fatalf("the drain hit no fault of some kind: %d %d %d %d", refused, dropped, same, other)
		}
		if r.Rejected != refused || r.Missing != dropped || r.DupSameID != same || r.DupOtherID != other ||
			r.Accepted != r.Sent-refused || r.Arrived != r.Accepted-dropped || r.Unexpected != 0 {
			t.Errorf("%s: %+v; the fake refused %d, dropped %d, repeated %d ids and %d keys",
				r.Stage, r, refused, dropped, same, other)
		}
	}
	if !strings.Contains(logw.String(), "missing after waiting") {
		t.Errorf("log lacks the missing webhooks:\n%s", logw.String())
	}
	if r := row(t, rep.Results, "burst drain: webhooks missing"); r.Result != "missed" || !strings.Contains(r.Measured, "refused by ingest") {
		t.Errorf("missing row %+v", r)
	}
	if w := rep.Webhooks; w.Duplicates != int64(fake.count(rep.Drain.EventPrefix, "same-id")+fake.count(rep.Paced.EventPrefix, "same-id")) {
		t.Errorf("sink duplicates %d", w.Duplicates)
	}
	printE2EText(&stdout, rep)
	if !strings.Contains(stdout.String(), "| missed |") {
		t.Errorf("text output:\n%s", stdout.String())
	}
}

// A wrong secret fails the stage (exit 1), after which the JSON of a good
// run parses.
func TestE2EMain(t *testing.T) {
	t.Parallel()
	fake, srv, ln := startFakeReferd(t, false)
	addr := ln.Addr().String()
	ln.Close() // e2eMain listens itself
	args := []string{"-e2e", addr, "-url", srv.URL, "-program", "prg1", "-stages", "drain", "-ceiling-rate", "1000",
		"-drain-n", "20", "-c", "4", "-wait", "5s", "-commit", "abc", "-json"}
	var stdout, stderr bytes.Buffer
	if code := realMain(append(args, "-secret", "whsec_wrong"), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no event was accepted") {
		t.Errorf("wrong secret: exit %d, stderr %q", code, stderr.String())
	}
	fake.mu.Lock()
	if fake.badSig != 20 {
		t.Errorf("the fake saw %d badly signed events, want 20", fake.badSig)
	}
	fake.mu.Unlock()
	// The fake posts to the sink it was given: this address.
	stdout.Reset()
	stderr.Reset()
	if code := realMain(append(args, "-secret", "whsec_fake"), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	var rep e2eReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || rep.Commit != "abc" || rep.Drain == nil || rep.Drain.Arrived != 20 || len(rep.Results) == 0 {
		t.Errorf("stdout %s: %v", stdout.String(), err)
	}
}

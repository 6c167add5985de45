package ops_test

import (
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/ledger"
	"github.com/referd/referd/ops"
	"github.com/referd/referd/store"
)

// progressLog records a replay's progress calls.
type progressLog struct{ calls [][2]int }

func (p *progressLog) record(done, total int) { p.calls = append(p.calls, [2]int{done, total}) }

// check says whether the calls counted up by one to a last call with done == total.
func (p *progressLog) check(t *testing.T, want int) {
	t.Helper()
	if len(p.calls) != want {
		t.Fatalf("%d progress calls %v, want %d", len(p.calls), p.calls, want)
	}
	for i, c := range p.calls {
		if c[0] != i+1 || c[1] != want {
			t.Errorf("progress call %d = %v, want [%d %d]", i, c, i+1, want)
		}
	}
}

func TestReplayAfterTheCauseIsFixed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.customer("buddy", "ref")
	// A payment by a customer referd does not know yet: unattributed.
	unattributed := e.invoicePaid("evt_a", "in_a", "friend", 5000, "usd", true)
	// A payment in a currency that does not exist: failed, and failed it stays.
	bogus := e.invoicePaid("evt_b", "in_b", "buddy", 1000, "zzz", true)
	// A good payment that failed for a cause since fixed (a bug, say).
	fixed := e.invoicePaid("evt_c", "in_c", "buddy", 2000, "usd", false)
	if _, err := e.db.Exec(`UPDATE provider_events SET status = 'failed', error = 'a bug since fixed' WHERE pk = $1`, fixed); err != nil {
		t.Fatal(err)
	}
	// A payment that went through: not replayed by default.
	done := e.invoicePaid("evt_d", "in_d", "buddy", 3000, "usd", true)
	for pk, want := range map[int64]store.EventStatus{unattributed: "unattributed", bogus: "failed", fixed: "failed", done: "processed"} {
		if got := e.status(pk); got != want {
			t.Fatalf("event %d is %s before the replay, want %s", pk, got, want)
		}
	}
	before := e.ledger()

	// The customer signs up, referred by ref (no relay runs here to retry the event).
	e.customer("friend", "ref")
	var prog progressLog
	res, err := ops.Replay(e.ctx, e.db, ops.ReplayFilter{}, prog.record)
	if err != nil {
		t.Fatal(err)
	}
	want := ops.ReplayResult{Replayed: 3, Processed: 2, Failed: 1}
	if res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	prog.check(t, 3)
	if got := res.String(); got != "replayed 3 events: 2 processed, 0 unattributed, 1 failed, 0 errors" {
		t.Errorf("summary %q", got)
	}
	for pk, want := range map[int64]store.EventStatus{unattributed: "processed", bogus: "failed", fixed: "processed", done: "processed"} {
		if got := e.status(pk); got != want {
			t.Errorf("event %d is %s after the replay, want %s", pk, got, want)
		}
	}
	for _, key := range []string{"stripe:in_a", "stripe:in_c"} {
		if _, err := ledger.GetTransaction(e.ctx, e.db, e.p, key); err != nil {
			t.Errorf("transaction %s: %v", key, err)
		}
	}
	after := e.ledger()
	if after.Transactions != before.Transactions+2 || after.Balance != before.Balance+500+200 {
		t.Errorf("ledger %+v after the replay, %+v before; want 2 more transactions and 7.00 more credit", after, before)
	}

	// Replaying what is processed changes nothing, however often.
	for range 2 {
		var prog progressLog
		res, err := ops.Replay(e.ctx, e.db, ops.ReplayFilter{Status: "processed", Provider: "stripe", ProgramID: e.p.ID,
			Since: time.Now().Add(-time.Hour)}, prog.record)
		if err != nil {
			t.Fatal(err)
		}
		if want := (ops.ReplayResult{Replayed: 3, Processed: 3}); res != want {
			t.Errorf("replay of processed events %+v, want %+v", res, want)
		}
		prog.check(t, 3)
		if got := e.ledger(); got != after {
			t.Errorf("ledger %+v after replaying processed events, want %+v", got, after)
		}
	}

	// Filters that match nothing replay nothing and report no progress.
	for _, f := range []ops.ReplayFilter{{Status: "ignored"}, {Provider: "paddle"}, {Since: time.Now().Add(time.Hour)}} {
		var prog progressLog
		res, err := ops.Replay(e.ctx, e.db, f, prog.record)
		if err != nil || res != (ops.ReplayResult{}) || len(prog.calls) != 0 {
			t.Errorf("filter %+v: %+v, %v, progress %v", f, res, err, prog.calls)
		}
	}
	if got := e.ledger(); got != after {
		t.Errorf("ledger %+v at the end, want %+v", got, after)
	}
}

func TestReplayRefusesABadFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct {
		f    ops.ReplayFilter
		want string
	}{
		{ops.ReplayFilter{Status: "done"}, `status "done"`},
		{ops.ReplayFilter{Provider: "paypal"}, `provider "paypal"`},
		{ops.ReplayFilter{ProgramID: "nope"}, `no program with id "nope"`},
	} {
		if _, err := ops.Replay(e.ctx, e.db, c.f, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("filter %+v: error %v, want one saying %s", c.f, err, c.want)
		}
	}
}

func TestReplayResultString(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		r    ops.ReplayResult
		want string
	}{
		{ops.ReplayResult{}, "replayed 0 events: 0 processed, 0 unattributed, 0 failed, 0 errors"},
		{ops.ReplayResult{Replayed: 12, Processed: 10, Unattributed: 1, Failed: 1},
			"replayed 12 events: 10 processed, 1 unattributed, 1 failed, 0 errors"},
		{ops.ReplayResult{Replayed: 1, Errors: 1}, "replayed 1 event: 0 processed, 0 unattributed, 0 failed, 1 error"},
		{ops.ReplayResult{Replayed: 4, Processed: 1, Ignored: 2, Errors: 1},
			"replayed 4 events: 1 processed, 2 ignored, 0 unattributed, 0 failed, 1 error"},
	} {
		if got := c.r.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.r, got, c.want)
		}
	}
}

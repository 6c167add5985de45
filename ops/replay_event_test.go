package ops_test

import (
	"testing"

	"github.com/referd/referd/ops"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

func TestReplayEventIsScopedToItsProgram(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pk := e.invoicePaid("evt_a", "in_a", "friend", 5000, "usd", true)
	if got := e.status(pk); got != store.EventUnattributed {
		t.Fatalf("event is %s, want unattributed", got)
	}
	e.customer("friend", "ref")
	other, _, err := referral.CreateProgram(e.ctx, e.db, "Other", "https://other.test")
	if err != nil {
		t.Fatal(err)
	}
	// Another program's replay of the event finds nothing and changes nothing.
	if _, err := ops.ReplayEvent(e.ctx, e.db, other.PK, pk, nil); !store.IsNotFound(err) {
		t.Fatalf("another program's replay: %v, want not found", err)
	}
	if _, err := ops.ReplayEvent(e.ctx, e.db, e.p.PK, pk+1000, nil); !store.IsNotFound(err) {
		t.Fatalf("replay of an unknown event: %v, want not found", err)
	}
	if got := e.status(pk); got != store.EventUnattributed {
		t.Fatalf("event is %s after the refused replays, want unattributed", got)
	}
	before := e.ledger()
	status, err := ops.ReplayEvent(e.ctx, e.db, e.p.PK, pk, nil)
	if err != nil || status != store.EventProcessed {
		t.Fatalf("replay: %s %v, want processed", status, err)
	}
	after := e.ledger()
	if after.Transactions != before.Transactions+1 || after.Balance != before.Balance+500 {
		t.Errorf("ledger %+v after the replay, %+v before", after, before)
	}
	// Again: processed, and nothing more.
	if status, err := ops.ReplayEvent(e.ctx, e.db, e.p.PK, pk, nil); err != nil || status != store.EventProcessed {
		t.Fatalf("second replay: %s %v", status, err)
	}
	if got := e.ledger(); got != after {
		t.Errorf("ledger %+v after a second replay, want %+v", got, after)
	}
}

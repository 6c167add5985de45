package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/ledger"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// The rewards:approve task, run by asynq, approves held rewards once their hold ends.
func TestApproveRewardsTask(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, _, err := referral.CreateProgram(ctx, db, "Held", "https://held.test")
	if err != nil {
		t.Fatal(err)
	}
	var patch referral.ProgramPatch
	json.Unmarshal([]byte(`{"rewards": [{"recipient": "referrer", "trigger": "purchase", "type": "credit", "amount": 7, "amount_type": "fixed", "hold_days": 30}]}`), &patch)
	if p, err = referral.UpdateProgram(ctx, db, p.PK, patch); err != nil {
		t.Fatal(err)
	}
	ref, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: text("ref")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := referral.CreateCustomer(ctx, db, p, referral.CustomerInput{Key: text("friend"), ReferringCustomer: &referral.CustomerRefInput{Key: text("ref")}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.RecordTransaction(ctx, db, p, ledger.Sale{CustomerKey: "friend", Key: "t1", Amount: 1000, Units: "usd"}); err != nil {
		t.Fatal(err)
	}
	// The hold has passed.
	if _, err := db.Exec(`UPDATE rewards SET available_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}

	e, err := jobs.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	redis := asynq.RedisClientOpt{Addr: e.Addr()}
	stop := startRunner(t, &jobs.Runner{Redis: redis, Log: testLogger(t), Mux: jobs.Handlers(db, testLogger(t), nil)})
	defer stop()
	client := asynq.NewClient(redis)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask(jobs.TypeApproveRewards, nil)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		bs, err := store.Balances(ctx, db, ref.PK)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) == 1 && bs[0].Amount == 700 && bs[0].Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("balance %+v, want 7.00 approved", bs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func text(s string) *referral.Text {
	t := referral.Text(s)
	return &t
}

func TestScheduleRegistersTheSweep(t *testing.T) {
	s := jobs.Schedule()
	if len(s) != 3 || s[0].Task.Type() != jobs.TypeApproveRewards || s[0].Spec != "@every 1m" ||
		s[1].Task.Type() != jobs.TypeSweepEvents || s[1].Spec != "@every 15s" ||
		s[2].Task.Type() != jobs.TypeRetryUnattributed || s[2].Spec != "@every 1m" {
		t.Errorf("schedule = %+v", s)
	}
}

// A task's payload says which events it processes, in asynqmon too; a payload that
// is not a list of pks is not retried.
func TestProcessEventsPayload(t *testing.T) {
	task, _ := jobs.ProcessEventsTask([]int64{3, 10, 7})
	if got := jobs.FormatPayload(task.Type(), task.Payload()); got != "provider_events.pk IN (3,10,7)" {
		t.Errorf("shown as %q", got)
	}
	one, _ := jobs.ProcessEventTask(42)
	if got := jobs.FormatPayload(one.Type(), one.Payload()); got != "provider_events.pk = 42" {
		t.Errorf("shown as %q", got)
	}
	first, _ := jobs.DeliverFirstTask([]int64{5, 6}, 9)
	if got := jobs.FormatPayload(first.Type(), first.Payload()); got != "webhook_deliveries.pk IN (5,6)" {
		t.Errorf("shown as %q", got)
	}
	if got := jobs.FormatPayload(jobs.TypeDeliverWebhook, []byte("7;2")); got != "webhook_deliveries.pk = 7 (after 2 attempts)" {
		t.Errorf("shown as %q", got)
	}
	mux := jobs.Handlers(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	for _, payload := range []string{"", "1,,2", "1,x", "12a"} {
		err := mux.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeProcessEvent, []byte(payload)))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("payload %q: %v, want SkipRetry", payload, err)
		}
	}
	for _, payload := range []string{"", "1;x", "1,2;1", "1;-1", "x;1"} {
		err := mux.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeDeliverWebhook, []byte(payload)))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("delivery payload %q: %v, want SkipRetry", payload, err)
		}
	}
}

package jobs_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/jobs"
	"github.com/referd/referd/jobs/jobstest"
	"github.com/referd/referd/mail"
	"github.com/referd/referd/mail/mailtest"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
)

// An invitation stored with its cause reaches the SMTP server through the relay and
// the workers, once, however often its task runs.
func TestInvitationSentOnce(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	mp := mailtest.Start(t)
	sender, err := mail.NewSender(mp.URL(), "rewards@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	opt := jobstest.Redis(t)
	queue := jobstest.Queue(t, opt)
	startRunner(t, &jobs.Runner{Redis: opt, Concurrency: 2, Log: testLogger(t),
		Mux: jobs.HandlersWith(e.db, testLogger(t), jobs.Options{Mail: sender}), Queues: map[string]int{queue: 1}})
	relay := &jobs.Relay{DB: e.db, Redis: opt, Queue: queue, Pollers: []jobs.Poller{jobs.QueueEmails()},
		Interval: 10 * time.Millisecond, Log: testLogger(t)}
	ctx, cancel := context.WithCancel(e.ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-relayDone })

	inv, err := referral.InviteCustomer(e.ctx, e.db, e.p, referral.InviteInput{Email: strptr("zoe@example.com"), Key: text("zoe")})
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Created || inv.Customer.Key != "zoe" {
		t.Errorf("invitation = %+v", inv)
	}
	got := mp.Wait(1)[0]
	if got.To[0].Address != "zoe@example.com" || got.Subject != "Your referral link for Acme" {
		t.Errorf("email = %+v", got)
	}
	var pk int64
	deadline := time.Now().Add(wait)
	for {
		var sent bool
		if err := e.db.Get(&sent, `SELECT sent_at IS NOT NULL FROM emails WHERE program_pk = $1`, e.p.PK); err != nil {
			t.Fatal(err)
		}
		if sent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("email not marked sent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := e.db.Get(&pk, `SELECT pk FROM emails WHERE program_pk = $1`, e.p.PK); err != nil {
		t.Fatal(err)
	}
	// The task run again (a retry, or a second task the sweep queued) sends nothing.
	for range 2 {
		if err := jobs.SendEmail(e.ctx, e.db, sender, pk); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	mp.Wait(1)
	es, err := store.EmailsOf(e.ctx, e.db, []int64{pk})
	if err != nil || len(es) != 1 || es[0].Attempts != 1 || !es[0].QueuedAt.Valid {
		t.Errorf("email row = %+v (%v), want one attempt, queued", es, err)
	}
}

// A send that the SMTP server does not accept is recorded and fails the task, so
// asynq tries again; nothing is marked sent.
func TestSendEmailFailureIsRetried(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	sender, err := mail.NewSender("smtp://127.0.0.1:1", "rewards@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := referral.InviteCustomer(e.ctx, e.db, e.p, referral.InviteInput{Email: strptr("yan@example.com")}); err != nil {
		t.Fatal(err)
	}
	var pk int64
	if err := e.db.Get(&pk, `SELECT pk FROM emails WHERE program_pk = $1`, e.p.PK); err != nil {
		t.Fatal(err)
	}
	if err := jobs.SendEmail(e.ctx, e.db, sender, pk); err == nil {
		t.Fatal("send to a closed port succeeded")
	}
	if err := jobs.SendEmail(e.ctx, e.db, nil, pk); err != jobs.ErrEmailOff {
		t.Errorf("send with email off: %v, want ErrEmailOff", err)
	}
	es, _ := store.EmailsOf(e.ctx, e.db, []int64{pk})
	if len(es) != 1 || es[0].SentAt.Valid || es[0].Attempts != 1 || !es[0].LastError.Valid {
		t.Errorf("email row = %+v, want one failed attempt recorded", es)
	}
}

// A customer who earns a reward gets a note when their program sets
// notifications.reward_earned; with it off, nobody does.
func TestRewardEarnedNotification(t *testing.T) {
	t.Parallel()
	e := newProcessEnv(t)
	mp := mailtest.Start(t)
	sender, err := mail.NewSender(mp.URL(), "rewards@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	var patch referral.ProgramPatch
	json.Unmarshal([]byte(`{"rewards": [{"recipient": "referrer", "trigger": "signup", "type": "credit", "amount": 5, "amount_type": "fixed", "hold_days": 30}],
		"notifications": {"reward_earned": true}}`), &patch)
	if e.p, err = referral.UpdateProgram(e.ctx, e.db, e.p.PK, patch); err != nil {
		t.Fatal(err)
	}
	if !e.p.Notifications.RewardEarned {
		t.Fatal("notifications.reward_earned not stored")
	}
	signUp := func(key, email, referrer string) {
		t.Helper()
		if _, err := referral.CreateCustomer(e.ctx, e.db, e.p, referral.CustomerInput{Key: text(key), Email: strptr(email), Name: strptr("Name of " + key),
			ReferringCustomer: &referral.CustomerRefInput{Key: text(referrer)}}); err != nil {
			t.Fatal(err)
		}
	}
	relay := func() {
		t.Helper()
		if err := e.db.InTx(e.ctx, func(tx *store.Tx) error {
			rows, err := store.ClaimOutbox(e.ctx, tx, 100)
			if err != nil {
				return err
			}
			if _, err := jobs.NotifyRewards(e.ctx, tx, rows); err != nil {
				return err
			}
			pks := make([]int64, len(rows))
			for i, r := range rows {
				pks[i] = r.PK
			}
			return store.MarkDispatched(e.ctx, tx, pks, store.Now())
		}); err != nil {
			t.Fatal(err)
		}
		var pks []int64
		if err := e.db.Select(&pks, `SELECT pk FROM emails WHERE program_pk = $1 AND sent_at IS NULL`, e.p.PK); err != nil {
			t.Fatal(err)
		}
		for _, pk := range pks {
			if err := jobs.SendEmail(e.ctx, e.db, sender, pk); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The referrer ("ref", from newProcessEnv) has no email: nobody to write to.
	signUp("pam", "pam@example.com", "ref")
	signUp("friend1", "friend1@example.com", "pam")
	relay()
	relay() // the rows are dispatched: nothing more
	got := mp.Wait(1)[0]
	if got.To[0].Address != "pam@example.com" || got.Subject != "You earned a reward from Acme" {
		t.Errorf("note = %+v", got)
	}
	if !strings.Contains(got.Text, "5 USD") && !strings.Contains(got.Text, "5.00 USD") {
		t.Errorf("text part lacks the amount: %s", got.Text)
	}
	if !strings.Contains(got.Text, "becomes available on") || !strings.Contains(got.HTML, `href="https://acme.test?ref=pam"`) {
		t.Errorf("note lacks the hold or the link: %s\n%s", got.Text, got.HTML)
	}

	json.Unmarshal([]byte(`{"notifications": {"reward_earned": false}}`), &patch)
	patch.Rewards = nil
	if e.p, err = referral.UpdateProgram(e.ctx, e.db, e.p.PK, patch); err != nil {
		t.Fatal(err)
	}
	signUp("friend2", "friend2@example.com", "pam")
	relay()
	time.Sleep(100 * time.Millisecond)
	mp.Wait(1)
}

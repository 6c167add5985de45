package ops_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/jobs/jobstest"
	"github.com/referd/referd/ops"
	"github.com/referd/referd/store"
)

// quietLogger drops asynq's own logs.
type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}

// archiveByFailure runs a task in queue whose handler fails for good, so that asynq
// archives it with its LastFailedAt (as it does a task out of retries), and returns
// its id.
func archiveByFailure(t *testing.T, opt asynq.RedisConnOpt, queue string) string {
	t.Helper()
	mux := asynq.NewServeMux()
	mux.HandleFunc("ops_test:fail", func(context.Context, *asynq.Task) error {
		return fmt.Errorf("the test says no: %w", asynq.SkipRetry)
	})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, Queues: map[string]int{queue: 1}, Logger: quietLogger{},
		TaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: time.Second})
	client := asynq.NewClient(opt)
	defer client.Close()
	info, err := client.Enqueue(asynq.NewTask("ops_test:fail", nil), asynq.Queue(queue))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ti, err := insp.GetTaskInfo(queue, info.ID)
		if err == nil && ti.State == asynq.TaskStateArchived && !ti.LastFailedAt.IsZero() {
			return info.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failing task was not archived within 30 s: %+v %v", ti, err)
		}
	}
}

// archiveByHand queues a task and archives it at once, as an operator does in
// /ops/queues: it never failed, so it has no LastFailedAt.
func archiveByHand(t *testing.T, opt asynq.RedisConnOpt, queue string) string {
	t.Helper()
	client := asynq.NewClient(opt)
	defer client.Close()
	info, err := client.Enqueue(asynq.NewTask("ops_test:idle", nil), asynq.Queue(queue))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	if err := insp.ArchiveTask(queue, info.ID); err != nil {
		t.Fatal(err)
	}
	return info.ID
}

func archivedIDs(t *testing.T, opt asynq.RedisConnOpt, queue string) []string {
	t.Helper()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	tasks, err := insp.ListArchivedTasks(queue, asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ti := range tasks {
		ids = append(ids, ti.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestHousekeep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := jobstest.Redis(t)
	queue := jobstest.Queue(t, opt)
	failed := archiveByFailure(t, opt, queue)
	byHand := archiveByHand(t, opt, queue)

	now := store.Now()
	outbox := func(dispatchedAgo time.Duration) int64 {
		var at sql.NullTime
		if dispatchedAgo > 0 {
			at = sql.NullTime{Time: now.Add(-dispatchedAgo), Valid: true}
		}
		var pk int64
		if err := e.db.Get(&pk, `INSERT INTO outbox (program_pk, event, payload, created_at, dispatched_at)
			VALUES ($1, 'customer.created', '{}', $2, $3) RETURNING pk`, e.p.PK, now.Add(-60*24*time.Hour), at); err != nil {
			t.Fatal(err)
		}
		return pk
	}
	days := func(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }
	// The customer.created rows of newEnv are undispatched: they stay.
	var keepOutbox []int64
	e.db.Select(&keepOutbox, `SELECT pk FROM outbox`)
	outbox(days(8))
	outbox(days(20))
	keepOutbox = append(keepOutbox, outbox(days(6)), outbox(0))

	delivery := func(i int, status string, createdAgo time.Duration) int64 {
		pks, err := store.InsertDeliveries(e.ctx, e.db, []store.WebhookDelivery{{ID: fmt.Sprintf("msg_%d", i), WebhookID: fmt.Sprintf("msg_%d", i),
			ProgramPK: e.p.PK, EndpointPK: 1, OutboxPK: int64(i), Event: "customer.created", Body: "{}", CreatedAt: now.Add(-createdAgo)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.Exec(`UPDATE webhook_deliveries SET status = $2 WHERE pk = $1`, pks[0], status); err != nil {
			t.Fatal(err)
		}
		return pks[0]
	}
	delivery(1, "succeeded", days(31))
	delivery(2, "exhausted", days(40))
	keepDeliveries := []int64{delivery(3, "succeeded", days(29)), delivery(4, "pending", days(31)), delivery(5, "failed", days(31))}

	// The console's sessions: one expired (nobody signed out), one live.
	for i, expires := range []time.Time{now.Add(-time.Minute), now.Add(time.Hour)} {
		if err := store.CreateAdminSession(e.ctx, e.db, bytes.Repeat([]byte{byte(i + 1)}, 32),
			store.AdminSession{ProgramPK: e.p.PK, CSRF: "x", CreatedAt: now.Add(-13 * time.Hour), ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
	}

	res, err := ops.Housekeep(e.ctx, e.db, opt, ops.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outbox != 2 || res.Deliveries != 2 || res.AdminSessions != 1 {
		t.Errorf("result %+v, want 2 outbox rows, 2 deliveries and 1 expired session", res)
	}
	var sessions int
	if e.db.Get(&sessions, `SELECT count(*) FROM admin_sessions`); sessions != 1 {
		t.Errorf("%d sessions left, want the live one", sessions)
	}
	var left []int64
	e.db.Select(&left, `SELECT pk FROM outbox ORDER BY pk`)
	if !slices.Equal(left, keepOutbox) {
		t.Errorf("outbox left %v, want %v", left, keepOutbox)
	}
	left = nil
	e.db.Select(&left, `SELECT pk FROM webhook_deliveries ORDER BY pk`)
	if !slices.Equal(left, keepDeliveries) {
		t.Errorf("deliveries left %v, want %v", left, keepDeliveries)
	}
	// The test's archived tasks are younger than a week: they stay. (Housekeep went
	// through every queue on the server; the count may include other tests' tasks.)
	both := []string{failed, byHand}
	slices.Sort(both)
	if got := archivedIDs(t, opt, queue); !slices.Equal(got, both) {
		t.Errorf("archived tasks %v after housekeeping, want %v", got, both)
	}
	// Again: nothing left to do.
	if res, err := ops.Housekeep(e.ctx, e.db, opt, ops.Retention{}); err != nil || res.Outbox != 0 || res.Deliveries != 0 {
		t.Errorf("second run %+v, %v", res, err)
	}

	// A week on (a cutoff in the future), the task that failed goes; the one archived by
	// hand has no failure time and stays.
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	if n, err := ops.PruneArchived(e.ctx, insp, []string{queue}, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("prune with a past cutoff: %d, %v", n, err)
	}
	if n, err := ops.PruneArchived(e.ctx, insp, []string{queue}, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("prune with a future cutoff: %d, %v; want 1", n, err)
	}
	if got := archivedIDs(t, opt, queue); !slices.Equal(got, []string{byHand}) {
		t.Errorf("archived tasks %v, want only %s", got, byHand)
	}
	// A queue that is gone is no error.
	if n, err := ops.PruneArchived(e.ctx, insp, []string{queue + "_gone"}, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("prune of a missing queue: %d, %v", n, err)
	}
}

// With Redis unreachable the database is still pruned, and the error says why the
// rest was not.
func TestHousekeepWithoutRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.db.Exec(`INSERT INTO outbox (program_pk, event, payload, created_at, dispatched_at)
		VALUES ($1, 'customer.created', '{}', now() - interval '30 days', now() - interval '30 days')`, e.p.PK); err != nil {
		t.Fatal(err)
	}
	res, err := ops.Housekeep(e.ctx, e.db, asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, ops.Retention{})
	if err == nil || !strings.Contains(err.Error(), "archived tasks") || res.Outbox != 1 {
		t.Errorf("result %+v, %v; want 1 outbox row and a Redis error", res, err)
	}
}

// The periodic task runs Housekeep through its handler.
func TestHousekeepTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := jobstest.Redis(t)
	if _, err := e.db.Exec(`INSERT INTO outbox (program_pk, event, payload, created_at, dispatched_at)
		VALUES ($1, 'customer.created', '{}', now() - interval '30 days', now() - interval '30 days')`, e.p.PK); err != nil {
		t.Fatal(err)
	}
	p := ops.HousekeepPeriodic()
	if p.Task.Type() != ops.TypeHousekeep || p.Spec != "17 * * * *" {
		t.Errorf("periodic %+v", p)
	}
	mux := asynq.NewServeMux()
	mux.Handle(ops.TypeHousekeep, ops.HousekeepHandler(e.db, opt, slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err := mux.ProcessTask(e.ctx, p.Task); err != nil {
		t.Fatal(err)
	}
	var n int
	e.db.Get(&n, `SELECT count(*) FROM outbox WHERE dispatched_at IS NOT NULL`)
	if n != 0 {
		t.Errorf("%d dispatched outbox rows left", n)
	}
}

package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

func opsProgram(t *testing.T, db *store.DB, id string, keyByte byte) store.Program {
	t.Helper()
	p, err := store.CreateProgram(context.Background(), db, store.Program{ID: id, Name: "P", WebsiteURL: "https://p.test", Currency: "usd"},
		make32(keyByte), "x")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// storedEvent stores an event and sets its status; it returns its pk.
func storedEvent(t *testing.T, db *store.DB, programPK int64, provider, id, status string, at time.Time) int64 {
	t.Helper()
	evs := []store.ProviderEvent{{ProgramPK: programPK, Provider: provider, EventID: id, Type: "invoice.paid", Payload: []byte("{}"), ReceivedAt: at}}
	if _, err := store.InsertProviderEvents(context.Background(), db, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE provider_events SET status = $2 WHERE pk = $1`, evs[0].PK, status); err != nil {
		t.Fatal(err)
	}
	return evs[0].PK
}

func TestReplayCandidates(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p1, p2 := opsProgram(t, db, "p1", 1), opsProgram(t, db, "p2", 2)
	now := store.Now()
	old := now.Add(-48 * time.Hour)
	failed1 := storedEvent(t, db, p1.PK, "stripe", "e1", "failed", old)
	unattr := storedEvent(t, db, p1.PK, "stripe", "e2", "unattributed", now)
	processed := storedEvent(t, db, p1.PK, "stripe", "e3", "processed", now)
	paddle := storedEvent(t, db, p1.PK, "paddle", "e4", "failed", now)
	other := storedEvent(t, db, p2.PK, "stripe", "e5", "failed", now)

	cases := []struct {
		name string
		f    store.ReplayFilter
		want []int64
	}{
		{"failed and unattributed", store.ReplayFilter{Statuses: []store.EventStatus{"failed", "unattributed"}}, []int64{failed1, unattr, paddle, other}},
		{"processed", store.ReplayFilter{Statuses: []store.EventStatus{"processed"}}, []int64{processed}},
		{"provider", store.ReplayFilter{Statuses: []store.EventStatus{"failed"}, Provider: "paddle"}, []int64{paddle}},
		{"since", store.ReplayFilter{Statuses: []store.EventStatus{"failed"}, Since: now.Add(-time.Hour)}, []int64{paddle, other}},
		{"program", store.ReplayFilter{Statuses: []store.EventStatus{"failed"}, ProgramID: "p2"}, []int64{other}},
		{"unknown program", store.ReplayFilter{Statuses: []store.EventStatus{"failed"}, ProgramID: "nope"}, nil},
		{"up to", store.ReplayFilter{Statuses: []store.EventStatus{"failed", "unattributed"}, UpTo: unattr}, []int64{failed1, unattr}},
	}
	for _, c := range cases {
		got, err := store.ReplayCandidates(ctx, db, c.f, 0, 100)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: candidates %v, %v; want %v", c.name, got, err, c.want)
		}
		n, maxPK, err := store.CountReplayCandidates(ctx, db, c.f)
		wantMax := int64(0)
		if len(c.want) > 0 {
			wantMax = c.want[len(c.want)-1]
		}
		if err != nil || n != len(c.want) || maxPK != wantMax {
			t.Errorf("%s: count %d, max %d, %v; want %d, %d", c.name, n, maxPK, err, len(c.want), wantMax)
		}
	}

	// Keyset pages: two at a time, each after the last pk of the one before.
	f := store.ReplayFilter{Statuses: []store.EventStatus{"failed", "unattributed"}}
	var all []int64
	for after := int64(0); ; {
		page, err := store.ReplayCandidates(ctx, db, f, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	if want := []int64{failed1, unattr, paddle, other}; !slices.Equal(all, want) {
		t.Errorf("pages %v, want %v", all, want)
	}

	// Reset puts an event back to received.
	if err := store.ResetProviderEvent(ctx, db, processed); err != nil {
		t.Fatal(err)
	}
	if s, err := store.ProviderEventStatus(ctx, db, processed); err != nil || s != "received" {
		t.Errorf("status after reset %q, %v", s, err)
	}
	if err := store.ResetProviderEvent(ctx, db, 1<<40); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reset of a missing event: %v", err)
	}
	if _, err := store.ProviderEventStatus(ctx, db, 1<<40); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("status of a missing event: %v", err)
	}
}

func TestCountProviderEventsAndOutboxBacklog(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p := opsProgram(t, db, "p1", 1)
	now := store.Now()
	storedEvent(t, db, p.PK, "stripe", "u1", "unattributed", now)
	storedEvent(t, db, p.PK, "stripe", "u2", "unattributed", now)
	storedEvent(t, db, p.PK, "stripe", "f1", "failed", now)
	storedEvent(t, db, p.PK, "stripe", "r1", "received", now.Add(-5*time.Minute))
	storedEvent(t, db, p.PK, "stripe", "r2", "received", now)
	storedEvent(t, db, p.PK, "stripe", "ok", "processed", now.Add(-5*time.Minute))
	c, err := store.CountProviderEvents(ctx, db, now.Add(-time.Minute))
	if err != nil || c != (store.EventCounts{Unattributed: 2, Failed: 1, StaleReceived: 1}) {
		t.Errorf("counts %+v, %v", c, err)
	}

	n, oldest, err := store.OutboxBacklog(ctx, db)
	if err != nil || n != 0 || oldest.Valid {
		t.Errorf("empty outbox: %d, %v, %v", n, oldest, err)
	}
	first := now.Add(-10 * time.Minute)
	outboxRow(t, db, first, sql.NullTime{})
	outboxRow(t, db, now, sql.NullTime{})
	outboxRow(t, db, now.Add(-time.Hour), sql.NullTime{Time: now, Valid: true}) // dispatched: not waiting
	n, oldest, err = store.OutboxBacklog(ctx, db)
	if err != nil || n != 2 || !oldest.Time.Equal(first) {
		t.Errorf("backlog %d, oldest %v, %v; want 2, %v", n, oldest, err, first)
	}
}

func outboxRow(t *testing.T, db *store.DB, created time.Time, dispatched sql.NullTime) int64 {
	t.Helper()
	var pk int64
	if err := db.Get(&pk, `INSERT INTO outbox (program_pk, event, payload, created_at, dispatched_at) VALUES (1, 'customer.created', '{}', $1, $2)
		RETURNING pk`, created, dispatched); err != nil {
		t.Fatal(err)
	}
	return pk
}

func TestTroubledEndpoints(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p := opsProgram(t, db, "p1", 1)
	now := store.Now()
	endpoint := func(key string, active bool, failingSince sql.NullTime, reason string) {
		e := store.WebhookEndpoint{ProgramPK: p.PK, Key: key, URL: "https://" + key + ".test/hook", IsActive: active, Secret: "whsec_x", CreatedAt: now}
		if err := store.InsertWebhookEndpoint(ctx, db, &e); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE webhook_endpoints SET failing_since = $2, disabled_reason = NULLIF($3, '') WHERE pk = $1`,
			e.PK, failingSince, reason); err != nil {
			t.Fatal(err)
		}
	}
	day := sql.NullTime{Time: now.Add(-24 * time.Hour), Valid: true}
	hour := sql.NullTime{Time: now.Add(-time.Hour), Valid: true}
	endpoint("healthy", true, sql.NullTime{}, "")
	endpoint("recent", true, hour, "")
	endpoint("long", true, day, "")
	endpoint("gone", false, day, "410 Gone")
	endpoint("paused", false, sql.NullTime{}, "") // turned off by its owner: not trouble

	es, total, err := store.TroubledEndpoints(ctx, db, 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range es {
		keys = append(keys, e.Key)
	}
	if want := []string{"long", "recent", "gone"}; !slices.Equal(keys, want) || total != 3 {
		t.Fatalf("endpoints %v (total %d), want %v", keys, total, want)
	}
	if g := es[2]; g.ProgramID != "p1" || g.IsActive || g.DisabledReason.String != "410 Gone" || g.URL != "https://gone.test/hook" {
		t.Errorf("disabled endpoint %+v", g)
	}
	if es, total, err := store.TroubledEndpoints(ctx, db, 1); err != nil || len(es) != 1 || total != 3 {
		t.Errorf("limited: %d rows, total %d, %v", len(es), total, err)
	}
}

func TestPruneOutbox(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	now := store.Now()
	cutoff := now.Add(-7 * 24 * time.Hour)
	long := sql.NullTime{Time: now.Add(-8 * 24 * time.Hour), Valid: true}
	var old []int64
	for range 5 {
		old = append(old, outboxRow(t, db, long.Time, long))
	}
	recent := outboxRow(t, db, now.Add(-8*24*time.Hour), sql.NullTime{Time: now.Add(-24 * time.Hour), Valid: true})
	waiting := outboxRow(t, db, long.Time, sql.NullTime{}) // old, never dispatched: the relay still owes it

	var got []int64
	for {
		n, err := store.PruneOutbox(ctx, db, cutoff, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
		if n < 2 {
			break
		}
	}
	if !slices.Equal(got, []int64{2, 2, 1}) {
		t.Errorf("batches %v, want [2 2 1]", got)
	}
	var left []int64
	db.Select(&left, `SELECT pk FROM outbox ORDER BY pk`)
	if want := []int64{recent, waiting}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v (old %v)", left, want, old)
	}
}

// Pruners running at once share the rows and delete each exactly once.
func TestPruneOutboxConcurrently(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	now := store.Now()
	long := sql.NullTime{Time: now.Add(-30 * 24 * time.Hour), Valid: true}
	if _, err := db.Exec(`INSERT INTO outbox (program_pk, event, payload, created_at, dispatched_at)
		SELECT 1, 'customer.created', '{}', $1, $1 FROM generate_series(1, 200)`, long.Time); err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		errs  []error
	)
	for range 4 {
		wg.Go(func() {
			for {
				n, err := store.PruneOutbox(ctx, db, now, 7)
				mu.Lock()
				total += n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil || n < 7 {
					return
				}
			}
		})
	}
	wg.Wait()
	var left int
	db.Get(&left, `SELECT count(*) FROM outbox`)
	if len(errs) > 0 || total != 200 || left != 0 {
		t.Errorf("deleted %d, left %d, errors %v", total, left, errs)
	}
}

func TestPruneDeliveries(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	now := store.Now()
	cutoff := now.Add(-30 * 24 * time.Hour)
	long := now.Add(-31 * 24 * time.Hour)
	delivery := func(i int, status string, created time.Time, retryRequested bool) int64 {
		pks, err := store.InsertDeliveries(ctx, db, []store.WebhookDelivery{{ID: fmt.Sprintf("msg_%d", i), WebhookID: fmt.Sprintf("msg_%d", i),
			ProgramPK: 1, EndpointPK: 1, OutboxPK: int64(i), Event: "customer.created", Body: "{}", CreatedAt: created}})
		if err != nil || len(pks) != 1 {
			t.Fatalf("inserting delivery: %v %v", pks, err)
		}
		var requested sql.NullTime
		if retryRequested {
			requested = sql.NullTime{Time: now, Valid: true}
		}
		if _, err := db.Exec(`UPDATE webhook_deliveries SET status = $2, retry_requested_at = $3 WHERE pk = $1`, pks[0], status, requested); err != nil {
			t.Fatal(err)
		}
		return pks[0]
	}
	delivery(1, "succeeded", long, false)
	delivery(2, "exhausted", long, false)
	delivery(3, "succeeded", long, false)
	keep := []int64{
		delivery(4, "pending", long, false),
		delivery(5, "failed", long, false),
		delivery(6, "succeeded", now.Add(-24*time.Hour), false),
		delivery(7, "exhausted", long, true), // its owner asked for one more attempt
	}
	n, err := store.PruneDeliveries(ctx, db, cutoff, 2)
	if err != nil || n != 2 {
		t.Fatalf("first batch %d, %v; want 2", n, err)
	}
	n, err = store.PruneDeliveries(ctx, db, cutoff, 2)
	if err != nil || n != 1 {
		t.Fatalf("second batch %d, %v; want 1", n, err)
	}
	if n, err = store.PruneDeliveries(ctx, db, cutoff, 2); err != nil || n != 0 {
		t.Fatalf("third batch %d, %v; want 0", n, err)
	}
	var left []int64
	db.Select(&left, `SELECT pk FROM webhook_deliveries ORDER BY pk`)
	if !slices.Equal(left, keep) {
		t.Errorf("left %v, want %v", left, keep)
	}
}

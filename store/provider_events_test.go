package store_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// Events the database refuses for their own data (a NUL byte, an id too large for
// the unique index) are refused alone: the events in the same statement with them
// are stored as if they had not been there.
func TestInsertProviderEventsEachRefusesOnlyTheBadRows(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, err := store.CreateProgram(ctx, db, store.Program{ID: "p1", Name: "P", WebsiteURL: "https://p.test", Currency: "usd"}, make32(3), "x")
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id string) store.ProviderEvent {
		return store.ProviderEvent{ProgramPK: p.PK, Provider: "stripe", EventID: id, Type: "invoice.paid", Payload: []byte("{}"), ReceivedAt: store.Now()}
	}
	if _, err := store.InsertProviderEvents(ctx, db, []store.ProviderEvent{ev("evt_old")}); err != nil {
		t.Fatal(err)
	}
	bad := map[int]string{
		3:  "evt_\x00nul",
		7:  randomText(10000), // incompressible: too large for a btree row
		8:  "evt_\xffnot_utf8",
		19: "evt_last\x00",
	}
	var evs []store.ProviderEvent
	for i := range 20 {
		id, ok := bad[i]
		if !ok {
			id = fmt.Sprintf("evt_%d", i)
		}
		evs = append(evs, ev(id))
	}
	evs[11] = ev("evt_old") // already stored: not new, not an error
	news, errs := store.InsertProviderEventsEach(ctx, db, evs)
	for i := range evs {
		var rej *store.RejectedError
		switch _, isBad := bad[i]; {
		case isBad:
			if !errors.As(errs[i], &rej) || rej.Reason() == "" || news[i] {
				t.Errorf("event %d: new %v, err %v; want a RejectedError", i, news[i], errs[i])
			}
		case i == 11:
			if errs[i] != nil || news[i] {
				t.Errorf("the redelivery: new %v, err %v", news[i], errs[i])
			}
		default:
			if errs[i] != nil || !news[i] || evs[i].PK == 0 {
				t.Errorf("event %d: new %v, pk %d, err %v", i, news[i], evs[i].PK, errs[i])
			}
		}
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM provider_events`); err != nil || n != 16 {
		t.Errorf("%d rows (%v), want 16: the old one and 15 new ones", n, err)
	}
}

// A database that cannot run the statement fails every event, none of them rejected:
// their senders must deliver them again.
func TestInsertProviderEventsEachOutageFailsAll(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	evs := []store.ProviderEvent{
		{ProgramPK: 1, Provider: "stripe", EventID: "evt_1", Type: "t", Payload: []byte("{}"), ReceivedAt: store.Now()},
		{ProgramPK: 1, Provider: "stripe", EventID: "evt_\x00", Type: "t", Payload: []byte("{}"), ReceivedAt: store.Now()},
	}
	news, errs := store.InsertProviderEventsEach(ctx, db, evs)
	for i := range evs {
		var rej *store.RejectedError
		if errs[i] == nil || errors.As(errs[i], &rej) || news[i] {
			t.Errorf("event %d: new %v, err %v; want an error that is not a rejection", i, news[i], errs[i])
		}
	}
}

// randomText is n random characters that do not compress.
func randomText(n int) string {
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(rand.Text())
	}
	return sb.String()[:n]
}

// EventStatuses are exactly the statuses provider_events.status accepts: the Go
// constants and the database's check list the same values.
func TestEventStatusesMatchTheDatabase(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p := opsProgram(t, db, "p1", 1)
	for _, s := range store.EventStatuses() {
		pk := storedEvent(t, db, p.PK, "stripe", "evt_"+string(s), string(s), store.Now())
		if got, err := store.ProviderEventStatus(ctx, db, pk); err != nil || got != s {
			t.Errorf("status %q reads back as %q, %v", s, got, err)
		}
	}
	var checked string
	if err := db.Get(&checked, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = 'provider_events'::regclass AND conname = 'provider_events_status_check'`); err != nil {
		t.Fatal(err)
	}
	for _, s := range store.EventStatuses() {
		checked = strings.Replace(checked, "'"+string(s)+"'", "", 1)
	}
	if strings.Contains(checked, "'") {
		t.Errorf("the database's check allows statuses EventStatuses lacks: %s", checked)
	}
}

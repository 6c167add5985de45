package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

func clickFixture(t *testing.T, db *store.DB, keys ...string) (store.Program, []store.Customer) {
	t.Helper()
	ctx := context.Background()
	p, err := store.CreateProgram(ctx, db, store.Program{ID: "p1", Name: "P", WebsiteURL: "https://p.test", Currency: "usd"}, make32(3), "x")
	if err != nil {
		t.Fatal(err)
	}
	var cs []store.Customer
	for _, k := range keys {
		c := store.Customer{ProgramPK: p.PK, ID: "id-" + k, Key: k, Metadata: "{}", CreatedAt: store.Now()}
		if err := store.InsertCustomer(ctx, db, &c, "", "", "{}"); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return p, cs
}

func visitorBytes(b byte) []byte { return bytes.Repeat([]byte{b}, 16) }

func wantClicks(t *testing.T, db *store.DB, c store.Customer, clicks, unique int64) {
	t.Helper()
	s, err := store.CustomerStats(context.Background(), db, c.PK)
	if err != nil {
		t.Fatal(err)
	}
	if s.Clicks != clicks || s.UniqueClicks != unique {
		t.Errorf("%s: clicks, unique_clicks = %d, %d; want %d, %d", c.Key, s.Clicks, s.UniqueClicks, clicks, unique)
	}
}

// One batch may hold the same visitor twice, several referrers, and two days (a
// batch across midnight): each click counts, each visitor once a day per referrer.
func TestRecordClicks(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, cs := clickFixture(t, db, "a", "b")
	a, b := cs[0], cs[1]
	day1 := time.Date(2026, 11, 21, 23, 59, 59, 0, time.UTC)
	day2 := day1.Add(2 * time.Second)
	click := func(c store.Customer, day time.Time, v byte) store.Click {
		return store.Click{ProgramPK: p.PK, CustomerPK: c.PK, Day: day, Visitor: visitorBytes(v)}
	}
	// b has a counters row already: clicks are added to it.
	if err := db.InTx(ctx, func(tx *store.Tx) error { return store.AddSuccessful(ctx, tx, p.PK, b.PK, 1) }); err != nil {
		t.Fatal(err)
	}
	err := store.RecordClicks(ctx, db, []store.Click{
		click(b, day1, 1), click(a, day1, 1), click(a, day1, 1), click(a, day1, 2), click(a, day2, 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	wantClicks(t, db, a, 4, 3)
	wantClicks(t, db, b, 1, 1)
	if err := store.RecordClicks(ctx, db, []store.Click{click(a, day2, 1), click(a, day2, 3)}); err != nil {
		t.Fatal(err)
	}
	wantClicks(t, db, a, 6, 4)
	if err := store.RecordClicks(ctx, db, nil); err != nil {
		t.Error(err)
	}
	s, err := store.CustomerStats(ctx, db, b.PK)
	if err != nil || s.Successful != 1 {
		t.Errorf("b's successful referrals: %d, %v; want the 1 from before its clicks", s.Successful, err)
	}
}

// Every process gets the first salt stored for a day.
func TestClickSalt(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	day := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	first, err := store.ClickSalt(ctx, db, day, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	again, err := store.ClickSalt(ctx, db, day.Add(12*time.Hour), bytes.Repeat([]byte{2}, 32))
	if err != nil || !bytes.Equal(first, again) || first[0] != 1 {
		t.Errorf("same day: %x then %x (%v)", first, again, err)
	}
	next, err := store.ClickSalt(ctx, db, day.AddDate(0, 0, 1), bytes.Repeat([]byte{3}, 32))
	if err != nil || next[0] != 3 {
		t.Errorf("next day: %x (%v)", next, err)
	}
}

// Pruning deletes the days before the one given, but never today.
func TestPruneClickVisitors(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, cs := clickFixture(t, db, "a")
	today := time.Now().UTC()
	old1, old2 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC)
	for _, d := range []time.Time{old1, old2, today} {
		if _, err := store.ClickSalt(ctx, db, d, bytes.Repeat([]byte{7}, 32)); err != nil {
			t.Fatal(err)
		}
		if err := store.RecordClicks(ctx, db, []store.Click{{ProgramPK: p.PK, CustomerPK: cs[0].PK, Day: d, Visitor: visitorBytes(1)}}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(table string) (n int) {
		if err := db.Get(&n, `SELECT count(*) FROM `+table); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n, err := store.PruneClickVisitors(ctx, db, old2); err != nil || n != 1 || count("click_visitors") != 2 || count("click_salts") != 2 {
		t.Errorf("before %s: pruned %d (%v), left %d visitors, %d salts", old2, n, err, count("click_visitors"), count("click_salts"))
	}
	if n, err := store.PruneClickVisitors(ctx, db, today.AddDate(0, 0, 7)); err != nil || n != 1 || count("click_visitors") != 1 || count("click_salts") != 1 {
		t.Errorf("a week ahead: pruned %d (%v), left %d visitors, %d salts", n, err, count("click_visitors"), count("click_salts"))
	}
	wantClicks(t, db, cs[0], 3, 3) // the counters stay
}

func TestResolveReferralKey(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, cs := clickFixture(t, db, "a")
	l := store.Link{ProgramPK: p.PK, CustomerPK: cs[0].PK, Key: "a-extra", DestinationURL: sql.NullString{String: "https://p.test/x", Valid: true}, CreatedAt: store.Now()}
	if err := store.InsertLink(ctx, db, &l); err != nil {
		t.Fatal(err)
	}
	for key, dest := range map[string]string{"a": "", "a-extra": "https://p.test/x"} {
		k, err := store.ResolveReferralKey(ctx, db, p.PK, key)
		if err != nil || k.CustomerPK != cs[0].PK || !k.Active || k.DestinationURL.String != dest {
			t.Errorf("%s: %+v, %v", key, k, err)
		}
	}
	if _, err := store.ResolveReferralKey(ctx, db, p.PK, "nobody"); !store.IsNotFound(err) {
		t.Errorf("unknown key: %v", err)
	}
}

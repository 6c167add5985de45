package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// MatchCustomers prefers the key, then a provider link, then the email; outcomes
// store links and the unattributed hints that UnattributedEventsFor finds.
func TestMatchCustomerAndOutcomes(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, err := store.CreateProgram(ctx, db, store.Program{ID: "p1", Name: "P", WebsiteURL: "https://p.test", Currency: "usd"}, make32(3), "x")
	if err != nil {
		t.Fatal(err)
	}
	var cs []store.Customer
	for i, email := range []string{"a@x.test", "b@x.test", "c@x.test"} {
		c := store.Customer{ProgramPK: p.PK, ID: fmt.Sprintf("id%d", i), Key: fmt.Sprintf("key%d", i), Email: sqlString(email), Metadata: "{}", CreatedAt: store.Now()}
		if err := store.InsertCustomer(ctx, db, &c, "", "", "{}"); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	evs := []store.ProviderEvent{
		{ProgramPK: p.PK, Provider: "stripe", EventID: "evt_1", Type: "invoice.paid", Payload: []byte("{}"), ReceivedAt: store.Now()},
		{ProgramPK: p.PK, Provider: "stripe", EventID: "evt_2", Type: "invoice.paid", Payload: []byte("{}"), ReceivedAt: store.Now()},
	}
	if _, err := store.InsertProviderEvents(ctx, db, evs); err != nil {
		t.Fatal(err)
	}
	outs := []store.EventOutcome{
		{PK: evs[0].PK, Status: "processed", TransactionKeys: []string{"stripe:in_1"},
			Links: []store.ProviderLink{{ProgramPK: p.PK, Provider: "stripe", ProviderCustomerID: "cus_b", CustomerPK: cs[1].PK}}},
		{PK: evs[1].PK, Status: "unattributed", CustomerKey: "later", ProviderCustomerID: "cus_z", Email: "Z@x.test",
			Links: []store.ProviderLink{{ProgramPK: p.PK, Provider: "stripe", ProviderCustomerID: "cus_b", CustomerPK: cs[1].PK}}},
	}
	err = db.InTx(ctx, func(tx *store.Tx) error { return store.FinishProviderEventsTx(ctx, tx, outs) })
	if err != nil {
		t.Fatal(err)
	}
	got, _ := store.GetProviderEvent(ctx, db, evs[0].PK)
	if got.Status != "processed" || !slices.Equal(got.TransactionKeys, []string{"stripe:in_1"}) || !got.ProcessedAt.Valid || got.Email.Valid {
		t.Errorf("processed event = %+v", got)
	}
	for _, tc := range []struct {
		key, pcid, email string
		want             int
		via              string
	}{
		{"key0", "cus_b", "c@x.test", 0, "key"},
		{"id2", "", "", 2, "key"},
		{"nobody", "cus_b", "a@x.test", 1, "link"},
		{"", "cus_unknown", "C@X.test", 2, "email"},
	} {
		ms, err := store.MatchCustomers(ctx, db, []store.MatchQuery{{ProgramPK: p.PK, Key: tc.key, Provider: "stripe", ProviderCustomerID: tc.pcid, Email: tc.email}})
		if err != nil || ms[0].PK != cs[tc.want].PK || ms[0].Via != tc.via {
			t.Errorf("MatchCustomers(%q, %q, %q) = %+v, %v; want customer %d by %s", tc.key, tc.pcid, tc.email, ms, err, tc.want, tc.via)
		}
	}
	if ms, err := store.MatchCustomers(ctx, db, []store.MatchQuery{{ProgramPK: p.PK, Provider: "stripe"}}); err != nil || ms[0].Via != "" || ms[0].PK != 0 {
		t.Errorf("nothing to match: %+v, %v", ms, err)
	}
	// Several events at once: each gets its own match, in order, and nobody is Via "".
	qs := []store.MatchQuery{
		{ProgramPK: p.PK, Key: "nobody", Provider: "stripe", ProviderCustomerID: "cus_b", Email: "a@x.test"},
		{ProgramPK: p.PK, Key: "nobody", Provider: "stripe"},
		{ProgramPK: p.PK, Key: "key0", Provider: "stripe", ProviderCustomerID: "cus_b"},
		{ProgramPK: p.PK + 1, Key: "key0"},
		{ProgramPK: p.PK, Email: "C@x.TEST"},
	}
	want := []string{"1 link", "- ", "0 key", "- ", "2 email"}
	ms, err := store.MatchCustomers(ctx, db, qs)
	if err != nil || len(ms) != len(qs) {
		t.Fatalf("MatchCustomers: %v, %v", ms, err)
	}
	for i, m := range ms {
		got := "- " + m.Via
		for j, c := range cs {
			if m.PK == c.PK {
				got = fmt.Sprintf("%d %s", j, m.Via)
			}
		}
		if got != want[i] {
			t.Errorf("MatchCustomers query %d = %q, want %q", i, got, want[i])
		}
	}
	for _, tc := range []struct {
		cs   []store.AppearedCustomer
		want bool
	}{
		{[]store.AppearedCustomer{{ProgramPK: p.PK, ID: "x", Key: "later"}}, true},
		{[]store.AppearedCustomer{{ProgramPK: p.PK, ID: "later", Key: "k"}, {ProgramPK: p.PK, Email: "z@x.TEST"}}, true},
		{[]store.AppearedCustomer{{ProgramPK: p.PK + 1, Key: "later"}, {ProgramPK: p.PK, Key: "nobody"}}, false},
		{[]store.AppearedCustomer{{ProgramPK: p.PK, Key: "nobody", Email: ""}}, false},
		{[]store.AppearedCustomer{{ProgramPK: p.PK, Email: "z@X.TEST"}}, true},
		{[]store.AppearedCustomer{{ProgramPK: p.PK, Provider: "stripe", ProviderCustomerID: "cus_z"}}, true},
		{[]store.AppearedCustomer{{ProgramPK: p.PK, Provider: "paddle", ProviderCustomerID: "cus_z"}}, false},
		{[]store.AppearedCustomer{{ProgramPK: p.PK, ID: "", Key: "other"}}, false},
	} {
		pks, err := store.UnattributedEventsFor(ctx, db, tc.cs, 10)
		if err != nil || (len(pks) == 1 && pks[0] == evs[1].PK) != tc.want || len(pks) > 1 {
			t.Errorf("UnattributedEventsFor(%+v) = %v, %v; want found %v", tc.cs, pks, err, tc.want)
		}
	}
}

func sqlString(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }

// A backlog of received events, not analyzed yet, must not turn the search for a
// customer's unattributed events into a scan of the backlog: each hint is looked up
// in its own partial index. (With the hints ORed in one join, the generic plan read
// every pending event, 50 ms a call during a drain of 40,000.)
func TestUnattributedEventsForUsesHintIndexes(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, err := store.CreateProgram(ctx, db, store.Program{ID: "p1", Name: "P", WebsiteURL: "https://p.test", Currency: "usd"}, make32(4), "x")
	if err != nil {
		t.Fatal(err)
	}
	for batch := range 10 {
		evs := make([]store.ProviderEvent, 300)
		for i := range evs {
			evs[i] = store.ProviderEvent{ProgramPK: p.PK, Provider: "stripe", EventID: fmt.Sprintf("evt_%d_%d", batch, i),
				Type: "invoice.paid", Payload: []byte("{}"), ReceivedAt: store.Now()}
		}
		if _, err := store.InsertProviderEvents(ctx, db, evs); err != nil {
			t.Fatal(err)
		}
	}
	text := genericPlan(t, db, store.UnattributedForQuery, "text, int", "'[]', 100")
	for _, index := range []string{"provider_events_unattributed_key", "provider_events_unattributed_email", "provider_events_unattributed_provider"} {
		if !strings.Contains(text, index) {
			t.Errorf("the plan does not probe %s:\n%s", index, text)
		}
	}
	if strings.Contains(text, "provider_events_pending") || strings.Contains(text, "Seq Scan on provider_events") {
		t.Errorf("the plan reads the backlog:\n%s", text)
	}
}

// genericPlan returns the plan PostgreSQL uses for query once it is prepared with
// parameters of these types (the plan cache's generic plan), executed with args.
func genericPlan(t *testing.T, db *store.DB, query, types, args string) string {
	t.Helper()
	var plan []string
	err := db.InTx(context.Background(), func(tx *store.Tx) error {
		if _, err := tx.Exec(`SET LOCAL plan_cache_mode = force_generic_plan`); err != nil {
			return err
		}
		if _, err := tx.Exec(`PREPARE plan_test(` + types + `) AS ` + query); err != nil {
			return err
		}
		defer tx.Exec(`DEALLOCATE plan_test`)
		return tx.Select(&plan, `EXPLAIN EXECUTE plan_test(`+args+`)`)
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}

package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// Migrating again, or from several processes at once, is harmless.
func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	_, url := storetest.NewWithURL(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := store.Open(ctx, url, store.Options{MaxConns: 2})
			if err != nil {
				t.Error(err)
				return
			}
			defer db.Close()
			if err := db.Migrate(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// Open creates the database it is pointed at when it does not exist.
func TestOpenCreatesTheDatabase(t *testing.T) {
	t.Parallel()
	admin := storetest.New(t)
	name := "referd_open_test_" + randomSuffix(t, admin)
	u := storetest.URL()
	u = replaceDatabase(t, u, name)
	t.Cleanup(func() { admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`) })
	// Several processes starting at once all find (or make) the database.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := store.Open(context.Background(), u, store.Options{MaxConns: 1})
			if err != nil {
				t.Error(err)
				return
			}
			db.Close()
		}()
	}
	wg.Wait()
	db, err := store.Open(context.Background(), u, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.Get(&got, `SELECT current_database()`); err != nil || got != name {
		t.Fatalf("current_database() = %q, %v; want %q", got, err, name)
	}
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A server that is not there is an UnreachableError naming what was tried, without
// the password, and how to start one.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port nothing listens on
	_, err = store.Open(context.Background(), "postgres://alice:s3cret@"+addr+"/shop?sslmode=disable", store.Options{})
	var ue *store.UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("Open of a closed port: %v (%T), want an *UnreachableError", err, err)
	}
	if ue.Addr != addr || ue.Database != "shop" || ue.User != "alice" {
		t.Errorf("UnreachableError = %+v, want %s, shop, alice", ue, addr)
	}
	msg := err.Error()
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "\n") || !strings.Contains(msg, "connection refused") ||
		!strings.Contains(msg, "Start PostgreSQL") {
		t.Errorf("message %q: want one line with the driver's error and how to start PostgreSQL, without the password", msg)
	}
}

func TestUniqueViolationsAreTyped(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, err := store.CreateProgram(ctx, db, store.Program{ID: "p1", Name: "P", WebsiteURL: "https://p.test", Currency: "usd"}, make32(1), "x")
	if err != nil {
		t.Fatal(err)
	}
	c := store.Customer{ProgramPK: p.PK, ID: "c", Key: "k", Metadata: "{}", CreatedAt: store.Now()}
	if err := store.InsertCustomer(ctx, db, &c, "", "", "{}"); err != nil {
		t.Fatal(err)
	}
	for field, cust := range map[string]store.Customer{
		"id":  {ProgramPK: p.PK, ID: "c", Key: "k2", Metadata: "{}", CreatedAt: store.Now()},
		"key": {ProgramPK: p.PK, ID: "c2", Key: "k", Metadata: "{}", CreatedAt: store.Now()},
	} {
		err := store.InsertCustomer(ctx, db, &cust, "", "", "{}")
		if f, ok := conflictField(err); !ok || f != field {
			t.Errorf("duplicate %s: %v", field, err)
		}
	}
	if _, err := store.CreateProgram(ctx, db, store.Program{ID: "p2", Name: "P", WebsiteURL: "https://p.test", Currency: "usd"}, make32(1), "x"); err == nil {
		t.Error("two programs share one API key hash")
	}
}

// One event twice in one multi-row insert is stored once and new once.
func TestInsertProviderEventsDuplicatesInOneBatch(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	p, err := store.CreateProgram(ctx, db, store.Program{ID: "p1", Name: "P", WebsiteURL: "https://p.test", Currency: "usd"}, make32(2), "x")
	if err != nil {
		t.Fatal(err)
	}
	ev := store.ProviderEvent{ProgramPK: p.PK, Provider: "stripe", EventID: "evt_1", Type: "invoice.paid", Payload: []byte("{}"), ReceivedAt: store.Now()}
	news, err := store.InsertProviderEvents(ctx, db, []store.ProviderEvent{ev, ev})
	if err != nil || len(news) != 2 || !news[0] || news[1] {
		t.Fatalf("news = %v, %v; want [true false]", news, err)
	}
	news, err = store.InsertProviderEvents(ctx, db, []store.ProviderEvent{ev})
	if err != nil || news[0] {
		t.Fatalf("redelivery news = %v, %v", news, err)
	}
	var n int
	db.Get(&n, `SELECT count(*) FROM provider_events`)
	if n != 1 {
		t.Errorf("%d rows", n)
	}
}

// Writing a batch of sales locks its referrers' counters through the primary key,
// whatever the table's size: a scan of every customer's counters per batch would
// grow with the program.
func TestInsertSalesLocksReferrersByIndex(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	plan := genericPlan(t, db, store.InsertSalesQuery, "text, text, text", `'[]', '[]', '[]'`)
	if strings.Contains(plan, "Seq Scan on customer_stats") || !strings.Contains(plan, "customer_stats_pkey") {
		t.Errorf("the referrers' counters are not locked through customer_stats_pkey:\n%s", plan)
	}
}

// A savepoint contains its function's failure: what the function wrote is rolled
// back, and the transaction goes on and commits the rest. A savepoint that cannot be
// rolled back to is not contained (ErrTxLost).
func TestSavepointContainsAFailure(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE sp (n int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	err := db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(`INSERT INTO sp VALUES (1)`); err != nil {
			return err
		}
		err := tx.Savepoint(ctx, func() error {
			if _, err := tx.Exec(`INSERT INTO sp VALUES (2)`); err != nil {
				return err
			}
			_, err := tx.Exec(`INSERT INTO sp VALUES (1)`) // a duplicate: the statement fails
			return err
		})
		if err == nil || errors.Is(err, store.ErrTxLost) {
			t.Errorf("savepoint error %v, want the duplicate, contained", err)
		}
		if err := tx.Savepoint(ctx, func() error { _, err := tx.Exec(`INSERT INTO sp VALUES (3)`); return err }); err != nil {
			return err
		}
		lost := tx.Savepoint(ctx, func() error {
			_, err := tx.Exec(`RELEASE SAVEPOINT sp`) // gone: it cannot be rolled back to
			if err == nil {
				err = errors.New("failed after the savepoint was released")
			}
			return err
		})
		if !errors.Is(lost, store.ErrTxLost) {
			t.Errorf("a savepoint that cannot be rolled back to: %v, want ErrTxLost", lost)
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("the transaction committed")
	}
	err = db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(`INSERT INTO sp VALUES (1)`); err != nil {
			return err
		}
		if err := tx.Savepoint(ctx, func() error { _, err := tx.Exec(`INSERT INTO sp VALUES (1)`); return err }); err == nil {
			t.Error("the duplicate was inserted")
		}
		return tx.Savepoint(ctx, func() error { _, err := tx.Exec(`INSERT INTO sp VALUES (3)`); return err })
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	if err := db.Select(&got, `SELECT n FROM sp ORDER BY n`); err != nil || fmt.Sprint(got) != "[1 3]" {
		t.Errorf("rows %v (%v), want [1 3]", got, err)
	}
}

// A statement renewed while the pool's statements are dropped (Close, at the end of a
// test or of the process) must not panic: the renewal finds no entry to swap.
func TestStmtRenewalRacesClose(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	ctx := context.Background()
	const q = `SELECT 1 AS renewal_race`
	for range 300 {
		if err := db.Stmt(ctx, q); err != nil {
			t.Fatal(err)
		}
		db.ExpireStmt(q)
		var wg sync.WaitGroup
		wg.Go(func() { db.Stmt(ctx, q) })
		wg.Go(db.ForgetStmts)
		wg.Wait()
	}
}

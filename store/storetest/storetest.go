// Package storetest gives each test its own migrated PostgreSQL schema on the real
// server, so database tests run in parallel without seeing each other's rows.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/referd/referd/store"
)

// DefaultURL is the server the tests use unless TEST_DATABASE_URL says otherwise.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// StartHint says how to start the server when it does not answer.
const StartHint = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

// URL is the test server's URL: TEST_DATABASE_URL, or DefaultURL.
func URL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// New creates a fresh schema, migrates it and returns a pool whose connections use it.
// The schema is dropped when the test ends. An unreachable server fails the test.
func New(tb testing.TB) *store.DB {
	db, _ := NewWithURL(tb)
	return db
}

// NewWithURL is New that also returns the URL of the schema, for code under test that
// opens its own pool (the referd binary, say).
func NewWithURL(tb testing.TB) (*store.DB, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin, err := store.Open(ctx, URL(), store.Options{MaxConns: 2})
	if err != nil {
		tb.Fatalf("PostgreSQL is not reachable at %s (%v); %s", URL(), err, StartHint)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+pq.QuoteIdentifier(schema)); err != nil {
		admin.Close()
		tb.Fatalf("creating schema: %v", err)
	}

	u, _ := url.Parse(URL())
	q := u.Query()
	q.Set("search_path", schema) // lib/pq sends unknown parameters as run-time settings
	u.RawQuery = q.Encode()
	db, err := store.Open(ctx, u.String(), store.Options{MaxConns: 8})
	if err != nil {
		admin.Close()
		tb.Fatalf("opening schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Dropping a schema locks each of its objects; one that another test's drop
		// locks in another order (the catalog's) deadlocks, and goes again.
		var err error
		for range 5 {
			var pqErr *pq.Error
			_, err = admin.ExecContext(ctx, "DROP SCHEMA "+pq.QuoteIdentifier(schema)+" CASCADE")
			if !errors.As(err, &pqErr) || pqErr.Code != "40P01" {
				break
			}
		}
		if err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
		}
		admin.Close()
	})
	if err := db.Migrate(ctx); err != nil {
		tb.Fatalf("migrating schema %s: %v", schema, err)
	}
	return db, u.String()
}

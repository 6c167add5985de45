package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/store/storetest"
)

// testPG returns the test server's URL after checking that it answers.
func testPG(t *testing.T) string {
	t.Helper()
	db, err := sql.Open("postgres", storetest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s (%v); %s", storetest.URL(), err, storetest.StartHint)
	}
	return storetest.URL()
}

// databaseExists reports whether the server at pg has a database name.
func databaseExists(t *testing.T, pg, name string) bool {
	t.Helper()
	db, err := sql.Open("postgres", pg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// The ceiling inserts into its own scratch database, counts what committed
// in the measured period, finds every inserted row stored, and drop removes
// the database. (Its speed is not asserted.)
func TestMeasureCeiling(t *testing.T) {
	t.Parallel()
	pg := testPG(t)
	name := "referd_ceiling_test_" + newRunID() // its own, so parallel runs do not collide
	var logw bytes.Buffer
	res, drop, err := measureCeiling(context.Background(), ceilingConfig{PG: pg, DB: name, Clients: 4,
		Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond}, &logw)
	if err != nil {
		t.Fatalf("measureCeiling: %v", err)
	}
	if !databaseExists(t, pg, name) {
		t.Errorf("scratch database %s is gone before drop", name)
	}
	drop()
	if databaseExists(t, pg, name) {
		t.Errorf("scratch database %s is still there after drop", name)
	}
	if res.Rows <= 0 || res.Inserted < res.Rows || res.Stored != res.Inserted {
		t.Errorf("rows %d, inserted %d, stored %d: want 0 < rows <= inserted = stored", res.Rows, res.Inserted, res.Stored)
	}
	if want := round2(float64(res.Rows) / 0.4); res.RowsPerSec != want {
		t.Errorf("rows/s = %v, want rows / 0.4 s = %v", res.RowsPerSec, want)
	}
	if res.Clients != 4 || res.DurationSec != 0.4 || res.PayloadBytes != ceilingPayloadSize {
		t.Errorf("clients %d, duration %v, payload %d bytes", res.Clients, res.DurationSec, res.PayloadBytes)
	}
	l := res.Latency
	if l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Errorf("commit latency %+v, want positive and monotonic", l)
	}
	if !strings.Contains(logw.String(), "dropping the scratch database "+name) {
		t.Errorf("log %q does not say it drops the database", logw.String())
	}
}

// A failing measurement drops its scratch database itself.
func TestMeasureCeilingCancelled(t *testing.T) {
	t.Parallel()
	pg := testPG(t)
	name := "referd_ceiling_test_" + newRunID()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	res, drop, err := measureCeiling(ctx, ceilingConfig{PG: pg, DB: name, Clients: 2, Warmup: 0, Duration: time.Minute}, io.Discard)
	if err == nil || res != nil || drop != nil {
		t.Fatalf("interrupted measureCeiling = %+v, %v, drop %v; want an error and nothing to drop", res, err, drop != nil)
	}
	if databaseExists(t, pg, name) {
		t.Errorf("scratch database %s left behind", name)
	}
}

func TestCeilingRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, pg := range []string{
		"postgres://postgres@192.0.2.1:5432/postgres?sslmode=disable",
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&host=192.0.2.1",
		"host=127.0.0.1,192.0.2.1 dbname=postgres sslmode=disable",
		"host=localhost hostaddr=192.0.2.1 dbname=postgres sslmode=disable",
		"postgres://postgres@[2001:db8::1]:5432/postgres?sslmode=disable",
	} {
		_, drop, err := measureCeiling(ctx, ceilingConfig{PG: pg, DB: "referd_ceiling_never", Clients: 1, Duration: time.Second}, io.Discard)
		if !errors.Is(err, errNotLoopback) || drop != nil {
			t.Errorf("-pg %s: err = %v, want a non-loopback refusal", pg, err)
		}
	}
	// The scratch database is dropped without asking: only referd_ceiling*.
	for _, name := range []string{"postgres", "referd", "template1", "referd_ceiling; DROP", "Referd_ceiling"} {
		_, _, err := measureCeiling(ctx, ceilingConfig{PG: defaultPG, DB: name, Clients: 1, Duration: time.Second}, io.Discard)
		if !errors.Is(err, errUsage) {
			t.Errorf("scratch database %q: err = %v, want errUsage", name, err)
		}
	}
	// The dialer refuses as well, before anything is sent.
	if _, err := newPGDialer().DialContext(ctx, "tcp", "192.0.2.1:5432"); !errors.Is(err, errNotLoopback) {
		t.Errorf("pgDialer to 192.0.2.1: err = %v, want errNotLoopback", err)
	}
	for _, args := range [][]string{
		{"-ceiling", "-pg", "postgres://postgres@192.0.2.1/postgres"},
		{"-ceiling", "-url", "http://127.0.0.1:1"}, // a load flag
		{"-ceiling", "-pid", "1"},                  // an -e2e flag
		{"-ceiling", "-c", "0"},
		{"-ceiling", "-c", "65"},
		{"-ceiling", "-ceiling-d", "0s"},
		{"-ceiling", "-sink", "127.0.0.1:0"},
	} {
		var stderr bytes.Buffer
		if code := realMain(args, io.Discard, &stderr); code != 2 {
			t.Errorf("realMain(%q) exit = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}

func TestCeilingPayload(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat("ab", ceilingPayloadSize)
	p := ceilingPayload("deadbeef_3_17", pad, ceilingPayloadSize)
	if len(p) != ceilingPayloadSize {
		t.Errorf("payload is %d bytes, want %d", len(p), ceilingPayloadSize)
	}
	var v struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(p), &v); err != nil || v.ID != "deadbeef_3_17" || v.Type != "invoice.paid" {
		t.Errorf("payload %q: %+v, %v", p[:80], v, err)
	}
	if short := ceilingPayload("x", "", 10); !json.Valid([]byte(short)) {
		t.Errorf("payload with no room for padding is not JSON: %q", short)
	}
}

// -ceiling prints its summary and exits 0 (JSON here, so it can be read).
func TestCeilingMain(t *testing.T) {
	t.Parallel()
	testPG(t)
	// -ceiling always uses referd_ceiling; only this test runs it.
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"-ceiling", "-pg", storetest.URL(), "-c", "2", "-ceiling-d", "300ms", "-json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	var res ceilingResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Rows <= 0 || res.Clients != 2 {
		t.Errorf("stdout %q: %+v, %v", stdout.String(), res, err)
	}
	var text bytes.Buffer
	printCeilingText(&text, &res)
	if !strings.Contains(text.String(), "rows/s") || !strings.Contains(text.String(), "clients:      2") {
		t.Errorf("text summary:\n%s", text.String())
	}
}

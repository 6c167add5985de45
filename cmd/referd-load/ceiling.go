package main

// The PostgreSQL ceiling (-ceiling, and the first stage of -e2e): how many
// single-row commits this machine's PostgreSQL takes per second. See the
// package documentation.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lib/pq"
)

const (
	// defaultPG is the default -pg: the local server's maintenance database,
	// where the scratch database is created and dropped.
	defaultPG = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	// ceilingDB is the scratch database the ceiling creates and drops.
	ceilingDB = "referd_ceiling"
	// ceilingClients is how many connections insert at once.
	ceilingClients = 16
	// ceilingWarmup is how long the clients insert before counting starts.
	ceilingWarmup = time.Second
	// ceilingPayloadSize is the size of each row's JSON document in bytes:
	// about 2 KB, yet small enough that PostgreSQL stores the row inline
	// (rows over about 2,032 bytes are compressed or moved to TOAST).
	ceilingPayloadSize = 1850
	// scratchDropTimeout bounds dropping the scratch database, which waits
	// for a checkpoint.
	scratchDropTimeout = 3 * time.Minute
	// maxCeilingClients bounds -c in -ceiling mode (PostgreSQL allows 100
	// connections by default).
	maxCeilingClients = 64
)

// errPGNotLoopback is errNotLoopback (exit status 2) for -pg.
var errPGNotLoopback = &sentinelAlias{msg: "refusing to connect to a non-loopback PostgreSQL host", is: errNotLoopback}

// scratchNameRE is what a scratch database may be called: it is dropped
// without asking, so the name is never taken from a flag.
var scratchNameRE = regexp.MustCompile(`^referd_ceiling[a-z0-9_]*$`)

// ceilingConfig describes one ceiling measurement.
type ceilingConfig struct {
	PG       string        // URL or key=value DSN of the server's maintenance database
	DB       string        // scratch database, created (after dropping it) and dropped
	Clients  int           // connections inserting at once
	Warmup   time.Duration // inserts not counted
	Duration time.Duration // measured period
}

// ceilingResult is a ceiling measurement.
type ceilingResult struct {
	RowsPerSec   float64   `json:"rows_per_s"`        // Rows / DurationSec
	Rows         int64     `json:"rows"`              // commits that finished in the measured period
	Clients      int       `json:"clients"`           // connections inserting at once
	DurationSec  float64   `json:"duration_s"`        // measured period
	PayloadBytes int       `json:"payload_bytes"`     // JSON text of each row
	Inserted     int64     `json:"inserted"`          // all rows inserted, warm-up included
	Stored       int64     `json:"stored"`            // rows in the table at the end; equals Inserted
	Latency      latencyMs `json:"commit_latency_ms"` // of the counted commits that started in the measured period
}

// checkPGLoopback returns nil only if every host the parsed configuration
// would connect to is a loopback address (or a name resolving only to
// loopback addresses) or a local Unix socket.
func checkPGLoopback(ctx context.Context, cfg pq.Config) error {
	type hostAddr struct {
		host string
		addr netip.Addr
	}
	hosts := []hostAddr{{cfg.Host, cfg.Hostaddr}}
	for _, m := range cfg.Multi {
		hosts = append(hosts, hostAddr{m.Host, m.Hostaddr})
	}
	for _, h := range hosts {
		switch {
		case h.addr.IsValid():
			if !h.addr.IsLoopback() {
				return fmt.Errorf("%w: hostaddr %s (only 127.0.0.0/8, ::1 and Unix sockets are allowed)", errPGNotLoopback, h.addr)
			}
		case filepath.IsAbs(h.host) || strings.HasPrefix(h.host, "@"):
			// A Unix socket: on this machine by construction.
		case h.host == "":
			return fmt.Errorf("%w: no host", errPGNotLoopback)
		default:
			if err := checkLoopbackAs(ctx, h.host, errPGNotLoopback); err != nil {
				return err
			}
		}
	}
	return nil
}

// pgDialer is lib/pq's dialer for the ceiling: like the HTTP client's, it
// refuses any TCP address that is not loopback when it connects (defense
// against a name that resolves differently later), and Unix sockets pass.
type pgDialer struct{ d net.Dialer }

func newPGDialer() pgDialer {
	return pgDialer{d: net.Dialer{Timeout: 5 * time.Second, Control: func(network, address string, c syscall.RawConn) error {
		if strings.HasPrefix(network, "unix") {
			return nil
		}
		return dialLoopbackOnly(network, address, c)
	}}}
}

func (p pgDialer) Dial(network, address string) (net.Conn, error) {
	return p.d.Dial(network, address)
}

func (p pgDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.d.DialContext(ctx, network, address)
}

func (p pgDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return p.d.DialContext(ctx, network, address)
}

// openPG opens a pool on cfg with the loopback-only dialer.
func openPG(cfg pq.Config) (*sql.DB, error) {
	c, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, err
	}
	c.Dialer(newPGDialer())
	return sql.OpenDB(c), nil
}

// ceilingPayload returns the JSON document of a ceiling row for id: a
// Stripe-like invoice.paid event padded with pad (hex, so PostgreSQL cannot
// compress it much) to exactly size bytes when pad is long enough.
func ceilingPayload(id, pad string, size int) string {
	head := `{"id":"` + id + `","object":"event","api_version":"2023-10-16","created":1700000000,"livemode":false,` +
		`"type":"invoice.paid","data":{"object":{"id":"in_` + id + `","object":"invoice","amount_paid":4999,` +
		`"currency":"usd","customer":"cus_load","customer_email":"load1@load.test","subscription":null,` +
		`"metadata":{},"description":"`
	const tail = `"}}}`
	n := max(size-len(head)-len(tail), 0)
	return head + pad[:min(n, len(pad))] + tail
}

// measureCeiling creates the scratch database cfg.DB (dropping one left
// over), a table shaped like provider_events there, and has cfg.Clients
// connections each insert one row at a time, every row its own commit
// (autocommit), with INSERT ... ON CONFLICT DO NOTHING, for cfg.Warmup plus
// cfg.Duration. Only commits that finish in the measured period count.
// Progress goes to logw. It connects to nothing but loopback addresses and
// local Unix sockets.
//
// On success the caller must call drop, which drops the scratch database;
// on failure measureCeiling has dropped it. Dropping a database makes
// PostgreSQL wait for a checkpoint, which can take a minute on a busy
// machine: -e2e drops it after its last stage, so that the checkpoint does
// not disturb the measurements.
func measureCeiling(ctx context.Context, cfg ceilingConfig, logw io.Writer) (res *ceilingResult, drop func(), err error) {
	if !scratchNameRE.MatchString(cfg.DB) {
		return nil, nil, fmt.Errorf("%w: scratch database name %q", errUsage, cfg.DB)
	}
	if cfg.Clients < 1 || cfg.Duration <= 0 || cfg.Warmup < 0 {
		return nil, nil, fmt.Errorf("%w: ceiling needs clients >= 1, a duration > 0 and a warm-up >= 0", errUsage)
	}
	pgcfg, err := pq.NewConfig(cfg.PG)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: -pg: %v", errUsage, err)
	}
	if err := checkPGLoopback(ctx, pgcfg); err != nil {
		return nil, nil, err
	}
	admin, err := openPG(pgcfg)
	if err != nil {
		return nil, nil, err
	}
	quoted := pq.QuoteIdentifier(cfg.DB)
	dropDB := func(timeout time.Duration) error {
		// Not ctx: the database goes also when the run was interrupted.
		dctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+quoted+" WITH (FORCE)")
		return err
	}
	if err := dropDB(scratchDropTimeout); err != nil {
		admin.Close()
		return nil, nil, fmt.Errorf("ceiling: dropping a leftover %s: %w", cfg.DB, err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+quoted); err != nil {
		admin.Close()
		return nil, nil, fmt.Errorf("ceiling: creating %s: %w", cfg.DB, err)
	}
	cleanup := func() {
		defer admin.Close()
		fmt.Fprintf(logw, "referd-load: ceiling: dropping the scratch database %s (PostgreSQL waits for a checkpoint)\n", cfg.DB)
		if err := dropDB(scratchDropTimeout); err != nil {
			fmt.Fprintf(logw, "referd-load: ceiling: dropping %s: %v (the next run drops it)\n", cfg.DB, err)
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()

	scratch := pgcfg.Clone()
	scratch.Database = cfg.DB
	db, err := openPG(scratch)
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(cfg.Clients)
	db.SetMaxIdleConns(cfg.Clients)
	if _, err := db.ExecContext(ctx, `CREATE TABLE ceiling (
		pk          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		event_id    text NOT NULL UNIQUE,
		payload     jsonb NOT NULL,
		received_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, nil, fmt.Errorf("ceiling: creating the table: %w", err)
	}
	stmt, err := db.PrepareContext(ctx, `INSERT INTO ceiling (event_id, payload) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING`)
	if err != nil {
		return nil, nil, fmt.Errorf("ceiling: preparing the insert: %w", err)
	}
	defer stmt.Close()

	runID := newRunID()
	fmt.Fprintf(logw, "referd-load: ceiling: %d clients, one row per commit, %v warm-up, measuring %v\n", cfg.Clients, cfg.Warmup, cfg.Duration)
	start := time.Now()
	measureStart := start.Add(cfg.Warmup)
	measureEnd := measureStart.Add(cfg.Duration)
	var (
		inserted atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		lats     = make([][]time.Duration, cfg.Clients)
	)
	for c := range cfg.Clients {
		wg.Go(func() {
			var b [ceilingPayloadSize / 2]byte
			rand.Read(b[:])
			pad := hex.EncodeToString(b[:])
			prefix := runID + "_" + strconv.Itoa(c) + "_"
			for i := 0; ; i++ {
				if ctx.Err() != nil || !time.Now().Before(measureEnd) {
					return
				}
				id := prefix + strconv.Itoa(i)
				t0 := time.Now()
				r, err := stmt.ExecContext(ctx, id, ceilingPayload(id, pad, ceilingPayloadSize))
				var n int64
				if err == nil {
					n, err = r.RowsAffected()
				}
				if err == nil && n != 1 {
					err = fmt.Errorf("insert of a new row affected %d rows", n)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil && ctx.Err() == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				t1 := time.Now()
				inserted.Add(1)
				if !t0.Before(measureStart) && t1.Before(measureEnd) {
					lats[c] = append(lats[c], t1.Sub(t0))
				} else if t0.Before(measureStart) && !t1.Before(measureStart) && t1.Before(measureEnd) {
					// Started in the warm-up, committed in the measured
					// period: it counts, its latency does not.
					lats[c] = append(lats[c], -1)
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if firstErr != nil {
		return nil, nil, fmt.Errorf("ceiling: insert: %w", firstErr)
	}
	res = &ceilingResult{Clients: cfg.Clients, DurationSec: round2(cfg.Duration.Seconds()), Inserted: inserted.Load(),
		PayloadBytes: len(ceilingPayload(runID+"_0_0", strings.Repeat("0", ceilingPayloadSize), ceilingPayloadSize))}
	var all []time.Duration
	for _, l := range lats {
		res.Rows += int64(len(l))
		for _, d := range l {
			if d >= 0 {
				all = append(all, d)
			}
		}
	}
	res.RowsPerSec = round2(float64(res.Rows) / cfg.Duration.Seconds())
	slices.Sort(all)
	res.Latency = latencyMs{P50: ms(percentile(all, 50)), P90: ms(percentile(all, 90)),
		P99: ms(percentile(all, 99)), Max: ms(percentile(all, 100))}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM ceiling").Scan(&res.Stored); err != nil {
		return nil, nil, fmt.Errorf("ceiling: counting rows: %w", err)
	}
	if res.Stored != res.Inserted {
		return nil, nil, fmt.Errorf("ceiling: %d rows inserted but %d stored", res.Inserted, res.Stored)
	}
	return res, cleanup, nil
}

// errNoRows is returned when a measurement counted nothing.
var errNoRows = errors.New("no row was committed in the measured period")

// ceilingMain runs -ceiling mode for realMain and returns the exit status.
func ceilingMain(ctx context.Context, cfg ceilingConfig, asJSON bool, stdout, stderr io.Writer) int {
	res, drop, err := measureCeiling(ctx, cfg, stderr)
	if drop != nil {
		defer drop()
	}
	if err == nil && res.Rows == 0 {
		err = errNoRows
	}
	return report(stdout, stderr, asJSON, res, err, func() { printCeilingText(stdout, res) })
}

// report ends a mode's run: err on stderr with its exit status (2 for a usage or
// loopback error, else 1), or the result as JSON or as text, and status 0.
func report(stdout, stderr io.Writer, asJSON bool, res any, err error, printText func()) int {
	if err != nil {
		fmt.Fprintf(stderr, "referd-load: %v\n", err)
		if errors.Is(err, errUsage) || errors.Is(err, errNotLoopback) {
			return 2
		}
		return 1
	}
	if asJSON {
		if err := writeJSON(stdout, res); err != nil {
			fmt.Fprintf(stderr, "referd-load: %v\n", err)
			return 1
		}
		return 0
	}
	printText()
	return 0
}

// printCeilingText writes the human-readable -ceiling summary.
func printCeilingText(w io.Writer, r *ceilingResult) {
	fmt.Fprintf(w, "ceiling:      %.2f rows/s (INSERT ... ON CONFLICT DO NOTHING, one row per commit)\n", r.RowsPerSec)
	fmt.Fprintf(w, "clients:      %d\n", r.Clients)
	fmt.Fprintf(w, "measured:     %.2fs, %d rows of %d-byte JSONB\n", r.DurationSec, r.Rows, r.PayloadBytes)
	fmt.Fprintf(w, "commit ms:    p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
}

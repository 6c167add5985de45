// Package store is referd's PostgreSQL storage: the connection, the migrations and
// every SQL statement. Functions take a Querier so that callers can run them on the
// pool or inside a transaction (DB.InTx); effects that must be atomic with their
// outbox event are single statements or run in one transaction.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Querier is what the query functions need: the pool (*DB) or a transaction (*Tx).
type Querier interface {
	sqlx.ExtContext
	GetContext(ctx context.Context, dest any, query string, args ...any) error
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
}

// DB is the connection pool.
type DB struct {
	*sqlx.DB
	stmts     sync.Map // query text → *preparedStmt
	preparing sync.Map // query text → true while prepareLater works on it
}

// Options tune the pool; the zero value works.
type Options struct {
	// MaxConns caps open connections (default 20).
	MaxConns int
}

// Open connects to the PostgreSQL database at url, creating the database first if it
// does not exist. When no server answers at the URL's address, the error is an
// *UnreachableError. Parameters are sent in the same round trip as the statement
// (lib/pq's binary_parameters) unless the URL says otherwise.
func Open(ctx context.Context, rawURL string, opt Options) (*DB, error) {
	u, err := withDefaults(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store.Open: %w", err)
	}
	db, err := connect(ctx, u)
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "3D000" { // invalid_catalog_name
		if err = createDatabase(ctx, u); err == nil {
			db, err = connect(ctx, u)
		}
	}
	if isDialError(err) {
		return nil, unreachable(u, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store.Open(%s): %w", redact(u), err)
	}
	n := opt.MaxConns
	if n <= 0 {
		n = 20
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{DB: db}, nil
}

// UnreachableError is Open's error when no PostgreSQL answers where the URL points:
// it names what was tried (never the password) and how to start a server, for the
// one line an operator sees when referd cannot start.
type UnreachableError struct {
	Addr     string // host:port, or the socket directory
	Database string
	User     string
	Err      error // the driver's error
}

func (e *UnreachableError) Error() string {
	var dns *net.DNSError
	if errors.As(e.Err, &dns) {
		return fmt.Sprintf("no PostgreSQL answers at %s (database %q, user %q): %v. "+
			"Check the host name in DATABASE_URL (--database-url)", e.Addr, e.Database, e.User, e.Err)
	}
	port := "5432"
	if _, p, err := net.SplitHostPort(e.Addr); err == nil {
		port = p
	}
	return fmt.Sprintf("no PostgreSQL answers at %s (database %q, user %q): %v. "+
		"Start PostgreSQL there (pg_ctlcluster <version> main start, brew services start postgresql, "+
		"or docker run -d -p %s:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres), "+
		"or point DATABASE_URL (--database-url) at a server that runs",
		e.Addr, e.Database, e.User, e.Err, port)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// isDialError reports whether err means that no server could be reached at all (as
// opposed to one that answered and refused us).
func isDialError(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.As(err, &op) && op.Op == "dial"
}

// unreachable describes the server u points at the way lib/pq reads it: host and
// port from the URL or its parameters, else localhost:5432; the user from the URL,
// else PGUSER, else the operating-system user.
func unreachable(u *url.URL, err error) *UnreachableError {
	q := u.Query()
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = q.Get("host")
	}
	if port == "" {
		port = q.Get("port")
	}
	host, port = cmp.Or(host, "localhost"), cmp.Or(port, "5432")
	addr := net.JoinHostPort(host, port)
	if strings.HasPrefix(host, "/") {
		addr = host + " (socket .s.PGSQL." + port + ")"
	}
	name := cmp.Or(u.User.Username(), q.Get("user"), os.Getenv("PGUSER"))
	if name == "" {
		if me, err := user.Current(); err == nil {
			name = me.Username
		}
	}
	return &UnreachableError{Addr: addr, Database: cmp.Or(strings.TrimPrefix(u.Path, "/"), name), User: name, Err: err}
}

func withDefaults(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("DATABASE_URL must be a postgres:// URL, got %q", redactString(rawURL))
	}
	q := u.Query()
	if !q.Has("binary_parameters") {
		// One round trip per statement instead of two (Parse/Describe, then Bind/Execute).
		// Consequence: never pass JSON as []byte (it would be sent as binary jsonb); pass strings.
		q.Set("binary_parameters", "yes")
	}
	if !q.Has("connect_timeout") {
		q.Set("connect_timeout", "5")
	}
	u.RawQuery = q.Encode()
	return u, nil
}

func connect(ctx context.Context, u *url.URL) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// createDatabase creates the database named in u by connecting to the server's
// "postgres" database. A concurrent creation by another process is not an error.
func createDatabase(ctx context.Context, u *url.URL) error {
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return errors.New("DATABASE_URL names no database")
	}
	admin := *u
	admin.Path = "/postgres"
	db, err := connect(ctx, &admin)
	if err != nil {
		return fmt.Errorf("creating database %q: %w", name, err)
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name))
	var pqErr *pq.Error
	// Another process creating it at the same moment answers duplicate_database, or
	// a unique violation on pg_database when both passed the existence check.
	if errors.As(err, &pqErr) && (pqErr.Code == "42P04" || pqErr.Code == "23505") {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("creating database %q: %w", name, err)
	}
	return nil
}

func redact(u *url.URL) string { return u.Redacted() }

func redactString(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

// Migrate applies every pending migration. A PostgreSQL session lock makes concurrent
// migrators (several processes starting at once) wait for each other.
func (db *DB) Migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("store.Migrate: %w", err)
	}
	// One lock per database and schema: migrators of the same schema wait for each
	// other (checking every second), while separate schemas (tests) never contend.
	var lockID int64
	if err := db.GetContext(ctx, &lockID, `SELECT hashtext(current_database() || '.' || current_schema())`); err != nil {
		return fmt.Errorf("store.Migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return fmt.Errorf("store.Migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db.DB.DB, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("store.Migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store.Migrate: %w", err)
	}
	return nil
}

// preparedStmt is a cached prepared statement and when to prepare it again.
type preparedStmt struct {
	stmt    *sqlx.Stmt
	renewAt time.Time
	age     time.Duration // how long this one is kept: doubles on each renewal
}

// A prepared statement's plan is made once, when it is prepared, from the table
// statistics of that moment, and PostgreSQL replans it only when the statistics
// change (ANALYZE). A plan made while a table was nearly empty keeps scanning all of
// it as it grows; where autovacuum is off (as on our test machines) the statistics
// never change. So statements are prepared again after 1 s, 2 s, 4 s ... up to a
// minute: a young database outgrows its plans quickly, an old one hardly at all.
const (
	firstRenewal = time.Second
	lastRenewal  = time.Minute
)

// stmt returns the prepared statement for query, preparing it on first use and again
// when it is due for renewal. Hot statements are prepared so PostgreSQL plans them
// once per connection, not once per execution: for the multi-statement inserts
// planning costs more than running.
func (db *DB) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	v, ok := db.stmts.Load(query)
	if ok && time.Now().Before(v.(*preparedStmt).renewAt) {
		return v.(*preparedStmt).stmt, nil
	}
	age := firstRenewal
	if ok {
		age = min(2*v.(*preparedStmt).age, lastRenewal)
	}
	s, err := db.PreparexContext(ctx, query)
	if err != nil {
		return nil, err
	}
	next := &preparedStmt{stmt: s, renewAt: time.Now().Add(age), age: age}
	if !ok {
		if prev, loaded := db.stmts.LoadOrStore(query, next); loaded {
			s.Close()
			return prev.(*preparedStmt).stmt, nil
		}
		return s, nil
	}
	if !db.stmts.CompareAndSwap(query, v, next) {
		cur, ok := db.stmts.Load(query)
		if !ok {
			// Close emptied the map meanwhile (a background renewal racing the pool's
			// end): this statement goes with the pool.
			return s, nil
		}
		s.Close() // another goroutine renewed it first
		return cur.(*preparedStmt).stmt, nil
	}
	// Callers that loaded the old statement a moment ago may still be about to use
	// it; it is closed once they are surely done.
	time.AfterFunc(time.Minute, func() { v.(*preparedStmt).stmt.Close() })
	return s, nil
}

// Close closes the prepared statements and the pool.
func (db *DB) Close() error {
	db.stmts.Range(func(k, v any) bool {
		v.(*preparedStmt).stmt.Close()
		db.stmts.Delete(k)
		return true
	})
	return db.DB.Close()
}

// Tx is a database transaction whose statements are the pool's prepared ones.
type Tx struct {
	*sqlx.Tx
	db *DB
}

// prepared returns query prepared for q (the pool or a transaction), or nil when q
// is neither and the query must be sent as it is.
func prepared(ctx context.Context, q Querier, query string) (*sqlx.Stmt, error) {
	switch v := q.(type) {
	case *DB:
		return v.stmt(ctx, query)
	case *Tx:
		// Preparing on the pool needs a second connection, and a transaction must never
		// wait for one while holding its own (with every connection held that way, all
		// would wait forever). So a transaction uses a statement the pool has already
		// prepared, and otherwise sends the query as it is this time while the pool
		// prepares it in the background for the next.
		if s, ok := v.db.stmts.Load(query); ok {
			if time.Now().After(s.(*preparedStmt).renewAt) {
				v.db.prepareLater(query)
			}
			// Reuses the statement already prepared on the transaction's connection.
			return v.Tx.StmtxContext(ctx, s.(*preparedStmt).stmt), nil
		}
		v.db.prepareLater(query)
	}
	return nil, nil
}

// prepareLater prepares query on the pool in the background, once.
func (db *DB) prepareLater(query string) {
	if _, busy := db.preparing.LoadOrStore(query, true); busy {
		return
	}
	go func() {
		defer db.preparing.Delete(query)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.stmt(ctx, query)
	}()
}

// get runs a one-row query as a prepared statement.
func get(ctx context.Context, q Querier, dest any, query string, args ...any) error {
	s, err := prepared(ctx, q, query)
	if err != nil {
		return err
	}
	if s == nil {
		return q.GetContext(ctx, dest, query, args...)
	}
	return s.GetContext(ctx, dest, args...)
}

// selectRows runs a query of many rows as a prepared statement.
func selectRows(ctx context.Context, q Querier, dest any, query string, args ...any) error {
	s, err := prepared(ctx, q, query)
	if err != nil {
		return err
	}
	if s == nil {
		return q.SelectContext(ctx, dest, query, args...)
	}
	return s.SelectContext(ctx, dest, args...)
}

// exec runs a statement as a prepared statement.
func exec(ctx context.Context, q Querier, query string, args ...any) (sql.Result, error) {
	s, err := prepared(ctx, q, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return q.ExecContext(ctx, query, args...)
	}
	return s.ExecContext(ctx, args...)
}

// ErrRetry asks InTx to run its function again in a new transaction (a concurrent
// writer changed what it read).
var ErrRetry = errors.New("retry the transaction")

// InTx runs fn in a transaction, committing when it returns nil. A deadlock, a
// serialization failure or ErrRetry rolls back and runs fn again, up to 20 times
// with a short random pause, so fn must set its results afresh on each run.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = db.inTx(ctx, fn); !retryable(err) {
			return err
		}
		// Writers that raced each other retry at different moments.
		select {
		case <-time.After(time.Duration(1+mrand.IntN(1+2*attempt)) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (db *DB) inTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqltx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	tx := &Tx{Tx: sqltx, db: db}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Savepoint runs fn inside a savepoint of tx: when fn fails, what it wrote is rolled
// back and tx goes on as if fn had not run (a failed statement no longer aborts the
// whole transaction). The workers give each event of a batch its own, so one event's
// error does not undo the others'. A deadlock or serialization failure, or a
// savepoint that cannot be rolled back to, is not contained (ErrTxLost): tx must roll
// back as a whole then. Savepoints nest.
func (tx *Tx) Savepoint(ctx context.Context, fn func() error) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT sp`); err != nil {
		return err
	}
	err := fn()
	if err == nil {
		if _, err = tx.ExecContext(ctx, `RELEASE SAVEPOINT sp`); err != nil {
			return fmt.Errorf("%w: %w", ErrTxLost, err)
		}
		return nil
	}
	if retryable(err) {
		return fmt.Errorf("%w: %w", ErrTxLost, err)
	}
	// Rolling back to a savepoint keeps it: released too, it does not pile up.
	if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT sp; RELEASE SAVEPOINT sp`); rerr != nil {
		return fmt.Errorf("%w: %w (after %w)", ErrTxLost, rerr, err)
	}
	return err
}

// ErrTxLost is the error of a savepoint that could not contain its function's error:
// the transaction must roll back as a whole (InTx runs it again when it can).
var ErrTxLost = errors.New("the transaction cannot go on")

func retryable(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "40P01" || pqErr.Code == "40001" // deadlock_detected, serialization_failure
	}
	return errors.Is(err, ErrRetry)
}

func lockName(programPK int64, key string) string { return fmt.Sprintf("%d:%s", programPK, key) }

// LockKey takes a transaction-scoped advisory lock on a program's key (a transaction
// key, say), so that writers of the same key, even one that will not find a row to
// lock, go one at a time.
func LockKey(ctx context.Context, tx *Tx, programPK int64, key string) error {
	_, err := exec(ctx, tx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, lockName(programPK, key))
	if err != nil {
		return fmt.Errorf("store.LockKey(%s): %w", key, err)
	}
	return nil
}

// Now is the current time at the database's precision, so a value rendered into an
// event payload is exactly the value stored.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// ErrNotFound means no row matched, within the caller's program.
var ErrNotFound = errors.New("not found")

// ConflictError reports a unique index violation on Field ("id", "key" or "email").
type ConflictError struct {
	Field string
}

func (e *ConflictError) Error() string { return "duplicate " + e.Field }

// InvalidError is a value PostgreSQL refused to store (a data exception, SQLSTATE
// class 22); the caller's validation should have caught it first.
type InvalidError struct {
	Msg string
}

func (e *InvalidError) Error() string { return "invalid value: " + e.Msg }

// uniqueFields maps unique indexes to the API field they protect.
var uniqueFields = map[string]string{
	"customers_program_id":          "id",
	"customers_program_key":         "key",
	"customers_program_email":       "email",
	"referral_links_program_key":    "key", // the primary key: every referral key of a program
	"webhook_endpoints_program_key": "key",
}

// translate turns driver errors into the package's typed errors.
func translate(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		if f, ok := uniqueFields[pqErr.Constraint]; ok && pqErr.Code == "23505" {
			return &ConflictError{Field: f}
		}
		if pqErr.Code.Class() == "22" {
			return &InvalidError{Msg: pqErr.Message}
		}
	}
	return err
}

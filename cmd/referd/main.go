// Command referd is a self-hosted, Partnero-compatible refer-a-friend backend.
//
//	referd serve                      everything in one process: API, workers, scheduler
//	referd api                        the REST API only (Procfile "web")
//	referd ingest                     the billing webhook receivers only (Procfile "ingest")
//	referd worker                     the background workers and scheduler (Procfile "worker")
//	referd migrate                    apply database migrations and exit
//	referd program create --name N --website URL
//	referd apikey create --program ID
//
// Configuration comes from the environment (DATABASE_URL, REDIS_URL, PORT,
// REFERD_PUBLIC_URL, ...; see config.go); flags override it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/referd/referd/admin"
	"github.com/referd/referd/api"
	"github.com/referd/referd/dispatch"
	"github.com/referd/referd/ingest"
	"github.com/referd/referd/jobs"
	"github.com/referd/referd/logging"
	"github.com/referd/referd/metrics"
	"github.com/referd/referd/ops"
	"github.com/referd/referd/promo"
	"github.com/referd/referd/providers"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/tracking"
	"github.com/referd/referd/webhook"
)

const usage = `referd: a self-hosted, Partnero-compatible refer-a-friend backend

Usage:
  referd serve     [flags]   run everything in one process (migrates first)
  referd api       [flags]   run the REST API only
  referd ingest    [flags]   run the billing webhook receivers only
  referd worker    [flags]   run the background workers and scheduler only
  referd migrate   [flags]   apply database migrations and exit
  referd program create --name NAME --website URL
  referd apikey create --program PROGRAM_ID
  referd events replay [--provider P] [--status S] [--since T] [--program ID]
                             re-run stored billing events (default: failed and unattributed)
  referd status    [--json]  queues, stuck events, failing webhook endpoints, outbox backlog

Run "referd COMMAND -h" for a command's flags. Environment: DATABASE_URL, REDIS_URL,
PORT, REFERD_PUBLIC_URL, REFERD_ADMIN_TOKEN, REFERD_ALLOW_PRIVATE_TARGETS,
REFERD_WEBHOOK_RETRY_SCHEDULE, REFERD_CONCURRENCY, REFERD_LOG_FORMAT, REFERD_SMTP_URL,
REFERD_MAIL_FROM.
`

func main() {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "referd:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "referd:", err)
		os.Exit(1)
	}
}

// tuneGC sets the garbage collector's pace unless GOGC or GOMEMLIMIT does. referd's
// live heap is small (tens of MiB) and most of what it allocates lives for one
// request or one batch, so collecting at a third of Go's default pace (GOGC=300)
// takes a fifth of its CPU per billing event off (BENCHMARKS.md), and the soft limit
// keeps the process near 200 MiB whatever the load.
func tuneGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(300)
		debug.SetMemoryLimit(192 << 20)
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

// run executes one referd command; main is a thin wrapper so tests can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError("no command given")
	}
	cmd, rest := args[0], args[1:]
	if (cmd == "program" || cmd == "apikey") && len(rest) > 0 && rest[0] == "create" {
		cmd, rest = cmd+" create", rest[1:]
	}
	if cmd == "events" && len(rest) > 0 && rest[0] == "replay" {
		cmd, rest = "events replay", rest[1:]
	}
	cfg := configFromEnv(os.Getenv)
	fs := flag.NewFlagSet("referd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "PostgreSQL URL (DATABASE_URL)")
	var name, website, programID, provider, status, since string
	var asJSON bool
	switch cmd {
	case "serve", "api", "ingest", "worker":
		cfg.serverFlags(fs)
	case "migrate":
	case "program create":
		fs.StringVar(&name, "name", "", "program name (required)")
		fs.StringVar(&website, "website", "", "the program's website URL (required)")
	case "apikey create":
		fs.StringVar(&programID, "program", "", "program id (required)")
	case "events replay":
		fs.StringVar(&provider, "provider", "", "only this provider's events ("+strings.Join(providers.Names(), ", ")+")")
		fs.StringVar(&status, "status", "", "only events with this status (failed, unattributed, received, processed, ignored; default failed and unattributed)")
		fs.StringVar(&since, "since", "", "only events received since then: an RFC 3339 time, or a duration back from now (72h)")
		fs.StringVar(&programID, "program", "", "only this program's events (its id)")
	case "status":
		fs.StringVar(&cfg.RedisURL, "redis-url", cfg.RedisURL, "Redis URL (REDIS_URL)")
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError(fmt.Sprintf("unknown command %q", strings.Join(args[:min(2, len(args))], " ")))
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError(err.Error())
	}
	if err := cfg.finish(); err != nil {
		return usageError(err.Error())
	}
	// Missing flags are usage errors whether or not the database is reachable.
	switch {
	case cmd == "program create" && (name == "" || website == ""):
		return usageError("program create needs --name and --website")
	case cmd == "apikey create" && programID == "":
		return usageError("apikey create needs --program")
	}
	log := newLogger(stderr, cfg.LogFormat)
	// The Redis client and the standard log package (asynq's metrics collector,
	// asynqmon) would otherwise print their own unstructured lines.
	logging.Libraries(log)

	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{MaxConns: cfg.DBConns})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}

	switch cmd {
	case "migrate":
		log.Info("migrations applied")
		return nil
	case "program create":
		p, key, err := referral.CreateProgram(ctx, db, name, website)
		if err != nil {
			return explain(err)
		}
		return printJSON(stdout, map[string]any{"program": referral.ProgramJSON(p), "api_key": key})
	case "apikey create":
		key, err := referral.CreateAPIKey(ctx, db, programID)
		if err != nil {
			return explain(err)
		}
		return printJSON(stdout, map[string]any{"api_key": key})
	}
	switch cmd {
	case "serve", "api", "worker":
		if cfg.Mail == nil {
			log.Info("email is off: set REFERD_SMTP_URL and REFERD_MAIL_FROM to send invitations (POST /v1/customers:invite answers 422 until then)")
		} else {
			log.Info("email on", "smtp", cfg.Mail.Host())
		}
		if cfg.SecretKey == nil {
			log.Info("REFERD_SECRET_KEY is not set: integrations cannot store API keys (PUT /v1/integrations/stripe with api_key answers 422 until then)")
		}
	}
	switch cmd {
	case "worker":
		return work(ctx, cfg, db, log)
	case "events replay":
		return replay(ctx, cfg, db, provider, status, since, programID, stdout, stderr)
	case "status":
		return printStatus(ctx, cfg, db, asJSON, stdout)
	}
	return serve(ctx, cmd, cfg, db, log)
}

// work runs the asynq workers and the scheduler (Procfile "worker") until ctx ends.
func work(ctx context.Context, cfg config, db *store.DB, log *slog.Logger) error {
	redis, stopRedis, err := jobs.Broker(cfg.RedisURL, log)
	if err != nil {
		return err
	}
	defer stopRedis()
	if cfg.MetricsAddr != "" {
		// The worker serves no API; its /metrics, /healthz and /readyz are here.
		mux := http.NewServeMux()
		mountOps(mux, "worker", cfg, db, redis)
		metrics.WatchQueues(redis)
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("REFERD_METRICS_ADDR: %w", err)
		}
		srv := &http.Server{Handler: metrics.HTTP(mux), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("worker metrics listening", "addr", ln.Addr().String())
	}
	return workOn(ctx, redis, cfg, db, log)
}

func workOn(ctx context.Context, redis asynq.RedisConnOpt, cfg config, db *store.DB, log *slog.Logger) error {
	schedule, err := webhook.ParseSchedule(cfg.RetrySchedule)
	if err != nil {
		return fmt.Errorf("REFERD_WEBHOOK_RETRY_SCHEDULE: %w", err)
	}
	deliverer := &dispatch.Deliverer{DB: db, Client: webhook.NewClient(cfg.AllowPrivate), Schedule: schedule, Log: log}
	relay := &jobs.Relay{DB: db, Redis: redis, Log: log,
		Consumers: []jobs.Consumer{jobs.RetryUnattributed, jobs.DispatchWebhooks(len(schedule)), jobs.NotifyRewards},
		Pollers:   []jobs.Poller{jobs.WebhookRetries(len(schedule)), jobs.QueueEmails(), jobs.RetryDiscounts}}
	// The relay passes on what each batch of billing events wrote as soon as it commits.
	// Promotion ids no code names yet are asked of Stripe, with the program's API key.
	resolver := &promo.Stripe{DB: db, Key: cfg.SecretKey, Client: cfg.Stripe}
	mux := jobs.HandlersWith(db, log, jobs.Options{Deliverer: deliverer, Written: relay.Poke, Redis: redis, Mail: cfg.Mail, Promo: resolver})
	mux.Handle(ops.TypeHousekeep, ops.HousekeepHandler(db, redis, log))
	runner := &jobs.Runner{Redis: redis, Concurrency: cfg.Concurrency, Log: log,
		Mux: mux, Periodic: append(jobs.Schedule(), ops.HousekeepPeriodic())}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { return relay.Run(gctx) })
	return g.Wait()
}

// serve runs the HTTP server and, for "serve", the asynq workers and scheduler, until
// ctx ends; then it stops accepting, lets in-flight requests finish and shuts down.
func serve(ctx context.Context, role string, cfg config, db *store.DB, log *slog.Logger) error {
	mux := http.NewServeMux()
	if role != "ingest" {
		a := api.New(db, cfg.PublicURL, log, cfg.DBConns)
		a.AllowPrivateTargets = cfg.AllowPrivate
		a.Email = cfg.Mail != nil
		a.SecretKey, a.Stripe = cfg.SecretKey, cfg.Stripe
		tr := tracking.New(db, log)
		tr.Email = cfg.Mail != nil
		// A PATCH /v1/program applies to the next tracking request of this process.
		a.ProgramChanged = tr.ProgramChanged
		mux.Handle("/v1/", a.Handler())
		tr.Register(mux)
		// The console calls what the API calls, with the API's settings.
		con := admin.New(db, cfg.PublicURL, log)
		con.OpsQueues = cfg.AdminToken != ""
		con.Email = a.Email
		con.AllowPrivateTargets = a.AllowPrivateTargets
		con.SecretKey, con.Stripe = a.SecretKey, a.Stripe
		con.ProgramChanged = a.RefreshProgram
		h := con.Handler()
		mux.Handle("/admin", h)
		mux.Handle("/admin/", h)
	}
	var redis asynq.RedisConnOpt
	if role != "api" {
		h := ingest.New(db, log, max(cfg.DBConns/4, 1))
		// New events are handed to the workers at once; if that fails, the worker's
		// sweep finds them in PostgreSQL.
		var err error
		var stopRedis func()
		redis, stopRedis, err = jobs.Broker(cfg.RedisURL, log)
		if err != nil {
			return err
		}
		defer stopRedis()
		handoff := jobs.NewHandoff(redis, log)
		defer handoff.Close()
		h.Queue = handoff.Queue
		h.Register(mux)
	}

	opsRedis := redis
	if opsRedis == nil && cfg.RedisURL != "" {
		// The API role queues nothing, but asynqmon and /readyz look at the broker.
		var err error
		if opsRedis, err = asynq.ParseRedisURI(cfg.RedisURL); err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
	}
	mountOps(mux, role, cfg, db, opsRedis)
	if opsRedis != nil {
		metrics.WatchQueues(opsRedis)
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: withRequestID(metrics.HTTP(mux)), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}

	g, gctx := errgroup.WithContext(ctx)
	if role == "serve" {
		g.Go(func() error { return workOn(gctx, redis, cfg, db, log) })
	}
	g.Go(func() error {
		log.Info("referd listening", "role", role, "addr", ln.Addr().String(), "public_url", cfg.PublicURL)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// explain turns a domain error into a message for the terminal.
func explain(err error) error {
	var verr *referral.ValidationError
	if errors.As(err, &verr) {
		var parts []string
		for f, msgs := range verr.Fields {
			parts = append(parts, f+": "+strings.Join(msgs, " "))
		}
		return usageError(strings.Join(parts, "; "))
	}
	return err
}

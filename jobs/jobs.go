// Package jobs runs referd's background work on asynq: the worker server that
// handles tasks, the scheduler of periodic tasks, and the broker connection (a real
// Redis from REDIS_URL, or an embedded in-memory one for a laptop).
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
)

// Broker returns the asynq connection for redisURL (redis://, rediss://, or the
// other forms asynq.ParseRedisURI accepts). An empty URL starts an embedded
// in-memory Redis, with a loud warning; stop releases it.
func Broker(redisURL string, log *slog.Logger) (opt asynq.RedisConnOpt, stop func(), err error) {
	if redisURL == "" {
		e, err := StartEmbedded()
		if err != nil {
			return nil, nil, err
		}
		log.Warn("REDIS_URL is not set: using an embedded in-memory Redis. Queued and scheduled work is LOST when referd exits; set REDIS_URL for anything but a laptop.",
			"addr", e.Addr())
		return asynq.RedisClientOpt{Addr: e.Addr()}, e.Close, nil
	}
	opt, err = asynq.ParseRedisURI(redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return opt, func() {}, nil
}

// Periodic is a task the scheduler enqueues on a cron spec ("@every 1m", "*/5 * * * *").
type Periodic struct {
	Spec string
	Task *asynq.Task
	Opts []asynq.Option
}

// Runner runs the asynq worker server and scheduler until its context ends.
type Runner struct {
	Redis       asynq.RedisConnOpt
	Concurrency int // default 64: deliveries are I/O bound
	Log         *slog.Logger
	Mux         *asynq.ServeMux
	Periodic    []Periodic
	// Queues are the queues the workers take tasks from, with their priorities (see
	// asynq.Config.Queues). Nil means asynq's default: the "default" queue alone.
	Queues map[string]int
	// ShutdownTimeout is how long in-flight tasks get to finish (default 25s); tasks
	// still running then go back to the queue.
	ShutdownTimeout time.Duration
}

// Run starts the server and scheduler and blocks until ctx is done, then shuts both
// down gracefully. It returns early with an error if either fails to start.
func (r *Runner) Run(ctx context.Context) error {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	conc := r.Concurrency
	if conc <= 0 {
		conc = 64
	}
	timeout := r.ShutdownTimeout
	if timeout <= 0 {
		timeout = 25 * time.Second
	}
	mux := r.Mux
	if mux == nil {
		mux = asynq.NewServeMux()
	}
	logger := asynqLogger{log.With("component", "asynq")}
	srv := asynq.NewServer(r.Redis, asynq.Config{
		Concurrency:     conc,
		Queues:          r.Queues,
		Logger:          logger,
		LogLevel:        asynq.WarnLevel,
		ShutdownTimeout: timeout,
		RetryDelayFunc:  retryDelay,
		IsFailure:       isFailure,
		// asynq polls its queues; when they are empty it sleeps about this long. Its 1 s
		// default would add up to 1.5 s to a webhook's delivery after a quiet moment,
		// and an idle poll is one cheap Redis script.
		TaskCheckInterval: 10 * time.Millisecond,
		// Retries and scheduled tasks are moved to their queue this often (default 5 s).
		DelayedTaskCheckInterval: time.Second,
	})
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("jobs: starting worker server: %w", err)
	}
	sch := asynq.NewScheduler(r.Redis, &asynq.SchedulerOpts{Logger: logger, LogLevel: asynq.WarnLevel})
	for _, p := range r.Periodic {
		if _, err := sch.Register(p.Spec, p.Task, p.Opts...); err != nil {
			srv.Shutdown()
			return fmt.Errorf("jobs: registering %s: %w", p.Task.Type(), err)
		}
	}
	if err := sch.Start(); err != nil {
		srv.Shutdown()
		return fmt.Errorf("jobs: starting scheduler: %w", err)
	}
	log.Info("workers started", "concurrency", conc, "periodic", len(r.Periodic))
	<-ctx.Done()
	sch.Shutdown()
	srv.Shutdown()
	log.Info("workers stopped")
	return nil
}

// asynqLogger routes asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); panic(fmt.Sprint(args...)) }

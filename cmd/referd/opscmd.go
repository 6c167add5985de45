package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hibiken/asynq"

	"github.com/referd/referd/ops"
	"github.com/referd/referd/promo"
	"github.com/referd/referd/store"
)

// replay is `referd events replay`: stored billing events run again through the
// workers' code path, which changes nothing for an event already applied.
func replay(ctx context.Context, cfg config, db *store.DB, provider, status, since, programID string, stdout, stderr io.Writer) error {
	f := ops.ReplayFilter{Provider: provider, Status: store.EventStatus(status), ProgramID: programID,
		Resolver: &promo.Stripe{DB: db, Key: cfg.SecretKey, Client: cfg.Stripe}}
	if since != "" {
		if t, err := time.Parse(time.RFC3339, since); err == nil {
			f.Since = t
		} else if d, err := time.ParseDuration(since); err == nil && d > 0 {
			f.Since = time.Now().Add(-d)
		} else {
			return usageError(fmt.Sprintf("--since %q is neither an RFC 3339 time nor a positive duration", since))
		}
	}
	res, err := ops.Replay(ctx, db, f, ops.ProgressBar(stderr, isTerminal(stderr)))
	fmt.Fprintln(stdout, res)
	if res.FirstError != "" {
		fmt.Fprintln(stderr, "first error:", res.FirstError)
	}
	if err != nil {
		return err
	}
	if res.Errors > 0 {
		return fmt.Errorf("%d events could not be replayed (they stay received; the sweep retries them)", res.Errors)
	}
	return nil
}

// printStatus is `referd status`: what an operator looks at first.
func printStatus(ctx context.Context, cfg config, db *store.DB, asJSON bool, stdout io.Writer) error {
	var redis asynq.RedisConnOpt
	if cfg.RedisURL != "" {
		var err error
		if redis, err = asynq.ParseRedisURI(cfg.RedisURL); err != nil {
			return usageError("REDIS_URL: " + err.Error())
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := ops.Status(ctx, db, redis)
	if redis == nil {
		r.RedisError = "REDIS_URL is not set: no queues to show"
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else if err := r.WriteText(stdout); err != nil {
		return err
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

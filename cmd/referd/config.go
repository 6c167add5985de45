package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/referd/referd/logging"
	"github.com/referd/referd/mail"
	"github.com/referd/referd/secrets"
	"github.com/referd/referd/stripeapi"
)

// config is docs/design.md §2: the environment, with flags overriding it.
type config struct {
	DatabaseURL   string
	RedisURL      string
	Host          string
	Port          int
	PublicURL     string
	AdminToken    string
	MetricsAddr   string
	AllowPrivate  bool
	RetrySchedule string
	Concurrency   int
	LogFormat     string
	DBConns       int
	// SMTPURL and MailFrom configure outgoing email (REFERD_SMTP_URL,
	// REFERD_MAIL_FROM); finish makes Mail from them, nil when email is off.
	SMTPURL  string
	MailFrom string
	Mail     *mail.Sender
	// SecretKey is REFERD_SECRET_KEY (32 bytes, base64), which encrypts the
	// providers' API keys integrations store; nil when unset: they cannot be stored.
	// It has no flag, which would show it in the process list.
	SecretKey *secrets.Key
	// StripeAPIURL is REFERD_STRIPE_API_URL, where Stripe API calls go; finish makes
	// Stripe, the client for them.
	StripeAPIURL string
	Stripe       *stripeapi.Client

	envErr error
}

func configFromEnv(getenv func(string) string) config {
	c := config{
		DatabaseURL:   or(getenv("DATABASE_URL"), "postgres://localhost:5432/referd?sslmode=disable"),
		RedisURL:      getenv("REDIS_URL"),
		Host:          getenv("REFERD_HOST"),
		PublicURL:     getenv("REFERD_PUBLIC_URL"),
		AdminToken:    getenv("REFERD_ADMIN_TOKEN"),
		MetricsAddr:   getenv("REFERD_METRICS_ADDR"),
		RetrySchedule: or(getenv("REFERD_WEBHOOK_RETRY_SCHEDULE"), "5s,5m,30m,2h,5h,10h,14h,20h,24h"),
		LogFormat:     getenv("REFERD_LOG_FORMAT"),
		SMTPURL:       getenv("REFERD_SMTP_URL"),
		MailFrom:      getenv("REFERD_MAIL_FROM"),
		StripeAPIURL:  or(getenv("REFERD_STRIPE_API_URL"), stripeapi.DefaultURL),
		Port:          8080,
		Concurrency:   64,
		DBConns:       16,
	}
	var errs []error
	if v := getenv("PORT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("PORT=%q is not a number", v))
		}
		c.Port = n
	}
	if v := getenv("REFERD_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("REFERD_CONCURRENCY=%q is not a number", v))
		}
		c.Concurrency = n
	}
	if v := getenv("REFERD_DB_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("REFERD_DB_CONNS=%q is not a positive number", v))
		}
		c.DBConns = n
	}
	if v := getenv("REFERD_ALLOW_PRIVATE_TARGETS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("REFERD_ALLOW_PRIVATE_TARGETS=%q is not a boolean", v))
		}
		c.AllowPrivate = b
	}
	if v := getenv("REFERD_SECRET_KEY"); v != "" {
		k, err := secrets.ParseKey(v)
		if err != nil {
			errs = append(errs, err)
		}
		c.SecretKey = k
	}
	c.envErr = errors.Join(errs...)
	return c
}

func (c *config) serverFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL for asynq (REDIS_URL); empty: embedded in-memory Redis")
	fs.StringVar(&c.Host, "host", c.Host, "listen address (REFERD_HOST; default all interfaces)")
	fs.IntVar(&c.Port, "port", c.Port, "listen port (PORT)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "base URL shown to users (REFERD_PUBLIC_URL; default http://localhost:PORT)")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "asynq worker concurrency (REFERD_CONCURRENCY)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "worker only: address for /metrics, /healthz and /readyz (REFERD_METRICS_ADDR; default none)")
	fs.StringVar(&c.SMTPURL, "smtp-url", c.SMTPURL, "outgoing email: smtp://user:pass@host:587 or smtps://... (REFERD_SMTP_URL; default none: email off)")
	fs.StringVar(&c.MailFrom, "mail-from", c.MailFrom, "the sender of outgoing email (REFERD_MAIL_FROM)")
	fs.StringVar(&c.StripeAPIURL, "stripe-api-url", c.StripeAPIURL, "where Stripe API calls go (REFERD_STRIPE_API_URL; stripe-mock in tests)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json (REFERD_LOG_FORMAT; default text on a terminal)")
}

func (c *config) finish() error {
	if c.envErr != nil {
		return c.envErr
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("port %d is out of range", c.Port)
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("concurrency must be at least 1")
	}
	if c.PublicURL == "" {
		c.PublicURL = fmt.Sprintf("http://localhost:%d", c.Port)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	if u, err := url.Parse(c.StripeAPIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("REFERD_STRIPE_API_URL=%q: want an http:// or https:// URL, such as %s", c.StripeAPIURL, stripeapi.DefaultURL)
	}
	c.Stripe = stripeapi.New(stripeapi.Options{URL: c.StripeAPIURL})
	if c.SMTPURL != "" {
		var err error
		if c.Mail, err = mail.NewSender(c.SMTPURL, c.MailFrom); err != nil {
			return err
		}
	}
	return nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// newLogger is slog with the text handler on a terminal and JSON elsewhere, unless
// format says which. A warning or error of one cause is written at most once per
// logInterval (logging.Dedupe): a dependency that is down is reported by every loop
// that uses it, many times a second.
func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	var h slog.Handler = slog.NewJSONHandler(w, nil)
	if format == "text" {
		h = slog.NewTextHandler(w, nil)
	}
	return slog.New(requestIDHandler{logging.Dedupe(h, logInterval)})
}

// logInterval is how often one cause of warnings is written at most.
const logInterval = 30 * time.Second

// requestIDHandler adds the request id a context carries (logging.WithRequestID) to
// every record logged with it: an HTTP request's, or, in a job, the id of the ingest
// request that received the billing event.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := logging.RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

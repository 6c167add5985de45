// Package logging brings what the libraries referd uses write about themselves (the
// Redis client, asynq's helpers, anything that prints through the standard log
// package) into referd's structured logger, and keeps a dependency that is down
// from flooding it: a warning or error of one cause is written at most once per
// interval, and the next line of that cause says how many were left out. It also
// carries the request id on whose behalf work is done (WithRequestID), which log
// lines, outbox events and webhook deliveries repeat.
package logging

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SuppressedKey is the attribute that says how many lines of the record's cause
// were left out since the previous line of that cause.
const SuppressedKey = "suppressed"

// Dedupe returns a handler that passes records below slog.LevelWarn to h as they
// are, and writes a warning or an error at most once per interval for each cause.
// A record's cause is the network error it reports (dial tcp 10.0.0.5:6379: connect:
// connection refused), wherever in the message or its err attribute it is; else
// its message and err attribute, with numbers and UUIDs left out. So a Redis that
// is down is one line per interval, however many of asynq's loops and the Redis
// client's pools report it and in whatever words. Handlers derived with WithAttrs
// and WithGroup share the count.
//
// The line written at the end of an interval carries SuppressedKey with the number
// of lines of its cause that were left out. A cause that goes quiet has its last
// left-out line written, with that count, when the next warning of any cause
// arrives.
func Dedupe(h slog.Handler, interval time.Duration) slog.Handler {
	return &dedupe{h: h, s: &dedupeState{interval: interval, now: time.Now, causes: map[string]*window{}}}
}

type dedupe struct {
	h slog.Handler
	s *dedupeState
}

type dedupeState struct {
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	causes map[string]*window
	swept  time.Time
}

// window is one cause's current interval.
type window struct {
	until      time.Time
	suppressed int
	// last is the latest record left out, and the handler it came to, written when
	// the cause goes quiet.
	last  slog.Record
	lastH slog.Handler
}

// maxCauses bounds the memory of causes: past it, counting starts over.
const maxCauses = 10_000

func (d *dedupe) Enabled(ctx context.Context, l slog.Level) bool { return d.h.Enabled(ctx, l) }

func (d *dedupe) WithAttrs(as []slog.Attr) slog.Handler {
	return &dedupe{h: d.h.WithAttrs(as), s: d.s}
}

func (d *dedupe) WithGroup(name string) slog.Handler {
	return &dedupe{h: d.h.WithGroup(name), s: d.s}
}

type pendingLine struct {
	h slog.Handler
	r slog.Record
}

func (d *dedupe) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return d.h.Handle(ctx, r)
	}
	key := causeOf(r)
	s := d.s
	s.mu.Lock()
	now := s.now()
	quiet := s.sweep(now, key)
	w := s.causes[key]
	write, left := false, 0
	switch {
	case w == nil:
		if len(s.causes) >= maxCauses {
			s.causes = map[string]*window{}
		}
		s.causes[key] = &window{until: now.Add(s.interval)}
		write = true
	case !now.Before(w.until):
		left = w.suppressed
		*w = window{until: now.Add(s.interval)}
		write = true
	default:
		w.suppressed++
		w.last, w.lastH = r.Clone(), d.h
	}
	s.mu.Unlock()

	for _, p := range quiet {
		p.h.Handle(ctx, p.r)
	}
	if !write {
		return nil
	}
	if left > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int(SuppressedKey, left))
	}
	return d.h.Handle(ctx, r)
}

// sweep, about once a second, ends the windows that are over, except the one of
// cause current (its record is about to end it): a cause with lines left out has its
// last one written and starts a new window, so it still writes at most one line per
// interval; a cause with none is forgotten. Call with s.mu held.
func (s *dedupeState) sweep(now time.Time, current string) []pendingLine {
	if now.Sub(s.swept) < time.Second {
		return nil
	}
	s.swept = now
	var out []pendingLine
	for k, w := range s.causes {
		if k == current || now.Before(w.until) {
			continue
		}
		if w.suppressed == 0 {
			delete(s.causes, k)
			continue
		}
		r := w.last
		if w.suppressed > 1 {
			r.AddAttrs(slog.Int(SuppressedKey, w.suppressed-1)) // the ones before it
		}
		out = append(out, pendingLine{w.lastH, r})
		*w = window{until: now.Add(s.interval)}
	}
	return out
}

var (
	// netError finds a network error in a message: the op, the network and what
	// follows (addresses, the syscall error).
	netError = regexp.MustCompile(`\b(?:dial|read|write) (?:tcp|tcp4|tcp6|udp|unix)\b.*$`)
	// localPort is the ephemeral port of a read or write error (127.0.0.1:54321->...),
	// which differs for every connection of one cause.
	localPort = regexp.MustCompile(`:\d+->`)
	// varying are the parts of a message that differ between lines of one cause.
	varying = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\d+`)
)

func causeOf(r slog.Record) string {
	text := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "error" {
			text += " | " + a.Value.String()
		}
		return true
	})
	if m := netError.FindString(text); m != "" {
		return localPort.ReplaceAllString(m, "->")
	}
	return varying.ReplaceAllString(text, "#")
}

// Libraries sends what the Redis client (go-redis) and the standard log package
// print (asynq's metrics collector, asynqmon, net/http's server errors) to l as
// warnings, with a component attribute, instead of unstructured lines on stderr.
// Both are process-wide: the last call wins.
func Libraries(l *slog.Logger) {
	redis.SetLogger(redisLogger{l.With("component", "redis")})
	log.SetFlags(0)
	log.SetPrefix("")
	log.SetOutput(stdWriter{l.With("component", "log")})
}

// redisLogger is go-redis's internal.Logging.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	r.l.WarnContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}

// stdWriter is the standard log package's output: each line a warning.
type stdWriter struct{ l *slog.Logger }

func (w stdWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			w.l.Warn(line)
		}
	}
	return len(p), nil
}

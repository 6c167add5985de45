package webhook

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultSchedule is the default REFERD_WEBHOOK_RETRY_SCHEDULE: the delays after
// the first, second, ... failed attempt, about three days in all.
const DefaultSchedule = "5s,5m,30m,2h,5h,10h,14h,20h,24h"

// maxRetryAfter caps a receiver's Retry-After, so a typo on their side cannot
// park a delivery for months.
const maxRetryAfter = 24 * time.Hour

// defaultSchedule is DefaultSchedule parsed, for RetryDelay with no schedule.
var defaultSchedule = func() []time.Duration {
	s, err := ParseSchedule(DefaultSchedule)
	if err != nil {
		panic(err)
	}
	return s
}()

// ParseSchedule parses a comma-separated list of positive Go durations
// ("5s,5m,30m,2h"), as in REFERD_WEBHOOK_RETRY_SCHEDULE.
func ParseSchedule(s string) ([]time.Duration, error) {
	parts := strings.Split(s, ",")
	out := make([]time.Duration, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("webhook: ParseSchedule(%q): entry %d is empty", s, i+1)
		}
		d, err := time.ParseDuration(p)
		if err != nil {
			return nil, fmt.Errorf("webhook: ParseSchedule(%q): entry %d: %w", s, i+1, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("webhook: ParseSchedule(%q): entry %d (%s) is not positive", s, i+1, p)
		}
		out[i] = d
	}
	return out, nil
}

// RetryError is a failed attempt that carries the delay its receiver asked for
// (Retry-After), so the queue's retry-delay function can honour it.
type RetryError struct {
	// Delay is the receiver's Retry-After; 0 when it sent none.
	Delay time.Duration
	Err   error
}

// Error describes the failure and the delay asked for.
func (e *RetryError) Error() string {
	if e.Delay > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.Delay)
	}
	return fmt.Sprint(e.Err)
}

// Unwrap returns the failure.
func (e *RetryError) Unwrap() error { return e.Err }

// RetryDelay returns how long to wait before the next attempt; it fits asynq's
// RetryDelayFunc, whose first argument counts retries so far. attempt 0 is the
// delay after the first failure, and attempts past the end of schedule use its
// last entry (an empty schedule means DefaultSchedule). The delay is the
// schedule's plus jitter(delay), which returns an amount to add (nil means a
// uniformly random ±10%), so endpoints failing together do not retry together. A
// *RetryError in err whose Delay is longer than the schedule's delay wins as is:
// the receiver asked for at least that long.
func RetryDelay(schedule []time.Duration, attempt int, err error, jitter func(time.Duration) time.Duration) time.Duration {
	if len(schedule) == 0 {
		schedule = defaultSchedule
	}
	d := schedule[min(max(attempt, 0), len(schedule)-1)]
	if re, ok := errors.AsType[*RetryError](err); ok && re.Delay > d {
		return re.Delay
	}
	if jitter == nil {
		jitter = Jitter
	}
	return d + jitter(d)
}

// Jitter returns a uniformly random amount in [-d/10, +d/10], RetryDelay's default.
func Jitter(d time.Duration) time.Duration {
	span := int64(d / 10)
	if span <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(2*span+1) - span)
}

// parseRetryAfter reads a Retry-After value, delta-seconds or an HTTP-date
// measured from now, capped at 24 h. It returns 0 for a missing, malformed or
// past value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// On ErrRange n is the largest uint64: still "very long", so capped.
		d = maxRetryAfter
		if n < uint64(maxRetryAfter/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

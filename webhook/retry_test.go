package webhook

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func noJitter(time.Duration) time.Duration { return 0 }

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	schedule := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute}
	failure := errors.New("HTTP 500")
	for _, tc := range []struct {
		name    string
		attempt int
		err     error
		want    time.Duration
	}{
		{"first failure", 0, failure, 5 * time.Second},
		{"second failure", 1, failure, 5 * time.Minute},
		{"last entry", 2, failure, 30 * time.Minute},
		{"past the end", 3, failure, 30 * time.Minute},
		{"far past the end", 100, failure, 30 * time.Minute},
		{"negative", -1, failure, 5 * time.Second},
		{"nil error", 1, nil, 5 * time.Minute},
		{"Retry-After longer wins", 0, &RetryError{Delay: time.Hour, Err: failure}, time.Hour},
		{"wrapped Retry-After longer wins", 1, fmt.Errorf("deliver: %w", &RetryError{Delay: time.Hour, Err: failure}), time.Hour},
		{"Retry-After shorter loses", 1, &RetryError{Delay: time.Second, Err: failure}, 5 * time.Minute},
		{"no Retry-After", 1, &RetryError{Err: failure}, 5 * time.Minute},
	} {
		if got := RetryDelay(schedule, tc.attempt, tc.err, noJitter); got != tc.want {
			t.Errorf("%s: RetryDelay = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestRetryDelayJitter(t *testing.T) {
	t.Parallel()
	schedule := []time.Duration{10 * time.Second, time.Minute}
	plus := func(d time.Duration) time.Duration { return d / 10 }
	minus := func(d time.Duration) time.Duration { return -d / 10 }
	if got := RetryDelay(schedule, 1, nil, plus); got != 66*time.Second {
		t.Errorf("+10%% jitter: %s, want 66s", got)
	}
	if got := RetryDelay(schedule, 0, nil, minus); got != 9*time.Second {
		t.Errorf("-10%% jitter: %s, want 9s", got)
	}
	// A longer Retry-After is honoured exactly, not jittered below what was asked.
	if got := RetryDelay(schedule, 0, &RetryError{Delay: 20 * time.Second}, minus); got != 20*time.Second {
		t.Errorf("Retry-After with jitter: %s, want 20s", got)
	}
	// The default jitter stays within ±10%.
	for range 1000 {
		if got := RetryDelay(schedule, 1, nil, nil); got < 54*time.Second || got > 66*time.Second {
			t.Fatalf("default jitter: %s outside [54s, 66s]", got)
		}
	}
	if got := Jitter(5); got != 0 {
		t.Errorf("Jitter(5ns) = %s, want 0", got)
	}
}

func TestRetryDelayEmptyScheduleIsDefault(t *testing.T) {
	t.Parallel()
	if got := RetryDelay(nil, 8, nil, noJitter); got != 24*time.Hour {
		t.Errorf("RetryDelay(nil, 8) = %s, want 24h", got)
	}
}

func TestRetryError(t *testing.T) {
	t.Parallel()
	base := errors.New("HTTP 429")
	err := error(&RetryError{Delay: time.Minute, Err: base})
	if !errors.Is(err, base) || err.Error() != "HTTP 429 (retry after 1m0s)" {
		t.Errorf("RetryError = %q, Is(base) = %v", err, errors.Is(err, base))
	}
	if got := (&RetryError{Err: base}).Error(); got != "HTTP 429" {
		t.Errorf("RetryError without delay = %q", got)
	}
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	good := map[string][]time.Duration{
		DefaultSchedule: {5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
			10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour},
		"1s":              {time.Second},
		" 1m , 1h30m ":    {time.Minute, 90 * time.Minute},
		"500ms,1.5s,1h0m": {500 * time.Millisecond, 1500 * time.Millisecond, time.Hour},
	}
	for s, want := range good {
		got, err := ParseSchedule(s)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseSchedule(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", " ", ",", "5s,", ",5s", "5s,,5m", "5", "1d", "5s,x", "0s", "-5s", "5s,0", "5s;5m"} {
		if got, err := ParseSchedule(s); err == nil {
			t.Errorf("ParseSchedule(%q) = %v, want an error", s, got)
		}
	}
}

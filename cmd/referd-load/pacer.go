package main

import (
	"context"
	"sync/atomic"
	"time"
)

// maxRate is the upper bound for -rate (one request per microsecond).
const maxRate = 1e6

// pacer spaces the starts of requests interval apart across all clients
// (open-loop pacing for -rate). reserve hands out slots in order: each slot
// is the later of the previous slot plus interval and the current time. So
// while some client is waiting for its slot, slots form the exact grid
// origin, origin+interval, origin+2*interval, ...; when every client is busy
// and a slot passes unclaimed, the schedule falls behind and continues from
// the time the next slot is asked for, without a burst to catch up.
//
// The zero value is not usable; use newPacer. reserve is safe for
// concurrent use.
type pacer struct {
	interval time.Duration
	origin   time.Time
	now      func() time.Time // time.Now, or a fake clock in tests
	next     atomic.Int64     // earliest free slot, in ns since origin
}

// newPacer returns a pacer for rate requests per second (0 < rate <=
// maxRate) whose first slot is at origin (or later, when asked later).
func newPacer(rate float64, origin time.Time, now func() time.Time) *pacer {
	interval := max(time.Duration(float64(time.Second)/rate), 1)
	return &pacer{interval: interval, origin: origin, now: now}
}

// reserve claims the next slot and returns its time. The caller should start
// its request at that time (see sleepUntil).
func (p *pacer) reserve() time.Time {
	for {
		cur := p.next.Load()
		slot := max(cur, int64(p.now().Sub(p.origin)))
		if p.next.CompareAndSwap(cur, slot+int64(p.interval)) {
			return p.origin.Add(time.Duration(slot))
		}
	}
}

// sleepUntil blocks until t or until ctx is done. It reports whether t was
// reached with ctx still live.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

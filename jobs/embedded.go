package jobs

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Embedded is an in-memory Redis (miniredis) served on a loopback port, so that
// `referd serve` runs its real asynq workers on a machine without Redis. It keeps
// nothing on disk: whatever is queued when the process exits is gone.
type Embedded struct {
	m    *miniredis.Miniredis
	stop chan struct{}
	once sync.Once
}

// StartEmbedded starts an embedded Redis on 127.0.0.1 at a free port.
func StartEmbedded() (*Embedded, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("jobs: starting embedded Redis: %w", err)
	}
	e := &Embedded{m: m, stop: make(chan struct{})}
	go e.expire()
	return e, nil
}

// expire advances miniredis's clock with the real one: miniredis only expires keys
// when told time has passed, and asynq relies on expiring keys (server heartbeats,
// uniqueness locks).
func (e *Embedded) expire() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Addr is the host:port the embedded Redis listens on.
func (e *Embedded) Addr() string { return e.m.Addr() }

// Close stops the embedded Redis; everything in it is lost.
func (e *Embedded) Close() {
	e.once.Do(func() {
		close(e.stop)
		e.m.Close()
	})
}

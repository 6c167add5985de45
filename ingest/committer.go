// Package ingest receives billing providers' webhooks: it reads at most 1 MiB of the
// raw body, verifies it before parsing, stores the verified event and answers only
// once the event is durable in PostgreSQL, then hands it to the workers.
package ingest

import (
	"context"
	"time"

	"github.com/referd/referd/store"
)

// committer group-commits stored events: events that arrive while a commit is under
// way share the next one (one multi-row INSERT, one WAL flush), and each request is
// answered once its own row is durable.
type committer struct {
	db    *store.DB
	queue chan *pendingEvent
	max   int
}

type pendingEvent struct {
	ev   store.ProviderEvent
	done chan commitResult
}

type commitResult struct {
	isNew bool
	pk    int64
	err   error
}

// newCommitter starts workers that each commit up to max queued events at a time.
func newCommitter(db *store.DB, workers, max int) *committer {
	c := &committer{db: db, queue: make(chan *pendingEvent, workers*max*4), max: max}
	for i := 0; i < workers; i++ {
		go c.work()
	}
	return c
}

// store makes ev durable and says whether it was new (false: a redelivery), setting
// a new one's PK.
func (c *committer) store(ctx context.Context, ev *store.ProviderEvent) (bool, error) {
	p := &pendingEvent{ev: *ev, done: make(chan commitResult, 1)}
	select {
	case c.queue <- p:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case r := <-p.done:
		ev.PK = r.pk
		return r.isNew, r.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (c *committer) work() {
	for first := range c.queue {
		batch := []*pendingEvent{first}
	more:
		for len(batch) < c.max {
			select {
			case p := <-c.queue:
				batch = append(batch, p)
			default:
				break more
			}
		}
		events := make([]store.ProviderEvent, len(batch))
		for i, p := range batch {
			events[i] = p.ev
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		news, err := store.InsertProviderEvents(ctx, c.db, events)
		cancel()
		for i, p := range batch {
			r := commitResult{err: err}
			if err == nil {
				r.isNew, r.pk = news[i], events[i].PK
			}
			p.done <- r
		}
	}
}

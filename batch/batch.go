// Package batch lets calls that arrive together run as one batch, so that many small
// database statements become a few large ones (group commit). It knows nothing of
// the database itself: the caller's function runs each batch.
package batch

import (
	"context"
	"time"
)

// Group runs calls that arrive together as one batch: while one batch is at the
// database, the calls that come in meanwhile queue up and go as the next one. Many
// small statements become a few large ones, with one round trip and one commit each
// (group commit); a lone call still goes at once. Each caller waits for its own
// result only.
type Group[I, O any] struct {
	queue chan *groupCall[I, O]
	max   int
	run   func(ctx context.Context, in []I) ([]O, error)
}

type groupCall[I, O any] struct {
	in   I
	done chan groupResult[O]
}

type groupResult[O any] struct {
	out O
	err error
}

// Timeout bounds each batch's run.
const Timeout = 30 * time.Second

// New starts workers that each take up to max queued calls at a time and pass
// their inputs to run, which returns one output per input, in order. An error from
// run is every call's error in that batch.
func New[I, O any](workers, max int, run func(ctx context.Context, in []I) ([]O, error)) *Group[I, O] {
	g := &Group[I, O]{queue: make(chan *groupCall[I, O], 4*workers*max), max: max, run: run}
	for range workers {
		go g.work()
	}
	return g
}

// Do runs in in the next batch and returns its output. Once queued, a call runs
// whether or not its caller still waits.
func (g *Group[I, O]) Do(ctx context.Context, in I) (O, error) {
	c := &groupCall[I, O]{in: in, done: make(chan groupResult[O], 1)}
	var zero O
	select {
	case g.queue <- c:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case r := <-c.done:
		return r.out, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (g *Group[I, O]) work() {
	for first := range g.queue {
		batch := []*groupCall[I, O]{first}
	more:
		for len(batch) < g.max {
			select {
			case c := <-g.queue:
				batch = append(batch, c)
			default:
				break more
			}
		}
		in := make([]I, len(batch))
		for i, c := range batch {
			in[i] = c.in
		}
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		out, err := g.run(ctx, in)
		cancel()
		for i, c := range batch {
			var r groupResult[O]
			if err != nil {
				r.err = err
			} else if i < len(out) {
				r.out = out[i]
			}
			c.done <- r
		}
	}
}

// InOrder returns, for each of pks, a pointer to the row of rows with that pk (nil
// when none): what a Group that reads rows by pk answers its callers, whatever order
// the database returned them in.
func InOrder[T any](pks []int64, rows []T, pk func(*T) int64) []*T {
	byPK := make(map[int64]*T, len(rows))
	for i := range rows {
		byPK[pk(&rows[i])] = &rows[i]
	}
	out := make([]*T, len(pks))
	for i, p := range pks {
		out[i] = byPK[p]
	}
	return out
}

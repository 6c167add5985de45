package batch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/referd/referd/batch"
)

// Calls that arrive together share a batch; each gets its own output, and a batch's
// error is each of its calls' error.
func TestGroupBatchesCalls(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sizes []int
	release := make(chan struct{})
	g := batch.New(1, 8, func(_ context.Context, in []int) ([]string, error) {
		<-release
		mu.Lock()
		sizes = append(sizes, len(in))
		mu.Unlock()
		if slices.Contains(in, -1) {
			return nil, errors.New("bad batch")
		}
		out := make([]string, len(in))
		for i, v := range in {
			out[i] = fmt.Sprint(v * 2)
		}
		return out, nil
	})
	var wg sync.WaitGroup
	results := make([]string, 20)
	for i := range 20 {
		wg.Go(func() {
			out, err := g.Do(context.Background(), i)
			if err != nil {
				t.Errorf("Do(%d): %v", i, err)
			}
			results[i] = out
		})
	}
	close(release)
	wg.Wait()
	for i, r := range results {
		if r != fmt.Sprint(i*2) {
			t.Errorf("Do(%d) = %q", i, r)
		}
	}
	total := 0
	for _, s := range sizes {
		if s > 8 {
			t.Errorf("a batch of %d, max 8", s)
		}
		total += s
	}
	if total != 20 {
		t.Errorf("%d calls ran, want 20", total)
	}
	if _, err := g.Do(context.Background(), -1); err == nil {
		t.Error("a failed batch answered no error")
	}
}

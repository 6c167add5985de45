package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type putOff struct{}

func (putOff) Error() string  { return "held" }
func (putOff) Deferred() bool { return true }

// A task put off on purpose is counted as deferred, not as an error.
func TestJobsCountsDeferredApart(t *testing.T) {
	for _, tc := range []struct {
		err    error
		result string
	}{
		{nil, "ok"},
		{errors.New("boom"), "error"},
		{fmt.Errorf("wrapped: %w", putOff{}), "deferred"},
	} {
		task := "test:" + tc.result
		h := Jobs(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return tc.err }))
		if err := h.ProcessTask(context.Background(), asynq.NewTask(task, nil)); !errors.Is(err, tc.err) {
			t.Errorf("the handler's error %v was not passed on (%v)", tc.err, err)
		}
		if n := testutil.ToFloat64(jobs.WithLabelValues(task, tc.result)); n != 1 {
			t.Errorf("%s counted %v times as %s, want 1", task, n, tc.result)
		}
	}
}

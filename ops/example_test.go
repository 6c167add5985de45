package ops_test

import (
	"fmt"
	"os"

	"github.com/referd/referd/ops"
)

// Away from a terminal (a log, a pipe) the bar is written once, at the end.
func ExampleProgressBar() {
	progress := ops.ProgressBar(os.Stdout, false)
	for done := 1; done <= 456; done++ {
		progress(done, 456)
	}
	// Output: [##############################] 456/456
}

func ExampleReplayResult_String() {
	r := ops.ReplayResult{Replayed: 12, Processed: 10, Unattributed: 1, Failed: 1}
	fmt.Println(r)
	// Output: replayed 12 events: 10 processed, 1 unattributed, 1 failed, 0 errors
}

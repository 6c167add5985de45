package ops_test

import (
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/ops"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	bar := ops.ProgressBarAt(&b, true, clock.now)
	bar(1, 10) // the first call draws
	bar(2, 10) // too soon
	clock.t = clock.t.Add(150 * time.Millisecond)
	bar(5, 10) // a tenth of a second later: drawn
	bar(6, 10) // too soon
	bar(9, 9)  // the end (fewer than counted at the start) is always drawn, then the line ends
	bar(9, 9)  // nothing after the end
	want := "\r[###...........................] 1/10" +
		"\r[###############...............] 5/10" +
		"\r[##############################] 9/9 \n"
	if got := b.String(); got != want {
		t.Errorf("terminal output\n%q\nwant\n%q", got, want)
	}
}

func TestProgressBarElsewhere(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	bar := ops.ProgressBar(&b, false)
	for i := 1; i < 456; i++ {
		bar(i, 456)
	}
	if b.Len() != 0 {
		t.Fatalf("wrote %q before the end", b.String())
	}
	bar(456, 456)
	bar(456, 456)
	if got, want := b.String(), "[##############################] 456/456\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

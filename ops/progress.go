package ops

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progressWidth is how many cells the bar has.
const progressWidth = 30

// progressEvery is how often, at most, a terminal's bar is redrawn.
const progressEvery = 100 * time.Millisecond

// ProgressBar returns a progress callback (for Replay) that draws on w. On a
// terminal it redraws one line, "\r[#####.....] 123/456", at most ten times a
// second and once more at the end (done >= total), then ends the line. Elsewhere (a
// log file, a pipe) it writes nothing until the end, then that line once. The
// callback is for one goroutine, and does nothing after the end.
func ProgressBar(w io.Writer, isTerminal bool) func(done, total int) {
	return progressBar(w, isTerminal, time.Now)
}

func progressBar(w io.Writer, isTerminal bool, now func() time.Time) func(done, total int) {
	var (
		last     time.Time
		drawn    bool
		finished bool
		width    int // of the longest line drawn, so a shorter one covers it
	)
	return func(done, total int) {
		if finished {
			return
		}
		end := done >= total
		if !end {
			if !isTerminal {
				return
			}
			if t := now(); drawn && t.Sub(last) < progressEvery {
				return
			}
		}
		last, drawn, finished = now(), true, end
		line := progressLine(done, total)
		if !isTerminal {
			fmt.Fprintln(w, line)
			return
		}
		pad := max(width-len(line), 0)
		width = max(width, len(line))
		fmt.Fprintf(w, "\r%s%s", line, strings.Repeat(" ", pad))
		if end {
			fmt.Fprintln(w)
		}
	}
}

// progressLine is "[#####.....] done/total".
func progressLine(done, total int) string {
	filled := progressWidth
	if total > 0 && done < total {
		filled = progressWidth * max(done, 0) / total
	}
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(".", progressWidth-filled), done, total)
}

package webhook

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{DefaultSchedule, "", "5s,,5m", "-1s", "1h30m", "0", "1d", " 5s , 5m "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSchedule(s)
		if err != nil {
			return
		}
		if len(got) != strings.Count(s, ",")+1 {
			t.Errorf("ParseSchedule(%q) has %d entries", s, len(got))
		}
		for _, d := range got {
			if d <= 0 {
				t.Errorf("ParseSchedule(%q) has non-positive %s", s, d)
			}
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "120", "-1", "99999999999999999999", "Wed, 04 Mar 2026 05:08:07 GMT", "Wed Mar  4 05:08:07 2026"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter(s, now); d < 0 || d > maxRetryAfter {
			t.Errorf("parseRetryAfter(%q) = %s", s, d)
		}
	})
}

func FuzzValidUTF8(f *testing.F) {
	f.Add([]byte("caf\xc3\xa9"), 4)
	f.Add([]byte("\xff\xfe"), 4)
	f.Fuzz(func(t *testing.T, b []byte, limit int) {
		limit = 1 + abs(limit)%64
		b = b[:min(len(b), limit)]
		s := validUTF8(b, limit)
		if !utf8.ValidString(s) || len(s) > limit {
			t.Errorf("validUTF8(%q, %d) = %q", b, limit, s)
		}
		if utf8.Valid(b) && len(b) < limit && s != string(b) {
			t.Errorf("validUTF8(%q, %d) changed valid input to %q", b, limit, s)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

package api

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	want := time.Date(2025, 5, 9, 17, 42, 13, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2025-05-09T17:42:13.000000Z", want}, // as Partnero writes it
		{"2025-05-09T17:42:13Z", want},
		{"2025-05-09T19:42:13+02:00", want},
		{"2025-05-09T12:42:13-0500", want},
		{"2025-05-09T17:42:13", want}, // no offset: UTC
		{"2025-05-09 17:42:13", want},
		{" 2025-05-09T17:42:13.5Z ", want.Add(500 * time.Millisecond)},
		{"2025-05-09T17:42Z", want.Add(-13 * time.Second)},
		{"2025-05-09", time.Date(2025, 5, 9, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseTime(tc.in)
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "yesterday", "1700000000", "2025-13-01", "2025-05-09T25:00:00Z", "09/05/2025",
		"9999-12-31T23:30:00-01:00", // year 10000 in UTC
	} {
		if got, err := parseTime(in); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", in, got)
		}
	}
}

// FuzzParseTime: whatever created_at a request holds, parsing does not panic, and a
// time it accepts is in UTC and reads back the same.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2025-05-09T17:42:13.000000Z", "2025-05-09T19:42:13+02:00", "2025-05-09", "2025-05-09 17:42:13",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999-23:59", "2025-05-09T17:42:13.1234567891234Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s)
		if err != nil {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("parseTime(%q) = %v, not UTC", s, got)
		}
		back, err := time.Parse(time.RFC3339Nano, got.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(got) {
			t.Fatalf("parseTime(%q) = %v, which reads back as %v (%v)", s, got, back, err)
		}
	})
}

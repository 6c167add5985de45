package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/referd/referd/providers"
)

// hasNULByDecoding is jsonHasNUL the slow way: every string token of valid JSON,
// keys included (a map would keep one of two equal keys only).
func hasNULByDecoding(t *testing.T, b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			t.Fatalf("Token on valid JSON %q: %v", b, err)
		}
		if s, ok := tok.(string); ok && strings.ContainsRune(s, 0) {
			return true
		}
	}
}

var nulCases = map[string]bool{
	`{}`:                              false,
	`{"a": "\u0000"}`:                 true,
	`{"a\u0000": 1}`:                  true,
	`["x", {"b": ["y\u0000z"]}]`:      true,
	`{"a": "\\u0000"}`:                false, // a backslash, then the text u0000
	`{"a": "\\\u0000"}`:               true,
	`{"a": "\"\u0000"}`:               true,
	`{"a": "\ud800\u0000"}`:           true, // a lone surrogate, then NUL
	`{"a": "\u00000"}`:                true,
	`{"a": "\u0001\u0100"}`:           false,
	"{\"a\": \"\\u0000\", \"a\": 1}":  true,
	`{"u0000": "\\u0000", "b": "\\"}`: false,
}

func TestJSONHasNUL(t *testing.T) {
	for in, want := range nulCases {
		if got := jsonHasNUL([]byte(in)); got != want {
			t.Errorf("jsonHasNUL(%s) = %v, want %v", in, got, want)
		}
	}
}

// FuzzJSONHasNUL checks jsonHasNUL against decoding, on valid JSON: the workers'
// decoder finds a NUL character exactly when jsonHasNUL does.
func FuzzJSONHasNUL(f *testing.F) {
	for in := range nulCases {
		f.Add([]byte(in))
	}
	// Real webhooks: the provider payloads of the repository's testdata.
	filepath.WalkDir(filepath.Join("..", "testdata"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := jsonHasNUL(b)
		if !json.Valid(b) {
			return
		}
		if want := hasNULByDecoding(t, b); got != want {
			t.Errorf("jsonHasNUL(%q) = %v, decoding says %v", b, got, want)
		}
	})
}

func TestUnstorableLimits(t *testing.T) {
	for _, tc := range []struct {
		id, typ string
		fields  string
	}{
		{"evt_1", "invoice.paid", ""},
		{strings.Repeat("x", MaxEventText), strings.Repeat("t", MaxEventText), ""},
		{strings.Repeat("x", MaxEventText+1), "invoice.paid", "event_id"},
		{"evt_\x00", "invoice.paid", "event_id"},
		{"evt_\xff", "invoice.paid", "event_id"},
		{"evt_1", "invoice.\x00paid", "type"},
		{"evt_1", strings.Repeat("t", 10000), "type"},
		{"evt_\x00", "\xfe", "event_id,type"},
	} {
		why := unstorable([]byte(`{}`), providers.Parsed{EventID: tc.id, Type: tc.typ})
		var fields []string
		for _, f := range []string{"event_id", "type", "body"} {
			if len(why[f]) > 0 {
				fields = append(fields, f)
			}
		}
		if got := strings.Join(fields, ","); got != tc.fields {
			t.Errorf("unstorable(%.20q, %.20q) flags %q (%v), want %q", tc.id, tc.typ, got, why, tc.fields)
		}
	}
}

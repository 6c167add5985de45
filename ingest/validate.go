package ingest

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/referd/referd/providers"
)

// MaxEventText is the longest event id and event type stored, in bytes. Providers'
// ids are tens of bytes; far longer ones would not fit the unique index on the event
// id (a btree row holds at most 2704 bytes), and no longer ones are expected.
const MaxEventText = 255

// unstorable says why a verified event cannot be stored, by field ("event_id",
// "type", "body"), or nil when it can. Such an event is the sender's error (400):
// sending it again fails again, so it must not reach the group commit, where it
// would fail the events stored with it.
func unstorable(body []byte, p providers.Parsed) map[string][]string {
	var why map[string][]string
	add := func(field, msg string) {
		if why == nil {
			why = map[string][]string{}
		}
		why[field] = append(why[field], msg)
	}
	for _, f := range []struct{ name, v string }{{"event_id", p.EventID}, {"type", p.Type}} {
		// PostgreSQL text holds neither NUL bytes nor invalid UTF-8.
		switch {
		case len(f.v) > MaxEventText:
			add(f.name, "must be at most "+strconv.Itoa(MaxEventText)+" bytes, not "+strconv.Itoa(len(f.v)))
		case !utf8.ValidString(f.v):
			add(f.name, "must be valid UTF-8")
		case strings.IndexByte(f.v, 0) >= 0:
			add(f.name, "must not contain NUL characters")
		}
	}
	// The body is stored as it came (bytea), but the workers put what they read from it
	// into text and jsonb, which refuse NUL: such an event could never be processed.
	if jsonHasNUL(body) {
		add("body", `must not contain NUL characters (\u0000)`)
	}
	return why
}

// jsonHasNUL reports whether a JSON text has a NUL character in a string, raw or
// escaped as \u0000 (keys count: they are strings too). It does not validate b: on
// text that is not JSON its answer means nothing.
func jsonHasNUL(b []byte) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return true
	}
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return false // the common case: one pass, no allocations
	}
	// \u0000 may also be the text after an escaped backslash ("\\u0000"): walk the
	// strings, escape by escape.
	inString := false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			inString = !inString
		case '\\':
			if !inString {
				continue
			}
			if bytes.HasPrefix(b[i+1:], []byte(`u0000`)) {
				return true
			}
			i++ // the escaped character: a quote or backslash there ends nothing
		}
	}
	return false
}

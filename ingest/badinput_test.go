package ingest_test

import (
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// stripeEventOf is a Stripe invoice.paid event with this id (JSON-escaped as given,
// so a test can write \u0000) and metadata.
func stripeEventOf(idJSON, metadata string) []byte {
	return []byte(fmt.Sprintf(`{"id": "%s", "object": "event", "api_version": "2023-10-16", "created": %d, "livemode": false,
		"type": "invoice.paid", "data": {"object": {"id": "in_1", "object": "invoice", "amount_paid": 5000, "currency": "usd",
		"customer": "cus_1", "customer_email": "bob@example.com", "subscription": null, "metadata": %s}}}`, idJSON, time.Now().Unix(), metadata))
}

// randomText is n random characters that do not compress.
func randomText(n int) string {
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(rand.Text())
	}
	return sb.String()[:n]
}

// A verified event the database cannot hold is the sender's error: 400 with the
// reason, nothing stored; one just within the limits is stored.
func TestUnstorableEventsAre400(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name  string
		body  []byte
		field string // "": stored
	}{
		{"NUL in the id", stripeEventOf(`evt_\u0000nul`, `{}`), "event_id"},
		{"10,000-character id", stripeEventOf(randomText(10000), `{}`), "event_id"},
		{"256-byte id", stripeEventOf(strings.Repeat("é", 128), `{}`), "event_id"},
		{"NUL in a metadata value", stripeEventOf("evt_meta_value", `{"note": "a\u0000b"}`), "body"},
		{"NUL in a metadata key", stripeEventOf("evt_meta_key", `{"a\u0000": "b"}`), "body"},
		{"255-byte id", stripeEventOf(strings.Repeat("é", 127)+"x", `{}`), ""},
		{"an escaped backslash before u0000", stripeEventOf("evt_backslash", `{"path": "C:\\u0000"}`), ""},
	} {
		res, body := e.do("POST", "/ingest/stripe/"+e.prog.ID, tc.body, stripeHeader(tc.body, stripeSecret, time.Now()))
		if tc.field == "" {
			if res.StatusCode != 200 {
				t.Errorf("%s: status %d (%s), want 200", tc.name, res.StatusCode, body)
			}
			continue
		}
		eb, problem := checkError(res, body, 400)
		if problem != "" {
			t.Errorf("%s: %s", tc.name, problem)
		} else if len(eb.Errors[tc.field]) == 0 {
			t.Errorf("%s: no reason for %s in %s", tc.name, tc.field, body)
		}
	}
	var ids []string
	if err := e.db.Select(&ids, `SELECT event_id FROM provider_events ORDER BY event_id`); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != "evt_backslash" || len(ids[1]) != 255 {
		t.Errorf("stored %q, want the two that can be stored", ids)
	}
}

// What was reported: rounds of valid events sent at once with events that cannot
// be stored. Every valid one is answered 200 and stored, every bad one 400.
// (These are refused before the group commit; TestRefusedEventDoesNotFailItsGroup
// has refused events inside the groups.)
func TestBadEventsSentWithGoodOnes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const rounds, good = 5, 60
	for round := range rounds {
		type delivery struct {
			body []byte
			want int
		}
		var all []delivery
		for i := range good {
			all = append(all, delivery{stripeEventOf(fmt.Sprintf("evt_r%d_%d", round, i), `{}`), 200})
		}
		for _, b := range [][]byte{
			stripeEventOf(fmt.Sprintf(`evt_r%d_\u0000`, round), `{}`),
			stripeEventOf(randomText(10000), `{}`),
			stripeEventOf(randomText(10000), `{}`),
			stripeEventOf(fmt.Sprintf("evt_r%d_body", round), `{"k": "\u0000"}`),
		} {
			all = append(all, delivery{b, 400})
		}
		mrand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		var wg sync.WaitGroup
		for _, d := range all {
			wg.Go(func() {
				res, b := e.do("POST", "/ingest/stripe/"+e.prog.ID, d.body, stripeHeader(d.body, stripeSecret, time.Now()))
				if d.want == 200 && res.StatusCode != 200 {
					t.Errorf("round %d: a valid event got %d: %s", round, res.StatusCode, b)
				}
				if d.want == 400 {
					if _, problem := checkError(res, b, 400); problem != "" {
						t.Errorf("round %d: a bad event: %s", round, problem)
					}
				}
			})
		}
		wg.Wait()
	}
	if n := e.stored(); n != rounds*good {
		t.Errorf("%d events stored, want %d", n, rounds*good)
	}
}

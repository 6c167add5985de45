package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// maxResponse is how much of a response body an Attempt keeps for the delivery log.
	maxResponse = 1 << 10
	// maxDrain is how much more is read and discarded so the connection can be
	// reused; a longer body costs a new connection next time, not unbounded reading.
	maxDrain = 64 << 10
	// userAgent names the sender and its signing scheme's version.
	userAgent = "referd-webhooks/1"
)

// Message is one signed delivery.
type Message struct {
	// ID is the webhook-id header: the same on every attempt, so receivers
	// can drop duplicates.
	ID string
	// Timestamp is when this attempt is signed, not when the event happened:
	// receivers reject signatures more than a few minutes old. Zero means now.
	Timestamp time.Time
	// Body is the JSON payload, sent as is.
	Body []byte
	// Secrets sign the message, newest first: each one signs webhook-signature
	// (several during a rotation), and the first alone signs the Signature header,
	// which has room for one.
	Secrets []string
}

// Attempt is what one delivery attempt did, for the delivery log and for Outcome.
type Attempt struct {
	// StatusCode is the response's HTTP status; 0 when there was no response.
	StatusCode int
	// Duration is from sending the request to reading the kept part of the body.
	Duration time.Duration
	// Response is at most 1 KiB of the response body, as valid UTF-8.
	Response string
	// RetryAfter is the response's Retry-After header, as sent.
	RetryAfter string
	// Err is why no response was had: a signing, network, timeout or
	// ErrForbiddenTarget error. A non-2xx response is not an Err.
	Err error
}

// Deliver makes one attempt: it POSTs msg, signed with all its secrets, to url
// through c (from NewClient). Besides the Standard Webhooks headers it sends
// Partnero's Signature header (PartneroSignature with the newest secret), so
// receivers written for either scheme verify it. It never returns an error of its
// own: everything that went wrong is in the Attempt.
func Deliver(ctx context.Context, c *http.Client, url string, msg Message) Attempt {
	if msg.Timestamp.IsZero() {
		msg.Timestamp = time.Now()
	}
	sig, err := Signatures(msg.Secrets, msg.ID, msg.Timestamp, msg.Body)
	if err != nil {
		return Attempt{Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(msg.Body))
	if err != nil {
		return Attempt{Err: fmt.Errorf("webhook: Deliver %q: %w", url, err)}
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("user-agent", userAgent)
	req.Header.Set("webhook-id", msg.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(msg.Timestamp.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	req.Header.Set("Signature", PartneroSignature(msg.Secrets[0], msg.Body))

	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return Attempt{Duration: time.Since(start), Err: err}
	}
	defer resp.Body.Close()
	// A failure while reading the body is ignored: the status has been answered,
	// and it alone decides the outcome.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	a := Attempt{
		StatusCode: resp.StatusCode,
		Duration:   time.Since(start),
		Response:   validUTF8(body, maxResponse),
		RetryAfter: resp.Header.Get("Retry-After"),
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	return a
}

// validUTF8 returns b, at most limit bytes read from a longer body, as valid UTF-8
// of at most limit bytes: invalid bytes become U+FFFD while that fits, and a last
// rune that the limit cut in half is dropped rather than shown as invalid.
func validUTF8(b []byte, limit int) string {
	if len(b) >= limit {
		for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
			if utf8.RuneStart(b[len(b)-i]) {
				if !utf8.FullRune(b[len(b)-i:]) {
					b = b[:len(b)-i]
				}
				break
			}
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	var s strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if s.Len()+utf8.RuneLen(r) > limit {
			break
		}
		s.WriteRune(r)
		b = b[size:]
	}
	return s.String()
}

// OutcomeKind is what an attempt means for the delivery.
type OutcomeKind int

const (
	// Retry means try again later: any failure that is not Gone. It is the zero
	// value, so an attempt never classified is retried rather than lost.
	Retry OutcomeKind = iota
	// Succeeded means a 2xx: the delivery is done.
	Succeeded
	// Gone means 410: the receiver asks for no more deliveries, so the endpoint
	// is to be disabled.
	Gone
)

// String returns the kind's name, for logs.
func (k OutcomeKind) String() string {
	switch k {
	case Succeeded:
		return "succeeded"
	case Gone:
		return "gone"
	default:
		return "retry"
	}
}

// Outcome is what an attempt means and, for a retry, how long the receiver asked
// us to wait.
type Outcome struct {
	Kind OutcomeKind
	// RetryAfter is > 0 only for a Retry whose response sent a usable
	// Retry-After; it is at most 24 h.
	RetryAfter time.Duration
}

// Outcome classifies the attempt: only a 2xx succeeds, 410 is Gone, and every
// other status (redirects included) or error is Retry. now is the time an HTTP-date
// Retry-After is measured from.
func (a Attempt) Outcome(now time.Time) Outcome {
	switch {
	case a.Err != nil || a.StatusCode == 0:
		return Outcome{Kind: Retry}
	case a.StatusCode >= 200 && a.StatusCode < 300:
		return Outcome{Kind: Succeeded}
	case a.StatusCode == http.StatusGone:
		return Outcome{Kind: Gone}
	}
	return Outcome{Kind: Retry, RetryAfter: parseRetryAfter(a.RetryAfter, now)}
}

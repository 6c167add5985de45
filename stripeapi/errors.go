package stripeapi

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	stripe "github.com/stripe/stripe-go/v76"
)

// Error is a call to Stripe that failed: Stripe's answer, or why none came.
type Error struct {
	// Op is what referd asked, such as "create coupon".
	Op string
	// Status is the HTTP status of Stripe's answer; 0 when no answer came (or none
	// that could be read), for the network or a timeout.
	Status int
	// Type, Code and Param are Stripe's: "invalid_request_error",
	// "resource_missing", the parameter at fault.
	Type, Code, Param string
	// Message is Stripe's message, meant for people; or the network error.
	Message   string
	RequestID string
	err       error
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("stripe: %s: %s", e.Op, e.Message)
	}
	return fmt.Sprintf("stripe: %s: %d %s", e.Op, e.Status, e.Message)
}

// Unwrap returns stripe-go's error, or the network's (context.Canceled, say).
func (e *Error) Unwrap() error { return e.err }

// NotFound says Stripe has no such object.
func (e *Error) NotFound() bool { return e.Status == http.StatusNotFound }

// Temporary says that trying again later may succeed: no answer came, Stripe was
// busy (409, 429) or failed (5xx). Anything else (a bad key, a bad parameter) fails
// the same way until someone changes something.
func (e *Error) Temporary() bool {
	return e.Status == 0 || e.Status == http.StatusConflict || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// wrap makes err of stripe-go an *Error.
func wrap(op string, err error) *Error {
	var se *stripe.Error
	if errors.As(err, &se) {
		e := &Error{Op: op, Status: se.HTTPStatusCode, Type: string(se.Type), Code: string(se.Code),
			Param: se.Param, Message: se.Msg, RequestID: se.RequestID, err: err}
		if e.Message == "" {
			e.Message = http.StatusText(e.Status)
		}
		return e
	}
	return &Error{Op: op, Message: err.Error(), err: err}
}

// ValidationError lists what is wrong with the values of a request, by field, as
// the API shows them (422). It has the shape of referral.ValidationError, which
// this package cannot name (referral calls it).
type ValidationError struct {
	Fields map[string][]string
}

func (e *ValidationError) add(field, msg string) {
	if e.Fields == nil {
		e.Fields = map[string][]string{}
	}
	e.Fields[field] = append(e.Fields[field], msg)
}

// err returns e when it holds anything, else nil.
func (e *ValidationError) err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Error is the first message by field name.
func (e *ValidationError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	msgs := make([]string, 0, len(keys))
	for _, k := range keys {
		msgs = append(msgs, e.Fields[k]...)
	}
	if len(msgs) == 0 {
		return "invalid"
	}
	return strings.Join(msgs, " ")
}

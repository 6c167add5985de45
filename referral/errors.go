package referral

import (
	"fmt"
	"sort"
	"strings"
)

// ValidationError lists what is wrong with an input, by field.
type ValidationError struct {
	Fields map[string][]string
}

// Add records msg against field.
func (e *ValidationError) Add(field, msg string) {
	if e.Fields == nil {
		e.Fields = map[string][]string{}
	}
	e.Fields[field] = append(e.Fields[field], msg)
}

// Err returns e when it holds anything, else nil.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Error is the first message (by field name), with a count of the rest, as Laravel says it.
func (e *ValidationError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	n := 0
	for k, v := range e.Fields {
		keys = append(keys, k)
		n += len(v)
	}
	sort.Strings(keys)
	msg := e.Fields[keys[0]][0]
	if n > 1 {
		more := "errors"
		if n == 2 {
			more = "error"
		}
		msg += fmt.Sprintf(" (and %d more %s)", n-1, more)
	}
	return msg
}

// Invalid is a ValidationError of one field.
func Invalid(field, msg string) error {
	e := &ValidationError{}
	e.Add(field, msg)
	return e
}

// NotFoundError says that the resource named in the request does not exist in the program.
type NotFoundError struct {
	What string
}

func (e *NotFoundError) Error() string {
	return strings.ToUpper(e.What[:1]) + e.What[1:] + " not found."
}

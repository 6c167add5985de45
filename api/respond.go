package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/stripeapi"
)

// MaxBody is the largest request body accepted (413 above).
const MaxBody = 1 << 20

// Error is an API error with the HTTP status chosen for it.
type Error struct {
	Status  int
	Message string
	Fields  map[string][]string
}

func (e *Error) Error() string { return e.Message }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// envelope is the success shape of every response.
type envelope struct {
	Data   any `json:"data"`
	Links  any `json:"links,omitempty"`
	Meta   any `json:"meta,omitempty"`
	Status int `json:"status"`
}

type errorEnvelope struct {
	Status  int                 `json:"status"`
	Message string              `json:"message"`
	Errors  map[string][]string `json:"errors"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"status":0,"message":"Internal server error.","errors":{}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// respond writes {"data": data, "status": 1}.
func respond(w http.ResponseWriter, status int, data any) {
	writeJSON(w, status, envelope{Data: data, Status: 1})
}

// fail writes the error envelope for err, choosing the HTTP status from its type.
// This is the one place where domain errors become statuses.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := s.classify(r, err)
	if e.Fields == nil {
		e.Fields = map[string][]string{}
	}
	writeJSON(w, e.Status, errorEnvelope{Status: 0, Message: e.Message, Errors: e.Fields})
}

func (s *Server) classify(r *http.Request, err error) *Error {
	var (
		apiErr  *Error
		valErr  *referral.ValidationError
		nfErr   *referral.NotFoundError
		confErr *store.ConflictError
		maxErr  *http.MaxBytesError
		invErr  *store.InvalidError
		sValErr *stripeapi.ValidationError
		sErr    *stripeapi.Error
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &valErr):
		return &Error{Status: http.StatusUnprocessableEntity, Message: valErr.Error(), Fields: valErr.Fields}
	case errors.As(err, &sValErr):
		return &Error{Status: http.StatusUnprocessableEntity, Message: sValErr.Error(), Fields: sValErr.Fields}
	case errors.As(err, &sErr) && !errors.Is(err, context.Canceled):
		// Stripe refused or did not answer: a bad gateway, with Stripe's own words.
		msg := "Stripe answered: " + sErr.Message
		if sErr.Status == 0 {
			msg = "Stripe did not answer: " + sErr.Message
		}
		s.Log.WarnContext(r.Context(), "stripe call failed", "method", r.Method, "path", r.URL.Path, "err", err)
		return &Error{Status: http.StatusBadGateway, Message: msg, Fields: map[string][]string{"stripe": {msg}}}
	case errors.As(err, &nfErr):
		return &Error{Status: http.StatusNotFound, Message: nfErr.Error()}
	case errors.As(err, &confErr):
		msg := fmt.Sprintf("The %s has already been taken.", confErr.Field)
		return &Error{Status: http.StatusConflict, Message: msg, Fields: map[string][]string{confErr.Field: {msg}}}
	case errors.As(err, &invErr):
		msg := "The request holds a value that cannot be stored: " + invErr.Msg + "."
		return &Error{Status: http.StatusUnprocessableEntity, Message: msg, Fields: map[string][]string{"body": {msg}}}
	case errors.As(err, &maxErr):
		return errorf(http.StatusRequestEntityTooLarge, "The request body is larger than %d bytes.", MaxBody)
	case errors.Is(err, context.Canceled):
		return errorf(499, "The request was canceled.")
	}
	s.Log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return errorf(http.StatusInternalServerError, "Internal server error.")
}

// readBody reads at most MaxBody bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
}

// decode reads the JSON body into each of dsts. An empty body is an empty object;
// broken JSON is 400; a value of the wrong type is 422; unknown fields are ignored.
func decode(w http.ResponseWriter, r *http.Request, dsts ...any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	for _, dst := range dsts {
		if err := json.Unmarshal(body, dst); err != nil {
			return jsonError(err)
		}
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			if typ.Value == "array" || typ.Value == "string" || typ.Value == "number" || typ.Value == "bool" {
				return &Error{Status: http.StatusUnprocessableEntity, Message: "The request body must be a JSON object.",
					Fields: map[string][]string{"body": {"The request body must be a JSON object."}}}
			}
			field = "body"
		}
		msg := fmt.Sprintf("The %s field has the wrong type (got %s).", field, typ.Value)
		return &Error{Status: http.StatusUnprocessableEntity, Message: msg, Fields: map[string][]string{field: {msg}}}
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "Malformed JSON in the request body: %v.", err)
	}
	// Errors returned by a field's own decoder (a number where text belongs, say).
	msg := "A field has the wrong type: " + err.Error() + "."
	return &Error{Status: http.StatusUnprocessableEntity, Message: msg, Fields: map[string][]string{"body": {msg}}}
}

// params are the parameters of a GET or DELETE: the query string, plus the members of
// a JSON object body (SDKs send them there); an empty body or "[]" adds nothing.
// The query string wins where both name a parameter.
func params(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	v := r.URL.Query()
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || bytes.Equal(body, []byte("[]")) {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		if e := jsonError(err); e != nil {
			var ae *Error
			if errors.As(e, &ae) && ae.Status == http.StatusBadRequest {
				return nil, e
			}
		}
		return nil, errorf(http.StatusBadRequest, "The request body of a %s must be a JSON object of parameters.", r.Method)
	}
	for k, val := range obj {
		if v.Has(k) {
			continue
		}
		switch x := val.(type) {
		case string:
			v.Set(k, x)
		case json.Number:
			v.Set(k, x.String())
		case bool:
			v.Set(k, strconv.FormatBool(x))
		}
	}
	return v, nil
}

// listParams are a list request's parameters and its validated page.
func listParams(w http.ResponseWriter, r *http.Request) (url.Values, page, error) {
	v, err := params(w, r)
	if err != nil {
		return nil, page{}, err
	}
	pg, err := pagination(v)
	return v, pg, err
}

// views converts each of xs with f (domain rows to their JSON views).
func views[T, V any](xs []T, f func(T) V) []V {
	out := make([]V, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// page is a validated ?limit= and ?page=.
type page struct {
	Limit, Number int
}

func itoa(i int) string { return strconv.Itoa(i) }

func (p page) offset() int { return (p.Number - 1) * p.Limit }

func pagination(v url.Values) (page, error) {
	p := page{Limit: 15, Number: 1}
	verr := &referral.ValidationError{}
	if s := strings.TrimSpace(v.Get("limit")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 250 {
			verr.Add("limit", "The limit must be an integer between 1 and 250.")
		}
		p.Limit = n
	}
	if s := strings.TrimSpace(v.Get("page")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1_000_000 {
			verr.Add("page", "The page must be a positive integer.")
		}
		p.Number = n
	}
	return p, verr.Err()
}

type listLinks struct {
	First string  `json:"first"`
	Last  string  `json:"last"`
	Prev  *string `json:"prev"`
	Next  *string `json:"next"`
}

type listMeta struct {
	CurrentPage int    `json:"current_page"`
	From        *int   `json:"from"`
	To          *int   `json:"to"`
	PerPage     int    `json:"per_page"`
	Total       int    `json:"total"`
	LastPage    int    `json:"last_page"`
	Path        string `json:"path"`
}

// respondList writes one page of a list with Laravel-style links and meta; the page
// links keep the request's other parameters.
func (s *Server) respondList(w http.ResponseWriter, r *http.Request, v url.Values, items any, total int, p page) {
	last := (total + p.Limit - 1) / p.Limit
	if last < 1 {
		last = 1
	}
	path := s.PublicURL + r.URL.Path
	pageURL := func(n int) string {
		q := url.Values{}
		for k, vals := range v {
			q[k] = vals
		}
		q.Set("page", strconv.Itoa(n))
		return path + "?" + q.Encode()
	}
	links := listLinks{First: pageURL(1), Last: pageURL(last)}
	if p.Number > 1 {
		prev := pageURL(min(p.Number-1, last))
		links.Prev = &prev
	}
	if p.Number < last {
		next := pageURL(p.Number + 1)
		links.Next = &next
	}
	meta := listMeta{CurrentPage: p.Number, PerPage: p.Limit, Total: total, LastPage: last, Path: path}
	if from := p.offset() + 1; from <= total {
		to := min(p.offset()+p.Limit, total)
		meta.From, meta.To = &from, &to
	}
	writeJSON(w, http.StatusOK, envelope{Data: items, Links: links, Meta: meta, Status: 1})
}

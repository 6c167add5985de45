package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/referd/referd/api"
	"github.com/referd/referd/referral"
	"github.com/referd/referd/store"
	"github.com/referd/referd/store/storetest"
)

// env is one program on a fresh schema behind a real HTTP server, whose every
// request and answer is checked against openapi.json.
type env struct {
	t    *testing.T
	db   *store.DB
	srv  *httptest.Server
	key  string
	prog store.Program
	// offSpecCalls marks its requests as breaking openapi.json on purpose (see offSpec).
	offSpecCalls bool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := storetest.New(t)
	e := &env{t: t, db: db}
	e.srv = e.serve(api.New(db, "http://referd.test", slog.New(slog.NewTextHandler(io.Discard, nil)), 8))
	e.prog, e.key = e.newProgram("Acme", "https://acme.test")
	return e
}

// serve runs s behind a test server that checks every exchange against openapi.json.
func (e *env) serve(s *api.Server) *httptest.Server {
	srv := httptest.NewServer(checked(e.t, s.Handler()))
	e.t.Cleanup(srv.Close)
	return srv
}

// offSpec returns e for a request that breaks openapi.json on purpose: malformed
// JSON, a value of the wrong type or out of range, no API key, an unknown path. The
// check then wants the request to fail validation (so the mark stays true), and
// still holds the answer to the document.
func (e *env) offSpec() *env {
	c := *e
	c.offSpecCalls = true
	return &c
}

// offSpecIf is offSpec when offSpec is true (for tables of requests), else e.
func (e *env) offSpecIf(offSpec bool) *env {
	if offSpec {
		return e.offSpec()
	}
	return e
}

func (e *env) newProgram(name, site string) (store.Program, string) {
	e.t.Helper()
	p, key, err := referral.CreateProgram(context.Background(), e.db, name, site)
	if err != nil {
		e.t.Fatal(err)
	}
	return p, key
}

// response is a decoded API answer.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (r response) data() map[string]any {
	d, _ := r.Body["data"].(map[string]any)
	return d
}

func (r response) list() []any {
	d, _ := r.Body["data"].([]any)
	return d
}

// call sends body (a string is sent as is, anything else as JSON) with the env's key.
func (e *env) call(method, path string, body any) response {
	return e.callKey(e.key, method, path, body)
}

func (e *env) callKey(key, method, path string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if e.offSpecCalls {
		req.Header.Set(offSpecHeader, "1")
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if err := json.Unmarshal(raw, &out.Body); err != nil {
		e.t.Fatalf("%s %s: answer is not a JSON object (%v): %s", method, path, err, raw)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q, want exactly application/json", method, path, ct)
	}
	return out
}

// must checks the status and returns the response.
func (e *env) must(status int, method, path string, body any) response {
	e.t.Helper()
	r := e.call(method, path, body)
	if r.Status != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Raw)
	}
	return r
}

// wantError checks an error answer: status, the envelope, and (if given) the field.
func wantError(t *testing.T, r response, status int, field string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	if r.Body["status"] != float64(0) {
		t.Errorf("error envelope status = %v, want 0: %s", r.Body["status"], r.Raw)
	}
	if msg, _ := r.Body["message"].(string); msg == "" {
		t.Errorf("error envelope without message: %s", r.Raw)
	}
	errs, ok := r.Body["errors"].(map[string]any)
	if !ok {
		t.Fatalf("error envelope without errors object: %s", r.Raw)
	}
	if field != "" {
		if _, ok := errs[field]; !ok {
			t.Errorf("errors lack %q: %s", field, r.Raw)
		}
	}
}

// outbox returns the program's outbox events in order.
func (e *env) outbox() []struct {
	Event   string
	Payload map[string]any
} {
	e.t.Helper()
	var rows []struct {
		Event   string `db:"event"`
		Payload string `db:"payload"`
	}
	if err := e.db.Select(&rows, `SELECT event, payload::text AS payload FROM outbox WHERE program_pk = $1 ORDER BY pk`, e.prog.PK); err != nil {
		e.t.Fatal(err)
	}
	out := make([]struct {
		Event   string
		Payload map[string]any
	}, len(rows))
	for i, r := range rows {
		out[i].Event = r.Event
		json.Unmarshal([]byte(r.Payload), &out[i].Payload)
	}
	return out
}

package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// errorBody is the API's error envelope, which ingest answers too.
type errorBody struct {
	Status  *int                `json:"status"`
	Message string              `json:"message"`
	Errors  map[string][]string `json:"errors"`
}

// do sends a request to path and returns the response with its body read.
func (e *env) do(method, path string, body []byte, header http.Header) (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, b
}

// checkError says what is wrong with an error answer, or "": the status wanted, the
// envelope {"status": 0, "message", "errors"} and Content-Type application/json exactly.
func checkError(res *http.Response, body []byte, status int) (errorBody, string) {
	var eb errorBody
	switch {
	case res.StatusCode != status:
		return eb, fmt.Sprintf("status %d, want %d (%s)", res.StatusCode, status, body)
	case res.Header.Get("Content-Type") != "application/json":
		return eb, fmt.Sprintf("Content-Type %q", res.Header.Get("Content-Type"))
	case json.Unmarshal(body, &eb) != nil || eb.Status == nil || *eb.Status != 0 || eb.Message == "" || eb.Errors == nil:
		return eb, fmt.Sprintf("not the error envelope: %s", body)
	}
	return eb, ""
}

// Every error under /ingest/ is the API's JSON envelope; a wrong method is a 405
// that says to POST.
func TestIngestErrorsAreJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := stripeEvent("evt_env")
	for _, tc := range []struct {
		name, method, path string
		header             http.Header
		status             int
	}{
		{"GET", "GET", "/ingest/stripe/" + e.prog.ID, nil, 405},
		{"PUT", "PUT", "/ingest/paddle/" + e.prog.ID, nil, 405},
		{"no program in the path", "POST", "/ingest/stripe", nil, 404},
		{"unknown provider", "POST", "/ingest/paypal/" + e.prog.ID, nil, 404},
		{"unknown program", "POST", "/ingest/stripe/nope", nil, 404},
		{"bad signature", "POST", "/ingest/stripe/" + e.prog.ID, stripeHeader(body, "whsec_wrong", time.Now()), 400},
		{"bad credentials", "POST", "/ingest/chargebee/" + e.prog.ID, basic("cb-user", "wrong"), 401},
	} {
		res, b := e.do(tc.method, tc.path, body, tc.header)
		if _, problem := checkError(res, b, tc.status); problem != "" {
			t.Errorf("%s: %s", tc.name, problem)
		}
		if tc.status == 405 && res.Header.Get("Allow") != "POST" {
			t.Errorf("%s: Allow %q, want POST", tc.name, res.Header.Get("Allow"))
		}
	}
	// Not a webhook of the provider: the reason is given.
	junk := []byte(`{"object": "event"}`)
	res, b := e.do("POST", "/ingest/stripe/"+e.prog.ID, junk, stripeHeader(junk, stripeSecret, time.Now()))
	if eb, problem := checkError(res, b, 400); problem != "" || len(eb.Errors["body"]) == 0 {
		t.Errorf("malformed: %s %s", problem, b)
	}
	// A success stays what it was.
	res, b = e.do("POST", "/ingest/stripe/"+e.prog.ID, body, stripeHeader(body, stripeSecret, time.Now()))
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || string(b) != `{"ok":true,"message":"stored"}` {
		t.Errorf("success: %d %q %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	if n := e.stored(); n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
}

// A database that cannot store the event answers 503, in the envelope: the provider
// delivers it again.
func TestDatabaseDownIs503(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	warm := stripeEvent("evt_warm") // reads the program into the receiver's cache
	if s := e.post("stripe", warm, stripeHeader(warm, stripeSecret, time.Now())); s != 200 {
		t.Fatalf("status %d", s)
	}
	e.db.Close()
	body := stripeEvent("evt_down")
	res, b := e.do("POST", "/ingest/stripe/"+e.prog.ID, body, stripeHeader(body, stripeSecret, time.Now()))
	if _, problem := checkError(res, b, 503); problem != "" {
		t.Error(problem)
	}
}

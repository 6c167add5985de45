package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/referd/referd/api"
)

// openAPI is openapi.json, loaded and validated once for every test. Its
// "openapi: 3.1.0" makes openapi3filter validate with JSON Schema 2020-12.
var openAPI = sync.OnceValues(func() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("openapi.json")
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.json is not valid: %w", err)
	}
	return doc, nil
})

var openAPIRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openAPI()
	if err != nil {
		return nil, err
	}
	return gorillamux.NewRouter(doc)
})

// validation holds requests and answers to the whole document: a status it does not
// list for the operation, or a body where the operation takes none, is a mismatch.
var validation = func() *openapi3filter.Options {
	o := &openapi3filter.Options{
		IncludeResponseStatus:             true,
		RejectWhenRequestBodyNotSpecified: true,
		SkipSettingDefaults:               true,
		MultiError:                        true,
		AuthenticationFunc:                bearerPresent,
	}
	// Where and why, without the whole schema and value (the answer is printed).
	o.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
		return "at /" + strings.Join(err.JSONPointer(), "/") + ": " + err.Reason
	})
	return o
}()

// bearerPresent is what the document can say of a key: that one is sent. Whether
// it is a program's key is the API's business (a 401 the document lists).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	auth := in.RequestValidationInput.Request.Header.Get("Authorization")
	if key, ok := strings.CutPrefix(auth, "Bearer "); !ok || strings.TrimSpace(key) == "" {
		return errors.New("no Authorization: Bearer <api key>")
	}
	return nil
}

// offSpecHeader marks a request a test sends knowing it breaks openapi.json (see
// env.offSpec); the check removes it before the API sees the request.
const offSpecHeader = "X-Test-Off-Spec"

// checked serves h with every request and its answer validated against
// openapi.json; a mismatch fails t. A request marked with offSpecHeader must break
// the document, and its answer must still be one the document describes.
func checked(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	router, err := openAPIRouter()
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offSpec := r.Header.Get(offSpecHeader) != ""
		r.Header.Del(offSpecHeader)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("%s %s: reading the request body: %v", r.Method, r.URL.RequestURI(), err)
		}
		sent := r.Clone(context.Background())
		sent.Body = io.NopCloser(bytes.NewReader(body))
		r.Body = io.NopCloser(bytes.NewReader(body))

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)

		// Before the answer goes out, while the test still waits for it.
		for _, problem := range check(router, sent, offSpec, rec) {
			t.Errorf("%s %s %.300s: %s", r.Method, r.URL.RequestURI(), body, problem)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

// exercised holds the operations ("GET /v1/program") some test got a success from.
var exercised sync.Map

// check validates one request and its answer against openapi.json and returns what
// does not match; it records the operation in exercised when it succeeded.
func check(router routers.Router, req *http.Request, offSpec bool, rec *httptest.ResponseRecorder) []string {
	ctx := context.Background()
	route, pathParams, err := router.FindRoute(req)
	if err != nil {
		if !offSpec {
			return []string{"openapi.json has no such operation: " + err.Error()}
		}
		// An unknown path or method: the document has no operation to hold the answer
		// to, but it must still be the error envelope.
		return checkErrorEnvelope(rec)
	}
	if rec.Code < 300 {
		exercised.Store(req.Method+" "+route.Path, true)
	}
	var problems []string
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: pathParams, Route: route, Options: validation}
	switch err := openapi3filter.ValidateRequest(ctx, in); {
	case err != nil && !offSpec:
		problems = append(problems, "the request does not match openapi.json: "+err.Error())
	case err == nil && offSpec:
		problems = append(problems, "the request is marked off-spec but matches openapi.json: unmark it, or tighten the document")
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
		Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: validation,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		problems = append(problems, fmt.Sprintf("the %d answer does not match openapi.json: %v\n%s", rec.Code, err, rec.Body.Bytes()))
	}
	return problems
}

// checkErrorEnvelope holds an answer to the Error schema of openapi.json.
func checkErrorEnvelope(rec *httptest.ResponseRecorder) []string {
	doc, err := openAPI()
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	if rec.Code < 400 {
		problems = append(problems, fmt.Sprintf("status %d, want an error", rec.Code))
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		problems = append(problems, fmt.Sprintf("Content-Type %q, want application/json", ct))
	}
	var v any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		return append(problems, "the answer is not JSON: "+err.Error())
	}
	if err := doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		problems = append(problems, fmt.Sprintf("the answer is not the error envelope: %v\n%s", err, rec.Body.Bytes()))
	}
	return problems
}

// TestMain fails a run of the whole package in which an operation of openapi.json
// never answered a success: nothing would hold the document to the API there.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && wholePackage() {
		if missing := unexercised(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: no test got a success from these operations of openapi.json; add one:\n\t%s\n",
				strings.Join(missing, "\n\t"))
			code = 1
		}
	}
	os.Exit(code)
}

// wholePackage reports whether every test of the package ran (no -run or -skip).
func wholePackage() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}

func unexercised() []string {
	doc, err := openAPI()
	if err != nil {
		return []string{err.Error()}
	}
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if _, ok := exercised.Load(method + " " + path); !ok {
				missing = append(missing, method+" "+path)
			}
		}
	}
	slices.Sort(missing)
	return missing
}

// The document is served without a key, is valid OpenAPI 3.1, and describes
// exactly the routes the API registers.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.callKey("", "GET", "/v1/openapi.json", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json without a key: %d %s", r.Status, r.Raw)
	}
	file, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Raw, file) {
		t.Error("GET /v1/openapi.json does not answer openapi.json")
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(r.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("the served document is not valid OpenAPI: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}

	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	registered := api.Routes()
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.json describes %s, which the API does not register", d)
		}
	}
}

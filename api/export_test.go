package api

import (
	"io"
	"log/slog"
	"net/http/httptest"
)

// Routes lists the patterns the API registers ("GET /v1/program", ...).
func Routes() []string {
	_, patterns := (&Server{}).routes()
	return patterns
}

// Classify is the status, message and field errors the API answers err with.
func Classify(err error) (int, string, map[string][]string) {
	s := &Server{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e := s.classify(httptest.NewRequest("GET", "/v1/program", nil), err)
	return e.Status, e.Message, e.Fields
}

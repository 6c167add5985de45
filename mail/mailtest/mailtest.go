// Package mailtest runs a real SMTP server for tests: mailpit, on free ports of its
// own, with its HTTP API to read what arrived.
package mailtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/referd/referd/testbin"
)

// Install is how to get the mailpit binary the tests need.
const Install = "go install github.com/axllent/mailpit@v1.33.1"

// Server is a running mailpit.
type Server struct {
	SMTP string // host:port of its SMTP server
	HTTP string // base URL of its web API
	t    testing.TB
}

// Start runs mailpit until the test ends. A missing binary fails the test: the
// email tests are the only proof that referd's email arrives as sent.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testbin.Find("mailpit")
	if bin == "" {
		t.Fatalf("mailpit is not installed (looked in PATH and in $(go env GOPATH)/bin): install it with %s", Install)
	}
	smtp, web := testbin.FreeAddr(t), testbin.FreeAddr(t)
	cmd := exec.Command(bin, "--smtp", smtp, "--listen", web, "--quiet", "--disable-version-check",
		"--database", filepath.Join(t.TempDir(), "mailpit.db"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mailpit: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	s := &Server{SMTP: smtp, HTTP: "http://" + web, t: t}
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(s.HTTP + "/api/v1/messages")
		if err == nil {
			res.Body.Close()
			if c, err := net.Dial("tcp", smtp); err == nil {
				c.Close()
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit did not answer on %s and %s within 15 s: %s", smtp, web, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is the REFERD_SMTP_URL of the server.
func (s *Server) URL() string { return "smtp://" + s.SMTP }

// Address is a sender or recipient as mailpit shows it.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Summary is a message in mailpit's list.
type Summary struct {
	ID      string    `json:"ID"`
	Subject string    `json:"Subject"`
	From    Address   `json:"From"`
	To      []Address `json:"To"`
}

// Message is one message as it arrived.
type Message struct {
	ID      string    `json:"ID"`
	Subject string    `json:"Subject"`
	From    Address   `json:"From"`
	To      []Address `json:"To"`
	Text    string    `json:"Text"`
	HTML    string    `json:"HTML"`
	// Headers are the message's headers, read from its raw source.
	Headers map[string][]string `json:"-"`
}

// Messages lists what arrived, newest first.
func (s *Server) Messages() []Summary {
	s.t.Helper()
	var body struct {
		Messages []Summary `json:"messages"`
	}
	s.get("/api/v1/messages", &body)
	return body.Messages
}

// Message reads one message, with its headers.
func (s *Server) Message(id string) Message {
	s.t.Helper()
	var m Message
	s.get("/api/v1/message/"+id, &m)
	s.get("/api/v1/message/"+id+"/headers", &m.Headers)
	return m
}

// Wait waits up to 10 s until n messages arrived and returns them, oldest first.
func (s *Server) Wait(n int) []Message {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := s.Messages()
		if len(list) >= n || time.Now().After(deadline) {
			if len(list) != n {
				s.t.Fatalf("mailpit holds %d messages, want %d", len(list), n)
			}
			out := make([]Message, len(list))
			for i, m := range list {
				out[len(list)-1-i] = s.Message(m.ID)
			}
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) get(path string, v any) {
	s.t.Helper()
	res, err := http.Get(s.HTTP + path)
	if err != nil {
		s.t.Fatalf("mailpit GET %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		s.t.Fatalf("mailpit GET %s: %s", path, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		s.t.Fatalf("mailpit GET %s: %v", path, fmt.Errorf("decoding: %w", err))
	}
}

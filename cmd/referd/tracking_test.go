package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/store/storetest"
)

// startServe runs `referd serve` in this process on dbURL (with an embedded Redis)
// and the flags in extra until the test ends, and returns its base URL once it is
// healthy, and what it writes to stderr.
func startServe(t *testing.T, dbURL string, extra ...string) (string, *syncBuffer) {
	t.Helper()
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	args := append([]string{"serve", "--database-url", dbURL, "--redis-url", "",
		"--host", "127.0.0.1", "--port", fmt.Sprint(port), "--public-url", base, "--concurrency", "2"}, extra...)
	go func() { done <- run(ctx, args, io.Discard, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("serve on %s did not stop", base)
		}
	})
	deadline := time.Now().Add(wait)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return base, stderr
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\nstderr:\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not healthy after %s:\n%s", wait, stderr.String())
		}
	}
}

// A PATCH /v1/program that changes the tracking settings applies to the very next
// tracking request of the process that served it (settings and hosted links), and to
// another process within 5 s; browsers may keep the settings at most 60 s.
func TestTrackingFollowsProgramPatch(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewWithURL(t)
	base, _ := startServe(t, dbURL)
	other, _ := startServe(t, dbURL) // another process: an `api` behind the same load balancer
	prog := createProgram(t, dbURL, "Acme", "https://acme.test")
	id, _ := prog.Program["id"].(string)

	noRedirect := &http.Client{Timeout: wait, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, url, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+prog.APIKey)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		return resp
	}
	settings := func(base string) (linkFormat, param string) {
		t.Helper()
		resp := do("GET", base+"/track/program/"+id, "")
		defer resp.Body.Close()
		var got struct {
			Data struct {
				LinkFormat string `json:"link_format"`
				Param      string `json:"param"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /track/program: %d %v", resp.StatusCode, err)
		}
		if age, ok := maxAge(resp.Header.Get("Cache-Control")); !ok || age > 60 {
			t.Errorf("GET /track/program: Cache-Control %q, want a max-age of at most 60 s", resp.Header.Get("Cache-Control"))
		}
		return got.Data.LinkFormat, got.Data.Param
	}
	shareLink := func(base string) string {
		t.Helper()
		resp := do("GET", base+"/r/"+id+"/alice", "")
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("GET /r/...: %d, want 302", resp.StatusCode)
		}
		return resp.Header.Get("Location")
	}

	if resp := do("POST", base+"/v1/customers", `{"key": "alice"}`); resp.StatusCode != 201 {
		t.Fatalf("POST /v1/customers: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	// Both processes have read, and cached, the old settings.
	for _, b := range []string{base, other} {
		if f, p := settings(b); f != "query" || p != "ref" {
			t.Fatalf("settings before the PATCH: %s %s", f, p)
		}
		if loc := shareLink(b); loc != "https://acme.test?ref=alice" {
			t.Fatalf("share link before the PATCH: %s", loc)
		}
	}

	resp := do("PATCH", base+"/v1/program", `{"tracking": {"link_format": "path", "param": "via"}}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PATCH /v1/program: %d", resp.StatusCode)
	}
	patched := time.Now()
	if f, p := settings(base); f != "path" || p != "via" {
		t.Errorf("settings right after the PATCH, same process: %s %s, want path via", f, p)
	}
	if loc := shareLink(base); loc != "https://acme.test/via/alice" {
		t.Errorf("share link right after the PATCH, same process: %s, want https://acme.test/via/alice", loc)
	}

	// The other process follows within 5 s.
	for {
		f, p := settings(other)
		loc := shareLink(other)
		if f == "path" && p == "via" && loc == "https://acme.test/via/alice" {
			break
		}
		if time.Since(patched) > 5*time.Second+500*time.Millisecond {
			t.Fatalf("another process still answers %s %s %s %s after the PATCH", f, p, loc, time.Since(patched))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// maxAge reads max-age from a Cache-Control value.
func maxAge(cc string) (int, bool) {
	for _, d := range strings.Split(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(d), "max-age="); ok {
			n, err := strconv.Atoi(v)
			return n, err == nil
		}
	}
	return 0, false
}

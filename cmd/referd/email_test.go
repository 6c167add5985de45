package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/mail/mailtest"
	"github.com/referd/referd/store/storetest"
)

// referd serve with REFERD_SMTP_URL sends an invitation asked for through the API to
// the SMTP server: the API stores it, the relay queues it, a worker sends it.
func TestServeSendsInvitation(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewWithURL(t)
	mp := mailtest.Start(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--database-url", dbURL, "--redis-url", "",
			"--host", "127.0.0.1", "--port", fmt.Sprint(port), "--concurrency", "4",
			"--smtp-url", mp.URL(), "--mail-from", "Acme <rewards@acme.test>"}, io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	prog := createProgram(t, dbURL, "Acme", "https://acme.test")
	deadline := time.Now().Add(wait)
	for {
		req, _ := http.NewRequest("POST", base+"/v1/customers:invite", strings.NewReader(`{"email": "alice@example.com", "key": "alice1"}`))
		req.Header.Set("Authorization", "Bearer "+prog.APIKey)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				t.Fatalf("POST /v1/customers:invite: %s, want 201", res.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer: %v\nstderr:\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := mp.Wait(1)[0]
	if got.To[0].Address != "alice@example.com" || !strings.Contains(got.Text, "https://acme.test?ref=alice1") {
		t.Errorf("email = %+v", got)
	}
	if !strings.Contains(stderr.String(), "email on") {
		t.Errorf("serve did not say email is on; stderr:\n%s", stderr.String())
	}
}

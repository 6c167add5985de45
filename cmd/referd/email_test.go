package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/referd/referd/mail/mailtest"
	"github.com/referd/referd/store/storetest"
)

// referd serve with REFERD_SMTP_URL sends an invitation asked for through the API to
// the SMTP server: the API stores it, the relay queues it, a worker sends it.
func TestServeSendsInvitation(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewWithURL(t)
	mp := mailtest.Start(t)
	base, stderr := startServe(t, dbURL, "--smtp-url", mp.URL(), "--mail-from", "Acme <rewards@acme.test>")
	prog := createProgram(t, dbURL, "Acme", "https://acme.test")
	req, _ := http.NewRequest("POST", base+"/v1/customers:invite", strings.NewReader(`{"email": "alice@example.com", "key": "alice1"}`))
	req.Header.Set("Authorization", "Bearer "+prog.APIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/customers:invite: %s, want 201", res.Status)
	}
	got := mp.Wait(1)[0]
	if got.To[0].Address != "alice@example.com" || !strings.Contains(got.Text, "https://acme.test?ref=alice1") {
		t.Errorf("email = %+v", got)
	}
	if !strings.Contains(stderr.String(), "email on") {
		t.Errorf("serve did not say email is on; stderr:\n%s", stderr.String())
	}
}

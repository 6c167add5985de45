package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/referd/referd/store/storetest"
)

// REFERD_SECRET_KEY reaches the API server: with it, PUT /v1/integrations/stripe
// stores an api_key, encrypted. Not parallel: REFERD_SECRET_KEY has no flag, so the
// test sets the environment, which parallel tests must not see (they run after it).
func TestAPIStoresStripeAPIKeyWithSecretKey(t *testing.T) {
	t.Setenv("REFERD_SECRET_KEY", "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=")
	t.Setenv("REFERD_STRIPE_API_URL", "http://127.0.0.1:1")
	db, dbURL := storetest.NewWithURL(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"api", "--database-url", dbURL, "--host", "127.0.0.1", "--port", fmt.Sprint(port)}, io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("run did not return after its context was cancelled")
		}
	})
	deadline := time.Now().Add(wait)
	for {
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("api exited: %v\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("api was not healthy after %s\n%s", wait, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "REFERD_SECRET_KEY is not set") {
		t.Errorf("with REFERD_SECRET_KEY set, referd says it is not: %s", stderr.String())
	}

	prog := createProgram(t, dbURL, "Acme", "https://acme.test")
	req, _ := http.NewRequest("PUT", base+"/v1/integrations/stripe",
		strings.NewReader(`{"webhook_secrets": ["whsec_0123456789abcdef"], "api_key": "sk_test_4eC39HqLyjWDarjtT1zdp7dc"}`))
	req.Header.Set("Authorization", "Bearer "+prog.APIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Data struct {
			APIKey *string `json:"api_key"`
		} `json:"data"`
	}
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &body); err != nil || res.StatusCode != 200 || body.Data.APIKey == nil || *body.Data.APIKey != "sk_test_…p7dc" {
		t.Fatalf("PUT with api_key: %d %s (%v)", res.StatusCode, raw, err)
	}
	var sealed string
	if err := db.GetContext(context.Background(), &sealed, `SELECT api_key_sealed FROM integrations`); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "v1:") || strings.Contains(sealed, "4eC39Hq") {
		t.Errorf("stored as %q", sealed)
	}
}

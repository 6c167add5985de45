// Package stripemock runs Stripe's API mock for tests: stripe-mock, on a free port
// of its own. stripe-mock keeps no state: it checks each request against Stripe's
// OpenAPI spec and answers the spec's fixtures, with the ids of the path and the
// parameters of the request copied into them.
package stripemock

import (
	"bytes"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/referd/referd/testbin"
)

// Version is the stripe-mock the tests are written against. Its bundled spec is
// Stripe's 2022-11-15 (not the 2023-10-16 referd pins): it checks the requests'
// shape, not their Stripe-Version, which is why it runs without -strict-version-check.
const Version = "v0.162.0"

// Install is how to get the stripe-mock binary the tests need.
const Install = "go install github.com/stripe/stripe-mock@" + Version

// APIKey is a key stripe-mock accepts: any test-mode secret key. It refuses live keys
// with a 401.
const APIKey = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"

// Start runs stripe-mock until the test ends and returns its base URL (for
// REFERD_STRIPE_API_URL). A missing binary fails the test: these tests are the proof
// that referd's requests are ones Stripe's API accepts.
func Start(t testing.TB) string {
	t.Helper()
	bin := testbin.Find("stripe-mock")
	if bin == "" {
		t.Fatalf("stripe-mock is not installed (looked in PATH and in $(go env GOPATH)/bin): install it with %s", Install)
	}
	httpAddr, httpsAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	// Both listeners get a port of their own: left alone, stripe-mock also listens
	// for HTTPS on :12112, which tests running at once would fight over.
	cmd := exec.Command(bin, "-http-addr", httpAddr, "-https-addr", httpsAddr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting stripe-mock: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	url := "http://" + httpAddr
	deadline := time.Now().Add(15 * time.Second)
	for {
		// Any answer means it listens: without a key it answers 401.
		res, err := http.Get(url + "/v1/coupons")
		if err == nil {
			res.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock did not answer on %s within 15 s: %s", httpAddr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

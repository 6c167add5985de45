package stripe

import (
	"net/http"
	"time"

	"github.com/referd/referd/providers"
)

// Provider is Stripe as a providers.Provider (registered by package providers/all).
type Provider struct{}

var _ providers.Provider = Provider{}

// Name is "stripe".
func (Provider) Name() string { return "stripe" }

// Title is "Stripe".
func (Provider) Title() string { return "Stripe" }

// Auth is providers.SigningSecrets.
func (Provider) Auth() providers.Auth { return providers.SigningSecrets }

// Verify is the package's Verify on the request's headers.
func (Provider) Verify(h http.Header, body []byte, c providers.Credentials, now time.Time) error {
	return Verify(body, h.Get("Stripe-Signature"), c.WebhookSecrets, now)
}

// Parse is the package's Parse.
func (Provider) Parse(body []byte, opt providers.Options) (providers.Parsed, error) {
	return Parse(body, opt)
}

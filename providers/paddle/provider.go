package paddle

import (
	"net/http"
	"time"

	"github.com/referd/referd/providers"
)

// Provider is Paddle as a providers.Provider (registered by package providers/all).
type Provider struct{}

var _ providers.Provider = Provider{}

// Name is "paddle".
func (Provider) Name() string { return "paddle" }

// Title is "Paddle".
func (Provider) Title() string { return "Paddle" }

// Auth is providers.SigningSecrets.
func (Provider) Auth() providers.Auth { return providers.SigningSecrets }

// Verify is the package's Verify on the request's headers.
func (Provider) Verify(h http.Header, body []byte, c providers.Credentials, now time.Time) error {
	return Verify(body, h.Get(Header), c.WebhookSecrets, now)
}

// Parse is the package's Parse.
func (Provider) Parse(body []byte, opt providers.Options) (providers.Parsed, error) {
	return Parse(body, opt)
}

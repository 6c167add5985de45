package chargebee

import (
	"net/http"
	"time"

	"github.com/referd/referd/providers"
)

// Provider is Chargebee as a providers.Provider (registered by package providers/all).
type Provider struct{}

var _ providers.Provider = Provider{}

// Name is "chargebee".
func (Provider) Name() string { return "chargebee" }

// Title is "Chargebee".
func (Provider) Title() string { return "Chargebee" }

// Auth is providers.BasicAuth.
func (Provider) Auth() providers.Auth { return providers.BasicAuth }

// Verify is the package's Verify on the request's Authorization header (Chargebee
// signs nothing).
func (Provider) Verify(h http.Header, _ []byte, c providers.Credentials, _ time.Time) error {
	return Verify(h.Get("Authorization"), c.Username, c.Password)
}

// Parse is the package's Parse.
func (Provider) Parse(body []byte, opt providers.Options) (providers.Parsed, error) {
	return Parse(body, opt)
}

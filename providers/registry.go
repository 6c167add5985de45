package providers

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"
)

// Provider is one billing provider: how its webhooks are authenticated and what
// they mean. Each provider's package implements it once; package providers/all
// registers the ones referd ships. Everything that needs the set of providers
// (ingest, integrations, the event processor, replay) reads it from here.
type Provider interface {
	// Name is the provider's name in URLs (/ingest/{name}/...), the API and the
	// database: "stripe". See Register for its shape.
	Name() string
	// Title is the name as people write it, for messages: "Stripe".
	Title() string
	// Auth is what an integration with the provider holds to verify its webhooks.
	Auth() Auth
	// Verify checks a webhook's headers and raw body against the integration's
	// credentials; now bounds the age of a signed timestamp. Any failure wraps
	// ErrSignature.
	Verify(h http.Header, body []byte, c Credentials, now time.Time) error
	// Parse turns a verified body into provider-neutral events. A body that is not
	// the provider's webhook JSON wraps ErrMalformed.
	Parse(body []byte, opt Options) (Parsed, error)
}

// Auth is how a provider's webhooks are authenticated.
type Auth int

const (
	// SigningSecrets: the body is signed with a secret; an integration holds one or
	// more (several while one is rotated). A bad signature is the sender's error.
	SigningSecrets Auth = iota
	// BasicAuth: the provider sends a username and password as HTTP basic
	// authorization. Bad credentials are an unauthorized request.
	BasicAuth
)

// Credentials are what an integration holds to verify webhooks: WebhookSecrets for
// SigningSecrets providers, Username and Password for BasicAuth ones.
type Credentials struct {
	WebhookSecrets     []string
	Username, Password string
}

// nameRE is the shape of a provider's name. The database checks the same pattern on
// the columns that hold one (integrations.provider, provider_events.provider,
// transactions.source, customers.source; migration 00013) rather than a list of
// names, so that the list lives here alone and a new provider needs no migration.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// reserved are the sources of customers and transactions that are not providers.
var reserved = []string{"api", "js"}

var registry struct {
	sync.RWMutex
	byName map[string]Provider
	names  []string // in the order registered
}

// Register makes p known by p.Name(). It is meant for package initialization, as
// sql.Register is: it panics if the name is taken, is not 1-32 lower-case letters,
// digits and '_' starting with a letter (the name is a URL segment and the prefix
// of sale keys, "stripe:in_..."), or is a source that is not a provider ("api", "js").
func Register(p Provider) {
	name := p.Name()
	if !nameRE.MatchString(name) || slices.Contains(reserved, name) {
		panic(fmt.Sprintf("providers: Register of a provider named %q", name))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.byName[name]; dup {
		panic(fmt.Sprintf("providers: Register called twice for provider %q", name))
	}
	if registry.byName == nil {
		registry.byName = map[string]Provider{}
	}
	registry.byName[name] = p
	registry.names = append(registry.names, name)
}

// Lookup returns the provider registered under name.
func Lookup(name string) (Provider, bool) {
	registry.RLock()
	defer registry.RUnlock()
	p, ok := registry.byName[name]
	return p, ok
}

// Names returns the registered providers' names in the order they were registered.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	return slices.Clone(registry.names)
}

package referral

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/lib/pq"

	"github.com/referd/referd/providers"
	_ "github.com/referd/referd/providers/all" // the providers referd ships
	"github.com/referd/referd/secrets"
	"github.com/referd/referd/store"
	"github.com/referd/referd/stripeapi"
)

// IntegrationInput is the body of PUT /v1/integrations/{provider}: providers that
// sign their webhooks (Stripe, Paddle) take webhook signing secrets (several, for
// rotation), those that send basic authorization (Chargebee) the username and
// password their webhooks send.
//
// Stripe also takes an API key (sk_ or rk_), for the calls referd makes to Stripe
// (DESIGN §8). Unlike the rest of the body, which PUT replaces, an absent api_key
// keeps the stored one, so that rotating webhook secrets does not mean pasting the
// API key again; "api_key": null or "" removes it.
type IntegrationInput struct {
	WebhookSecrets   []string         `json:"webhook_secrets"`
	WebhookSecret    string           `json:"webhook_secret"`
	Username         *string          `json:"username"`
	Password         *string          `json:"password"`
	CustomerKeyField *string          `json:"customer_key_field"`
	APIKey           Optional[string] `json:"api_key"`
}

var keyFieldRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// PutIntegration creates or replaces the program's integration with provider. key
// (REFERD_SECRET_KEY) encrypts an API key; nil, an API key is refused.
func PutIntegration(ctx context.Context, db *store.DB, p store.Program, provider string, in IntegrationInput, key *secrets.Key) (store.Integration, error) {
	prov, ok := providers.Lookup(provider)
	if !ok {
		return store.Integration{}, &NotFoundError{What: "provider " + provider}
	}
	verr := &ValidationError{}
	i := store.Integration{ProgramPK: p.PK, Provider: provider, CustomerKeyField: "customer_key", UpdatedAt: store.Now()}
	if in.CustomerKeyField != nil {
		i.CustomerKeyField = strings.TrimSpace(*in.CustomerKeyField)
		if !keyFieldRE.MatchString(i.CustomerKeyField) {
			verr.Add("customer_key_field", "The customer_key_field must be 1-64 letters, digits, '_', '.' or '-'.")
		}
	}
	switch prov.Auth() {
	case providers.BasicAuth:
		user, pass := trimmed(in.Username), trimmed(in.Password)
		if user == "" {
			verr.Add("username", "The username field is required for "+prov.Title()+".")
		}
		if pass == "" {
			verr.Add("password", "The password field is required for "+prov.Title()+".")
		}
		if len(user) > 255 || len(pass) > 255 {
			verr.Add("password", "The username and password must be at most 255 characters.")
		}
		i.Username = sql.NullString{String: user, Valid: true}
		i.Password = sql.NullString{String: pass, Valid: true}
	default: // providers.SigningSecrets
		secrets := in.WebhookSecrets
		if s := strings.TrimSpace(in.WebhookSecret); s != "" {
			secrets = append([]string{s}, secrets...)
		}
		for _, s := range secrets {
			s = strings.TrimSpace(s)
			if s == "" || len(s) > 512 || strings.ContainsAny(s, " \t\n\x00") {
				verr.Add("webhook_secrets", "Each webhook secret must be 1-512 characters without spaces.")
				break
			}
			i.WebhookSecrets = append(i.WebhookSecrets, s)
		}
		switch {
		case len(i.WebhookSecrets) == 0 && verr.Err() == nil:
			verr.Add("webhook_secrets", "The webhook_secrets field needs at least one signing secret.")
		case len(i.WebhookSecrets) > 10:
			verr.Add("webhook_secrets", "At most 10 webhook secrets (for rotation).")
		}
	}
	switch apiKey := strings.TrimSpace(in.APIKey.Value); {
	case !in.APIKey.Set:
		i.KeepAPIKey = true
	case in.APIKey.Null || apiKey == "":
		// removed: the columns stay null
	case provider != stripeapi.Provider:
		verr.Add("api_key", "Only Stripe takes an api_key: referd makes no calls to "+prov.Title()+"'s API.")
	case stripeapi.CheckAPIKey(apiKey) != "":
		verr.Add("api_key", stripeapi.CheckAPIKey(apiKey))
	case key == nil:
		verr.Add("api_key", "Storing an api_key needs REFERD_SECRET_KEY, which encrypts it: set it to 32 random bytes in base64 (openssl rand -base64 32) and restart referd.")
	default:
		sealed, err := key.Seal([]byte(apiKey), apiKeyContext(p.PK, provider))
		if err != nil {
			return store.Integration{}, err
		}
		i.APIKeySealed = sql.NullString{String: sealed, Valid: true}
		i.APIKeyHint = sql.NullString{String: stripeapi.MaskKey(apiKey), Valid: true}
	}
	if err := verr.Err(); err != nil {
		return store.Integration{}, err
	}
	if i.WebhookSecrets == nil {
		i.WebhookSecrets = pq.StringArray{}
	}
	if err := store.PutIntegration(ctx, db, &i); err != nil {
		return store.Integration{}, err
	}
	return i, nil
}

func trimmed(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

// apiKeyContext binds a sealed API key to its row: copied to another program's
// integration, it does not decrypt.
func apiKeyContext(programPK int64, provider string) string {
	return fmt.Sprintf("integrations.api_key:%d:%s", programPK, provider)
}

// ErrNoAPIKey says a program's integration holds no API key (or there is no
// integration): PUT /v1/integrations/stripe {"api_key": ...} stores one.
var ErrNoAPIKey = errors.New("no API key: PUT /v1/integrations/stripe with an api_key (sk_... or rk_...) stores one")

// OpenAPIKey returns the API key of i in the clear. It fails with ErrNoAPIKey when
// i has none, secrets.ErrNoKey when key (REFERD_SECRET_KEY) is nil, and
// secrets.ErrOpen when the key was stored with another REFERD_SECRET_KEY.
func OpenAPIKey(key *secrets.Key, i store.Integration) (string, error) {
	if !i.APIKeySealed.Valid {
		return "", ErrNoAPIKey
	}
	plain, err := key.Open(i.APIKeySealed.String, apiKeyContext(i.ProgramPK, i.Provider))
	if err != nil {
		return "", fmt.Errorf("referral.OpenAPIKey(%d, %s): %w", i.ProgramPK, i.Provider, err)
	}
	return string(plain), nil
}

// IntegrationAPIKey reads the program's integration with provider and returns its
// API key in the clear (see OpenAPIKey).
func IntegrationAPIKey(ctx context.Context, q store.Querier, key *secrets.Key, programPK int64, provider string) (string, error) {
	i, err := store.GetIntegration(ctx, q, programPK, provider)
	if store.IsNotFound(err) {
		return "", ErrNoAPIKey
	}
	if err != nil {
		return "", err
	}
	return OpenAPIKey(key, i)
}

// Integrations lists the program's integrations.
func Integrations(ctx context.Context, db *store.DB, p store.Program) ([]store.Integration, error) {
	return store.ListIntegrations(ctx, db, p.PK)
}

// GetIntegration returns the program's integration with provider.
func GetIntegration(ctx context.Context, db *store.DB, p store.Program, provider string) (store.Integration, error) {
	i, err := store.GetIntegration(ctx, db, p.PK, provider)
	if store.IsNotFound(err) {
		return i, &NotFoundError{What: "integration " + provider}
	}
	return i, err
}

// DeleteIntegration removes the program's integration with provider.
func DeleteIntegration(ctx context.Context, db *store.DB, p store.Program, provider string) (store.Integration, error) {
	i, err := store.DeleteIntegration(ctx, db, p.PK, provider)
	if store.IsNotFound(err) {
		return i, &NotFoundError{What: "integration " + provider}
	}
	return i, err
}

// IntegrationView is the integration object: secrets are masked, and webhook_url is
// where the provider must send its webhooks.
type IntegrationView struct {
	Provider       string   `json:"provider"`
	WebhookURL     string   `json:"webhook_url"`
	WebhookSecrets []string `json:"webhook_secrets"`
	Username       *string  `json:"username"`
	Password       *string  `json:"password"`
	// APIKey is what may be shown of the API key: "sk_test_…abcd"; null without one.
	APIKey           *string `json:"api_key"`
	CustomerKeyField string  `json:"customer_key_field"`
	CreatedAt        Time    `json:"created_at"`
	UpdatedAt        Time    `json:"updated_at"`
}

// IntegrationJSON is the API's view of i; publicURL is REFERD_PUBLIC_URL.
func IntegrationJSON(publicURL string, p store.Program, i store.Integration) IntegrationView {
	v := IntegrationView{
		Provider: i.Provider, WebhookURL: strings.TrimRight(publicURL, "/") + "/ingest/" + i.Provider + "/" + p.ID,
		WebhookSecrets: make([]string, len(i.WebhookSecrets)), Username: NullString(i.Username), APIKey: NullString(i.APIKeyHint),
		CustomerKeyField: i.CustomerKeyField, CreatedAt: Time(i.CreatedAt), UpdatedAt: Time(i.UpdatedAt),
	}
	for n, s := range i.WebhookSecrets {
		v.WebhookSecrets[n] = Mask(s)
	}
	if i.Password.Valid {
		m := Mask(i.Password.String)
		v.Password = &m
	}
	return v
}

// Mask keeps only the last four characters of a secret, and only of a long one.
func Mask(s string) string {
	if len(s) < 12 {
		return "****"
	}
	return "****" + s[len(s)-4:]
}

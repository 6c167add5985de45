package referral

import (
	"context"
	"database/sql"
	"regexp"
	"strings"

	"github.com/lib/pq"

	"github.com/referd/referd/providers"
	_ "github.com/referd/referd/providers/all" // the providers referd ships
	"github.com/referd/referd/store"
)

// IntegrationInput is the body of PUT /v1/integrations/{provider}: providers that
// sign their webhooks (Stripe, Paddle) take webhook signing secrets (several, for
// rotation), those that send basic authorization (Chargebee) the username and
// password their webhooks send.
type IntegrationInput struct {
	WebhookSecrets   []string `json:"webhook_secrets"`
	WebhookSecret    string   `json:"webhook_secret"`
	Username         *string  `json:"username"`
	Password         *string  `json:"password"`
	CustomerKeyField *string  `json:"customer_key_field"`
}

var keyFieldRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// PutIntegration creates or replaces the program's integration with provider.
func PutIntegration(ctx context.Context, db *store.DB, p store.Program, provider string, in IntegrationInput) (store.Integration, error) {
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
	Provider         string   `json:"provider"`
	WebhookURL       string   `json:"webhook_url"`
	WebhookSecrets   []string `json:"webhook_secrets"`
	Username         *string  `json:"username"`
	Password         *string  `json:"password"`
	CustomerKeyField string   `json:"customer_key_field"`
	CreatedAt        Time     `json:"created_at"`
	UpdatedAt        Time     `json:"updated_at"`
}

// IntegrationJSON is the API's view of i; publicURL is REFERD_PUBLIC_URL.
func IntegrationJSON(publicURL string, p store.Program, i store.Integration) IntegrationView {
	v := IntegrationView{
		Provider: i.Provider, WebhookURL: strings.TrimRight(publicURL, "/") + "/ingest/" + i.Provider + "/" + p.ID,
		WebhookSecrets: make([]string, len(i.WebhookSecrets)), Username: NullString(i.Username),
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

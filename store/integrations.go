package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// Integration is a program's connection to a billing provider.
type Integration struct {
	ProgramPK        int64          `db:"program_pk"`
	Provider         string         `db:"provider"`
	WebhookSecrets   pq.StringArray `db:"webhook_secrets"`
	Username         sql.NullString `db:"username"`
	Password         sql.NullString `db:"password"`
	CustomerKeyField string         `db:"customer_key_field"`
	// APIKeySealed is the provider's API key encrypted with REFERD_SECRET_KEY
	// (package secrets), APIKeyHint what may be shown of it; both null without one.
	APIKeySealed sql.NullString `db:"api_key_sealed"`
	APIKeyHint   sql.NullString `db:"api_key_hint"`
	CreatedAt    time.Time      `db:"created_at"`
	UpdatedAt    time.Time      `db:"updated_at"`
	// KeepAPIKey makes PutIntegration leave the stored API key as it is, instead of
	// writing APIKeySealed and APIKeyHint.
	KeepAPIKey bool `db:"-"`
}

const integrationCols = `program_pk, provider, webhook_secrets, username, password, customer_key_field, api_key_sealed, api_key_hint, created_at, updated_at`

// PutIntegration creates or replaces the program's integration with i.Provider; with
// i.KeepAPIKey, a stored API key stays.
func PutIntegration(ctx context.Context, q Querier, i *Integration) error {
	keep := i.KeepAPIKey
	if keep {
		i.APIKeySealed, i.APIKeyHint = sql.NullString{}, sql.NullString{}
	}
	err := q.GetContext(ctx, i, `
		INSERT INTO integrations AS i (`+integrationCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
		ON CONFLICT (program_pk, provider) DO UPDATE SET webhook_secrets = EXCLUDED.webhook_secrets,
			username = EXCLUDED.username, password = EXCLUDED.password,
			customer_key_field = EXCLUDED.customer_key_field, updated_at = EXCLUDED.updated_at,
			api_key_sealed = CASE WHEN $10 THEN i.api_key_sealed ELSE EXCLUDED.api_key_sealed END,
			api_key_hint = CASE WHEN $10 THEN i.api_key_hint ELSE EXCLUDED.api_key_hint END
		RETURNING `+integrationCols,
		i.ProgramPK, i.Provider, i.WebhookSecrets, i.Username, i.Password, i.CustomerKeyField, i.APIKeySealed, i.APIKeyHint, i.UpdatedAt, keep)
	if err != nil {
		return fmt.Errorf("store.PutIntegration(%s): %w", i.Provider, translate(err))
	}
	return nil
}

// GetIntegration returns the program's integration with provider.
func GetIntegration(ctx context.Context, q Querier, programPK int64, provider string) (Integration, error) {
	var i Integration
	err := get(ctx, q, &i, `SELECT `+integrationCols+` FROM integrations WHERE program_pk = $1 AND provider = $2`, programPK, provider)
	if err != nil {
		return Integration{}, fmt.Errorf("store.GetIntegration(%s): %w", provider, translate(err))
	}
	return i, nil
}

// ListIntegrations returns the program's integrations.
func ListIntegrations(ctx context.Context, q Querier, programPK int64) ([]Integration, error) {
	var out []Integration
	err := selectRows(ctx, q, &out, `SELECT `+integrationCols+` FROM integrations WHERE program_pk = $1 ORDER BY provider`, programPK)
	if err != nil {
		return nil, fmt.Errorf("store.ListIntegrations: %w", err)
	}
	return out, nil
}

// DeleteIntegration removes the program's integration with provider and returns it.
func DeleteIntegration(ctx context.Context, q Querier, programPK int64, provider string) (Integration, error) {
	var i Integration
	err := q.GetContext(ctx, &i, `DELETE FROM integrations WHERE program_pk = $1 AND provider = $2 RETURNING `+integrationCols, programPK, provider)
	if err != nil {
		return Integration{}, fmt.Errorf("store.DeleteIntegration(%s): %w", provider, translate(err))
	}
	return i, nil
}

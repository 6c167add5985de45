-- A program's billing integrations: the secrets that verify its providers' webhooks.
-- Secrets are kept as given (verifying an HMAC needs them) and never returned in full.

-- +goose Up
CREATE TABLE integrations (
    program_pk         bigint NOT NULL REFERENCES programs (pk) ON DELETE CASCADE,
    provider           text NOT NULL CHECK (provider IN ('stripe', 'paddle', 'chargebee')),
    webhook_secrets    text[] NOT NULL DEFAULT '{}',
    username           text,
    password           text,
    customer_key_field text NOT NULL DEFAULT 'customer_key',
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (program_pk, provider)
);

-- +goose Down
DROP TABLE integrations;

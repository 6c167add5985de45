-- Outgoing webhooks: the endpoints a program subscribes, and one delivery per outbox
-- event and endpoint, created in PostgreSQL before any task is queued, with the log of
-- its attempts.

-- +goose Up
CREATE TABLE webhook_endpoints (
    pk                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk            bigint NOT NULL REFERENCES programs (pk),
    key                   text NOT NULL,
    name                  text NOT NULL DEFAULT '',
    url                   text NOT NULL,
    is_active             boolean NOT NULL DEFAULT true,
    events                text[] NOT NULL DEFAULT '{}',
    secret                text NOT NULL,
    -- During a rotation the old secret signs too, until previous_secret_until.
    previous_secret       text,
    previous_secret_until timestamptz,
    -- Since when every attempt has failed (NULL: the last one succeeded).
    failing_since         timestamptz,
    disabled_reason       text,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CONSTRAINT webhook_endpoints_program_key UNIQUE (program_pk, key)
);

CREATE TABLE webhook_deliveries (
    pk                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                 text NOT NULL UNIQUE,
    webhook_id         text NOT NULL,
    program_pk         bigint NOT NULL,
    endpoint_pk        bigint NOT NULL,
    outbox_pk          bigint NOT NULL,
    event              text NOT NULL,
    body               text NOT NULL,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'succeeded', 'failed', 'exhausted')),
    attempts           jsonb NOT NULL DEFAULT '[]',
    next_attempt_at    timestamptz,
    retry_requested_at timestamptz,
    created_at         timestamptz NOT NULL,
    CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_pk, outbox_pk)
);
CREATE INDEX webhook_deliveries_newest ON webhook_deliveries (endpoint_pk, pk DESC);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status IN ('pending', 'failed');
CREATE INDEX webhook_deliveries_retry ON webhook_deliveries (retry_requested_at) WHERE retry_requested_at IS NOT NULL;

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;

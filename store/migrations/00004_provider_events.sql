-- Billing providers' webhook events, stored verified and before they are answered, so
-- that an acknowledged event is never lost; unique per program, provider and event id,
-- so a redelivery is recognised.

-- +goose Up
CREATE TABLE provider_events (
    pk               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk       bigint NOT NULL,
    provider         text NOT NULL CHECK (provider IN ('stripe', 'paddle', 'chargebee')),
    event_id         text NOT NULL,
    type             text NOT NULL,
    status           text NOT NULL DEFAULT 'received'
                     CHECK (status IN ('received', 'processed', 'ignored', 'unattributed', 'failed')),
    error            text,
    transaction_keys text[] NOT NULL DEFAULT '{}',
    payload          bytea NOT NULL,
    received_at      timestamptz NOT NULL,
    processed_at     timestamptz,
    CONSTRAINT provider_events_unique UNIQUE (program_pk, provider, event_id)
);
CREATE INDEX provider_events_newest ON provider_events (program_pk, pk DESC);
CREATE INDEX provider_events_pending ON provider_events (received_at) WHERE status IN ('received', 'unattributed');

-- +goose Down
DROP TABLE provider_events;

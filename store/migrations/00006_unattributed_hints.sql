-- An unattributed payment remembers who it might be about (the customer key it
-- carried, the provider's customer id, the email), so that it is applied as soon as a
-- matching customer appears, not only by the periodic sweep.

-- +goose Up
ALTER TABLE provider_events
    ADD COLUMN customer_key         text,
    ADD COLUMN provider_customer_id text,
    ADD COLUMN email                text;
CREATE INDEX provider_events_unattributed_key ON provider_events (program_pk, customer_key)
    WHERE status = 'unattributed' AND customer_key IS NOT NULL;
CREATE INDEX provider_events_unattributed_email ON provider_events (program_pk, lower(email))
    WHERE status = 'unattributed' AND email IS NOT NULL;
CREATE INDEX provider_events_unattributed_provider ON provider_events (program_pk, provider, provider_customer_id)
    WHERE status = 'unattributed' AND provider_customer_id IS NOT NULL;

-- +goose Down
ALTER TABLE provider_events DROP COLUMN customer_key, DROP COLUMN provider_customer_id, DROP COLUMN email;

-- The billing providers are listed once, in Go: package providers' registry, filled by
-- package providers/all. The columns that hold a provider's name checked a list of
-- their own, so a fourth provider needed a migration as well as its package; they
-- now check the shape of a name (providers.Register refuses any other), and which
-- names exist is the registry's to say. Nothing reaches these columns from a client:
-- the API and the ingest path look the provider up before they write.
--
-- The checks are NOT VALID: every existing row holds one of the names the old checks
-- listed, which all have the new shape, and validating would scan the largest tables
-- under an exclusive lock. New and updated rows are checked all the same.

-- +goose Up
ALTER TABLE integrations DROP CONSTRAINT integrations_provider_check,
    ADD CONSTRAINT integrations_provider_check CHECK (provider ~ '^[a-z][a-z0-9_]{0,31}$') NOT VALID;
ALTER TABLE provider_events DROP CONSTRAINT provider_events_provider_check,
    ADD CONSTRAINT provider_events_provider_check CHECK (provider ~ '^[a-z][a-z0-9_]{0,31}$') NOT VALID;
-- api (and, for customers, js) or a provider's name.
ALTER TABLE transactions DROP CONSTRAINT transactions_source_check,
    ADD CONSTRAINT transactions_source_check CHECK (source ~ '^[a-z][a-z0-9_]{0,31}$') NOT VALID;
ALTER TABLE customers DROP CONSTRAINT customers_source_check,
    ADD CONSTRAINT customers_source_check CHECK (source ~ '^[a-z][a-z0-9_]{0,31}$') NOT VALID;

-- +goose Down
ALTER TABLE integrations DROP CONSTRAINT integrations_provider_check,
    ADD CONSTRAINT integrations_provider_check CHECK (provider IN ('stripe', 'paddle', 'chargebee')) NOT VALID;
ALTER TABLE provider_events DROP CONSTRAINT provider_events_provider_check,
    ADD CONSTRAINT provider_events_provider_check CHECK (provider IN ('stripe', 'paddle', 'chargebee')) NOT VALID;
ALTER TABLE transactions DROP CONSTRAINT transactions_source_check,
    ADD CONSTRAINT transactions_source_check CHECK (source IN ('api', 'stripe', 'paddle', 'chargebee')) NOT VALID;
ALTER TABLE customers DROP CONSTRAINT customers_source_check,
    ADD CONSTRAINT customers_source_check CHECK (source IN ('api', 'js', 'stripe', 'paddle', 'chargebee')) NOT VALID;

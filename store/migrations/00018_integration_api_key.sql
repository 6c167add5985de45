-- A provider's API key, for the calls referd makes to it (DESIGN §8: Stripe promotion
-- codes). Unlike webhook secrets it is never needed in the clear to verify anything,
-- so it is kept encrypted with REFERD_SECRET_KEY (package secrets: "v1:" and the
-- base64 of nonce and ciphertext), bound to its row. api_key_hint is what the API
-- shows of it ("sk_test_…abcd"), readable without the key.

-- +goose Up
ALTER TABLE integrations
    ADD COLUMN api_key_sealed text,
    ADD COLUMN api_key_hint text,
    ADD CONSTRAINT integrations_api_key_pair CHECK ((api_key_sealed IS NULL) = (api_key_hint IS NULL));

-- +goose Down
ALTER TABLE integrations DROP COLUMN api_key_sealed, DROP COLUMN api_key_hint;

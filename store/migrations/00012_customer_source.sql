-- Where a customer was created (DESIGN §3's customer object): through the API, the
-- browser snippet, or a billing provider's payment that carried a referrer's key.

-- +goose Up
ALTER TABLE customers ADD COLUMN source text NOT NULL DEFAULT 'api'
    CHECK (source IN ('api', 'js', 'stripe', 'paddle', 'chargebee'));

-- +goose Down
ALTER TABLE customers DROP COLUMN source;

-- Partnero's optional transaction fields (DESIGN.md §3). created_at already is the
-- sale's time (a request may now give it, for imports and backfills). Discount and
-- gross amounts are minor units of the transaction's units, like amount; null when the
-- request did not give them.
--
-- The checks are NOT VALID: every existing row is null in these columns, so there is
-- nothing to validate, and validating would scan the largest table under an exclusive
-- lock. New and updated rows are checked all the same.

-- +goose Up
ALTER TABLE transactions
    ADD COLUMN rewardable      boolean NOT NULL DEFAULT true, -- false: recorded, earns nothing
    ADD COLUMN discount_code   text,
    ADD COLUMN discount_amount bigint,
    ADD COLUMN gross_amount    bigint,
    ADD CONSTRAINT transactions_discount_amount CHECK (discount_amount >= 0) NOT VALID,
    ADD CONSTRAINT transactions_gross_amount CHECK (gross_amount >= 0) NOT VALID;

-- +goose Down
ALTER TABLE transactions DROP COLUMN gross_amount, DROP COLUMN discount_amount, DROP COLUMN discount_code,
    DROP COLUMN rewardable;

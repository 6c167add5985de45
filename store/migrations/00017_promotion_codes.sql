-- Promotion codes (DESIGN §8): a code belongs to a referring customer, and a friend
-- who pays with it becomes that customer's referral. A code is unique per program
-- case-insensitively among the codes not deleted; each billing provider's id of it
-- (a Stripe promotion code promo_..., a Paddle discount dsc_..., a Chargebee coupon)
-- is unique per program too, so a payment's discount names one code at most.

-- +goose Up
CREATE TABLE promotion_codes (
    pk           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk   bigint NOT NULL REFERENCES programs (pk) ON DELETE CASCADE,
    customer_pk  bigint NOT NULL REFERENCES customers (pk) ON DELETE CASCADE,
    code         text NOT NULL CHECK (code <> '' AND length(code) <= 64 AND code !~ '\s'),
    stripe_id    text CHECK (stripe_id <> ''),
    paddle_id    text CHECK (paddle_id <> ''),
    chargebee_id text CHECK (chargebee_id <> ''),
    created_at   timestamptz NOT NULL,
    deleted_at   timestamptz
);
CREATE UNIQUE INDEX promotion_codes_program_code ON promotion_codes (program_pk, lower(code)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX promotion_codes_program_stripe ON promotion_codes (program_pk, stripe_id)
    WHERE deleted_at IS NULL AND stripe_id IS NOT NULL;
CREATE UNIQUE INDEX promotion_codes_program_paddle ON promotion_codes (program_pk, paddle_id)
    WHERE deleted_at IS NULL AND paddle_id IS NOT NULL;
CREATE UNIQUE INDEX promotion_codes_program_chargebee ON promotion_codes (program_pk, chargebee_id)
    WHERE deleted_at IS NULL AND chargebee_id IS NOT NULL;
CREATE INDEX promotion_codes_customer ON promotion_codes (customer_pk);
CREATE INDEX promotion_codes_program_newest ON promotion_codes (program_pk, pk DESC);

-- The sales attributed to a code's owner through it: one row per sale, however often
-- its payment is delivered, so uses is a count of rows. A refund leaves the row.
CREATE TABLE promotion_code_uses (
    program_pk     bigint NOT NULL,
    code_pk        bigint NOT NULL REFERENCES promotion_codes (pk) ON DELETE CASCADE,
    transaction_pk bigint NOT NULL REFERENCES transactions (pk) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transaction_pk)
);
CREATE INDEX promotion_code_uses_code ON promotion_code_uses (code_pk);

-- What a provider's discount object names: Stripe invoices of current API versions
-- carry only discount ids (di_...), and customer.discount.created says which
-- promotion code each one applies. Learned whether or not the code is known yet.
CREATE TABLE provider_discounts (
    program_pk   bigint NOT NULL REFERENCES programs (pk) ON DELETE CASCADE,
    provider     text NOT NULL,
    discount_id  text NOT NULL CHECK (discount_id <> ''),
    promotion_id text NOT NULL DEFAULT '',
    code         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program_pk, provider, discount_id)
);
CREATE INDEX provider_discounts_promotion ON provider_discounts (program_pk, provider, promotion_id) WHERE promotion_id <> '';

-- The codes and provider ids a payment carried ("code:<lower code>",
-- "<provider>:<id>"), so that one that ended ignored or unattributed before its
-- code existed is processed again when the code is created.
ALTER TABLE provider_events ADD COLUMN discount_refs text[];
CREATE INDEX provider_events_discount_refs ON provider_events USING gin (discount_refs)
    WHERE status IN ('ignored', 'unattributed') AND discount_refs IS NOT NULL;

-- Events a new code (or a newly learned discount) may attribute, for the relay to
-- queue: written in the transaction that made them attributable.
CREATE TABLE provider_event_retries (
    event_pk   bigint PRIMARY KEY REFERENCES provider_events (pk) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE provider_event_retries;
ALTER TABLE provider_events DROP COLUMN discount_refs;
DROP TABLE provider_discounts;
DROP TABLE promotion_code_uses;
DROP TABLE promotion_codes;

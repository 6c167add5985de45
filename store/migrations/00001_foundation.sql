-- The foundation: programs, their API keys, customers (referrers and referred friends
-- alike), their referral links, and the outbox that later becomes outgoing webhooks.
-- Every tenant table carries program_pk, and every uniqueness rule of the API is a
-- unique index here, so concurrent requests cannot break it.

-- +goose Up
CREATE TABLE programs (
    pk          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    name        text NOT NULL,
    website_url text NOT NULL,
    currency    text NOT NULL DEFAULT 'usd',
    tracking    jsonb NOT NULL,
    rewards     jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored only as a SHA-256 hash; prefix is the first characters, kept so
-- an operator can tell keys apart without the secret.
CREATE TABLE api_keys (
    pk         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk bigint NOT NULL REFERENCES programs (pk) ON DELETE CASCADE,
    hash       bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    prefix     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_program ON api_keys (program_pk);

CREATE TABLE customers (
    pk              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk      bigint NOT NULL REFERENCES programs (pk) ON DELETE CASCADE,
    id              text NOT NULL CHECK (id <> ''),
    key             text NOT NULL CHECK (key <> ''),
    email           text,
    name            text,
    surname         text,
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    referrer_pk     bigint REFERENCES customers (pk),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
    approved        boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz,
    CHECK (referrer_pk <> pk)
);
CREATE UNIQUE INDEX customers_program_id ON customers (program_pk, id);
CREATE UNIQUE INDEX customers_program_key ON customers (program_pk, key);
CREATE UNIQUE INDEX customers_program_email ON customers (program_pk, lower(email)) WHERE email IS NOT NULL;
CREATE INDEX customers_program_newest ON customers (program_pk, pk DESC);
CREATE INDEX customers_referrer ON customers (referrer_pk, pk DESC) WHERE referrer_pk IS NOT NULL;

-- Counters of a customer as a referrer, kept by the statements that change them so
-- that reading them never counts rows. A narrow table with room on each page: the
-- increments are HOT updates that touch no index and no customer row.
CREATE TABLE customer_stats (
    customer_pk bigint PRIMARY KEY REFERENCES customers (pk) ON DELETE CASCADE,
    program_pk  bigint NOT NULL REFERENCES programs (pk) ON DELETE CASCADE,
    referrals   integer NOT NULL DEFAULT 0 CHECK (referrals >= 0)
) WITH (fillfactor = 50);

-- Every referral key that can arrive in a cookie: the customer's own key (is_default)
-- and the extra links of POST /v1/customer_referral_links share one namespace, so a
-- key always resolves to exactly one referrer.
CREATE TABLE referral_links (
    program_pk      bigint NOT NULL REFERENCES programs (pk) ON DELETE CASCADE,
    customer_pk     bigint NOT NULL REFERENCES customers (pk) ON DELETE CASCADE,
    key             text NOT NULL CHECK (key <> ''),
    destination_url text,
    is_default      boolean NOT NULL DEFAULT false,
    is_additional   boolean NOT NULL DEFAULT false,
    domain_id       text,
    created_at      timestamptz NOT NULL,
    CONSTRAINT referral_links_program_key PRIMARY KEY (program_pk, key)
);
CREATE INDEX referral_links_customer ON referral_links (customer_pk);

-- The outbox: every event is written in the same transaction as its cause; the
-- dispatcher turns undispatched rows into deliveries.
-- No foreign key on program_pk: every write of every program appends here, and each
-- check would share-lock the program's row (see 00002_ledger.sql).
CREATE TABLE outbox (
    pk            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk    bigint NOT NULL,
    event         text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
CREATE INDEX outbox_undispatched ON outbox (pk) WHERE dispatched_at IS NULL;

-- +goose Down
DROP TABLE outbox;
DROP TABLE referral_links;
DROP TABLE customer_stats;
DROP TABLE customers;
DROP TABLE api_keys;
DROP TABLE programs;

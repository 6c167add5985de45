-- The admin console (DESIGN §10).
--
-- admin_sessions: a signed-in browser. The cookie holds a random id; only its
-- SHA-256 is stored, so a copy of the table opens no session. Signing out deletes
-- the row, so the old cookie stops working at once. csrf is the token every form of
-- the session carries.
--
-- click_days: clicks per program and UTC day, for the overview's chart (the
-- counters in customer_stats are totals). Each batch of clicks adds to the row of
-- its program, day and shard (the referrer's pk modulo 8), so concurrent batches
-- of one busy program seldom wait on one row.

-- The overview's per-day counts read these indexes alone (index-only scans), not the
-- tables' rows.

-- +goose Up
CREATE TABLE admin_sessions (
    id_hash    bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    program_pk bigint NOT NULL REFERENCES programs (pk) ON DELETE CASCADE,
    csrf       text NOT NULL,
    -- what the next page shows once (a new webhook secret), set by the POST that
    -- made it and taken by the GET its redirect leads to
    flash      text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

-- Failed sign-ins per client address and minute, shared by every process that serves
-- the console, so that the limit (10 a minute) holds behind a load balancer too.
CREATE TABLE admin_signin_failures (
    addr     text NOT NULL,
    minute   timestamptz NOT NULL,
    failures integer NOT NULL,
    PRIMARY KEY (addr, minute)
);

CREATE TABLE click_days (
    program_pk bigint NOT NULL,
    day        date NOT NULL,
    shard      smallint NOT NULL,
    clicks     bigint NOT NULL,
    PRIMARY KEY (program_pk, day, shard)
);

-- What a search of customers looks in (GET /v1/customers:search, the console): one
-- lower-cased text, the fields separated by a character no query contains.
ALTER TABLE customers ADD COLUMN search text GENERATED ALWAYS AS (lower(
    id || chr(31) || key || chr(31) || coalesce(email, '') || chr(31) || coalesce(name, '') || chr(31) || coalesce(surname, ''))) STORED;

CREATE INDEX customers_program_created ON customers (program_pk, created_at) INCLUDE (referrer_pk);
CREATE INDEX transactions_program_created ON transactions (program_pk, created_at) INCLUDE (referrer_pk, amount, units);
CREATE INDEX rewards_program_created ON rewards (program_pk, created_at) INCLUDE (amount, units, is_currency);

-- +goose Down
DROP TABLE admin_signin_failures;
DROP INDEX rewards_program_created;
DROP INDEX transactions_program_created;
DROP INDEX customers_program_created;
ALTER TABLE customers DROP COLUMN search;
DROP TABLE click_days;
DROP TABLE admin_sessions;

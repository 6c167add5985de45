-- Tracking: who clicked a referral link today, for unique_clicks. The counters
-- themselves are customer_stats.clicks and unique_clicks (00002_ledger.sql).
--
-- A visitor is a 16-byte keyed hash of the referrer, the client address and the
-- User-Agent under the day's salt; no address is stored. A salt lives only as long
-- as its day's rows: once PruneClickVisitors deletes both, the hashes that leaked
-- anywhere can no longer be tested against guessed addresses.
--
-- No foreign keys, as in the ledger: every click would share-lock its referrer's
-- row, and the rows are written by referd from customers it has just read.

-- +goose Up
CREATE TABLE click_visitors (
    day         date NOT NULL,
    customer_pk bigint NOT NULL,
    visitor     bytea NOT NULL CHECK (length(visitor) = 16),
    -- day first: pruning deletes a range of the primary key
    PRIMARY KEY (day, customer_pk, visitor)
);

-- One random salt per UTC day, shared by every referd process so that a visitor
-- counts once whichever process sees the click.
CREATE TABLE click_salts (
    day  date PRIMARY KEY,
    salt bytea NOT NULL CHECK (length(salt) = 32)
);

-- +goose Down
DROP TABLE click_salts;
DROP TABLE click_visitors;

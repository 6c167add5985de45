-- Transactions, rewards and the ledger. Money is bigint minor units of `units` (an
-- ISO 4217 code in lower case, or 'credit' / 'percent' where a reward is not money).
-- The ledger is append-only; balances and reward_totals are its running sums, kept by
-- the same transaction that appends to it, so reads never add up history.
--
-- These tables carry program_pk and customer_pk without foreign keys. With them,
-- every sale took a share lock on its program's row and its referrer's row several
-- times over, and under load those shared row locks (multixacts) and the checks
-- behind them were a fifth of PostgreSQL's work (1,760 -> 1,900 sales/s without).
-- Programs are never deleted and customers only soft-deleted, and every row here is
-- written by referd from rows it has just read, so the references cannot dangle.

-- +goose Up
ALTER TABLE customer_stats
    -- as a referrer: referred customers with at least one sale not fully refunded
    ADD COLUMN successful    integer NOT NULL DEFAULT 0 CHECK (successful >= 0),
    -- as a buyer: sales ever recorded, and sales not fully refunded
    ADD COLUMN purchases     integer NOT NULL DEFAULT 0 CHECK (purchases >= 0),
    ADD COLUMN live_sales    integer NOT NULL DEFAULT 0 CHECK (live_sales >= 0),
    -- as a referrer: clicks on the customer's links (filled by tracking)
    ADD COLUMN clicks        bigint NOT NULL DEFAULT 0,
    ADD COLUMN unique_clicks bigint NOT NULL DEFAULT 0;

CREATE TABLE transactions (
    pk              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk      bigint NOT NULL,
    key             text NOT NULL CHECK (key <> ''),
    customer_pk     bigint NOT NULL,
    referrer_pk     bigint,
    action          text NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    units           text NOT NULL,
    refunded        bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount),
    product_id      text,
    product_type    text,
    source          text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'stripe', 'paddle', 'chargebee')),
    livemode        boolean NOT NULL DEFAULT true,
    -- the buyer's n-th sale: first_purchase and max_purchases read it
    purchase_number integer NOT NULL CHECK (purchase_number > 0),
    -- what the request said, to tell an identical retry (200) from a reused key (409)
    fingerprint     text NOT NULL,
    created_at      timestamptz NOT NULL,
    deleted_at      timestamptz,
    CONSTRAINT transactions_program_key UNIQUE (program_pk, key)
);
CREATE INDEX transactions_program_newest ON transactions (program_pk, pk DESC);
CREATE INDEX transactions_customer ON transactions (customer_pk, pk DESC);

-- Refunds by their own idempotency key; one that arrives before its sale waits here
-- (applied = false) and is applied when the sale is recorded.
CREATE TABLE refunds (
    pk              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk      bigint NOT NULL,
    key             text NOT NULL,
    transaction_key text NOT NULL,
    amount          bigint CHECK (amount > 0), -- NULL: the whole remaining amount
    cumulative      boolean NOT NULL DEFAULT false, -- amount is the total refunded so far
    applied         boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    CONSTRAINT refunds_program_key UNIQUE (program_pk, key)
);
CREATE INDEX refunds_waiting ON refunds (program_pk, transaction_key) WHERE NOT applied;

CREATE TABLE rewards (
    pk             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk     bigint NOT NULL,
    key            text NOT NULL,
    customer_pk    bigint NOT NULL,
    recipient      text NOT NULL CHECK (recipient IN ('referrer', 'referred')),
    rule           integer NOT NULL,
    trigger        text NOT NULL,
    type           text NOT NULL CHECK (type IN ('credit', 'discount', 'cash')),
    amount         bigint NOT NULL CHECK (amount > 0),
    units          text NOT NULL,
    is_currency    boolean NOT NULL,
    -- a share of the purchase: a partial refund reverses the same share of it
    proportional   boolean NOT NULL,
    reversed       bigint NOT NULL DEFAULT 0 CHECK (reversed >= 0 AND reversed <= amount),
    status         text NOT NULL CHECK (status IN ('pending', 'approved', 'reversed')),
    transaction_pk bigint,
    -- signup rewards: the referred customer whose sign-up earned it
    signup_pk      bigint,
    available_at   timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    CONSTRAINT rewards_program_key UNIQUE (program_pk, key),
    CHECK ((transaction_pk IS NULL) <> (signup_pk IS NULL))
);
CREATE INDEX rewards_customer ON rewards (customer_pk, pk DESC);
CREATE INDEX rewards_due ON rewards (available_at) WHERE status = 'pending';
-- One reward per rule and recipient for each cause, however often it is retried; the
-- first also finds the rewards of a transaction.
CREATE UNIQUE INDEX rewards_once_per_transaction ON rewards (transaction_pk, rule, recipient) WHERE transaction_pk IS NOT NULL;
CREATE UNIQUE INDEX rewards_once_per_signup ON rewards (signup_pk, rule, recipient) WHERE signup_pk IS NOT NULL;

-- The ledger of what a customer can spend: credit/cash rewards, their approvals and
-- reversals, manual credits and debits. Rows are only ever appended.
CREATE TABLE ledger (
    pk          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk  bigint NOT NULL,
    customer_pk bigint NOT NULL,
    units       text NOT NULL,
    is_currency boolean NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('reward', 'approval', 'reversal', 'credit', 'debit')),
    reward_pk   bigint,
    amount      bigint NOT NULL, -- change of the spendable amount
    pending     bigint NOT NULL, -- change of the held amount
    key         text,            -- a manual credit's idempotency key
    note        text,
    created_at  timestamptz NOT NULL
);
CREATE INDEX ledger_customer ON ledger (customer_pk, units);
CREATE UNIQUE INDEX ledger_credit_key ON ledger (program_pk, key) WHERE key IS NOT NULL;

-- Running sums of the ledger per customer and units.
CREATE TABLE balances (
    customer_pk bigint NOT NULL,
    units       text NOT NULL,
    program_pk  bigint NOT NULL,
    is_currency boolean NOT NULL,
    amount      bigint NOT NULL DEFAULT 0,
    pending     bigint NOT NULL DEFAULT 0 CHECK (pending >= 0),
    PRIMARY KEY (customer_pk, units)
) WITH (fillfactor = 70);

-- Net value of every reward a customer holds (pending and approved, any type), per units.
CREATE TABLE reward_totals (
    customer_pk bigint NOT NULL,
    units       text NOT NULL,
    program_pk  bigint NOT NULL,
    is_currency boolean NOT NULL,
    total       bigint NOT NULL DEFAULT 0 CHECK (total >= 0),
    PRIMARY KEY (customer_pk, units)
) WITH (fillfactor = 70);

-- +goose Down
DROP TABLE reward_totals;
DROP TABLE balances;
DROP TABLE ledger;
DROP TABLE rewards;
DROP TABLE refunds;
DROP TABLE transactions;
ALTER TABLE customer_stats DROP COLUMN successful, DROP COLUMN purchases, DROP COLUMN live_sales,
    DROP COLUMN clicks, DROP COLUMN unique_clicks;

-- One payment, several ids. A Stripe invoice is paid through a PaymentIntent and a
-- charge, and since API version 2025-03-31.basil a charge no longer names its invoice:
-- events keyed by the PaymentIntent or charge (charge.succeeded, charge.refunded) learn
-- which sale they are about from a link (invoice_payment.paid, an invoice that lists its
-- payments). Both sides are sale keys ('stripe:pi_...' -> 'stripe:in_...').

-- +goose Up
CREATE TABLE payment_aliases (
    program_pk bigint NOT NULL,
    alias      text NOT NULL,
    target     text NOT NULL CHECK (target <> alias),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (program_pk, alias)
);

-- A one-off sale that turned out to be an invoice's payment after it was recorded (its
-- link came late) is folded into the invoice's sale: fully reversed, and it says into
-- which.
ALTER TABLE transactions ADD COLUMN folded_into text;

-- +goose Down
ALTER TABLE transactions DROP COLUMN folded_into;
DROP TABLE payment_aliases;

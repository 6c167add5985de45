-- Which referd customer a billing provider's customer is: learned from customer events
-- and from payments, and used to attribute later payments that carry no key.

-- +goose Up
CREATE TABLE provider_customers (
    program_pk           bigint NOT NULL,
    provider             text NOT NULL,
    provider_customer_id text NOT NULL,
    customer_pk          bigint NOT NULL,
    created_at           timestamptz NOT NULL,
    PRIMARY KEY (program_pk, provider, provider_customer_id)
);

-- +goose Down
DROP TABLE provider_customers;

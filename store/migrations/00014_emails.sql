-- Outgoing email (DESIGN §9): one row per cause and recipient, written in the same
-- transaction as its cause, rendered then, and sent by a task that records sent_at
-- once the SMTP server accepted it, so a retried task never sends it twice.

-- +goose Up
CREATE TABLE emails (
    pk         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_pk bigint NOT NULL REFERENCES programs (pk),
    -- What caused it, e.g. invite:<id of the customers:invite call>.
    cause      text NOT NULL,
    to_address text NOT NULL,
    to_name    text NOT NULL DEFAULT '',
    subject    text NOT NULL,
    text_body  text NOT NULL,
    html_body  text NOT NULL,
    created_at timestamptz NOT NULL,
    -- When the relay queued its task (NULL: not yet).
    queued_at  timestamptz,
    sent_at    timestamptz,
    attempts   int NOT NULL DEFAULT 0,
    last_error text,
    CONSTRAINT emails_once UNIQUE (cause, to_address),
    CONSTRAINT emails_no_header_breaks CHECK (subject !~ '[\r\n]' AND to_name !~ '[\r\n]' AND to_address !~ '[\r\n]')
);
CREATE INDEX emails_to_queue ON emails (pk) WHERE queued_at IS NULL;
CREATE INDEX emails_unsent ON emails (queued_at) WHERE sent_at IS NULL;

-- +goose Down
DROP TABLE emails;

-- The id of the request behind a billing event, an outbox event and a webhook
-- delivery, so that logs can follow one event from its ingest request through its job
-- to its outgoing webhooks.

-- +goose Up
ALTER TABLE provider_events ADD COLUMN request_id text;
ALTER TABLE outbox ADD COLUMN request_id text;
ALTER TABLE webhook_deliveries ADD COLUMN request_id text;

-- +goose Down
ALTER TABLE webhook_deliveries DROP COLUMN request_id;
ALTER TABLE outbox DROP COLUMN request_id;
ALTER TABLE provider_events DROP COLUMN request_id;

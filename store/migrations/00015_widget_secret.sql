-- The referral widget's secret (DESIGN §7): a program's backend signs a customer's key
-- with it (HMAC-SHA256), and the widget's data request carries that token. Every
-- program gets one of its own; PATCH /v1/program {"rotate_widget_secret": true}
-- makes a new one.

-- +goose Up
ALTER TABLE programs ADD COLUMN widget_secret text NOT NULL
    DEFAULT ('wgs_' || replace(gen_random_uuid()::text, '-', ''));

-- +goose Down
ALTER TABLE programs DROP COLUMN widget_secret;

-- A program's email notifications (DESIGN §9): reward_earned emails a customer when
-- they earn a reward. Off unless the program turns it on.

-- +goose Up
ALTER TABLE programs ADD COLUMN notifications jsonb NOT NULL DEFAULT '{"reward_earned": false}';

-- +goose Down
ALTER TABLE programs DROP COLUMN notifications;

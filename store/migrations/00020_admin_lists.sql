-- The console's lists of transactions and billing events (DESIGN §10), filtered and
-- read a page at a time newest first: each filter has an index in that order, so a
-- page reads its 51 rows however rare the filter's matches are among a program's
-- millions (without one, a filter that matches little scans the whole program).
--
-- transactions_program_source: ?source= (api, stripe, paddle, chargebee).
-- transactions_program_refunded: ?refunded= yes, partial and full (few of a
-- program's sales are refunded); "no" reads transactions_program_newest.
-- provider_events_program_status: ?status= (failed and unattributed are the rare
-- ones an operator looks for).

-- +goose Up
CREATE INDEX transactions_program_source ON transactions (program_pk, source, pk DESC);
CREATE INDEX transactions_program_refunded ON transactions (program_pk, pk DESC) WHERE refunded > 0;
CREATE INDEX provider_events_program_status ON provider_events (program_pk, status, pk DESC);

-- +goose Down
DROP INDEX provider_events_program_status;
DROP INDEX transactions_program_refunded;
DROP INDEX transactions_program_source;

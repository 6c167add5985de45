-- Loads a program with 10,000 referrers, 90,000 referred friends and 1,000,000
-- sales (one 10% credit reward each), with the running sums the ledger keeps, for the
-- stats and balance benchmarks in BENCHMARKS.md. Usage:
--   psql "$DATABASE_URL" -v program_pk=N -f seed_ledger.sql
-- Keys: referrers seed-r-0 .. seed-r-9999, friends seed-f-0 .. seed-f-89999.
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO customers (program_pk, id, key, email, name, created_at, updated_at)
SELECT :program_pk, 'seed-r-id-' || g, 'seed-r-' || g, 'seed-r-' || g || '@seed.test', 'Referrer ' || g,
       now() - interval '200 days', now() - interval '200 days'
FROM generate_series(0, 9999) g;

INSERT INTO customers (program_pk, id, key, email, name, referrer_pk, created_at, updated_at)
SELECT :program_pk, 'seed-f-id-' || g, 'seed-f-' || g, 'seed-f-' || g || '@seed.test', 'Friend ' || g, r.pk,
       now() - interval '150 days', now() - interval '150 days'
FROM generate_series(0, 89999) g
JOIN customers r ON r.program_pk = :program_pk AND r.key = 'seed-r-' || (g % 10000);

INSERT INTO referral_links (program_pk, customer_pk, key, is_default, created_at)
SELECT program_pk, pk, key, true, created_at FROM customers WHERE program_pk = :program_pk;

INSERT INTO transactions (program_pk, key, customer_pk, referrer_pk, action, amount, units, purchase_number, fingerprint, created_at)
SELECT :program_pk, 'seed-t-' || g, f.pk, f.referrer_pk, 'sale', 100 + (g::bigint * 7919) % 49901, 'usd', g / 90000 + 1, 'seed',
       now() - interval '100 days' + g * interval '1 second'
FROM generate_series(0, 999999) g
JOIN customers f ON f.program_pk = :program_pk AND f.key = 'seed-f-' || (g % 90000);

INSERT INTO rewards (program_pk, key, customer_pk, recipient, rule, trigger, type, amount, units, is_currency,
                     proportional, status, transaction_pk, available_at, created_at)
SELECT program_pk, 'seed-w-' || pk, referrer_pk, 'referrer', 0, 'purchase', 'credit', greatest(round(amount * 0.1), 1)::bigint,
       units, true, true, 'approved', pk, created_at, created_at
FROM transactions WHERE program_pk = :program_pk;

INSERT INTO ledger (program_pk, customer_pk, units, is_currency, kind, reward_pk, amount, pending, created_at)
SELECT program_pk, customer_pk, units, is_currency, 'reward', pk, amount, 0, created_at
FROM rewards WHERE program_pk = :program_pk;

INSERT INTO balances (customer_pk, units, program_pk, is_currency, amount, pending)
SELECT customer_pk, units, :program_pk, true, sum(amount), 0 FROM ledger WHERE program_pk = :program_pk GROUP BY customer_pk, units;

INSERT INTO reward_totals (customer_pk, units, program_pk, is_currency, total)
SELECT customer_pk, units, :program_pk, true, sum(amount - reversed) FROM rewards WHERE program_pk = :program_pk GROUP BY customer_pk, units;

INSERT INTO customer_stats (customer_pk, program_pk, referrals, successful)
SELECT referrer_pk, :program_pk, count(*), count(*) FROM customers
WHERE program_pk = :program_pk AND referrer_pk IS NOT NULL GROUP BY referrer_pk;

INSERT INTO customer_stats (customer_pk, program_pk, purchases, live_sales)
SELECT customer_pk, :program_pk, count(*), count(*) FROM transactions WHERE program_pk = :program_pk GROUP BY customer_pk;
COMMIT;
ANALYZE;

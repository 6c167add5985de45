#!/usr/bin/env bash
# webhooks.sh measures referd's outgoing webhooks (BENCHMARKS.md, "Outgoing webhooks"):
#
#  1. throughput: `referd api` alone records customers for BACKLOG_SECONDS (their
#     customer.created events wait in the outbox); then `referd worker` starts and the
#     no-op receiver (referd-load -sink) reports the deliveries/s it sees;
#  2. latency: `referd api` and `referd worker` together, the transactions scenario at
#     RATE transactions/s, the endpoint subscribed to EVENTS (a JSON list's inside,
#     default transaction.created); the receiver reports, for each transaction.created, the time
#     from the transaction's created_at (stamped just before its commit) to arrival.
#
#   bash cmd/referd-load/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

BACKLOG_SECONDS=${BACKLOG_SECONDS:-10s}
RATE=${RATE:-1000}
LATENCY_SECONDS=${LATENCY_SECONDS:-20s}
DB=referd_webhooks REDIS_DB=7
export REFERD_ALLOW_PRIVATE_TARGETS=true
source cmd/referd-load/bench-env.sh

PORT=18094 "$bin/referd" api 2>"$bin/api.log" & pids+=($!)
wait_port 18094
out=$("$bin/referd" program create --name webhooks --website https://webhooks.test 2>/dev/null)
key=$(jq -r .api_key <<<"$out")
api() { curl -sf -X "$1" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  "http://127.0.0.1:18094$2" -d "$3" >/dev/null; }
api PATCH /v1/program '{"rewards":[{"recipient":"referrer","trigger":"purchase","type":"credit","amount":10,"amount_type":"percent"}]}'
api POST /v1/webhooks '{"key":"sink","url":"http://127.0.0.1:18099/hook"}'

echo "== 1. throughput: a backlog of customer.created, then the workers"
"$bin/referd-load" -url http://127.0.0.1:18094 -key "$key" -scenario customers -c 64 -d "$BACKLOG_SECONDS" | grep -E 'throughput|failures' || true
backlog=$(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM outbox WHERE dispatched_at IS NULL")
echo "outbox events waiting: $backlog"
"$bin/referd-load" -sink 127.0.0.1:18099 -d 120s >"$bin/sink1.txt" 2>/dev/null & sink=$!
sleep 0.5
"$bin/referd" worker 2>"$bin/worker.log" & worker=$!
for _ in $(seq 240); do
  left=$(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM outbox WHERE dispatched_at IS NULL")
  pending=$(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded'")
  [ "$left" -eq 0 ] && [ "$pending" -eq 0 ] && break
  sleep 0.5
done
kill -INT $sink; wait $sink || true
grep -E 'deliveries|duplicates|rate' "$bin/sink1.txt" | head -6

echo "== 2. latency: transactions at $RATE/s, api and worker running; the endpoint takes ${EVENTS:-transaction.created}"
api PUT /v1/webhooks/sink "{\"events\":[\"${EVENTS:-transaction.created}\"]}"
"$bin/referd-load" -sink 127.0.0.1:18099 -d 120s >"$bin/sink2.txt" 2>/dev/null & sink=$!
sleep 0.5
"$bin/referd-load" -url http://127.0.0.1:18094 -key "$key" -scenario transactions -rate "$RATE" -c 64 -d "$LATENCY_SECONDS" | grep -E 'throughput|rate|latency|failures' || true
sleep 3
kill -INT $sink; wait $sink || true
grep -E 'deliveries|duplicates|transaction.created|p50|p99|latency' "$bin/sink2.txt" | head -12
kill $worker 2>/dev/null || true

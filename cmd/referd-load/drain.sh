#!/usr/bin/env bash
# drain.sh measures how fast `referd worker` turns stored billing events into
# transactions (BENCHMARKS.md, "Draining stored payments").
#
# It builds referd and referd-load, creates a fresh database (referd_drain) and Redis
# db 5, runs `referd ingest` and `referd api` alone, sets up a program with a 10%
# referrer credit rule, 16 referrers and 1,024 referred friends (load<i>@load.test),
# ingests signed Stripe invoice.paid events for DURATION at 64 senders, and only then
# starts `referd worker` and samples provider_events once a second until none is
# left received.
#
#   bash cmd/referd-load/drain.sh            # DURATION=5s
#   DURATION=10s bash cmd/referd-load/drain.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-5s}
DB=referd_drain REDIS_DB=5
source cmd/referd-load/bench-env.sh

PORT=18091 "$bin/referd" ingest 2>"$bin/ingest.log" & pids+=($!)
PORT=18092 "$bin/referd" api 2>"$bin/api.log" & pids+=($!)
wait_port 18091
wait_port 18092

out=$("$bin/referd" program create --name drain --website https://drain.test 2>/dev/null)
program=$(jq -r .program.id <<<"$out")
key=$(jq -r .api_key <<<"$out")
api() { curl -sf -X "$1" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  "http://127.0.0.1:18092$2" -d "$3" >/dev/null; }
api PATCH /v1/program '{"rewards":[{"recipient":"referrer","trigger":"purchase","type":"credit","amount":10,"amount_type":"percent"}]}'
api PUT /v1/integrations/stripe '{"webhook_secrets":["whsec_drain"]}'
for r in $(seq 0 15); do api POST /v1/customers "{\"key\":\"ref$r\"}"; done
for i in $(seq 0 1023); do echo "$i $((i % 16))"; done | xargs -P 16 -L 1 sh -c 'curl -sf -o /dev/null -X POST \
  -H "Authorization: Bearer $0" -H "Content-Type: application/json" http://127.0.0.1:18092/v1/customers \
  -d "{\"key\":\"friend$1\",\"email\":\"load$1@load.test\",\"referring_customer\":{\"key\":\"ref$2\"}}"' "$key"

"$bin/referd-load" -url http://127.0.0.1:18091 -scenario ingest-stripe -program "$program" \
  -secret whsec_drain -c 64 -d "$DURATION" | grep -E 'throughput|failures|latency' || true
total=$(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM provider_events")
echo "stored events: $total; starting referd worker"

"$bin/referd" worker 2>"$bin/worker.log" & pids+=($!)
start=$(date +%s.%N)
while :; do
  left=$(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM provider_events WHERE status = 'received'")
  now=$(date +%s.%N)
  printf '%6.1fs  received %s\n' "$(echo "$now - $start" | bc)" "$left"
  [ "$left" -eq 0 ] && break
  sleep 1
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
psql -tAq "$DATABASE_URL" -c "SELECT status, count(*) FROM provider_events GROUP BY 1 ORDER BY 1"
echo "transactions: $(psql -tAq "$DATABASE_URL" -c "SELECT count(*) FROM transactions")"
printf 'drained %s events in %.1f s: %.0f events/s\n' "$total" "$elapsed" "$(echo "$total / $elapsed" | bc -l)"

#!/usr/bin/env bash
# e2e.sh measures referd end to end against this machine's own PostgreSQL ceiling
# (BENCHMARKS.md, "End to end against the machine's ceiling (issue 14)").
#
# It builds referd and referd-load, makes a fresh database (referd_e2e) and Redis db 9,
# and starts ONE `referd serve` on 127.0.0.1:18095 with REFERD_ALLOW_PRIVATE_TARGETS=true.
# It sets up a program with a 10% referrer credit rule, a Stripe integration (secret
# whsec_e2e), a webhook endpoint for transaction.created at referd-load's own receiver
# (127.0.0.1:18096), 16 referrers and 1,024 referred friends (load<i>@load.test). Then
# `referd-load -e2e` runs, in order:
#   1. the PostgreSQL ceiling (a scratch database referd_ceiling, created and dropped);
#   2. the ingest burst (64 senders, INGEST seconds);
#   3. the burst drain (EVENTS events, send -> transaction.created, CPU per event);
#   4. the paced run (0.05 x ceiling events/s for PACED, send -> webhook latency);
# and prints one markdown table, every result a ratio to the ceiling.
#
#   bash cmd/referd-load/e2e.sh
#   EVENTS=10000 PACED=30s bash cmd/referd-load/e2e.sh
#   JSON=1 bash cmd/referd-load/e2e.sh      # the whole report as JSON instead
set -euo pipefail
cd "$(dirname "$0")/../.."

EVENTS=${EVENTS:-5000}
INGEST=${INGEST:-5s}
PACED=${PACED:-20s}
DB=referd_e2e REDIS_DB=9
export REFERD_ALLOW_PRIVATE_TARGETS=true REFERD_HOST=127.0.0.1
source cmd/referd-load/bench-env.sh

PORT=18095 "$bin/referd" serve 2>"$bin/serve.log" & pids+=($!)
referd=$!
wait_port 18095
out=$("$bin/referd" program create --name e2e --website https://e2e.test 2>/dev/null)
program=$(jq -r .program.id <<<"$out")
key=$(jq -r .api_key <<<"$out")
api() { curl -sf -X "$1" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  "http://127.0.0.1:18095$2" -d "$3" >/dev/null; }
api PATCH /v1/program '{"rewards":[{"recipient":"referrer","trigger":"purchase","type":"credit","amount":10,"amount_type":"percent"}]}'
api PUT /v1/integrations/stripe '{"webhook_secrets":["whsec_e2e"]}'
api POST /v1/webhooks '{"key":"sink","url":"http://127.0.0.1:18096/hook","events":["transaction.created"]}'
for r in $(seq 0 15); do api POST /v1/customers "{\"key\":\"ref$r\"}"; done
for i in $(seq 0 1023); do echo "$i $((i % 16))"; done | xargs -P 16 -L 1 sh -c 'curl -sf -o /dev/null -X POST \
  -H "Authorization: Bearer $0" -H "Content-Type: application/json" http://127.0.0.1:18095/v1/customers \
  -d "{\"key\":\"friend$1\",\"email\":\"load$1@load.test\",\"referring_customer\":{\"key\":\"ref$2\"}}"' "$key"

commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
"$bin/referd-load" -e2e 127.0.0.1:18096 -url http://127.0.0.1:18095 -program "$program" -secret whsec_e2e \
  -pid "$referd" -referd-db "$DB" -commit "$commit" -c 64 -ingest-d "$INGEST" -drain-n "$EVENTS" -paced-d "$PACED" \
  ${JSON:+-json} || { echo "referd-load failed; the end of referd's log:" >&2; tail -20 "$bin/serve.log" >&2; exit 1; }

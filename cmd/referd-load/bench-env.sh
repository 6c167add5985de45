# bench-env.sh is sourced by the benchmark scripts here: with DB (a database name) and
# REDIS_DB (a Redis database number) set, it builds referd and referd-load into $bin,
# makes the database and the Redis database fresh, migrates, and kills every process
# whose pid the script adds to pids when it exits. wait_port PORT waits for a server.
PG=${PG:-postgres://postgres@127.0.0.1:5432}
export DATABASE_URL="$PG/$DB?sslmode=disable"
export REDIS_URL=redis://127.0.0.1:6379/$REDIS_DB
export REFERD_LOG_FORMAT=json
bin=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$bin"; }
trap cleanup EXIT

go build -o "$bin/referd" ./cmd/referd
go build -o "$bin/referd-load" ./cmd/referd-load
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
redis-cli -n "$REDIS_DB" flushdb >/dev/null
"$bin/referd" migrate >/dev/null 2>&1
wait_port() { for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return; sleep 0.1; done; }

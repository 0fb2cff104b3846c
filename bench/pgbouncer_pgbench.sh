#!/usr/bin/env bash
# pgbench through PgBouncer with 900 client connections, for a bounded time,
# on a converged db host (default: platform-local from `make up`).
# Prints transactions/s, failed transactions (must be 0) and the highest number
# of PostgreSQL backends for the app role seen during the run (must stay within
# pgbouncer_max_db_connections). Traffic stays inside the host.
#
# With COMPARE_RESET=1 it runs a second time with PgBouncer's reset after each
# transaction turned off (server_reset_query_always = 0, through the admin
# console; RELOAD puts the file's setting back), and prints both figures: what
# wiping session state from every server connection costs.
#
# Usage: [COMPARE_RESET=1] bench/pgbouncer_pgbench.sh [HOST_CONTAINER] [SECONDS] [CLIENTS]
set -euo pipefail
host="${1:-platform-local}"
seconds="${2:-20}"
# max_client_conn is 1000 and the app's own pools are connected too: 900 leaves them room.
clients="${3:-900}"
repo=$(cd "$(dirname "$0")/.." && pwd)
secrets="${SECRETS_DIR:-$repo/.cache/secrets}"
password=$(cut -d' ' -f1 <"$secrets/postgresql_app")

run() { docker exec -i "$host" "$@"; }

version=$(run sh -c 'ls /usr/lib/postgresql | sort -n | tail -1')
pgbench="/usr/lib/postgresql/$version/bin/pgbench"
limit=$(run runuser -u postgres -- psql -XAt -h /var/run/postgresql -p 6432 -U postgres pgbouncer -c 'SHOW CONFIG' \
  | awk -F'|' '$1 == "max_db_connections" {print $2}')

# The app's unit of work: one transaction that sets the tenant first.
run sh -c 'cat > /tmp/tenant-tx.sql' <<'SQL'
\set n random(1, 1000000)
BEGIN;
SELECT set_config('app.current_tenant_id', '00000000-0000-0000-0000-' || lpad(:n::text, 12, '0'), true);
SELECT count(*) FROM pg_catalog.pg_class WHERE relkind = 'r';
COMMIT;
SQL

admin() { run runuser -u postgres -- psql -XAt -h /var/run/postgresql -p 6432 -U postgres pgbouncer -c "$1"; }

bench_once() {
# Sample the number of server connections every 200 ms while pgbench runs.
run sh -c "rm -f /tmp/backends; end=\$((\$(date +%s) + $seconds + 15)); while [ \$(date +%s) -lt \$end ]; do \
  runuser -u postgres -- psql -XAt -c \"SELECT count(*) FROM pg_stat_activity WHERE usename = 'platform_app'\" >>/tmp/backends; \
  sleep 0.2; done" &
sampler=$!

echo "pgbench: $clients clients through PgBouncer (TLS, SCRAM, transaction pooling) for ${seconds}s on $host (PostgreSQL $version)"
set +e
out=$(run sh -c "ulimit -n 8192; PGPASSWORD='$password' $pgbench -n -f /tmp/tenant-tx.sql -c $clients -j 2 -T $seconds \
  'host=127.0.0.1 port=6432 dbname=platform user=platform_app sslmode=require' 2>&1")
rc=$?
set -e
wait "$sampler" 2>/dev/null || true
max_backends=$(run sh -c 'sort -n /tmp/backends | tail -1')

echo "$out" | grep -E '^(number of clients|number of transactions actually processed|number of failed transactions|latency average|tps)' || echo "$out" | tail -20
echo "pgbench exit code: $rc"
echo "highest PostgreSQL backends for platform_app: ${max_backends} (PgBouncer max_db_connections: ${limit})"
if [ "$rc" -ne 0 ] || [ "${max_backends:-0}" -gt "${limit:-0}" ]; then
  echo "RESULT: FAIL"
  exit 1
fi
tps=$(echo "$out" | awk '/^tps/ {printf "%.0f", $3}')
}

echo "== server_reset_query = $(admin 'SHOW CONFIG' | awk -F'|' '$1 == "server_reset_query" {print $2}'), always = $(admin 'SHOW CONFIG' | awk -F'|' '$1 == "server_reset_query_always" {print $2}')"
bench_once
with_reset=$tps
if [ "${COMPARE_RESET:-0}" = 1 ]; then
  admin 'SET server_reset_query_always = 0' >/dev/null
  echo "== server_reset_query_always = 0 (no reset in transaction pooling)"
  bench_once
  without_reset=$tps
  admin 'RELOAD' >/dev/null
  echo "tps with the reset: $with_reset, without: $without_reset (ratio $(awk -v a="$with_reset" -v b="$without_reset" 'BEGIN {printf "%.2f", a / b}'))"
fi
echo "RESULT: OK"

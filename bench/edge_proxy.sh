#!/usr/bin/env bash
# The proxy's cost: wrk through nginx on https (TLS, headers, least_conn over the
# four instances) and straight to one gunicorn instance (3001), in the same run,
# for liveness and check. Runs wrk on the local host `make up` made (platform-local),
# so both paths start from the same place; installs wrk there if missing.
#   bench/edge_proxy.sh [HOST] [SECONDS] [CONNECTIONS]
set -euo pipefail
name=${1:-platform-local}
seconds=${2:-10}
connections=${3:-32}

run() { docker exec "$name" "$@"; }
run sh -c 'command -v wrk >/dev/null || (apt-get install -y -qq wrk >/dev/null)'

bench() {  # url -> "rps p50_ms p99_ms non2xx"
  local out
  out=$(run wrk --latency -t2 -c"$connections" -d"${seconds}s" "$1")
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $5 }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad }' <<<"$out"
}

printf '%-14s %-26s %9s %9s %9s %6s\n' procedure path "req/s" "p50 ms" "p99 ms" non2xx
for procedure in health.liveness health.check; do
  read -r n_rps n_p50 n_p99 n_bad < <(bench "https://127.0.0.1/trpc/${procedure}")
  read -r d_rps d_p50 d_p99 d_bad < <(bench "http://127.0.0.1:3001/trpc/${procedure}")
  printf '%-14s %-26s %9s %9s %9s %6s\n' "$procedure" "nginx https (4 instances)" "$n_rps" "$n_p50" "$n_p99" "$n_bad"
  printf '%-14s %-26s %9s %9s %9s %6s\n' "$procedure" "gunicorn :3001 direct" "$d_rps" "$d_p50" "$d_p99" "$d_bad"
  awk -v n="$n_rps" -v d="$d_rps" -v p="$procedure" 'BEGIN { printf "%-14s ratio nginx/direct: %.2f\n", p, n / d }'
done

#!/usr/bin/env bash
# Print what `make up` deployed on the local host and how to reach it.
set -euo pipefail
name="${1:-platform-local}"

run() { docker exec "$name" "$@"; }
os=$(run sh -c '. /etc/os-release; echo "$PRETTY_NAME"')
echo
echo "== ${name}: ${os} =="
printf '%-22s %s\n' "unit" "state"
for unit in nftables chrony unattended-upgrades postgresql pgbouncer \
            redis-server@cache redis-server@realtime nginx 'platform-api@3001'; do
  run systemctl cat "$unit" >/dev/null 2>&1 || continue
  state=$(run systemctl is-active "$unit" 2>/dev/null || true)
  enabled=$(run systemctl is-enabled "$unit" 2>/dev/null || true)
  printf '%-22s %s (%s)\n' "$unit" "$state" "$enabled"
done
echo
echo "Shell on the host:   docker exec -it ${name} bash"
echo "Published ports:     http://127.0.0.1:8080 -> 80, https://127.0.0.1:8443 -> 443"
if run systemctl is-active --quiet nginx 2>/dev/null; then
  echo "Health check:        curl -k https://127.0.0.1:8443/trpc/health.check"
  curl -ks --max-time 5 https://127.0.0.1:8443/trpc/health.check || true
  echo
else
  echo "Health check:        nothing listens on 443 yet (the nginx and app roles are not in site.yml yet)"
fi
echo "Secrets (generated): .cache/secrets/ (postgresql_app, redis_app, ...)"
echo "PgBouncer:           docker exec -it ${name} psql 'host=127.0.0.1 port=6432 dbname=platform user=platform_app sslmode=require'"
echo "Re-converge:         make up     Remove the host: make down"

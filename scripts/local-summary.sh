#!/usr/bin/env bash
# Print what `make up` deployed on the local host and how to reach it.
set -euo pipefail
name="${1:-platform-local}"

run() { docker exec "$name" "$@"; }
os=$(run sh -c '. /etc/os-release; echo "$PRETTY_NAME"')
echo
echo "== ${name}: ${os} =="
printf '%-28s %s\n' "unit" "state"
instances=$(run systemctl list-units --all --plain --no-legend 'platform-api@*.service' | awk '{print $1}')
for unit in nftables chrony unattended-upgrades postgresql pgbouncer \
            redis-server@cache redis-server@realtime nginx $instances \
            platform-api-health.timer platform-api-metrics.timer platform-api-purge-sessions.timer; do
  run systemctl cat "$unit" >/dev/null 2>&1 || continue
  state=$(run systemctl is-active "$unit" 2>/dev/null || true)
  enabled=$(run systemctl is-enabled "$unit" 2>/dev/null || true)
  printf '%-28s %s (%s)\n' "$unit" "$state" "$enabled"
done
echo
echo "Shell on the host:   docker exec -it ${name} bash"
echo "Published ports:     http://127.0.0.1:8080 -> 80, https://127.0.0.1:8443 -> 443"
ca="$(cd "$(dirname "$0")/.." && pwd)/.cache/tls-ca/ca.crt"
echo "Private CA:          ${ca} (the controller keeps its key; hosts never see it)"
echo "Secrets (generated): .cache/secrets/ (postgresql_app, redis_app, app_auth_secret, ...)"
pgbouncer_port=$(run sed -n 's/^listen_port = //p' /etc/pgbouncer/pgbouncer-listen.ini 2>/dev/null || true)
echo "PgBouncer:           docker exec -it ${name} psql 'host=127.0.0.1 port=${pgbouncer_port:-6432} dbname=platform user=platform_app sslmode=require'"
echo "Re-converge:         make up     Remove the host: make down"
echo "Health check:        curl --cacert ${ca} https://127.0.0.1:8443/trpc/health.check"
echo "Sign in:             https://127.0.0.1:8443/auth/signin (trust ${ca}); the test provider's login page"
echo "                     takes any e-mail (unverified+you@x.test is refused as unverified); then"
echo "                     https://127.0.0.1:8443/api/auth/session shows the session, /trpc/widgets.list the tenant's data"
echo "Checks (PASS/FAIL):  ansible-playbook -i inventories/local playbooks/verify.yml (site.yml ends with it)"

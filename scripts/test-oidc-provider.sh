#!/usr/bin/env bash
# The test OpenID provider (app/tests/node/oidc-provider.mjs, panva's
# oidc-provider) for converged test hosts in staging: Molecule's default
# scenario and `make up`. It listens on the Docker bridge's gateway address
# only (reachable from the containers and from this machine's browser, from
# nothing else) and registers the two clients the inventory names:
# client-google and client-microsoft-entra-id, secrets in SECRETS_DIR.
#
#   scripts/test-oidc-provider.sh start NAME PORT SECRETS_DIR ORIGIN...   prints the issuer
#     ORIGIN: https://name[:port], or container:NAME for https://<its address> and https://<its hostname>
#   scripts/test-oidc-provider.sh stop NAME
#
# Production never runs it: the app refuses a test issuer when APP_ENV=production.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.cache/oidc-provider"
cmd=${1:?start or stop}
name=${2:?a name}
pidfile="$state/$name.pid"

stop() {
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}

case "$cmd" in
  stop)
    stop
    ;;
  start)
    port=${3:?a port}
    secrets=${4:?a secrets directory}
    shift 4
    [ $# -gt 0 ] || { echo "test-oidc-provider: at least one site origin is needed" >&2; exit 2; }
    stop
    mkdir -p "$state" "$secrets"
    origins=()
    for origin in "$@"; do
      if [[ "$origin" == container:* ]]; then
        c=${origin#container:}
        while read -r address; do
          [ -n "$address" ] && origins+=("https://$address")
        done < <(docker inspect -f '{{range .NetworkSettings.Networks}}{{println .IPAddress}}{{end}}' "$c")
        origins+=("https://$(docker inspect -f '{{.Config.Hostname}}' "$c")")
      else
        origins+=("$origin")
      fi
    done
    set -- "${origins[@]}"
    # The bridge's gateway: the network's IPAM config names it, except on some engine
    # starts (seen with docker.io 20.10, Subnet only): then docker0's own address.
    gateway=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}')
    if [ -z "$gateway" ]; then
      gateway=$(ip -4 -o addr show dev docker0 2>/dev/null | awk '{sub("/.*", "", $4); print $4; exit}')
    fi
    [ -n "$gateway" ] || { echo "test-oidc-provider: no address of Docker's bridge found" >&2; exit 1; }
    node_dir="$root/app/tests/node"
    if [ ! -d "$node_dir/node_modules/oidc-provider" ]; then
      command -v npm >/dev/null || { apt-get install -y -qq nodejs npm >/dev/null; }
      (cd "$node_dir" && npm ci --no-audit --no-fund --silent)
    fi
    clients=$(python3 - "$secrets" "$@" <<'EOF'
import json, pathlib, secrets, string, sys
store, origins = pathlib.Path(sys.argv[1]), sys.argv[2:]
out = []
for pid in ("google", "microsoft-entra-id"):
    path = store / f"oidc_{pid}"
    if not path.exists():
        alphabet = string.ascii_letters + string.digits
        path.write_text("".join(secrets.choice(alphabet) for _ in range(40)))
        path.chmod(0o600)
    out.append({
        "client_id": f"client-{pid}",
        "client_secret": path.read_text().split()[0],
        "redirect_uris": [f"{o.rstrip('/')}/api/auth/callback/{pid}" for o in origins],
    })
print(json.dumps(out))
EOF
)
    cookie_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
    cd "$node_dir"
    # A simple command in the background: $! is node's own pid (what `stop` kills).
    HOST="$gateway" PORT="$port" OIDC_CLIENTS="$clients" COOKIE_KEY="$cookie_key" \
      nohup node oidc-provider.mjs >"$state/$name.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    cd "$root"
    issuer="http://$gateway:$port"
    for _ in $(seq 100); do
      if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
          "$issuer/.well-known/openid-configuration" 2>/dev/null; then
        echo "$issuer"
        exit 0
      fi
      sleep 0.2
    done
    echo "test-oidc-provider: not answering; log:" >&2
    cat "$state/$name.log" >&2
    stop
    exit 1
    ;;
  *)
    echo "usage: $0 start NAME PORT SECRETS_DIR ORIGIN... | stop NAME" >&2
    exit 2
    ;;
esac

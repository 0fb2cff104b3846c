#!/usr/bin/env bash
# promtool from Debian's prometheus package, unpacked into .cache/promtool (no
# daemon installed on the controller): `scripts/promtool.sh <promtool args>`.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cache/promtool
bin=$dir/usr/bin/promtool
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$tmp" && apt-get download -qq prometheus)
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  install -D -m 0755 "$tmp/x/usr/bin/promtool" "$bin"
fi
exec "$bin" "$@"

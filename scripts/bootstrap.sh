#!/usr/bin/env bash
# Install what a fresh Debian controller lacks to run the toolchain: Python's
# venv module and debootstrap (test-host images). Docker is scripts/ensure-docker.sh.
set -euo pipefail

missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v git >/dev/null 2>&1 || missing+=(git)
# ansible-lint's git checks and the tests read an up-to-date CA bundle.
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing controller packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "error: missing controller packages: ${missing[*]}" >&2
  echo "       Install them (on Debian: apt-get install ${missing[*]}) and run this again." >&2
  exit 1
fi

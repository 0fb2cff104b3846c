#!/usr/bin/env bash
# Make sure a Docker engine answers. When none does: start an installed dockerd,
# or install Debian's docker.io and start it, in the background, and say so.
set -euo pipefail

log=/var/log/platform-dockerd.log

answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "No Docker engine answers: installing Debian's docker.io ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
  else
    echo "error: no Docker engine answers and this script cannot install one." >&2
    echo "       Install Docker Engine (on Debian, as root: apt-get install docker.io) and start it, then run this again." >&2
    exit 1
  fi
fi

# Prefer the service manager when there is one; otherwise run dockerd ourselves.
if [ -d /run/systemd/system ] && systemctl start docker >/dev/null 2>&1 && answers; then
  echo "Started the docker service."
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "error: dockerd is installed but not running, and starting it needs root." >&2
  echo "       Start it (sudo systemctl start docker) or add yourself to the docker group." >&2
  exit 1
fi

echo "No Docker engine answers: starting dockerd in the background (log: ${log})."
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if answers; then
    echo "dockerd is up."
    exit 0
  fi
  sleep 1
done
echo "error: dockerd did not answer within 60 s; see ${log}" >&2
tail -20 "$log" >&2 || true
exit 1

#!/usr/bin/env bash
# Wall-clock time of a fresh all-in-one converge (new platform-local host from the
# test image) and of a second converge, which must change nothing.
#   bench/converge_time.sh [debian13|debian12]
set -euo pipefail
cd "$(dirname "$0")/.."
distro=${1:-debian13}
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_FORCE_COLOR=0

ansible-playbook playbooks/local.yml -e local_state=absent >/dev/null
ansible-playbook playbooks/local.yml -e local_state=present -e "local_distro=$distro" >/dev/null

converge() {  # label -> prints seconds and the recap line
  local start end log
  log=$(mktemp)
  start=$(date +%s.%N)
  ansible-playbook -i inventories/local site.yml >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
  end=$(date +%s.%N)
  printf '%-16s %6.1f s   %s\n' "$1" "$(echo "$end - $start" | bc)" "$(grep -E '^platform-local +:' "$log" | tr -s ' ')"
  rm -f "$log"
}
echo "all-in-one converge of platform-local ($distro), $(nproc) cores"
converge "fresh"
converge "second (no-op)"

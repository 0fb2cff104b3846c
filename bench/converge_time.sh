#!/usr/bin/env bash
# Wall-clock time of a fresh all-in-one converge (a new platform-local host from
# the test image) and of a second converge, which must change nothing: with plain
# Ansible and with Mitogen's strategy (plugins/strategy). Given the directory that
# holds Geerling's roles (geerlingguy.firewall, .postgresql, .redis, .nginx,
# fetched by whoever runs the bench), the same runs of bench/geerling.yml on a
# fresh host of the same image, in the same run, and the ratios. Then the cost
# per role of every run (profile_roles; logs in .cache/bench-converge/).
#   bench/converge_time.sh [debian13|debian12] [GEERLING_ROLES_DIR]
# BENCH_OURS=0 skips our runs (to try the other side's playbook; no ratios then).
set -euo pipefail
cd "$(dirname "$0")/.."
distro=${1:-debian13}
geerling=${2:-}
[ -z "$geerling" ] || [ -d "$geerling/geerlingguy.postgresql" ] \
  || { echo "error: $geerling has no geerlingguy.postgresql (and .firewall, .redis, .nginx)" >&2; exit 2; }
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_FORCE_COLOR=0
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_roles
logs=.cache/bench-converge
mkdir -p "$logs"
declare -A took

fresh_host() {
  ansible-playbook playbooks/local.yml -e local_state=absent >/dev/null
  ansible-playbook playbooks/local.yml -e local_state=present -e "local_distro=$distro" >/dev/null
}

run() {  # run NAME STRATEGY PLAYBOOK [ansible-playbook args...]: times one converge
  local name=$1 strategy=$2 playbook=$3 start end; shift 3
  start=$(date +%s.%N)
  if [ "$strategy" = mitogen ]; then
    ANSIBLE_STRATEGY_PLUGINS="$PWD/plugins/strategy" ANSIBLE_STRATEGY=mitogen_linear \
      ansible-playbook "$@" "$playbook" >"$logs/$name.log" 2>&1 || { tail -40 "$logs/$name.log"; exit 1; }
  else
    ansible-playbook "$@" "$playbook" >"$logs/$name.log" 2>&1 || { tail -40 "$logs/$name.log"; exit 1; }
  fi
  end=$(date +%s.%N)
  grep -qE '^platform-local +:' "$logs/$name.log" || { tail -20 "$logs/$name.log"; echo "error: $name converged no host" >&2; exit 1; }
  took[$name]=$(echo "$end - $start" | bc)
  printf '%-24s %6.1f s   %s\n' "$name" "${took[$name]}" \
    "$(grep -E '^platform-local +:' "$logs/$name.log" | tr -s ' ' | cut -d' ' -f3-5)"
}

echo "all-in-one converge of platform-local ($distro), $(nproc) cores"
for strategy in linear mitogen; do
  [ "${BENCH_OURS:-1}" = 1 ] || break
  fresh_host
  run "ours-$strategy-fresh" "$strategy" site.yml -i inventories/local
  run "ours-$strategy-noop" "$strategy" site.yml -i inventories/local
done
if [ -n "$geerling" ]; then
  inventory=$(mktemp --suffix=.yml)
  printf 'all:\n  hosts:\n    platform-local:\n      ansible_connection: docker\n      ansible_python_interpreter: /usr/bin/python3\n' >"$inventory"
  for strategy in linear mitogen; do
    fresh_host
    ANSIBLE_ROLES_PATH="$geerling" run "geerling-$strategy-fresh" "$strategy" bench/geerling.yml -i "$inventory"
    ANSIBLE_ROLES_PATH="$geerling" run "geerling-$strategy-noop" "$strategy" bench/geerling.yml -i "$inventory"
  done
  rm -f "$inventory"
fi
if [ -n "$geerling" ] && [ "${BENCH_OURS:-1}" = 1 ]; then
  echo
  printf '%-28s %8s %8s %6s\n' "ours / Geerling's" ours geerling ratio
  for run in linear-fresh linear-noop mitogen-fresh mitogen-noop; do
    printf '%-28s %7.1fs %7.1fs %5.2fx\n' "$run" "${took[ours-$run]}" "${took[geerling-$run]}" \
      "$(echo "${took[ours-$run]} / ${took[geerling-$run]}" | bc -l)"
  done
  printf '%-28s %7.1fs %7.1fs %5.2fx\n' "ours with Mitogen / theirs plain" "${took[ours-mitogen-fresh]}" \
    "${took[geerling-linear-fresh]}" "$(echo "${took[ours-mitogen-fresh]} / ${took[geerling-linear-fresh]}" | bc -l)"
  printf '%-28s %7.1fs %7.1fs %5.2fx\n' "  (no-op)" "${took[ours-mitogen-noop]}" \
    "${took[geerling-linear-noop]}" "$(echo "${took[ours-mitogen-noop]} / ${took[geerling-linear-noop]}" | bc -l)"
fi
ansible-playbook playbooks/local.yml -e local_state=absent >/dev/null

[ "${BENCH_OURS:-1}" = 1 ] || exit 0
echo
echo "seconds per role (profile_roles):"
runs=(ours-linear-fresh ours-linear-noop ours-mitogen-fresh ours-mitogen-noop)
printf '%-18s' role; for r in "${runs[@]}"; do printf ' %20s' "$r"; done; echo
files=(); for r in "${runs[@]}"; do files+=("$logs/$r.log"); done
roles=$(cat "${files[@]}" 2>/dev/null | grep -oP '^\S+(?= -{3,} [0-9.]+s$)' | grep -v '^ansible\.' | sort -u || true)
for role in $roles; do
  printf '%-18s' "$role"
  for r in "${runs[@]}"; do
    printf ' %20s' "$(grep -oP "^$role -{3,} \K[0-9.]+(?=s$)" "$logs/$r.log" || echo -)"
  done
  echo
done

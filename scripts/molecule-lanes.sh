#!/usr/bin/env bash
# molecule test of every scenario on every distro.
#   DISTROS, SCENARIOS, CLUSTER_DISTROS   what to run (the Makefile's variables)
#   MOLECULE_LANES=1                      everything in a row
#   MOLECULE_LANES=2                      SOLO_SCENARIOS first, one at a time; then every other
#                                         scenario in two lanes side by side, split by distro:
#                                         lane 1 the first of DISTROS, lane 2 the rest
#   SOLO_SCENARIOS                        scenarios that load both cores alone (cluster: six hosts)
# A one-host scenario keeps about one core busy (apt's postinsts, the tests' own waits), so
# two of them share a 2-core machine; the cluster beside another scenario doubled both.
# Every run has its own ephemeral directory and its own test OpenID provider port, so the
# same scenario on two distros shares nothing. Each line is prefixed with its lane; per-run
# times, and each molecule action's, go to .cache/test-times (a failed run's as well).
# A failed run's log is kept in .cache/molecule-<scenario>-<distro>.log, and its failures (pytest's
# FAILED/ERROR lines, Ansible's fatal lines) are printed again at the very end, where a long CI
# log's tail shows them.
# Exit status: non-zero when any run failed (after every lane has finished).
set -uo pipefail
cd "$(dirname "$0")/.."

lanes=${MOLECULE_LANES:-2}
case "$lanes" in 1|2) ;; *) echo "error: MOLECULE_LANES must be 1 or 2, not '$lanes'" >&2; exit 2;; esac
read -r -a distros <<< "${DISTROS:?}"
read -r -a scenarios <<< "${SCENARIOS:?}"
cluster_distros=" ${CLUSTER_DISTROS:-} "
solo=" ${SOLO_SCENARIOS-cluster} "

declare -a runs0=() runs1=() runs2=()
for s in "${scenarios[@]}"; do
  for d in "${distros[@]}"; do
    if [ "$s" = cluster ] && [[ "$cluster_distros" != *" $d "* ]]; then
      echo "==> cluster on $d skipped (CLUSTER_DISTROS=${CLUSTER_DISTROS:-})"
      continue
    fi
    if [ "$lanes" = 1 ] || [[ "$solo" == *" $s "* ]]; then runs0+=("$s/$d")
    elif [ "$d" = "${distros[0]}" ]; then runs1+=("$s/$d")
    else runs2+=("$s/$d"); fi
  done
done

mkdir -p .cache
rm -f .cache/molecule-*.log
lane_label=("" " (lane 1)" " (lane 2)")
actions() { # actions LOG: molecule's output passed on and kept in LOG; each action's seconds
  # (from the end of the one before) in LOG.actions, e.g. "create 31s, converge 164s, ..."
  python3 -u -c '
import re, sys, time
last, spent = time.monotonic(), []
with open(sys.argv[1], "wb") as keep:
    for raw in sys.stdin.buffer:
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
        keep.write(raw)
        # "INFO [default > converge] Executed: ..." plain, "INFO default ➜ converge: Executed: ..." in
        # colour; not the recap at the end ("default > converge: Executed: ...", no INFO).
        line = re.sub(r"\x1b\[[0-9;]*m", "", raw.decode(errors="replace"))
        done = re.match(r"INFO\s.*?(?:> ([a-z_]+)\]|➜ ([a-z_]+):) Executed: ", line)
        if done:
            now = time.monotonic()
            spent.append(f"{done[1] or done[2]} {now - last:.0f}s")
            last = now
with open(sys.argv[1] + ".actions", "w") as out:
    out.write(", ".join(spent))
' "$1"
}

lane() { # lane N RUN...: each run in a row; the lane's status is the first failure's
  local n=$1 status=0 run s d start; shift
  for run in "$@"; do
    s=${run%/*}; d=${run#*/}
    echo "==> molecule test -s $s on $d"
    start=$(date +%s)
    log=".cache/molecule-$s-$d.log"
    # Lane 2's test OpenID provider on the next port; the ephemeral directory named by scenario and distro.
    if MOLECULE_DISTRO=$d MOLECULE_OIDC_PORT=$((n == 2 ? 9402 : 9401)) \
        MOLECULE_EPHEMERAL_DIRECTORY="$HOME/.ansible/tmp/molecule.platform.$s.$d" \
        molecule test -s "$s" </dev/null 2>&1 | actions "$log"; then
      echo "==> $s on $d passed in $(( $(date +%s) - start ))s"
      echo "  molecule $s/$d $(( $(date +%s) - start ))s${lane_label[$n]}: $(cat "$log.actions")" >> .cache/test-times
      rm -f "$log" "$log.actions"
    else
      echo "==> $s on $d FAILED after $(( $(date +%s) - start ))s"
      # Its line too, with the actions that ran (the last one listed is the last that finished).
      echo "  molecule $s/$d FAILED after $(( $(date +%s) - start ))s${lane_label[$n]}: $(cat "$log.actions")" \
        >> .cache/test-times
      status=1
    fi
  done
  return "$status"
}

start_lane() { # start_lane N RUN...: the lane in the background, its lines prefixed with its number
  local n=$1; shift
  if [ $# -eq 0 ]; then echo 0 > ".cache/lane-$n.status"; return; fi
  # A lane's status goes to a file: `wait` on a background pipeline reports its last command (sed).
  { lane "$n" "$@"; echo $? > ".cache/lane-$n.status"; } 2>&1 | sed -u "s/^/[lane $n] /" &
}

failed=0
if [ ${#runs0[@]} -gt 0 ]; then
  echo "==> in a row: ${runs0[*]}"
  lane 0 "${runs0[@]}" || failed=1
fi
if [ ${#runs1[@]} -gt 0 ] || [ ${#runs2[@]} -gt 0 ]; then
  echo "==> lane 1: ${runs1[*]:-nothing}"
  echo "==> lane 2: ${runs2[*]:-nothing}"
  rm -f .cache/lane-*.status
  start_lane 1 "${runs1[@]}"
  start_lane 2 "${runs2[@]}"
  wait
  for n in 1 2; do [ "$(cat ".cache/lane-$n.status" 2>/dev/null)" = 0 ] || failed=1; done
fi
if [ "$failed" -ne 0 ]; then
  for log in .cache/molecule-*.log; do
    [ -e "$log" ] || continue
    echo "==> what failed in ${log#.cache/} (whole log kept there):"
    grep -E '^(FAILED|ERROR) |fatal: \[|^[a-z0-9_-]+ +: ok=.*(failed|unreachable)=[1-9]|CRITICAL' "$log" \
      | cut -c1-400 | tail -n 40 | sed 's/^/    /'
  done
  echo "==> molecule: a run failed (search the log for 'FAILED after')"
  exit 1
fi

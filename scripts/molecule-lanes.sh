#!/usr/bin/env bash
# molecule test of every scenario on every distro, in MOLECULE_LANES lanes that
# run side by side (each lane one scenario at a time). A scenario always runs in
# one lane only, so two runs never share its ephemeral directory or its hosts.
#   DISTROS, SCENARIOS, CLUSTER_DISTROS   what to run (the Makefile's variables)
#   MOLECULE_LANES=1                      everything in a row
#   LANE1_SCENARIOS                       the scenarios of lane 1 (the rest: lane 2)
# Each line is prefixed with its lane; per-run times go to .cache/test-times.
# Exit status: non-zero when any run failed (after every lane has finished).
set -uo pipefail
cd "$(dirname "$0")/.."

lanes=${MOLECULE_LANES:-2}
case "$lanes" in 1|2) ;; *) echo "error: MOLECULE_LANES must be 1 or 2, not '$lanes'" >&2; exit 2;; esac
read -r -a distros <<< "${DISTROS:?}"
read -r -a scenarios <<< "${SCENARIOS:?}"
cluster_distros=" ${CLUSTER_DISTROS:-} "
lane1=" ${LANE1_SCENARIOS:-cluster ssh} "

declare -a runs1=() runs2=()
for s in "${scenarios[@]}"; do
  for d in "${distros[@]}"; do
    if [ "$s" = cluster ] && [[ "$cluster_distros" != *" $d "* ]]; then
      echo "==> cluster on $d skipped (CLUSTER_DISTROS=${CLUSTER_DISTROS:-})"
      continue
    fi
    if [ "$lanes" = 1 ] || [[ "$lane1" == *" $s "* ]]; then runs1+=("$s/$d"); else runs2+=("$s/$d"); fi
  done
done

mkdir -p .cache
lane() { # lane N RUN...: each run in a row; the lane's status is the first failure's
  local n=$1 status=0 run s d start; shift
  for run in "$@"; do
    s=${run%/*}; d=${run#*/}
    echo "==> molecule test -s $s on $d"
    start=$(date +%s)
    if MOLECULE_DISTRO=$d molecule test -s "$s" </dev/null; then
      echo "==> $s on $d passed in $(( $(date +%s) - start ))s"
      echo "  molecule $s/$d $(( $(date +%s) - start ))s (lane $n)" >> .cache/test-times
    else
      echo "==> $s on $d FAILED after $(( $(date +%s) - start ))s"
      status=1
    fi
  done
  return "$status"
}

echo "==> lane 1: ${runs1[*]:-nothing}"
[ "$lanes" = 2 ] && echo "==> lane 2: ${runs2[*]:-nothing}"
# A lane's status goes to a file: `wait` on a background pipeline reports its last command (sed).
rm -f .cache/lane-*.status
{ lane 1 "${runs1[@]}"; echo $? > .cache/lane-1.status; } 2>&1 | sed -u 's/^/[lane 1] /' &
if [ "$lanes" = 2 ] && [ ${#runs2[@]} -gt 0 ]; then
  { lane 2 "${runs2[@]}"; echo $? > .cache/lane-2.status; } 2>&1 | sed -u 's/^/[lane 2] /' &
fi
wait
failed=0
for f in .cache/lane-*.status; do
  [ "$(cat "$f" 2>/dev/null)" = 0 ] || failed=1
done
[ -e .cache/lane-1.status ] || failed=1
if [ "$failed" -ne 0 ]; then
  echo "==> molecule: a run failed (search the log for 'FAILED after')"
  exit 1
fi

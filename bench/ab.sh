#!/usr/bin/env bash
# Compares builds of graft on the manifest scenarios (manifest PUT, GET and referrers),
# in one run: each build serves a fresh data directory, ROUNDS times, the order
# rotating every round, so that the machine's drift falls on every build alike. A change
# is measured by building the commit before it and the commit itself.
#
#   bench/ab.sh ROUNDS REV...        e.g. bench/ab.sh 3 main~5 main
#
# GRAFT_AB_SCENARIOS names other regbench scenarios, GRAFT_AB_DURATION each one's
# duration (default 5s), GRAFT_AB_FLAGS more regbench flags (e.g. "-chunk 4MiB").
#
# Results: one regbench line per measurement on stdout, and JSON files in
# ${BENCH_OUT:-bench/results/ab-<date>}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${GRAFT_SHARED:-$root/../shared}
[ $# -ge 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
rounds=$1
shift
revs=("$@")
out=${BENCH_OUT:-$here/results/ab-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/graft-ab.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
R=$shared/tools/regbench.sh
. "$here/lib.sh"
scenarios=${GRAFT_AB_SCENARIOS:-manifest-put,manifest-get,referrers}

for i in "${!revs[@]}"; do
  mkdir -p "$work/src-$i"
  git -C "$root" archive "${revs[$i]}" | tar -x -C "$work/src-$i"
  (cd "$work/src-$i" && go build -trimpath -o "$work/graft-$i" ./cmd/graft)
  echo "# build $i: $(git -C "$root" log -1 --format='%h %s' "${revs[$i]}")"
done

# run I ROUND: build I on a fresh data directory
run() {
  local data=$work/data-$1-$2 pid url
  mkdir -p "$data"
  case $scenarios in *blob*) prime_disk "$work" ;; esac
  serve_graft "$work/graft-$1" "$work/graft-$1.log" --data-dir "$data"
  # shellcheck disable=SC2086 # GRAFT_AB_FLAGS is words
  "$R" -url "$url" -pid "$pid" -scenario "$scenarios" -d "${GRAFT_AB_DURATION:-5s}" -filler 1000 \
    ${GRAFT_AB_FLAGS:-} -json "$out/build$1-$2.json" | grep -v '^ \|^regbench' | sed "s/^/build$1  /"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

n=${#revs[@]}
for round in $(seq 1 "$rounds"); do
  echo "# round $round: $(uptime | sed 's/.*load/load/')"
  for k in $(seq 0 $((n - 1))); do
    run $(((k + round - 1) % n)) "$round"
  done
done
echo "# results in $out"

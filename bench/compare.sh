#!/usr/bin/env bash
# Measures graft beside CNCF distribution v3.1.2 with the team's registry benchmark, in one
# run on one machine (absolute figures drift between runs; ratios hold). Each measurement
# starts a fresh server on empty storage, as regbench/ANCHORS.md describes, after the
# disk is primed alike for every server (prime_disk in lib.sh; GRAFT_BENCH_PRIME_GIB).
#
#   bench/compare.sh [ROUNDS] [blobs]   ROUNDS of the machine's limits and blob push/pull
#                                  (default 3), then (unless "blobs" alone is asked
#                                  for) the manifest, tag and referrers scenarios once
#                                  each
#
# Results: one regbench line per measurement on stdout, and JSON files in
# ${BENCH_OUT:-bench/results/<date>}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${GRAFT_SHARED:-$root/../shared}
rounds=${1:-3}
only=${2:-}
out=${BENCH_OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/graft-bench.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT

bin=$("$shared/tools/install-clients.sh" --no-cosign | tail -n 1)
(cd "$root" && go build -trimpath -o "$work/graft" ./cmd/graft)
R=$shared/tools/regbench.sh
. "$here/lib.sh"

# start NAME: starts a fresh server, on a disk primed alike for every server (the
# servers measured before it are removed first: removing them would otherwise speed
# up the next server alone); sets pid and url
start() {
  local data=$work/$1-data
  rm -rf "$work/graft-data" "$work/dist-data"; prime_disk "$work"; mkdir -p "$data"; sync; sleep 3
  case $1 in
    graft) serve_graft "$work/graft" "$work/$1.log" --data-dir "$data" --log-access=false ;;
    dist) serve_distribution "$bin/registry" "$work" "  filesystem:
    rootdirectory: $data" ;;
  esac
}

# measure NAME LABEL ARGS...: one regbench run against a fresh NAME server
measure() {
  local name=$1 label=$2
  shift 2
  start "$name"
  echo "# $name $label: $*"
  "$R" -url "$url" -pid "$pid" -json "$out/$name-$label.json" "$@" | sed "s/^/$name  /"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# Each round: the machine's ceilings (http_put_store, http_get_file), the disk's rate for
# fsynced writes in a row (what pushes in a row settle to), and both registries,
# whose order alternates, so that each ratio comes from one stretch of the machine's load.
uptime
for round in $(seq 1 "$rounds"); do
  echo "# round $round: $(uptime | sed 's/.*load/load/')"
  # the ceilings on a primed disk too, and in the same directory as the servers' data
  prime_disk "$work"
  TMPDIR=$work "$R" -scenario limits -json "$out/limits-$round.json" | sed -n 's/^limits */limits /p'
  disk_rates "$work" 256 5
  if [ $((round % 2)) = 1 ]; then order="dist graft"; else order="graft dist"; fi
  for name in $order; do
    measure "$name" "blob-$round" -scenario blob-push,blob-pull
  done
done
if [ "$only" = blobs ]; then
  uptime
  echo "# results in $out"
  exit 0
fi
measure dist ops -scenario manifest-put,manifest-get,tags-list
measure graft ops -scenario manifest-put,manifest-get,tags-list
measure dist referrers -scenario referrers -filler 100,10000
measure graft referrers -scenario referrers -filler 100,10000
measure dist blob-1g -scenario blob-push,blob-pull -size 1GiB -reps 1
measure graft blob-1g -scenario blob-push,blob-pull -size 1GiB -reps 1
uptime
echo "# results in $out"

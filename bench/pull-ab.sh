#!/usr/bin/env bash
# Compares two builds of graft on blob pulls, in one run: both serve the same data
# directory (the same blob, in the same page cache), one after the other, alternating
# with CNCF distribution v3.1.2 and the machine's ceiling (regbench's http_get_file: a
# cached file served by net/http's ServeContent), ROUNDS times, the order rotating
# every round. A change to the pull path is measured by building the commit before it
# and the commit itself.
#
#   bench/pull-ab.sh REV_A REV_B [ROUNDS]     (default 5 rounds)
#
# Results: one regbench line per measurement on stdout (each the median of 5 pulls of
# 256 MiB), and JSON files in ${BENCH_OUT:-bench/results/pull-ab-<date>}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${GRAFT_SHARED:-$root/../shared}
[ $# -ge 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
rev_a=$1 rev_b=$2 rounds=${3:-5}
out=${BENCH_OUT:-$here/results/pull-ab-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/graft-pull-ab.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT

bin=$("$shared/tools/install-clients.sh" --no-cosign | tail -n 1)
R=$shared/tools/regbench.sh
. "$here/lib.sh"
for v in a b; do
  rev=$rev_a
  [ $v = b ] && rev=$rev_b
  mkdir -p "$work/src-$v"
  git -C "$root" archive "$rev" | tar -x -C "$work/src-$v"
  (cd "$work/src-$v" && go build -trimpath -o "$work/graft-$v" ./cmd/graft)
  echo "# graft-$v: $(git -C "$root" log -1 --format='%h %s' "$rev")"
done
seed=$(date +%s)

# start NAME: starts a server on NAME's data (graft-a and graft-b share one); sets pid, url
start() {
  case $1 in
    graft-a | graft-b)
      mkdir -p "$work/graft-data"
      serve_graft "$work/$1" "$work/$1.log" --data-dir "$work/graft-data" --log-access=false
      ;;
    dist)
      mkdir -p "$work/dist-data"
      serve_distribution "$bin/registry" "$work" "  filesystem:
    rootdirectory: $work/dist-data"
      ;;
  esac
}

# pull NAME ROUND: 5 timed pulls of the blob of this run (pushed, untimed, the first time)
pull() {
  start "$1"
  "$R" -url "$url" -pid "$pid" -seed "$seed" -scenario blob-pull -reps 5 -json "$out/$1-$2.json" |
    sed -n "s/^blob-pull/$1/p"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

limits() {
  "$R" -scenario limits -reps 5 -json "$out/limits-$1.json" | sed -n 's/^limits */limits /p'
}

uptime
names=(graft-a graft-b dist limits)
for round in $(seq 1 "$rounds"); do
  echo "# round $round: $(uptime | sed 's/.*load/load/')"
  for i in 0 1 2 3; do
    n=${names[$(((i + round) % 4))]}
    case $n in
      limits) limits "$round" ;;
      *) pull "$n" "$round" ;;
    esac
  done
done
uptime
echo "# results in $out"

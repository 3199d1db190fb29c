#!/usr/bin/env bash
# Measures graft beside CNCF distribution v3.1.2 with the team's registry benchmark, in one
# run on one machine (absolute figures drift between runs; ratios hold). Each measurement
# starts a fresh server on empty storage, as regbench/ANCHORS.md describes.
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

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# start NAME: starts a fresh server; sets pid and url
start() {
  local data=$work/$1-data port log=$work/$1.log
  rm -rf "$data"; mkdir -p "$data"; sync; sleep 3
  case $1 in
    graft)
      # on a port of its own choosing, read back from its log: no race for a free one
      : >"$log"
      "$work/graft" serve --addr 127.0.0.1:0 --data-dir "$data" --log-format json --log-access=false 2>"$log" &
      pid=$!
      url=""
      while [ -z "$url" ]; do
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
        sleep 0.1
        url=$(sed -n 's/.*"msg":"graft registry listening".*"addr":"\([^"]*\)".*/http:\/\/\1/p' "$log" | head -n 1)
      done
      ;;
    dist)
      while :; do
        port=$(free_port)
        cat >"$work/dist.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $data
  delete:
    enabled: true
  redirect:
    disable: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: regbench-anchor
health:
  storagedriver:
    enabled: false
YML
        "$bin/registry" serve "$work/dist.yml" >"$log" 2>&1 &
        pid=$!
        url=http://127.0.0.1:$port
        until curl -sf -o /dev/null "$url/v2/"; do
          kill -0 "$pid" 2>/dev/null || break
          sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && break
        wait "$pid" 2>/dev/null || true # another process took the port meanwhile: another one
      done
      ;;
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

# Each round: the machine's ceilings (http_put_store, http_get_file) and both registries,
# whose order alternates, so that each ratio comes from one stretch of the machine's load.
uptime
for round in $(seq 1 "$rounds"); do
  echo "# round $round: $(uptime | sed 's/.*load/load/')"
  "$R" -scenario limits -json "$out/limits-$round.json" | sed -n 's/^limits */limits /p'
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

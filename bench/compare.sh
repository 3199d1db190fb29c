#!/usr/bin/env bash
# Measures graft beside CNCF distribution v3.1.2 with the team's registry benchmark, in one
# run on one machine (absolute figures drift between runs; ratios hold). Each measurement
# starts a fresh server on empty storage, as regbench/ANCHORS.md describes.
#
#   bench/compare.sh [ROUNDS]      ROUNDS of blob push/pull (default 3), then the
#                                  manifest, tag and referrers scenarios once each
#
# Results: one regbench line per measurement on stdout, and JSON files in
# ${BENCH_OUT:-bench/results/<date>}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${GRAFT_SHARED:-$root/../shared}
rounds=${1:-3}
out=${BENCH_OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/graft-bench.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

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
  local data=$work/$1-data port
  rm -rf "$data"; mkdir -p "$data"; sync; sleep 3
  port=$(free_port)
  case $1 in
    graft)
      "$work/graft" serve --addr "127.0.0.1:$port" --data-dir "$data" --log-level error 2>"$work/graft.log" &
      ;;
    dist)
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
      "$bin/registry" serve "$work/dist.yml" >/dev/null 2>&1 &
      ;;
  esac
  pid=$!
  url=http://127.0.0.1:$port
  until curl -sf -o /dev/null "$url/v2/"; do sleep 0.1; done
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

"$R" -scenario limits -json "$out/limits-start.json"
for round in $(seq 1 "$rounds"); do
  measure dist "blob-$round" -scenario blob-push,blob-pull
  measure graft "blob-$round" -scenario blob-push,blob-pull
done
measure dist ops -scenario manifest-put,manifest-get,tags-list
measure graft ops -scenario manifest-put,manifest-get,tags-list
measure dist referrers -scenario referrers -filler 100,10000
measure graft referrers -scenario referrers -filler 100,10000
measure dist blob-1g -scenario blob-push,blob-pull -size 1GiB -reps 1
measure graft blob-1g -scenario blob-push,blob-pull -size 1GiB -reps 1
"$R" -scenario limits -json "$out/limits-end.json"
echo "# results in $out"

#!/usr/bin/env bash
# Replication throughput beside the client's copy, in one run on one machine: a graft
# source replicating to one graft destination (a rule in its configuration), and
# `graft copy -r` from the same source to another destination, for an image of one
# SIZE_MIB layer of random bytes, new in each round. Both read the source's blob
# just written, from the page cache alike.
#
#   bench/replication.sh [ROUNDS] [SIZE_MIB]     (default 3 rounds of 256 MiB)
#
# Replication is timed from the end of the push (the manifest's commit, which writes
# the event) to the destination answering for the manifest; the copy is timed whole.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${1:-3}
size=${2:-256}
work=$(mktemp -d "${TMPDIR:-/tmp}/graft-repl-bench.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
(cd "$root" && go build -trimpath -o "$work/graft" ./cmd/graft)
g=$work/graft
. "$here/lib.sh"

# start NAME [ARGS...]: starts graft serve on a free port and sets addr to where it
# listens
start() {
  local name=$1
  shift
  mkdir -p "$work/$name"
  serve_graft "$g" "$work/$name.log" --data-dir "$work/$name" --log-level info "$@" || exit 1
  addr=${url#http://}
}

start replica
replica=$addr
start copy
copydst=$addr
printf 'replication:\n- name: bench\n  url: http://%s\n' "$replica" >"$work/graft.yaml"
start source --config "$work/graft.yaml"
source=$addr
export DOCKER_CONFIG=$work/docker

now() { date +%s.%N; }
has() { curl -fsS -o /dev/null -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$1/v2/$2/manifests/$3"; }

for round in $(seq "$rounds"); do
  head -c "$((size << 20))" /dev/urandom >"$work/layer.bin"
  repo=bench/app$round
  replicate() {
    "$g" push "$source/$repo:v1" "$work/layer.bin" >/dev/null 2>&1
    local t0 t1
    t0=$(now)
    until has "$replica" "$repo" v1 2>/dev/null; do sleep 0.02; done
    t1=$(now)
    echo "$t1 - $t0" | bc
  }
  copy() {
    local t0 t1
    t0=$(now)
    "$g" copy -r "$source/$repo:v1" "$copydst/$repo:v1" >/dev/null 2>&1
    t1=$(now)
    echo "$t1 - $t0" | bc
  }
  r=$(replicate)
  c=$(copy)
  awk -v r="$r" -v c="$c" -v s="$size" -v n="$round" 'BEGIN {
    printf "round %d: %d MiB  replication %.2fs (%.0f MiB/s)  graft copy -r %.2fs (%.0f MiB/s)  ratio %.2f\n", n, s, r, s/r, c, s/c, r/c }'
done

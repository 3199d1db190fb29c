#!/usr/bin/env bash
# Measures a pull-through mirror's pull of a blob against pulling it from the upstream
# directly: two graft serve processes on loopback (the upstream, and a mirror of it under
# hub/, both on the embedded stores in fresh directories), and curl as the client.
#
#   bench/mirror.sh [ROUNDS] [MIB]      ROUNDS (default 5) of a fresh MIB (default 256) MiB
#                                       blob: pushed upstream, pulled from the upstream
#                                       (twice; the second counts), then through the mirror
#                                       twice: the first pull fetches it, the second (once
#                                       the mirror has stored it) is local
#
# Prints one line per pull and the medians. curl writes to /dev/null and hashes nothing:
# the figures are the servers' alone, which makes the mirror's overhead as visible as it
# can be.
#
# UPSTREAM_RATE=1gbit (a tc rate; needs root and tc's htb) sends what the upstream sends
# through a link of that rate, as a remote upstream's pulls are: the direct pull and the
# mirror's fetch are held to it, the mirror's answers to its clients are not. Without it
# every transfer runs at the speed of loopback, which measures the servers' CPU alone.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${1:-5}
mib=${2:-256}
work=$(mktemp -d "${TMPDIR:-/tmp}/graft-mirror-bench.XXXXXX")
pids=()
shaped=
cleanup() {
  [ -n "$shaped" ] && tc qdisc del dev lo root 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -trimpath -o "$work/graft" ./cmd/graft)
. "$here/lib.sh"

# serve NAME [ARGS]: starts graft serve on a free port; sets addr
serve() {
  local name=$1
  shift
  serve_graft "$work/graft" "$work/$name.log" --data-dir "$work/$name" --log-level info --log-access=false "$@" || exit 1
  pids+=("$pid")
  addr=${url#http://}
}

serve upstream
up=$addr
if [ -n "${UPSTREAM_RATE:-}" ]; then
  # unclassified traffic (htb without a default class) passes unshaped
  tc qdisc add dev lo root handle 1: htb
  shaped=1
  tc class add dev lo parent 1: classid 1:1 htb rate "$UPSTREAM_RATE" ceil "$UPSTREAM_RATE"
  tc filter add dev lo protocol ip parent 1: prio 1 u32 match ip sport "${up##*:}" 0xffff flowid 1:1
fi
cat >"$work/mirror.yaml" <<YML
mirrors:
  - prefix: hub/
    upstream: http://$up
    tag-ttl: 1h
YML
serve mirror --config "$work/mirror.yaml"
mirror=$addr

# pull URL: prints the seconds a GET of URL took
pull() {
  curl -sf -o /dev/null -w '%{time_total}\n' "$1"
}

# stored N: waits until the mirror has stored N blobs' bytes since it started (its
# metric), so that the second pull measures the blob served locally, not the store's
# write of it competing for the machine
stored() {
  local want=$(($1 * (mib << 20)))
  for _ in $(seq 600); do
    got=$(curl -sf "http://$mirror/metrics" | awk '$1 ~ /^graft_mirror_upstream_blob_bytes_total/ { print $2 }')
    awk -v g="${got:-0}" -v w="$want" 'BEGIN { exit !(g >= w) }' && return
    sleep 0.1
  done
  echo "the mirror did not store the blob" >&2
  exit 1
}

rate() { awk -v s="$1" -v m="$mib" 'BEGIN { printf "%.0f", m / s }'; }

echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3); blob ${mib} MiB; upstream link ${UPSTREAM_RATE:-loopback}"
printf '%-6s %-16s %8s %10s\n' round pull seconds MiB/s
direct=() first=() second=()
for r in $(seq "$rounds"); do
  head -c "$((mib << 20))" /dev/urandom >"$work/blob"
  d=sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)
  curl -sf -o /dev/null -X POST -H 'Content-Type: application/octet-stream' --data-binary @"$work/blob" \
    "http://$up/v2/library/bench/blobs/uploads/?digest=$d"
  rm -f "$work/blob"
  pull "http://$up/v2/library/bench/blobs/$d" >/dev/null # the upstream's page cache, as warm as it is for the mirror
  for kind in direct first second; do
    case $kind in
      direct) s=$(pull "http://$up/v2/library/bench/blobs/$d"); direct+=("$s") ;;
      first) s=$(pull "http://$mirror/v2/hub/library/bench/blobs/$d"); first+=("$s"); stored "$r" ;;
      second) s=$(pull "http://$mirror/v2/hub/library/bench/blobs/$d"); second+=("$s") ;;
    esac
    printf '%-6s %-16s %8s %10s\n' "$r" "$kind" "$s" "$(rate "$s")"
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
md=$(median "${direct[@]}")
mf=$(median "${first[@]}")
ms=$(median "${second[@]}")
echo
echo "medians of $rounds rounds:"
printf '  %-44s %6.3f s  %5s MiB/s\n' "upstream, directly" "$md" "$(rate "$md")"
printf '  %-44s %6.3f s  %5s MiB/s  %.2fx the direct pull\n' "mirror, first pull (fetch, store, stream)" "$mf" "$(rate "$mf")" "$(awk -v a="$mf" -v b="$md" 'BEGIN { print a / b }')"
printf '  %-44s %6.3f s  %5s MiB/s  %.2fx the direct pull\n' "mirror, second pull (local)" "$ms" "$(rate "$ms")" "$(awk -v a="$ms" -v b="$md" 'BEGIN { print a / b }')"

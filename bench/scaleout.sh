#!/usr/bin/env bash
# Measures the scale-out deployment with the team's registry benchmark, side by side in
# one run: graft embedded, graft on S3 + PostgreSQL with one replica and with three
# behind a round-robin proxy, and CNCF distribution v3.1.2 on the same S3 server. Each
# measurement starts fresh servers on empty storage (a new bucket prefix and database).
#
#   bench/scaleout.sh [blobs|ops|referrers|all|cpu|floor] [ROUNDS]   (default all, 1 round)
#
# It starts the S3 server and PostgreSQL with ../shared/services. Results: one regbench
# line per measurement on stdout, JSON files in ${BENCH_OUT:-bench/results/scaleout-<date>}.
# Each round of blobs measures, in an order that rotates: graft embedded, graft on S3 +
# PostgreSQL, distribution on the same S3, and the Go benchmarks of the S3 store in
# process, among them the plain multipart copy the blob figures compare with:
#   go test -run '^$' -bench . -benchtime 3x ./internal/blobstore/s3
# REPLICA_GOMAXPROCS sets GOMAXPROCS for each of the three replicas.
# floor measures manifest PUT and GET, ROUNDS times, of one and of three replicas behind
# the proxy, both of graft and of pgfloor (internal/graftest/pgfloor: one PostgreSQL
# statement per request and nothing else), so that what three processes on the same
# cores cost shows beside what graft's replicas cost.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${GRAFT_SHARED:-$root/../shared}
what=${1:-all}
rounds=${2:-1}
out=${BENCH_OUT:-$here/results/scaleout-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/graft-bench.XXXXXX")
dbs=()
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  for db in "${dbs[@]}"; do psql -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

eval "$("$shared/services/s3.sh" start)"
# GRAFT_PG_SERVICES_DIR names the state directory of a PostgreSQL cluster of the
# benchmark's own (postgres.sh's GRAFT_SERVICES_DIR), e.g. a durable one started beside
# the shared test cluster: GRAFT_PG_DURABLE=1 GRAFT_SERVICES_DIR=DIR postgres.sh start
eval "$(GRAFT_SERVICES_DIR=${GRAFT_PG_SERVICES_DIR:-${GRAFT_SERVICES_DIR:-}} "$shared/services/postgres.sh" start)"
echo "# PostgreSQL $PGHOST:$PGPORT: fsync $(psql -Atc 'show fsync'), synchronous_commit $(psql -Atc 'show synchronous_commit')"
bin=$("$shared/tools/install-clients.sh" --no-cosign | tail -n 1)
(cd "$root" && go build -trimpath -o "$work/" ./cmd/graft ./internal/graftest/rrproxy ./internal/graftest/pgfloor)
(cd "$root" && go test -c -o "$work/s3.test" ./internal/blobstore/s3)
R=$shared/tools/regbench.sh
. "$here/lib.sh"

# serve NAME ARGS...: starts graft serve; sets pid and url
serve() {
  local name=$1
  shift
  serve_graft "$work/graft" "$work/$name.log" "$@" || return 1
  grafts+=("$pid")
}

# fresh_scaleout: a configuration file of a fresh scale-out deployment; sets conf, db
fresh_scaleout() {
  db=graft_bench_$RANDOM$RANDOM
  psql -q -c "CREATE DATABASE $db" >/dev/null
  dbs+=("$db")
  conf=$work/$db.yaml
  cat >"$conf" <<YAML
storage:
  s3:
    endpoint: $GRAFT_TEST_S3_ENDPOINT
    region: $GRAFT_TEST_S3_REGION
    bucket: $GRAFT_TEST_S3_BUCKET
    prefix: bench-$db/
    forcePathStyle: true
metadata:
  postgres:
    url: ${GRAFT_TEST_POSTGRES_URL%/*}/$db?sslmode=disable
YAML
}

# proxy URL...: starts rrproxy in front of URLs; sets pid and url
proxy() {
  : >"$work/proxy.out"
  "$work/rrproxy" "$@" >"$work/proxy.out" 2>&1 &
  pid=$! # regbench's RSS column then shows the proxy's; the replicas' CPU shows as other
  listening "$pid" "$work/proxy.out"
}

# floor DBURL: starts pgfloor on database DBURL; sets url and adds it to grafts
floor() {
  local log=$work/floor-${#grafts[@]}.out
  : >"$log"
  GOMAXPROCS=${REPLICA_GOMAXPROCS:-} "$work/pgfloor" -db "$1" >"$log" 2>&1 &
  grafts+=("$!")
  listening "$!" "$log"
}

# listening PID LOG: waits for process PID (rrproxy or pgfloor) to print "listening on
# ADDR" into LOG, and sets url; fails, showing LOG, if the process exits first
listening() {
  url=""
  until [ -n "$url" ]; do
    kill -0 "$1" 2>/dev/null || { cat "$2" >&2; return 1; }
    sleep 0.1
    url=$(sed -n 's/^listening on /http:\/\//p' "$2")
  done
}

# cpu_ticks PID...: the CPU time the processes used so far, in clock ticks
cpu_ticks() {
  local p t=0 f
  for p in "$@"; do
    f=$(cut -d ' ' -f 14,15 "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + ${f% *} + ${f#* }))
  done
  echo "$t"
}

# start KIND: fresh servers of KIND (embedded, s3x1, s3x1p (one replica behind the
# proxy, to compare with s3x3 at the same proxy cost), s3x3, dist-s3, floor1p and
# floor3 (one and three pgfloor behind the proxy)); sets pid, url and grafts (the graft
# or pgfloor processes)
start() {
  local urls=() i
  grafts=()
  case $1 in
    embedded)
      rm -rf "$work/embedded"; mkdir -p "$work/embedded"
      serve embedded --data-dir "$work/embedded"
      ;;
    s3x1)
      fresh_scaleout
      serve s3x1 --config "$conf"
      ;;
    s3x1p)
      fresh_scaleout
      serve s3x1p --config "$conf"
      proxy "$url"
      ;;
    s3x3)
      fresh_scaleout
      for i in 1 2 3; do
        GOMAXPROCS=${REPLICA_GOMAXPROCS:-} serve "s3x3-$i" --config "$conf"
        urls+=("$url")
      done
      proxy "${urls[@]}"
      ;;
    floor1p|floor3)
      fresh_scaleout
      for i in $(seq 1 "${1//[!0-9]/}"); do
        floor "${GRAFT_TEST_POSTGRES_URL%/*}/$db?sslmode=disable"
        urls+=("$url")
      done
      proxy "${urls[@]}"
      ;;
    dist-s3)
      serve_distribution "$bin/registry" "$work" "  s3:
    regionendpoint: $GRAFT_TEST_S3_ENDPOINT
    region: $GRAFT_TEST_S3_REGION
    bucket: $GRAFT_TEST_S3_BUCKET
    rootdirectory: /dist-$RANDOM$RANDOM
    accesskey: $AWS_ACCESS_KEY_ID
    secretkey: $AWS_SECRET_ACCESS_KEY
    forcepathstyle: true
    secure: false"
      ;;
  esac
}

stop() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}

measure() { # KIND LABEL ARGS...
  local kind=$1 label=$2
  shift 2
  start "$kind"
  echo "# $kind $label: $*"
  local t0 t1 rec=
  # GRAFT_BENCH_PERF=1 records where the graft processes spend their CPU, with
  # perf(1) (Debian's linux-perf), into KIND-LABEL.perf beside the results
  # (perf report -i FILE).
  # GRAFT_BENCH_PERF=stat counts their system calls and context switches instead.
  if [ "${GRAFT_BENCH_PERF:-}" = stat ] && [ ${#grafts[@]} -gt 0 ]; then
    perf stat -e raw_syscalls:sys_enter,context-switches -o "$out/$kind-$label.stat" -p "$(IFS=,; echo "${grafts[*]}")" &
    rec=$!
  elif [ -n "${GRAFT_BENCH_PERF:-}" ] && [ ${#grafts[@]} -gt 0 ]; then
    perf record -q -F 999 -g -o "$out/$kind-$label.perf" -p "$(IFS=,; echo "${grafts[*]}")" 2>/dev/null &
    rec=$!
  fi
  if [ -n "${warmup:-}" ]; then
    # The same load, untimed, first: a replica opens its database connections as the
    # load asks for them, and each new one pays its login and the planning of every
    # statement once; the measured figures are those of a deployment past that.
    "$R" -url "$url" -scenario manifest-put -d "$warmup" >/dev/null
  fi
  t0=$(cpu_ticks "${grafts[@]}")
  "$R" -url "$url" -pid "$pid" -json "$out/$kind-$label.json" "$@" | sed "s/^/$kind  /"
  t1=$(cpu_ticks "${grafts[@]}")
  if [ -n "$rec" ]; then kill -INT "$rec"; wait "$rec" || true; fi
  # The graft processes' CPU over the whole regbench run, untimed setup included:
  # regbench's srv_* columns see one process, and behind the proxy, the proxy.
  [ ${#grafts[@]} -eq 0 ] || echo "$kind  $(case $kind in floor*) echo floor ;; *) echo graft ;; esac)_cpu $(echo "scale=2; ($t1 - $t0) / $(getconf CLK_TCK)" | bc) s in ${#grafts[@]} process(es)"
  stop
}

# gobench ROUND: the S3 store's Go benchmarks, in process (3 pushes of 256 MiB each)
gobench() {
  echo "# go test -bench . -benchtime 3x ./internal/blobstore/s3"
  (cd "$root/internal/blobstore/s3" && "$work/s3.test" -test.run '^$' -test.bench . -test.benchtime 3x) |
    tee "$out/gobench-$1.txt" | grep '^Benchmark' | sed 's/^/go  /'
}

if [ "$what" = all ] || [ "$what" = blobs ]; then
  kinds=(embedded s3x1 dist-s3 gobench)
  uptime
  for round in $(seq 1 "$rounds"); do
    echo "# round $round: $(uptime | sed 's/.*load/load/')"
    for i in 0 1 2 3; do
      kind=${kinds[$(((i + round - 1) % 4))]}
      if [ "$kind" = gobench ]; then
        gobench "$round"
      else
        measure "$kind" "blobs-$round" -scenario blob-push,blob-pull -size 256MiB -reps 3
      fi
    done
  done
  uptime
fi
# Operation rates are of a deployment warmed by 5 s of pushes (GRAFT_BENCH_WARMUP=0 for
# none), every kind alike.
warmup=${GRAFT_BENCH_WARMUP:-5s}
[ "$warmup" != 0 ] || warmup=
if [ "$what" = all ] || [ "$what" = ops ]; then
  for kind in embedded s3x1 s3x1p s3x3 dist-s3; do
    measure "$kind" ops -scenario manifest-put,manifest-get -d 10s
  done
fi
# Each scenario alone, so that graft_cpu is that scenario's (manifest-get pushes its
# 1000 tags first, untimed): the CPU per operation of one replica and of three.
if [ "$what" = cpu ]; then
  for kind in s3x1p s3x3; do
    measure "$kind" put -scenario manifest-put -d 10s
    measure "$kind" get -scenario manifest-get -d 10s
  done
fi
# One round: the four kinds in an order that rotates with the round.
if [ "$what" = floor ]; then
  kinds=(floor1p s3x1p floor3 s3x3)
  for round in $(seq 1 "$rounds"); do
    echo "# round $round: $(uptime | sed 's/.*load/load/')"
    for i in 0 1 2 3; do
      kind=${kinds[$(((i + round - 1) % 4))]}
      measure "$kind" "put-$round" -scenario manifest-put -d 10s
      measure "$kind" "get-$round" -scenario manifest-get -d 10s
    done
  done
fi
warmup=
if [ "$what" = all ] || [ "$what" = referrers ]; then
  measure s3x1 referrers -scenario referrers -filler 1000,10000,100000
fi
echo "# results in $out"

#!/usr/bin/env bash
# The whole test suite: go vet, the unit and end-to-end tests under the race detector,
# the official OCI conformance suite (stable and dev profiles) and the supply-chain
# workflows with real clients, each against a freshly started `graft serve` with no flags,
# and again against three scale-out replicas (S3 + PostgreSQL) behind a round-robin proxy.
#
#   scripts/test.sh            everything
#   scripts/test.sh go         only go vet and go test -race ./...
#
# It needs Go; everything else (the conformance suite, oras, regctl, crane, cosign,
# skopeo, jq, the S3 server, PostgreSQL) is built or installed by the team's scripts in
# ../shared on first use, and chromium (for the web view's browser tests) with apt-get.
# Each stage prints a timing line: `== stage NAME: Ns`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${GRAFT_SHARED:-$root/../shared}
[ -x "$shared/services/s3.sh" ] || {
  echo "scripts/test.sh: the team's scripts are not in $shared (services/, tools/); set GRAFT_SHARED" >&2
  exit 2
}
cd "$root"
only=${1:-all}

stage() { # NAME COMMAND...: runs COMMAND and prints how long it took
  local name=$1 start=$SECONDS rc=0
  shift
  echo "== stage $name: start" >&2
  "$@" || rc=$?
  echo "== stage $name: $((SECONDS - start))s$([ $rc -eq 0 ] || echo ", FAILED (exit $rc)")" >&2
  return $rc
}

work=$(mktemp -d "${TMPDIR:-/tmp}/graft-test.XXXXXX")
pids=()
dbs=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${dbs[@]}"; do psql -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The scale-out deployment's servers: a real S3-compatible store and PostgreSQL on
# loopback, for the Go tests (GRAFT_TEST_* variables) and the scale-out stages below.
# (A function run by stage runs without errexit, hence each "|| return".)
services() {
  local env
  env=$("$shared/services/s3.sh" start) || return
  eval "$env"
  env=$("$shared/services/postgres.sh" start) || return
  eval "$env"
}
stage services services
# The real clients the Go tests drive (oras, regctl, crane, skopeo, cosign, CNCF
# distribution), installed once here rather than inside a test's timeout.
clients() {
  GRAFT_CLIENTS_BIN=$("$shared/tools/install-clients.sh" | tail -n 1) || return
  export GRAFT_CLIENTS_BIN
}
stage clients clients
# Debian's chromium, which the browser tests of the web view (e2e/ui) drive headless;
# installed once, like the clients.
browser() {
  command -v chromium >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
}
stage browser browser

stage vet go vet ./...
stage go-test go test -race -count=1 -timeout 30m ./...
# the benchmarks must keep running: one iteration each, no timing
stage go-bench-smoke go test -run '^$' -bench . -benchtime 1x -timeout 20m ./...
[ "$only" = go ] && exit 0

stage build go build -o "$work/" ./cmd/graft ./internal/graftest/rrproxy

# fresh_graft NAME: starts `graft serve` with no flags in an empty directory of its own
# (so ./graft-data is fresh) and sets addr to where it listens. GRAFT_ADDR picks a free
# port: another program may hold 5000 here. (Not run as $(...): the server would hold
# the substitution's pipe open, and its PID would be lost with the subshell.)
fresh_graft() {
  local dir=$work/$1
  addr=""
  mkdir -p "$dir"
  : >"$dir/log" # created here: the server opens it in the background, maybe after the first read
  (cd "$dir" && GRAFT_ADDR=127.0.0.1:0 GRAFT_LOG_FORMAT=json exec "$work/graft" serve) >"$dir/stdout" 2>"$dir/log" &
  pids+=($!)
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*"msg":"graft registry listening".*"addr":"\([^"]*\)".*/\1/p' "$dir/log" | head -n 1)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "graft serve did not start:" >&2
  cat "$dir/log" >&2
  return 1
}

conformance() { # PROFILE
  fresh_graft "conformance-$1"
  OCI_RESULTS_DIR=$work/conformance-$1/report "$shared/tools/conformance.sh" "http://$addr" "$1"
}
stage conformance-stable conformance stable
stage conformance-dev conformance dev

workflows() {
  fresh_graft workflows
  "$shared/acceptance/seed-workflows.sh" "$addr"
}
stage seed-workflows workflows

# The same with authentication on: the conformance suite through the token flow, and
# the seed workflows with credentials (e2e/auth/with-auth.sh says how it supplies them).
stage conformance-auth-stable env GRAFT_BIN="$work/graft" GRAFT_SHARED="$shared" "$root/e2e/auth/with-auth.sh" conformance stable
stage conformance-auth-dev env GRAFT_BIN="$work/graft" GRAFT_SHARED="$shared" "$root/e2e/auth/with-auth.sh" conformance dev
stage seed-workflows-auth env GRAFT_BIN="$work/graft" GRAFT_SHARED="$shared" "$root/e2e/auth/with-auth.sh" seed-patched

# scaleout NAME: three replicas of `graft serve` on S3 + PostgreSQL (a fresh key prefix
# and database of their own) behind rrproxy, which sends each request to the next
# replica in turn; sets addr to the proxy's address.
scaleout() {
  local dir=$work/$1 db=graft_ci_$RANDOM$RANDOM urls=() i
  mkdir -p "$dir"
  psql -q -c "CREATE DATABASE $db" >/dev/null
  dbs+=("$db")
  cat >"$dir/graft.yaml" <<YAML
storage:
  s3:
    endpoint: $GRAFT_TEST_S3_ENDPOINT
    region: $GRAFT_TEST_S3_REGION
    bucket: $GRAFT_TEST_S3_BUCKET
    prefix: ci-$db/
    forcePathStyle: true
metadata:
  postgres:
    url: ${GRAFT_TEST_POSTGRES_URL%/*}/$db?sslmode=disable
YAML
  for i in 1 2 3; do
    mkdir -p "$dir/replica$i"
    : >"$dir/replica$i/log"
    (cd "$dir/replica$i" && GRAFT_CONFIG=$dir/graft.yaml GRAFT_ADDR=127.0.0.1:0 GRAFT_LOG_FORMAT=json \
      exec "$work/graft" serve) >"$dir/replica$i/stdout" 2>"$dir/replica$i/log" &
    pids+=($!)
    addr=""
    for _ in $(seq 1 300); do
      addr=$(sed -n 's/.*"msg":"graft registry listening".*"addr":"\([^"]*\)".*/\1/p' "$dir/replica$i/log" | head -n 1)
      [ -n "$addr" ] && break
      sleep 0.1
    done
    [ -n "$addr" ] || { echo "replica $i did not start:" >&2; cat "$dir/replica$i/log" >&2; return 1; }
    urls+=("http://$addr")
  done
  : >"$dir/proxy"
  "$work/rrproxy" "${urls[@]}" >"$dir/proxy" 2>&1 &
  pids+=($!)
  addr=""
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/^listening on //p' "$dir/proxy")
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "rrproxy did not start:" >&2
  cat "$dir/proxy" >&2
  return 1
}

scaleout_conformance() { # PROFILE
  scaleout "scaleout-conformance-$1"
  OCI_RESULTS_DIR=$work/scaleout-conformance-$1/report "$shared/tools/conformance.sh" "http://$addr" "$1"
}
stage scaleout-conformance-stable scaleout_conformance stable
stage scaleout-conformance-dev scaleout_conformance dev

scaleout_workflows() {
  scaleout scaleout-workflows
  "$shared/acceptance/seed-workflows.sh" "$addr"
}
stage scaleout-seed-workflows scaleout_workflows
echo "all tests passed" >&2

#!/usr/bin/env bash
# The whole test suite: go vet, the unit and end-to-end tests under the race detector,
# the official OCI conformance suite (stable and dev profiles) and the supply-chain
# workflows with real clients, each against a freshly started `graft serve` with no flags.
#
#   scripts/test.sh            everything
#   scripts/test.sh go         only go vet and go test -race ./...
#
# It needs Go; everything else (the conformance suite, oras, regctl, crane, cosign,
# skopeo, jq) is built or installed by the team's scripts in ../shared on first use.
# Each stage prints a timing line: `== stage NAME: Ns`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${GRAFT_SHARED:-$root/../shared}
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
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

stage vet go vet ./...
stage go-test go test -race -count=1 -timeout 30m ./...
# the benchmarks must keep running: one iteration each, no timing
stage go-bench-smoke go test -run '^$' -bench . -benchtime 1x -timeout 20m ./...
[ "$only" = go ] && exit 0

stage build go build -o "$work/graft" ./cmd/graft

# fresh_graft NAME: starts `graft serve` with no flags in an empty directory of its own
# (so ./graft-data is fresh) and sets addr to where it listens. GRAFT_ADDR picks a free
# port: another program may hold 5000 here. (Not run as $(...): the server would hold
# the substitution's pipe open, and its PID would be lost with the subshell.)
fresh_graft() {
  local dir=$work/$1
  addr=""
  mkdir -p "$dir"
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
echo "all tests passed" >&2

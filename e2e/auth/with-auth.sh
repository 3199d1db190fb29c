#!/usr/bin/env bash
# Runs the team's registry suites against a `graft serve` with authentication on, for
# scripts/test.sh to call as stages.
#
#   e2e/auth/with-auth.sh conformance [stable|dev|full]
#       the OCI conformance suite, logged in as a user (OCI_USERNAME/OCI_PASSWORD) of an
#       htpasswd file made with `graft user add`: every user may do everything, so the
#       suite sees the registry as it does without auth, through the token flow
#   e2e/auth/with-auth.sh seed
#       seed-workflows.sh with credentials in a DOCKER_CONFIG and anonymous pull on every
#       repository. seed-workflows.sh gives its clients a DOCKER_CONFIG of its own and
#       pushes with curl without credentials, so its checks cannot pass against a
#       registry that requires credentials to push: the stage prints what passed and
#       exits 0 when every check that failed did so on a 401 (writes refused to
#       anonymous callers), and nothing failed for another reason.
#   e2e/auth/with-auth.sh seed-patched
#       a copy of seed-workflows.sh patched to hand its clients the credentials of a
#       DOCKER_CONFIG and to send them with curl: every check must pass
#
# Environment: GRAFT_BIN (default: built from this module), GRAFT_SHARED (default:
# ../shared beside the module). Exit status: 0 when the suite passed, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${GRAFT_SHARED:-$root/../shared}
what=${1:?usage: with-auth.sh conformance [stable|dev|full] | seed}

work=$(mktemp -d "${TMPDIR:-/tmp}/graft-auth.XXXXXX")
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

graft=${GRAFT_BIN:-}
if [ -z "$graft" ]; then
  (cd "$root" && go build -o "$work/graft" ./cmd/graft)
  graft=$work/graft
fi

user=conformance
password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$password" | "$graft" user add "$user" --password-stdin --htpasswd "$work/htpasswd" 2>/dev/null

# start_graft CONFIG: graft serve with CONFIG on a free loopback port; sets addr
start_graft() {
  # debug logs every request: the stage checks that none of them leaks a secret
  # created here: the server opens it in the background, maybe after the first read
  : >"$work/log"
  GRAFT_CONFIG=$1 GRAFT_ADDR=127.0.0.1:0 GRAFT_LOG_FORMAT=json GRAFT_LOG_LEVEL=debug GRAFT_DATA_DIR=$work/data \
    "$graft" serve >"$work/stdout" 2>"$work/log" &
  pid=$!
  addr=""
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*"msg":"graft registry listening".*"addr":"\([^"]*\)".*/\1/p' "$work/log" | head -n 1)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "graft serve did not start:" >&2
  cat "$work/log" >&2
  return 1
}

# no_secrets: the server's log holds neither the password nor a token
no_secrets() {
  if grep -qF "$password" "$work/log" || grep -qE 'eyJ[A-Za-z0-9_-]{10,}\.eyJ' "$work/log"; then
    echo "with-auth: the server logged a secret" >&2
    return 1
  fi
}

case $what in
conformance)
  cat >"$work/graft.yaml" <<YAML
auth:
  htpasswd: $work/htpasswd
YAML
  start_graft "$work/graft.yaml"
  status=0
  OCI_USERNAME=$user OCI_PASSWORD=$password OCI_RESULTS_DIR=$work/report \
    "$shared/tools/conformance.sh" "http://$addr" "${2:-stable}" || status=$?
  # the suite must have gone through the token flow, not around it
  if ! grep -q '"msg":"token request".*"status":200' "$work/log"; then
    echo "with-auth: the suite never got a token" >&2
    status=1
  fi
  no_secrets || status=1
  exit $status
  ;;
seed)
  cat >"$work/graft.yaml" <<YAML
auth:
  htpasswd: $work/htpasswd
  policies:
    - repositories: ["**"]
      pull: ["*"]
      push: ["*"]
      delete: ["*"]
      anonymous-pull: true
YAML
  start_graft "$work/graft.yaml"
  mkdir -p "$work/docker"
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$addr" "$(printf '%s:%s' "$user" "$password" | base64 -w0)" >"$work/docker/config.json"
  set +e
  DOCKER_CONFIG=$work/docker "$shared/acceptance/seed-workflows.sh" "$addr" | tee "$work/seed.out"
  set -e
  no_secrets
  echo "with-auth: seed-workflows with credentials in DOCKER_CONFIG and anonymous pull:" \
    "$(grep -c '^ok' "$work/seed.out") passed, $(grep -c '^not ok' "$work/seed.out") failed" >&2
  # the script's clients get none of the credentials and its curl sends none, so the
  # registry must have turned down every write, and nothing else may have failed:
  # every failed check fails on a 401 (or on a check that did)
  if grep '^not ok' "$work/seed.out" | grep -vqE '401|unauthorized|authentication required|depends on'; then
    echo "with-auth: a check failed for another reason than missing credentials" >&2
    exit 1
  fi
  grep -q '^ok - provenance: build' "$work/seed.out"
  ;;
seed-patched)
  # seed-workflows.sh with two changes that let credentials in: its clients' home gets
  # the config.json of SEED_DOCKER_CONFIG, and its curl requests SEED_CURL_USER's Basic
  # credentials. What passes here is what graft does with credentials; the copy lives
  # beside a link to the shared tools, which the script finds relative to itself.
  cat >"$work/graft.yaml" <<YAML
auth:
  htpasswd: $work/htpasswd
YAML
  start_graft "$work/graft.yaml"
  mkdir -p "$work/docker" "$work/acceptance"
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$addr" "$(printf '%s:%s' "$user" "$password" | base64 -w0)" >"$work/docker/config.json"
  ln -s "$shared/tools" "$work/tools"
  sed -e 's|^export HOME=$work/home DOCKER_CONFIG=$work/home/.docker$|&\
if [ -n "${SEED_DOCKER_CONFIG:-}" ]; then mkdir -p "$DOCKER_CONFIG"; cp "$SEED_DOCKER_CONFIG/config.json" "$DOCKER_CONFIG/"; fi|' \
    -e 's|^http() { curl -sSL --max-time "$T" "$@"; }$|http() { curl -sSL --max-time "$T" ${SEED_CURL_USER:+-u "$SEED_CURL_USER"} "$@"; }|' \
    "$shared/acceptance/seed-workflows.sh" >"$work/acceptance/seed-workflows.sh"
  chmod +x "$work/acceptance/seed-workflows.sh"
  if [ "$(diff "$shared/acceptance/seed-workflows.sh" "$work/acceptance/seed-workflows.sh" | grep -c '^>')" != 2 ]; then
    echo "with-auth: seed-workflows.sh changed; the patch no longer applies" >&2
    exit 1
  fi
  status=0
  SEED_DOCKER_CONFIG=$work/docker SEED_CURL_USER=$user:$password "$work/acceptance/seed-workflows.sh" "$addr" || status=$?
  no_secrets || status=1
  exit $status
  ;;
*)
  echo "usage: with-auth.sh conformance [stable|dev|full] | seed | seed-patched" >&2
  exit 2
  ;;
esac

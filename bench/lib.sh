# What the benchmark scripts share: starting the servers they measure. Sourced, not run.
# Both functions set pid and url; neither is run as $(...), which would make the server
# the subshell's, out of reach of the caller's trap.

# serve_graft BIN LOG ARGS...: starts BIN serve with ARGS on a loopback port of its own
# choosing, read back from its log (no race for a free port), logging to LOG. The
# address and log format go by environment, which older builds understand too, where
# flags came later.
serve_graft() {
  local bin=$1 log=$2
  shift 2
  : >"$log"
  GRAFT_ADDR=127.0.0.1:0 GRAFT_LOG_FORMAT=json "$bin" serve "$@" 2>"$log" &
  pid=$!
  url=""
  for _ in $(seq 1 300); do
    url=$(sed -n 's/.*"msg":"graft registry listening".*"addr":"\([^"]*\)".*/http:\/\/\1/p' "$log" | head -n 1)
    [ -n "$url" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "graft serve did not start:" >&2
  cat "$log" >&2
  return 1
}

# serve_distribution BIN DIR STORAGE: starts CNCF distribution (BIN) on a free loopback
# port, with STORAGE (the lines of its storage section, indented by two spaces) and the
# settings regbench's anchors use; its config and log go in DIR. A port another process
# takes meanwhile means another try on another.
serve_distribution() {
  local bin=$1 dir=$2 storage=$3 port
  while :; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    cat >"$dir/dist.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
$storage
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
    "$bin" serve "$dir/dist.yml" >"$dir/dist.log" 2>&1 &
    pid=$!
    url=http://127.0.0.1:$port
    until curl -sf -o /dev/null "$url/v2/"; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && return 0
    wait "$pid" 2>/dev/null || true
  done
}

# disk_rates DIR MIB N: the disk's rate for what a push ends with, written N times back
# to back: MIB MiB into a new file in DIR, fsynced (dd conv=fsync). A push is answered
# only once its blob is on disk, so pushes in a row run at the rate this settles to, not
# at the first write's, which the page cache and the disk's own cache absorb. Prints
# "disk  fsync_write=MEDIAN MiB/s [reps R1/R2/...]".
disk_rates() {
  local dir=$1 mib=$2 n=$3 src i reps=() sorted
  src=$(mktemp "$dir/disk-src.XXXXXX")
  head -c $((mib << 20)) /dev/urandom >"$src"
  for i in $(seq 1 "$n"); do
    reps+=("$(fsync_write_rate "$src" "$dir/disk-$i")")
  done
  rm -f "$src" "$dir"/disk-[0-9]*
  sorted=$(printf '%s\n' "${reps[@]}" | sort -n | sed -n "$(((n + 1) / 2))p")
  echo "disk  fsync_write=${sorted}MiB/s [reps $(IFS=/; echo "${reps[*]}")]"
}

# fsync_write_rate SRC DEST: copies SRC to the new file DEST and fsyncs it (dd
# conv=fsync); prints the MiB/s, a whole number.
fsync_write_rate() {
  local secs
  secs=$(LC_ALL=C dd if="$1" of="$2" bs=1M conv=fsync 2>&1 | sed -n 's/.* copied, \([0-9.]*\) s.*/\1/p')
  awk -v b="$(stat -c %s "$2")" -v s="$secs" 'BEGIN { printf "%d", b / 1048576 / s }'
}

# prime_disk DIR: writes GRAFT_BENCH_PRIME_GIB GiB (default 4; 0 skips it) of random
# bytes into a file in DIR, syncs, and removes it again, so that every server measured
# after it finds the disk in the same state. After files are removed, this VM's disk
# writes the next 1.5-2 GiB at 450-980 MiB/s; writes that follow writes, with nothing
# removed, take ~300. Without this, the server measured right after a delete gets the
# fast rate and the one after it the slow one, and their order decides their ratio
# (bench/README.md, "Whoever writes first").
# Random bytes, because a disk may store zeros without writing them. DIR needs that
# much free space.
prime_disk() {
  local dir=$1 gib=${GRAFT_BENCH_PRIME_GIB:-4} src
  [ "$gib" -gt 0 ] || return 0
  src=$(mktemp "$dir/prime-src.XXXXXX")
  head -c $((256 << 20)) /dev/urandom >"$src"
  for _ in $(seq 1 $((gib * 4))); do cat "$src"; done >"$dir/prime"
  sync
  rm -f "$src" "$dir/prime"
  sync
}

#!/usr/bin/env bash
# The disk's rate for a 256 MiB file written and fsynced (dd conv=fsync), by where the
# file's blocks come from. On this project's VM they differ 2-3x, which decides a push
# benchmark's figures unless every server is given the same state (prime_disk in
# bench/lib.sh; bench/README.md, "Whoever writes first"):
#
#   fresh:   8 files in a row, then 5 more in blocks nothing wrote before
#   reused:  all removed, then 8 files in the blocks just freed
#   later:   all removed, 30 s idle, then 5 files in the blocks freed
#
#   bench/disk-states.sh [DIR]    DIR on the disk to measure (default: a temporary one)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
dir=$(mktemp -d "${1:-${TMPDIR:-/tmp}}/graft-disk.XXXXXX")
trap 'rm -rf "$dir"' EXIT
head -c $((256 << 20)) /dev/urandom >"$dir/src"

# write N PREFIX: N files in a row; prints each one's MiB/s
write() {
  local i
  for i in $(seq 1 "$1"); do
    echo -n " $(fsync_write_rate "$dir/src" "$dir/$2-$i")"
  done
}
remove_all() { rm -f "$dir"/[a-z]*-[0-9]*; sync; }

sync
write 8 warm >/dev/null
echo "fresh: $(write 5 fresh) MiB/s"
remove_all
echo "reused: $(write 8 reused) MiB/s"
remove_all
sleep 30
echo "later: $(write 5 later) MiB/s"

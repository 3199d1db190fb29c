#!/usr/bin/env bash
# The disk's rate for a 256 MiB file written and fsynced (dd conv=fsync), by what the
# disk did before. On this project's VM the rates differ 2-3x, which decides a push
# benchmark's figures unless every server is given the same state (prime_disk in
# bench/lib.sh; bench/README.md, "Whoever writes first"):
#
#   after-writes:       8 files in a row, then 5 more
#   after-remove:       all removed (and synced), then 8 files
#   after-remove-30s:   all removed, 30 s idle, then 5 files
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
echo "after-writes: $(write 5 a) MiB/s"
remove_all
echo "after-remove: $(write 8 b) MiB/s"
remove_all
sleep 30
echo "after-remove-30s: $(write 5 c) MiB/s"

package fs

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeback asks the kernel to start writing n bytes of f at off to disk, without
// waiting: the disk then works while the upload streams in, and the fsync of the
// commit has little left to do.
func writeback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

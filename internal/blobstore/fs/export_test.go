package fs

import (
	"os"
	"testing"
)

// RecordWriteback has Appends record the ranges whose writeback they start, [off, off+n)
// as {off, n}, instead of starting it, until the test ends.
func RecordWriteback(tb testing.TB) *[][2]int64 {
	ranges := new([][2]int64)
	startWriteback = func(_ *os.File, off, n int64) { *ranges = append(*ranges, [2]int64{off, n}) }
	tb.Cleanup(func() { startWriteback = writeback })
	return ranges
}

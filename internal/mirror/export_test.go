package mirror

import (
	"testing"
	"time"
)

// SetBlobStall sets how long a fetch waits for the next bytes of a blob, for the
// duration of t.
func SetBlobStall(t *testing.T, d time.Duration) {
	old := blobStall
	blobStall = d
	t.Cleanup(func() { blobStall = old })
}

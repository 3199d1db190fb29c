package mirror

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestSpool checks what readers of a spool get while it is filled: every byte of a
// blob that matches its digest, and never the last byte of one that does not.
func TestSpool(t *testing.T) {
	blob := bytes.Repeat([]byte("spooled "), 100000)
	d := digest.FromBytes(blob)
	wrong := append(bytes.Clone(blob[:len(blob)-1]), '!')
	for _, tc := range []struct {
		name    string
		body    []byte
		wantErr error // of fill; nil: the readers get the blob
	}{
		{"right", blob, nil},
		{"wrong last byte", wrong, errMismatch},
		{"short", blob[:len(blob)/2], errMismatch},
		{"long", append(bytes.Clone(blob), 'x'), errMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := newSpool(t.TempDir(), d, int64(len(blob)))
			if err != nil {
				t.Fatal(err)
			}
			defer sp.release()
			// Readers start before the fill, and read along through a pipe that
			// hands the bytes over in small pieces.
			const readers = 4
			got := make([][]byte, readers)
			errs := make([]error, readers)
			var wg sync.WaitGroup
			for i := range readers {
				rd := sp.reader(t.Context())
				wg.Go(func() {
					defer rd.Close()
					if i%2 == 0 {
						got[i], errs[i] = io.ReadAll(rd)
						return
					}
					// as net/http's copy does: through WriteTo, from a file of its own
					var buf bytes.Buffer
					_, errs[i] = io.Copy(&buf, rd)
					got[i] = buf.Bytes()
				})
			}
			pr, pw := io.Pipe()
			go func() {
				for b := tc.body; len(b) > 0; b = b[min(len(b), 4096):] {
					pw.Write(b[:min(len(b), 4096)])
				}
				pw.Close()
			}()
			if err := sp.fill(pr); !errors.Is(err, tc.wantErr) {
				t.Fatalf("fill: %v, want %v", err, tc.wantErr)
			}
			wg.Wait()
			for i := range readers {
				switch {
				case tc.wantErr == nil && (errs[i] != nil || !bytes.Equal(got[i], blob)):
					t.Errorf("reader %d: %d bytes, %v; want the blob", i, len(got[i]), errs[i])
				case tc.wantErr != nil && (errs[i] == nil || len(got[i]) >= len(blob)):
					t.Errorf("reader %d: %d bytes of %d, %v; want fewer and an error", i, len(got[i]), len(blob), errs[i])
				}
			}
		})
	}
}

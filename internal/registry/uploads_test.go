package registry

import (
	"strings"
	"testing"
	"time"
)

// TestAppendRecordsWritesLazily: a chunk records the session's write in the metadata
// store only when the last record is older than a touchSlack-th of the upload TTL, so
// that a chunked push does not commit a metadata write per chunk; the janitor then still
// finds a session abandoned for the TTL.
func TestAppendRecordsWritesLazily(t *testing.T) {
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			r := dep.open(t)
			c := setClock(t, r)
			ctx := t.Context()
			id, err := r.StartUpload(ctx, "lazy/touch")
			if err != nil {
				t.Fatalf("StartUpload: %v", err)
			}
			started := c.Now()
			modified := func() time.Time {
				t.Helper()
				rec, err := r.meta.Upload(ctx, id)
				if err != nil {
					t.Fatalf("Upload(%s): %v", id, err)
				}
				return rec.Modified
			}
			appendChunk := func(s string) {
				t.Helper()
				if _, err := r.AppendUpload(ctx, "lazy/touch", id, Chunk{Body: strings.NewReader(s), Start: -1, Length: int64(len(s))}); err != nil {
					t.Fatalf("AppendUpload: %v", err)
				}
			}
			slack := r.opts.UploadTTL / touchSlack
			c.add(slack / 2)
			appendChunk("within the slack,")
			if got := modified(); !got.Equal(started) {
				t.Errorf("a chunk %v after the last record moved it from %v to %v", slack/2, started, got)
			}
			c.add(slack)
			appendChunk("past it")
			if got := modified(); !got.Equal(c.Now()) {
				t.Errorf("a chunk %v after the last record left it at %v, want %v", slack*3/2, got, c.Now())
			}
			// Abandoned now: reclaimed once the TTL passed since the last record.
			c.add(r.opts.UploadTTL - time.Second)
			if n, err := r.ExpireUploads(ctx); err != nil || n != 0 {
				t.Fatalf("ExpireUploads before the TTL = %d, %v; want 0", n, err)
			}
			c.add(2 * time.Second)
			if n, err := r.ExpireUploads(ctx); err != nil || n != 1 {
				t.Fatalf("ExpireUploads after the TTL = %d, %v; want 1", n, err)
			}
		})
	}
}

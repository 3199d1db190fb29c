package registry

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/errcode"
)

// TestUploadCaps: a repository and a caller may hold so many upload sessions open, and
// one more is TOOMANYREQUESTS; a session finished or cancelled makes room again. The
// count is the metadata store's, so replicas share it.
func TestUploadCaps(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			r := dep.open(t)
			r.opts.UploadsPerRepository, r.opts.UploadsPerCaller = 3, 4
			ctx := t.Context()
			start := func(repo, owner string) (string, error) {
				t.Helper()
				return r.StartUpload(ctx, repo, owner)
			}
			must := func(repo, owner string) string {
				t.Helper()
				id, err := start(repo, owner)
				if err != nil {
					t.Fatalf("StartUpload(%s, %s): %v", repo, owner, err)
				}
				return id
			}
			refused := func(repo, owner, message string) {
				t.Helper()
				_, err := start(repo, owner)
				var e *errcode.Error
				if !errors.As(err, &e) || e.Code != errcode.TooManyRequests || e.Message != message {
					t.Fatalf("StartUpload(%s, %s) = %v, want TOOMANYREQUESTS %q", repo, owner, err, message)
				}
			}
			const full = "repository caps/a has 3 upload sessions open, the most it may; finish or cancel one, or wait until unused ones are reclaimed"
			const mine = "you have 4 upload sessions open, the most one caller may; finish or cancel one, or wait until unused ones are reclaimed"
			a := []string{must("caps/a", "user:alice"), must("caps/a", "user:alice"), must("caps/a", "user:bob")}
			refused("caps/a", "user:carol", full)
			b := must("caps/b", "user:alice")
			must("caps/b", "user:alice") // alice's fourth
			refused("caps/c", "user:alice", mine)
			must("caps/c", "user:bob") // others are not held back

			// A cancelled session makes room in its repository and for its owner.
			if err := r.CancelUpload(ctx, "caps/a", a[0]); err != nil {
				t.Fatal(err)
			}
			a[0] = must("caps/a", "user:carol")
			refused("caps/a", "user:carol", full)
			if err := r.CancelUpload(ctx, "caps/a", a[1]); err != nil { // alice's: she has 2 left
				t.Fatal(err)
			}
			must("caps/d", "user:alice")
			must("caps/d", "user:alice")
			refused("caps/e", "user:alice", mine)

			// So does a finished one.
			blob := []byte("a finished upload")
			if _, err := r.FinishUpload(ctx, "caps/b", b, digest.FromBytes(blob).String(),
				Chunk{Body: bytes.NewReader(blob), Start: -1, Length: int64(len(blob))}); err != nil {
				t.Fatal(err)
			}
			must("caps/e", "user:alice")
			refused("caps/e", "user:alice", mine)

			// With no bounds, no count.
			r.opts.UploadsPerRepository, r.opts.UploadsPerCaller = 0, 0
			must("caps/a", "user:carol")
			must("caps/a", "user:alice")
		})
	}
}

// TestExpireEmptyUploads: a session that holds no bytes is reclaimed after the empty
// TTL (an hour by default), in the metadata store and in the blob store alike (the
// bucket holds an S3 session's state); a session with bytes stays until the upload TTL.
// An empty PATCH writes nothing and keeps nothing.
func TestExpireEmptyUploads(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			r := dep.open(t)
			ctx := t.Context()
			empty, err := r.StartUpload(ctx, "expire/app", "user:alice")
			if err != nil {
				t.Fatal(err)
			}
			patchedEmpty, err := r.StartUpload(ctx, "expire/app", "user:alice")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.AppendUpload(ctx, "expire/app", patchedEmpty, Chunk{Body: bytes.NewReader(nil), Start: -1, Length: 0}); err != nil {
				t.Fatal(err)
			}
			written, err := r.StartUpload(ctx, "expire/app", "user:alice")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.AppendUpload(ctx, "expire/app", written, Chunk{Body: bytes.NewReader([]byte("some bytes")), Start: -1, Length: 10}); err != nil {
				t.Fatal(err)
			}
			open := func() []string {
				t.Helper()
				var ids []string
				err := r.blobs.Uploads(ctx, func(id string, _ time.Time) error {
					ids = append(ids, id)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(ids)
				return ids
			}
			expire := func(want int) {
				t.Helper()
				n, err := r.ExpireUploads(ctx)
				if err != nil || n != want {
					t.Fatalf("ExpireUploads = %d, %v; want %d", n, err, want)
				}
			}
			expire(0)
			later(r, 59*time.Minute)
			expire(0)
			later(r, 61*time.Minute)
			expire(2)
			if got := open(); !slices.Equal(got, []string{written}) {
				t.Errorf("sessions in the blob store after an hour: %v, want only %s", got, written)
			}
			for _, id := range []string{empty, patchedEmpty} {
				if _, err := r.UploadStatus(ctx, "expire/app", id); !errcode.Is(err, errcode.BlobUploadUnknown) {
					t.Errorf("UploadStatus of the reclaimed session %s: %v", id, err)
				}
				if _, err := r.blobs.Resume(ctx, id); !errors.Is(err, blobstore.ErrNotFound) {
					t.Errorf("Resume of the reclaimed session %s: %v", id, err)
				}
			}
			if size, err := r.UploadStatus(ctx, "expire/app", written); err != nil || size != 10 {
				t.Errorf("UploadStatus of the written session = %d, %v", size, err)
			}
			later(r, 25*time.Hour)
			expire(1)
			if got := open(); len(got) != 0 {
				t.Errorf("sessions in the blob store after a day: %v", got)
			}
		})
	}
}

// TestAppendRecordsWritesLazily: a chunk records the session's write in the metadata
// store only when the last record is older than a touchSlack-th of the upload TTL, so
// that a chunked push does not commit a metadata write per chunk; the janitor then still
// finds a session abandoned for the TTL.
func TestAppendRecordsWritesLazily(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			r := dep.open(t)
			c := setClock(t, r)
			ctx := t.Context()
			id, err := r.StartUpload(ctx, "lazy/touch", "user:alice")
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

package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
	"github.com/graft-registry/graft/internal/metastore/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metastore.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "graft.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func open(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(tb.Context(), path)
	if err != nil {
		tb.Fatalf("Open(%q): %v", path, err)
	}
	return s
}

// manifest returns a small image manifest of repo, distinct for each i, naming the
// blobs bs.
func manifest(repo string, i int64, bs ...digest.Digest) *metastore.Manifest {
	b := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":2},"layers":[],"annotations":{"n":"%d"}}`,
		ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, digest.FromString("config"), i)
	m := &metastore.Manifest{
		Repo:            repo,
		Digest:          digest.FromBytes(b),
		MediaType:       ocispec.MediaTypeImageManifest,
		Size:            int64(len(b)),
		Content:         b,
		ArtifactType:    ocispec.MediaTypeImageConfig,
		ConfigMediaType: ocispec.MediaTypeImageConfig,
		Annotations:     map[string]string{"n": fmt.Sprint(i)},
	}
	for _, d := range bs {
		m.References = append(m.References, metastore.Reference{Digest: d, Size: 2})
	}
	return m
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "graft.db")
	created := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	blob := digest.FromString("blob")
	m := manifest("library/alpine", 1, blob)
	m.Created, m.Updated = created, created
	up := metastore.Upload{ID: "u", Repo: "library/alpine", Created: created, Modified: created}

	s := open(t, path)
	err := s.Update(ctx, func(tx metastore.Tx) error {
		if err := tx.LinkBlob(ctx, m.Repo, blob, 2); err != nil {
			return err
		}
		if err := tx.PutManifest(ctx, m); err != nil {
			return err
		}
		if err := tx.SetTag(ctx, m.Repo, "3.20", m.Digest); err != nil {
			return err
		}
		return tx.CreateUpload(ctx, &up)
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	defer s.Close()
	got, err := s.TaggedManifest(ctx, m.Repo, "3.20")
	if err != nil {
		t.Fatalf("TaggedManifest after reopening: %v", err)
	}
	if got.Digest != m.Digest || string(got.Content) != string(m.Content) || !got.Created.Equal(created) {
		t.Errorf("manifest after reopening = %s %q created %v, want %s %q created %v",
			got.Digest, got.Content, got.Created, m.Digest, m.Content, created)
	}
	if size, err := s.Blob(ctx, m.Repo, blob); err != nil || size != 2 {
		t.Errorf("Blob after reopening = %d, %v; want 2", size, err)
	}
	if u, err := s.Upload(ctx, "u"); err != nil || u.Repo != up.Repo || !u.Modified.Equal(created) {
		t.Errorf("Upload after reopening = %+v, %v; want %+v", u, err, up)
	}
	if rs, err := s.Repositories(ctx, "", 10); err != nil || !slices.Equal(rs, []string{m.Repo}) {
		t.Errorf("Repositories after reopening = %v, %v", rs, err)
	}
	// And it takes writes.
	err = s.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteTag(ctx, m.Repo, "3.20") })
	if err != nil {
		t.Errorf("Update after reopening: %v", err)
	}
}

func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "graft.db")
	if err := open(t, path).Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// A later graft migrated the database past what this one knows.
	const future = 1000
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", future)); err != nil {
		t.Fatal(err)
	}

	s, err := sqlite.Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != future {
		t.Errorf("schema version after the refused Open = %d, %v; want %d untouched", v, err, future)
	}
}

// BenchmarkPutManifest is the metadata side of a manifest push, from many clients at
// once: check the manifest's blobs, store it, move its tag, in one Update.
func BenchmarkPutManifest(b *testing.B) {
	ctx := b.Context()
	s := open(b, filepath.Join(b.TempDir(), "graft.db"))
	defer s.Close()
	const repo = "bench/push"
	blobs := []digest.Digest{digest.FromString("config"), digest.FromString("layer")}
	err := s.Update(ctx, func(tx metastore.Tx) error {
		for _, d := range blobs {
			if err := tx.LinkBlob(ctx, repo, d, 2); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			m := manifest(repo, i, blobs...)
			err := s.Update(ctx, func(tx metastore.Tx) error {
				missing, err := tx.MissingBlobs(ctx, repo, blobs)
				if err != nil {
					return err
				}
				if len(missing) > 0 {
					return fmt.Errorf("blobs %v missing", missing)
				}
				if err := tx.PutManifest(ctx, m); err != nil {
					return err
				}
				return tx.SetTag(ctx, repo, fmt.Sprint("v", i), m.Digest)
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTaggedManifest is a pull's manifest lookup by tag, from many clients.
func BenchmarkTaggedManifest(b *testing.B) {
	ctx := b.Context()
	s := open(b, filepath.Join(b.TempDir(), "graft.db"))
	defer s.Close()
	const repo, tags = "bench/pull", 1000
	err := s.Update(ctx, func(tx metastore.Tx) error {
		for i := range int64(tags) {
			m := manifest(repo, i)
			if err := tx.PutManifest(ctx, m); err != nil {
				return err
			}
			if err := tx.SetTag(ctx, repo, fmt.Sprint("v", i), m.Digest); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) % tags
			m, err := s.TaggedManifest(ctx, repo, fmt.Sprint("v", i))
			if err != nil || len(m.Content) == 0 {
				b.Errorf("TaggedManifest(v%d) = %v", i, err)
				return
			}
		}
	})
}

// BenchmarkReferrers lists the 1000 referrers of one subject, all of them and those of
// one artifact type, in repositories with few and with many other manifests. The cost
// follows the size of the answer: ns/op is about the same whatever the repository's
// size.
func BenchmarkReferrers(b *testing.B) {
	const (
		referrers = 1000
		typeA     = "application/vnd.example.a"
		typeB     = "application/vnd.example.b"
	)
	for _, fillers := range []int{100, 10_000} {
		b.Run(fmt.Sprint("fillers=", fillers), func(b *testing.B) {
			ctx := b.Context()
			s := open(b, filepath.Join(b.TempDir(), "graft.db"))
			defer s.Close()
			const repo = "bench/referrers"
			subject := manifest(repo, -1)
			var ms []*metastore.Manifest
			for i := range int64(referrers) {
				m := manifest(repo, i)
				m.Subject = subject.Digest
				m.ArtifactType = []string{typeA, typeB}[i%2]
				ms = append(ms, m)
			}
			// Unrelated manifests: images, and referrers of other subjects of both
			// types, which share the indexes the query uses.
			for i := range int64(fillers) {
				m := manifest(repo, referrers+i)
				if i%2 == 0 {
					m.Subject = digest.FromString(fmt.Sprint("other subject ", i))
					m.ArtifactType = []string{typeA, typeB}[i/2%2]
				}
				ms = append(ms, m)
			}
			if err := s.Update(ctx, func(tx metastore.Tx) error { return tx.PutManifest(ctx, subject) }); err != nil {
				b.Fatal(err)
			}
			for chunk := range slices.Chunk(ms, 500) {
				err := s.Update(ctx, func(tx metastore.Tx) error {
					for _, m := range chunk {
						if err := tx.PutManifest(ctx, m); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}

			for _, q := range []struct {
				name, artifactType string
				want               int
			}{
				{"all", "", referrers},
				{"artifactType=A", typeA, referrers / 2},
			} {
				b.Run(q.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						ds, err := s.Referrers(ctx, repo, subject.Digest, q.artifactType, "", referrers)
						if err != nil || len(ds) != q.want {
							b.Fatalf("Referrers = %d descriptors, %v; want %d", len(ds), err, q.want)
						}
					}
				})
			}
		})
	}
}

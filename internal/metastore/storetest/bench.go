package storetest

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// Manifest returns a small image manifest of repo, distinct for each i, naming the
// blobs bs.
func Manifest(repo string, i int64, bs ...digest.Digest) *metastore.Manifest {
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

// BenchmarkPut is the metadata side of a manifest push, from 16 clients per CPU spread
// over stores (replicas of one database, or one store): check the manifest's blobs,
// store it, move its tag, in one Update. asRegistry makes it the registry's push
// transaction: it reads the repository's attributes first, and moves the tag with
// MoveTag, which reports what the tag named.
func BenchmarkPut(b *testing.B, stores []metastore.Store, asRegistry bool) {
	ctx := b.Context()
	const repo = "bench/push"
	blobs := []digest.Digest{digest.FromString("config"), digest.FromString("layer")}
	err := stores[0].Update(ctx, func(tx metastore.Tx) error {
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
	var next, client atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := stores[int(client.Add(1))%len(stores)]
		for pb.Next() {
			i := next.Add(1)
			m := Manifest(repo, i, blobs...)
			tag := fmt.Sprint("v", i)
			err := s.Update(ctx, func(tx metastore.Tx) error {
				if asRegistry {
					if _, err := tx.RepositoryAttributes(ctx, repo); err != nil {
						return err
					}
				}
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
				if asRegistry {
					mv, err := tx.MoveTag(ctx, repo, tag, m.Digest)
					if err == nil && mv.Previous != "" {
						err = fmt.Errorf("a new tag %s named %s", tag, mv.Previous)
					}
					return err
				}
				return tx.SetTag(ctx, repo, tag, m.Digest)
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTaggedManifest is a pull's manifest lookup by tag, from many clients.
func BenchmarkTaggedManifest(b *testing.B, s metastore.Store) {
	ctx := b.Context()
	const repo, tags = "bench/pull", 1000
	err := s.Update(ctx, func(tx metastore.Tx) error {
		for i := range int64(tags) {
			m := Manifest(repo, i)
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
			c, err := s.TaggedContent(ctx, repo, fmt.Sprint("v", i))
			if err != nil || len(c.Bytes) == 0 {
				b.Errorf("TaggedContent(v%d) = %v", i, err)
				return
			}
		}
	})
}

// BenchmarkReferrers lists the 1000 referrers of one subject, all of them and those of
// one artifact type, in repositories with few and with many other manifests. The cost
// follows the size of the answer: ns/op is about the same whatever the repository's
// size.
func BenchmarkReferrers(b *testing.B, open func(b *testing.B) metastore.Store) {
	const (
		referrers = 1000
		typeA     = "application/vnd.example.a"
		typeB     = "application/vnd.example.b"
	)
	for _, fillers := range []int{100, 10_000} {
		b.Run(fmt.Sprint("fillers=", fillers), func(b *testing.B) {
			ctx := b.Context()
			s := open(b)
			const repo = "bench/referrers"
			subject := Manifest(repo, -1)
			var ms []*metastore.Manifest
			for i := range int64(referrers) {
				m := Manifest(repo, i)
				m.Subject = subject.Digest
				m.ArtifactType = []string{typeA, typeB}[i%2]
				ms = append(ms, m)
			}
			// Unrelated manifests: images, and referrers of other subjects of both
			// types, which share the indexes the query uses.
			for i := range int64(fillers) {
				m := Manifest(repo, referrers+i)
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

// BenchmarkTagArtifacts looks up the 1000 tag-schema artifacts of one subject (cosign
// tags, signatures listed by its fallback index), in repositories with few and with
// many other manifests, some of them tag-schema artifacts of other subjects: the cost
// follows the answer.
func BenchmarkTagArtifacts(b *testing.B, open func(b *testing.B) metastore.Store) {
	const artifacts = 1000
	for _, fillers := range []int{100, 10_000} {
		b.Run(fmt.Sprint("fillers=", fillers), func(b *testing.B) {
			ctx := b.Context()
			s := open(b)
			const repo = "bench/tag-edges"
			subject := Manifest(repo, -1)
			key := reference.SchemaKeyOf(subject.Digest)
			tags := map[digest.Digest]string{}
			var ms []*metastore.Manifest
			var listed []*metastore.Manifest
			for i := range int64(artifacts) {
				m := Manifest(repo, i)
				ms = append(ms, m)
				if i%2 == 0 {
					tags[m.Digest] = fmt.Sprintf("%s.sig%d", reference.SchemaTag(subject.Digest), i)
				} else {
					listed = append(listed, m)
				}
			}
			fallback := index(repo, "fallback", listed...)
			tags[fallback.Digest] = reference.SchemaTag(subject.Digest)
			for i := range int64(fillers) {
				m := Manifest(repo, artifacts+i)
				if i%2 == 0 {
					tags[m.Digest] = reference.SchemaTag(digest.FromString(fmt.Sprint("other ", i))) + ".sig"
				}
				ms = append(ms, m)
			}
			ms = append(ms, subject, fallback)
			for chunk := range slices.Chunk(ms, 500) {
				err := s.Update(ctx, func(tx metastore.Tx) error {
					for _, m := range chunk {
						if err := tx.PutManifest(ctx, m); err != nil {
							return err
						}
						if tag, ok := tags[m.Digest]; ok {
							if err := tx.SetTag(ctx, repo, tag, m.Digest); err != nil {
								return err
							}
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				ds, err := s.TagArtifacts(ctx, repo, key, "", artifacts+1)
				if err != nil || len(ds) != artifacts+1 {
					b.Fatalf("TagArtifacts = %d digests, %v; want %d", len(ds), err, artifacts+1)
				}
			}
		})
	}
}

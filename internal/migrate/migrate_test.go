package migrate_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/migrate"
	"github.com/graft-registry/graft/internal/registry"
	"github.com/graft-registry/graft/internal/scaletest"
)

func embedded(t *testing.T) *config.Config {
	c := config.Default()
	c.DataDir = t.TempDir()
	return &c
}

func open(t *testing.T, c *config.Config) *daemon.Stores {
	t.Helper()
	st, err := daemon.Open(t.Context(), c)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func stores(st *daemon.Stores) migrate.Stores { return migrate.Stores{Blobs: st.Blobs, Meta: st.Meta} }

// TestCopyEmbedded copies between two embedded deployments.
func TestCopyEmbedded(t *testing.T) {
	roundTrip(t, embedded(t), embedded(t), embedded(t))
}

// TestCopyScaleOut copies an embedded registry to the scale-out deployment and back.
func TestCopyScaleOut(t *testing.T) {
	roundTrip(t, embedded(t), scaletest.Config(t), embedded(t))
}

func roundTrip(t *testing.T, a, b, c *config.Config) {
	ctx := t.Context()
	sa, sb, sc := open(t, a), open(t, b), open(t, c)
	fill(t, registry.New(sa.Blobs, sa.Meta, registry.Options{}))
	err := sa.Meta.Update(ctx, func(tx metastore.Tx) error {
		return tx.CreateToken(ctx, &metastore.Token{Name: "ci", Hash: "hash", Repositories: []string{"team/*"},
			Actions: []string{"pull"}, Created: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, sa)

	rep, err := migrate.Copy(ctx, stores(sa), stores(sb), nil)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if rep.Repositories != 3 || rep.Blobs == 0 || rep.Tokens != 1 {
		t.Errorf("Copy reported %+v", rep)
	}
	if got := snapshot(t, sb); !reflect.DeepEqual(got, want) {
		t.Errorf("after the copy the destination holds\n%s\nwant\n%s", dump(got), dump(want))
	}
	// Again: nothing left to copy, nothing changes.
	rep, err = migrate.Copy(ctx, stores(sa), stores(sb), nil)
	if err != nil {
		t.Fatalf("Copy again: %v", err)
	}
	if rep.Blobs != 0 || rep.Tokens != 0 {
		t.Errorf("a second copy copied %+v", rep)
	}
	if got := snapshot(t, sb); !reflect.DeepEqual(got, want) {
		t.Errorf("after a second copy the destination holds\n%s\nwant\n%s", dump(got), dump(want))
	}
	// And back.
	if _, err := migrate.Copy(ctx, stores(sb), stores(sc), nil); err != nil {
		t.Fatalf("Copy back: %v", err)
	}
	if got := snapshot(t, sc); !reflect.DeepEqual(got, want) {
		t.Errorf("after the copy back the destination holds\n%s\nwant\n%s", dump(got), dump(want))
	}
}

// fill pushes an image with an SBOM and a signature of the SBOM, a multi-platform
// index, a locked manifest, an unlisted repository, a blob no manifest names and a token.
func fill(t *testing.T, r *registry.Registry) {
	ctx := t.Context()
	blob := func(repo, content string) ocispec.Descriptor {
		d := digest.FromString(content)
		if _, err := r.PutBlob(ctx, repo, d.String(), registry.Chunk{Body: bytes.NewReader([]byte(content)), Start: -1, Length: int64(len(content))}); err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(content))}
	}
	put := func(repo, ref, mediaType string, v any) ocispec.Descriptor {
		b, _ := json.Marshal(v)
		d := digest.FromBytes(b)
		if ref == "" {
			ref = d.String()
		}
		if _, err := r.PutManifest(ctx, repo, ref, mediaType, b, nil); err != nil {
			t.Fatalf("PutManifest: %v", err)
		}
		return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
	}
	image := func(repo, tag string, subject *ocispec.Descriptor, artifactType string, layers ...string) ocispec.Descriptor {
		v := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Subject: subject,
			Config: blob(repo, "config "+fmt.Sprint(layers))}
		v.SchemaVersion = 2
		v.Config.MediaType = ocispec.MediaTypeImageConfig
		for _, l := range layers {
			v.Layers = append(v.Layers, blob(repo, l))
		}
		return put(repo, tag, ocispec.MediaTypeImageManifest, v)
	}
	app := image("team/app", "v1", nil, "", "layer 1", "layer 2")
	sbom := image("team/app", "", &app, "application/spdx+json", "sbom")
	image("team/app", "", &sbom, "application/vnd.dev.cosign.artifact.sig.v1+json", "signature")
	a := image("team/multi", "", nil, "", "amd64")
	b := image("team/multi", "", nil, "", "arm64")
	ix := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{a, b}}
	ix.SchemaVersion = 2
	put("team/multi", "latest", ocispec.MediaTypeImageIndex, ix)
	put("team/multi", "also", ocispec.MediaTypeImageIndex, ix)
	if _, err := r.UpdateManifest(ctx, "team/multi", a.Digest.String(), registry.AttributesPatch{DeleteEnabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	image("hidden", "v1", nil, "", "hidden layer")
	blob("hidden", "a blob no manifest names")
	if _, err := r.UpdateRepository(ctx, "hidden", registry.AttributesPatch{ListEnabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

type manifestFacts struct {
	Tags       []string
	Subject    digest.Digest
	Children   []digest.Digest
	Referrers  []digest.Digest
	Attributes metastore.Attributes
	Content    string
}

type repoFacts struct {
	Attributes metastore.Attributes
	Manifests  map[digest.Digest]manifestFacts
	Readable   []digest.Digest // every blob the repository may read
	Size       int64
}

type facts struct {
	Repos  map[string]repoFacts
	Blobs  map[digest.Digest]int64
	Tokens []string
}

// snapshot is everything a registry holds that a copy must keep.
func snapshot(t *testing.T, st *daemon.Stores) facts {
	t.Helper()
	ctx := t.Context()
	f := facts{Repos: map[string]repoFacts{}, Blobs: map[digest.Digest]int64{}}
	repos, err := st.Meta.RepositoryList(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range repos {
		rf := repoFacts{Attributes: r.Attributes, Manifests: map[digest.Digest]manifestFacts{}, Size: r.Size}
		nodes, err := st.Meta.Nodes(ctx, r.Name, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			m, err := st.Meta.Manifest(ctx, r.Name, n.Digest)
			if err != nil {
				t.Fatal(err)
			}
			tags, err := st.Meta.TagsOf(ctx, r.Name, n.Digest)
			if err != nil {
				t.Fatal(err)
			}
			refs, err := st.Meta.Referrers(ctx, r.Name, n.Digest, "", "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			mf := manifestFacts{Tags: tags, Subject: n.Subject, Children: slices.Sorted(slices.Values(n.Children)),
				Attributes: m.Attributes, Content: string(m.Content)}
			for _, d := range refs {
				mf.Referrers = append(mf.Referrers, d.Digest)
			}
			rf.Manifests[n.Digest] = mf
		}
		f.Repos[r.Name] = rf
	}
	err = st.Blobs.Walk(ctx, func(d digest.Digest, size int64) error {
		f.Blobs[d] = size
		for name, rf := range f.Repos {
			if _, err := st.Meta.Blob(ctx, name, d); err == nil {
				rf.Readable = append(rf.Readable, d)
				f.Repos[name] = rf
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, rf := range f.Repos {
		slices.Sort(rf.Readable)
		f.Repos[name] = rf
	}
	toks, err := st.Meta.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		f.Tokens = append(f.Tokens, tok.Name+" "+tok.Hash)
	}
	return f
}

func dump(f facts) string {
	b, _ := json.MarshalIndent(f, "", "  ")
	return string(b)
}

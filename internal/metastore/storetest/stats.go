package storetest

import (
	"maps"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
)

// stats reads the registry-wide counters.
func stats(t *testing.T, s metastore.Store) metastore.Stats {
	t.Helper()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return *st
}

func wantStats(t *testing.T, what string, got, want metastore.Stats) {
	t.Helper()
	if want.Manifests == nil {
		want.Manifests = map[string]int64{}
	}
	if got.Repositories != want.Repositories || got.Tags != want.Tags || got.Size != want.Size ||
		got.Uploads != want.Uploads || !maps.Equal(got.Manifests, want.Manifests) {
		t.Errorf("%s: stats %+v, want %+v", what, got, want)
	}
}

// The registry-wide counters follow every change, in its transaction.
func testStats(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	wantStats(t, "an empty store", stats(t, s), metastore.Stats{})

	a, b := image("team/a", "a"), image("team/b", "b")
	a.Kind, b.Kind = "image", "image"
	sig := artifact("team/a", "sig", "application/vnd.dev.cosign.artifact.sig.v1+json", a.Digest)
	sig.Kind = "signature"
	link(t, s, "team/a", 1000, digest.FromString("layer a"))
	put(t, s, a, sig, b)
	setTag(t, s, "team/a", "v1", a.Digest)
	setTag(t, s, "team/a", "latest", a.Digest)
	setTag(t, s, "team/b", "v1", b.Digest)
	update(t, s, func(tx metastore.Tx) error {
		return tx.CreateUpload(ctx, &metastore.Upload{ID: "u1", Repo: "team/a", Created: time.Now(), Modified: time.Now()})
	})
	size := 1000 + a.Size + sig.Size + b.Size
	wantStats(t, "after pushes", stats(t, s), metastore.Stats{Repositories: 2, Tags: 3, Size: size, Uploads: 1,
		Manifests: map[string]int64{"image": 2, "signature": 1}})

	// A failed transaction changes no counter.
	s.Update(ctx, func(tx metastore.Tx) error {
		tx.PutManifest(ctx, image("team/c", "c"))
		return errRolledBack
	})
	update(t, s, func(tx metastore.Tx) error {
		if err := tx.DeleteTag(ctx, "team/a", "latest"); err != nil {
			return err
		}
		if err := tx.DeleteManifest(ctx, "team/a", sig.Digest); err != nil {
			return err
		}
		return tx.DeleteUpload(ctx, "u1")
	})
	wantStats(t, "after deletes", stats(t, s), metastore.Stats{Repositories: 2, Tags: 2, Size: size - sig.Size,
		Manifests: map[string]int64{"image": 2}})
}

var errRolledBack = &codedError{code: 1}

// A repository deleted is gone from every lookup and listing, its blobs no longer
// linked, its counters out of the registry's; a write to the name creates it anew.
func testDeleteRepository(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	a, b := image("team/a", "a"), image("team/b", "b")
	a.Kind, b.Kind = "image", "image"
	sig := artifact("team/a", "sig", "application/vnd.dev.cosign.artifact.sig.v1+json", a.Digest)
	sig.Kind = "signature"
	layer := digest.FromString("layer a")
	link(t, s, "team/a", 1000, layer)
	link(t, s, "team/b", 1000, layer)
	put(t, s, a, sig, b)
	setTag(t, s, "team/a", "v1", a.Digest)
	setTag(t, s, "team/a", "sha256-"+a.Digest.Encoded()+".sig", sig.Digest)
	update(t, s, func(tx metastore.Tx) error {
		return tx.SetRepositoryAttributes(ctx, "team/a", metastore.Attributes{ReadEnabled: true, ListEnabled: false})
	})

	update(t, s, func(tx metastore.Tx) error { return tx.DeleteRepository(ctx, "team/a") })
	_, err := s.Repository(ctx, "team/a")
	wantNotFound(t, "Repository of a deleted repository", err)
	_, err = s.RepositoryAttributes(ctx, "team/a")
	wantNotFound(t, "RepositoryAttributes of a deleted repository", err)
	_, err = s.Manifest(ctx, "team/a", a.Digest)
	wantNotFound(t, "a manifest of a deleted repository", err)
	_, err = s.Tag(ctx, "team/a", "v1")
	wantNotFound(t, "a tag of a deleted repository", err)
	_, err = s.Blob(ctx, "team/a", layer)
	wantNotFound(t, "a blob of a deleted repository", err)
	if _, err := s.Blob(ctx, "team/b", layer); err != nil {
		t.Errorf("the blob another repository links: %v", err)
	}
	list, err := s.RepositoryList(ctx, "", 10)
	if err != nil || len(list) != 1 || list[0].Name != "team/b" {
		t.Errorf("RepositoryList after the delete: %v, %v; want team/b alone", list, err)
	}
	names, err := s.Repositories(ctx, "", 10)
	if err != nil || len(names) != 1 || names[0] != "team/b" {
		t.Errorf("Repositories after the delete: %v, %v; want team/b alone", names, err)
	}
	wantStats(t, "after the delete", stats(t, s), metastore.Stats{Repositories: 1, Tags: 0, Size: 1000 + b.Size,
		Manifests: map[string]int64{"image": 1}})
	if err := s.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteRepository(ctx, "team/a") }); !isNotFound(err) {
		t.Errorf("deleting a deleted repository: %v, want not found", err)
	}
	if err := s.Update(ctx, func(tx metastore.Tx) error {
		return tx.SetRepositoryAttributes(ctx, "team/a", metastore.Enabled)
	}); !isNotFound(err) {
		t.Errorf("setting the attributes of a deleted repository: %v, want not found", err)
	}

	// Pushed again, it is new: empty but for the push, every attribute enabled.
	before := time.Now().Add(-time.Second)
	put(t, s, a)
	r, err := s.Repository(ctx, "team/a")
	if err != nil {
		t.Fatalf("Repository after a push to the deleted name: %v", err)
	}
	if r.ManifestCount != 1 || r.TagCount != 0 || r.Size != a.Size || r.Attributes != metastore.Enabled || r.Created.Before(before) {
		t.Errorf("the repository pushed again: %+v", r)
	}
	wantStats(t, "after the push again", stats(t, s), metastore.Stats{Repositories: 2, Size: 1000 + b.Size + a.Size,
		Manifests: map[string]int64{"image": 2}})
}

package storetest

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	kinds "github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// Before the tag-schema edges: what a database of an older schema holds, for a store's
// upgrade test to write in its own SQL, and CheckUpgrade to find again once the store
// has opened it.
type Before struct {
	Repo string
	// Manifests are an image, a cosign tag-schema signature of it (no subject field),
	// a notation signature (with one) and a fallback index that lists it.
	Image, Signature, Notation, Fallback *metastore.Manifest
	// Tags name the manifests: "latest" the image, the tag-schema tags the others.
	Tags map[string]digest.Digest
}

// OldData returns the content of an older database.
func OldData() *Before {
	const repo = "upgrade/app"
	b := &Before{Repo: repo, Image: image(repo, "app")}
	b.Signature = manifestOf(repo, ocispec.Manifest{
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("sig config"), Size: 2},
		Layers: []ocispec.Descriptor{{MediaType: kinds.MediaTypeCosignSimpleSigning, Digest: digest.FromString("payload"), Size: 200}},
	})
	b.Notation = artifact(repo, "notation", kinds.MediaTypeNotarySignature, b.Image.Digest)
	b.Fallback = index(repo, "fallback", b.Notation)
	hex := b.Image.Digest.Encoded()
	b.Tags = map[string]digest.Digest{
		"latest":                 b.Image.Digest,
		"sha256-" + hex + ".sig": b.Signature.Digest,
		"sha256-" + hex:          b.Fallback.Digest,
	}
	return b
}

// Manifests are b's manifests, children before the indexes that list them.
func (b *Before) Manifests() []*metastore.Manifest {
	return []*metastore.Manifest{b.Image, b.Signature, b.Notation, b.Fallback}
}

// CheckUpgrade checks that s, opened on a database that held b, has classified its
// manifests and recorded the edges of its tag-schema tags.
func CheckUpgrade(t *testing.T, s metastore.Store, b *Before) {
	t.Helper()
	for m, want := range map[*metastore.Manifest]kinds.Kind{
		b.Image: kinds.Image, b.Signature: kinds.Signature, b.Notation: kinds.Signature, b.Fallback: kinds.Index,
	} {
		got := getManifest(t, s, b.Repo, m.Digest)
		if got.Kind != string(want) {
			t.Errorf("kind of %s after the upgrade = %q, want %q", m.Digest, got.Kind, want)
		}
		if !slices.Equal(got.Content, m.Content) {
			t.Errorf("content of %s changed in the upgrade", m.Digest)
		}
	}
	want := sorted(b.Signature.Digest, b.Fallback.Digest, b.Notation.Digest)
	if got := tagArtifacts(t, s, b.Repo, b.Image.Digest); !slices.Equal(got, want) {
		t.Errorf("tag-schema artifacts after the upgrade = %v, want %v", got, want)
	}
	for tag, d := range b.Tags {
		if got := tagged(t, s, b.Repo, tag); got != d {
			t.Errorf("tag %s after the upgrade = %s, want %s", tag, got, d)
		}
	}
	if key := reference.SchemaKeyOf(b.Image.Digest); getManifest(t, s, b.Repo, b.Signature.Digest).TagSubject != key {
		t.Errorf("the signature's tag subject after the upgrade is not %s", key)
	}
	// The registry-wide counters, added after, count what was there.
	st := stats(t, s)
	wantKinds := map[string]int64{string(kinds.Image): 1, string(kinds.Signature): 2, string(kinds.Index): 1}
	if st.Repositories != 1 || st.Tags != int64(len(b.Tags)) || !maps.Equal(st.Manifests, wantKinds) {
		t.Errorf("counters after the upgrade: %+v, want 1 repository, %d tags, manifests %v", st, len(b.Tags), wantKinds)
	}
}

// JSON is v as JSON text, for a test's SQL.
func JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

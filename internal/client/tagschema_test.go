package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/errdef"

	"github.com/graft-registry/graft/internal/reference"
)

// The media types of the layers cosign puts in its tag-schema manifests, whose config
// is a plain image config.
const (
	typeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	typeDSSE          = "application/vnd.dsse.envelope.v1+json"
)

// pushCosignStyle pushes a manifest as cosign writes one without a subject: an image
// config and layers of layerType with the given contents, tagged tag when tag is set.
func pushCosignStyle(t *testing.T, store oras.Target, tag, layerType string, layers ...string) ocispec.Descriptor {
	t.Helper()
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    pushBlob(t, store, ocispec.MediaTypeImageConfig, `{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}`),
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, pushBlob(t, store, layerType, l))
	}
	return pushJSON(t, store, ocispec.MediaTypeImageManifest, m, tag)
}

// pushBlob pushes data unless store has it.
func pushBlob(t *testing.T, store oras.Target, mediaType, data string) ocispec.Descriptor {
	t.Helper()
	desc := content.NewDescriptorFromBytes(mediaType, []byte(data))
	if err := store.Push(t.Context(), desc, strings.NewReader(data)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		t.Fatal(err)
	}
	return desc
}

// pushJSON pushes v as a manifest of mediaType, tagged tag when tag is set.
func pushJSON(t *testing.T, store oras.Target, mediaType string, v any, tag string) ocispec.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var desc ocispec.Descriptor
	if tag == "" {
		desc, err = oras.PushBytes(t.Context(), store, mediaType, b)
	} else {
		desc, err = oras.TagBytes(t.Context(), store, mediaType, b, tag)
	}
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

// pushFallbackIndex tags an index listing members as the fallback index of subject.
func pushFallbackIndex(t *testing.T, store oras.Target, subject ocispec.Descriptor, members ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	return pushJSON(t, store, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: members,
	}, reference.SchemaTag(subject.Digest))
}

// signedGraph is an image as cosign and notation leave it, besides an SBOM attached as
// a referrer and a signature of the SBOM: a cosign signature and attestation tagged
// sha256-<image>.sig and .att, a cosign signature of the SBOM tagged
// sha256-<sbom>.sig, and a fallback index tagged sha256-<image> that lists the SBOM
// (a referrer already) and an artifact nothing else names.
type signedGraph struct {
	imageGraph
	sig, att, sbomSig, listed, index ocispec.Descriptor
}

func pushSignedGraph(t *testing.T, store oras.Target, layer string) signedGraph {
	t.Helper()
	g := signedGraph{imageGraph: pushImageGraph(t, store, layer)}
	g.sig = pushCosignStyle(t, store, reference.SchemaTag(g.image.Digest)+".sig", typeSimpleSigning, "signed "+layer)
	g.att = pushCosignStyle(t, store, reference.SchemaTag(g.image.Digest)+".att", typeDSSE, "attested "+layer)
	g.sbomSig = pushCosignStyle(t, store, reference.SchemaTag(g.sbom.Digest)+".sig", typeSimpleSigning, "signed SBOM of "+layer)
	g.listed = pushCosignStyle(t, store, "", "application/vnd.example.listed", "listed for "+layer)
	g.index = pushFallbackIndex(t, store, g.image, g.sbom, g.listed)
	return g
}

// nodeOf returns the node of d in the graph under n, or nil.
func nodeOf(n *Node, d digest.Digest) *Node {
	if n.Digest == d {
		return n
	}
	for _, r := range n.Referrers {
		if found := nodeOf(r, d); found != nil {
			return found
		}
	}
	return nil
}

func TestDiscoverTagSchema(t *testing.T) {
	store := newLayout(t)
	g := pushSignedGraph(t, store, "layer one")
	other := pushSignedGraph(t, store, "another image")

	root, err := Discover(t.Context(), store, g.image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if root.Index == nil || root.Index.Digest != g.index.Digest {
		t.Errorf("the image's fallback index: %v, want %s", root.Index, g.index.Digest)
	}
	imageTag := reference.SchemaTag(g.image.Digest)
	tests := []struct {
		name     string
		desc     ocispec.Descriptor
		parent   ocispec.Descriptor
		edge     Edge
		tag      string
		indexTag string
		typ      string
	}{
		// listed by the index too, and found once, as the referrer it is
		{"SBOM", g.sbom, g.image, EdgeSubject, "", "", typeSBOM},
		{"signature of the SBOM", g.sig, g.image, EdgeTag, imageTag + ".sig", "", typeSimpleSigning},
		{"attestation", g.att, g.image, EdgeTag, imageTag + ".att", "", typeDSSE},
		{"listed in the fallback index only", g.listed, g.image, EdgeTag, "", imageTag, "application/vnd.example.listed"},
		{"referrer of the SBOM", g.imageGraph.sig, g.sbom, EdgeSubject, "", "", typeSignature},
		// found by tag under an artifact found by subject
		{"cosign signature of the SBOM", g.sbomSig, g.sbom, EdgeTag, reference.SchemaTag(g.sbom.Digest) + ".sig", "", typeSimpleSigning},
	}
	for _, tt := range tests {
		n := nodeOf(root, tt.desc.Digest)
		if n == nil {
			t.Errorf("%s: not in the graph", tt.name)
			continue
		}
		if parent := nodeOf(root, tt.parent.Digest); !slices.Contains(parent.Referrers, n) {
			t.Errorf("%s: not under %s", tt.name, tt.parent.Digest)
		}
		if n.Edge != tt.edge || n.Tag != tt.tag || n.IndexTag != tt.indexTag || n.ArtifactType != tt.typ {
			t.Errorf("%s: edge %q, tag %q, index tag %q, type %q; want %q, %q, %q, %q",
				tt.name, n.Edge, n.Tag, n.IndexTag, n.ArtifactType, tt.edge, tt.tag, tt.indexTag, tt.typ)
		}
	}
	if root.Count() != len(tests) {
		t.Errorf("the graph holds %d artifacts, want %d: each once", root.Count(), len(tests))
	}
	if nodeOf(root, other.sig.Digest) != nil || nodeOf(root, other.listed.Digest) != nil {
		t.Error("the other image's artifacts are in the graph")
	}

	var tree bytes.Buffer
	if err := WriteTree(&tree, Reference{Layout: "dir"}, root); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		g.sig.Digest.String() + " (tag " + imageTag + ".sig)\n",
		g.listed.Digest.String() + " (tag " + imageTag + " index)\n",
		g.sbom.Digest.String() + "\n",
	} {
		if !strings.Contains(tree.String(), want) {
			t.Errorf("the tree has no line ending %q:\n%s", want, tree.String())
		}
	}
	var js bytes.Buffer
	if err := WriteGraphJSON(&js, Reference{Layout: "dir"}, root); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"edge": "subject"`, `"edge": "tag"`, `"tag": "` + imageTag + `.att"`, `"indexTag": "` + imageTag + `"`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("the JSON has no %s:\n%s", want, js.String())
		}
	}

	t.Run("filter", func(t *testing.T) {
		sigs, err := Discover(t.Context(), store, g.image, DiscoverOptions{ArtifactType: typeSimpleSigning})
		if err != nil {
			t.Fatal(err)
		}
		if sigs.Count() != 1 || sigs.Referrers[0].Digest != g.sig.Digest {
			t.Errorf("--artifact-type %s: %d artifacts, want the cosign signature alone", typeSimpleSigning, sigs.Count())
		}
		sboms, err := Discover(t.Context(), store, g.image, DiscoverOptions{ArtifactType: typeSBOM})
		if err != nil {
			t.Fatal(err)
		}
		if sboms.Count() != 3 {
			t.Errorf("--artifact-type %s: %d artifacts, want the SBOM and its two signatures", typeSBOM, sboms.Count())
		}
	})
	t.Run("depth", func(t *testing.T) {
		shallow, err := Discover(t.Context(), store, g.image, DiscoverOptions{Depth: 1})
		if err != nil {
			t.Fatal(err)
		}
		if shallow.Count() != 4 {
			t.Errorf("depth 1: %d artifacts, want the image's 4", shallow.Count())
		}
	})
}

// TestDiscoverIndexTypes: a member of a fallback index has the artifact type the index
// lists it with, which oras-go filters the fallback on too, and else the one its
// manifest says.
func TestDiscoverIndexTypes(t *testing.T) {
	store := newLayout(t)
	image := pushCosignStyle(t, store, "v1", ocispec.MediaTypeImageLayer, "image")
	typed := pushCosignStyle(t, store, "", typeSimpleSigning, "listed with a type")
	typed.ArtifactType = "application/vnd.example.as-listed"
	untyped := pushCosignStyle(t, store, "", typeDSSE, "listed without one")
	pushFallbackIndex(t, store, image, typed, untyped)
	root, err := Discover(t.Context(), store, image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := nodeOf(root, typed.Digest); n == nil || n.ArtifactType != typed.ArtifactType {
		t.Errorf("the member listed with a type: %+v, want %s", n, typed.ArtifactType)
	}
	if n := nodeOf(root, untyped.Digest); n == nil || n.ArtifactType != typeDSSE {
		t.Errorf("the member listed without a type: %+v, want %s", n, typeDSSE)
	}
	filtered, err := Discover(t.Context(), store, image, DiscoverOptions{ArtifactType: typed.ArtifactType})
	if err != nil {
		t.Fatal(err)
	}
	if filtered.Count() != 1 || filtered.Referrers[0].Digest != typed.Digest {
		t.Errorf("filtered on %s: %d artifacts, want the one listed so", typed.ArtifactType, filtered.Count())
	}
}

// TestDiscoverTaggedReferrer: a referrer that a tag of the schema names too (a tool
// that writes both) is one node, found by its subject, that keeps its tag.
func TestDiscoverTaggedReferrer(t *testing.T) {
	store := newLayout(t)
	g := pushImageGraph(t, store, "layer one")
	tag := reference.SchemaTag(g.image.Digest) + ".sig"
	if err := store.Tag(t.Context(), g.sbom, tag); err != nil {
		t.Fatal(err)
	}
	root, err := Discover(t.Context(), store, g.image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if root.Count() != 2 || root.Referrers[0].Edge != EdgeSubject || root.Referrers[0].Tag != tag {
		t.Fatalf("graph: %d artifacts, first %+v; want the SBOM once, by subject, tagged %s", root.Count(), root.Referrers[0], tag)
	}
	var table bytes.Buffer
	if err := WriteTable(&table, root); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "subject, tag "+tag+"\n") {
		t.Errorf("table:\n%s", table.String())
	}
}

// TestDiscoverTagCycle: a tag is anyone's to set, and one that names a manifest above
// its subject makes no edge, and no error.
func TestDiscoverTagCycle(t *testing.T) {
	store := newLayout(t)
	image := pushCosignStyle(t, store, "v1", ocispec.MediaTypeImageLayer, "image")
	sig := pushCosignStyle(t, store, reference.SchemaTag(image.Digest)+".sig", typeSimpleSigning, "signature")
	if err := store.Tag(t.Context(), image, reference.SchemaTag(sig.Digest)+".sig"); err != nil {
		t.Fatal(err)
	}
	root, err := Discover(t.Context(), store, image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if root.Count() != 1 || root.Referrers[0].Digest != sig.Digest {
		t.Errorf("graph of %d artifacts, want the signature alone", root.Count())
	}
}

// TestDiscoverSHA512: the tag schema cuts a sha512 digest to the 64 characters a tag
// holds.
func TestDiscoverSHA512(t *testing.T) {
	store := newLayout(t)
	config, err := oras.PushBytes(t.Context(), store, ocispec.MediaTypeImageConfig, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{}})
	image := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.SHA512.FromBytes(b), Size: int64(len(b))}
	if err := store.Push(t.Context(), image, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	tag := "sha512-" + image.Digest.Encoded()[:64] + ".sig"
	if reference.SchemaTag(image.Digest)+".sig" != tag {
		t.Fatalf("SchemaTag(%s) = %s", image.Digest, reference.SchemaTag(image.Digest))
	}
	sig := pushCosignStyle(t, store, tag, typeSimpleSigning, "signature")
	root, err := Discover(t.Context(), store, image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if root.Count() != 1 || root.Referrers[0].Digest != sig.Digest || root.Referrers[0].Tag != tag {
		t.Errorf("graph of %d artifacts, want the signature tagged %s", root.Count(), tag)
	}
}

// taggedDigest returns what tag names in store, or "" when nothing.
func taggedDigest(t *testing.T, store *oci.Store, tag string) digest.Digest {
	t.Helper()
	desc, err := store.Resolve(t.Context(), tag)
	if errors.Is(err, errdef.ErrNotFound) {
		return ""
	} else if err != nil {
		t.Fatal(err)
	}
	return desc.Digest
}

func TestCopyTagSchema(t *testing.T) {
	src := newLayout(t)
	g := pushSignedGraph(t, src, "layer one")
	dst := newLayout(t)
	result, err := Copy(t.Context(), src, dst, g.image, "v1", CopyOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if result.Referrers != 6 {
		t.Errorf("copied %+v, want 6 artifacts", result)
	}
	for _, d := range []ocispec.Descriptor{g.sbom, g.imageGraph.sig, g.sig, g.att, g.sbomSig, g.listed} {
		if ok, err := dst.Exists(t.Context(), d); !ok || err != nil {
			t.Errorf("%s (%s) is not in the copy: %v", d.Digest, d.ArtifactType, err)
		}
	}
	for tag, want := range map[string]digest.Digest{
		reference.SchemaTag(g.image.Digest) + ".sig": g.sig.Digest,
		reference.SchemaTag(g.image.Digest) + ".att": g.att.Digest,
		reference.SchemaTag(g.sbom.Digest) + ".sig":  g.sbomSig.Digest,
		// the fallback index is the source's way to list; a layout has its own
		reference.SchemaTag(g.image.Digest): "",
	} {
		if got := taggedDigest(t, dst, tag); got != want {
			t.Errorf("tag %s in the copy names %q, want %q", tag, got, want)
		}
	}
	copied, err := Discover(t.Context(), dst, g.image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// what only the source's fallback index listed, without a subject, is copied but
	// has nothing to name it in the copy
	if copied.Count() != 5 {
		t.Errorf("the copy's graph holds %d artifacts, want 5", copied.Count())
	}
	again, err := Copy(t.Context(), src, dst, g.image, "v1", CopyOptions{Recursive: true})
	if err != nil || again.Manifests != 0 || again.Blobs != 0 {
		t.Errorf("copy again: %+v, %v; want nothing copied", again, err)
	}
}

// TestCopyRetag: a tag-schema tag at the destination moves to the source's manifest
// when that lists everything the destination's did (cosign appends signatures), and
// stays otherwise, failing the copy.
func TestCopyRetag(t *testing.T) {
	src := newLayout(t)
	image := pushCosignStyle(t, src, "v1", ocispec.MediaTypeImageLayer, "image")
	tag := reference.SchemaTag(image.Digest) + ".sig"
	signedTwice := pushCosignStyle(t, src, tag, typeSimpleSigning, "first signature", "second signature")

	dst := newLayout(t)
	if _, err := Copy(t.Context(), src, dst, image, "v1", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	pushCosignStyle(t, dst, tag, typeSimpleSigning, "first signature")
	if _, err := Copy(t.Context(), src, dst, image, "v1", CopyOptions{Recursive: true}); err != nil {
		t.Fatalf("copying a signature that adds to the destination's: %v", err)
	}
	if got := taggedDigest(t, dst, tag); got != signedTwice.Digest {
		t.Errorf("%s names %s, want the source's %s", tag, got, signedTwice.Digest)
	}

	elsewhere := pushCosignStyle(t, dst, tag, typeSimpleSigning, "a signature made at the destination")
	_, err := Copy(t.Context(), src, dst, image, "v1", CopyOptions{Recursive: true})
	if err == nil || !strings.Contains(err.Error(), "would lose it") {
		t.Errorf("copying over a signature the source lacks: %v", err)
	}
	if got := taggedDigest(t, dst, tag); got != elsewhere.Digest {
		t.Errorf("%s names %s, want the destination's own %s still", tag, got, elsewhere.Digest)
	}
}

func TestDeleteTagSchemaLayout(t *testing.T) {
	store := newLayout(t)
	g := pushSignedGraph(t, store, "layer one")
	other := pushSignedGraph(t, store, "another image")
	root, err := Discover(t.Context(), store, g.image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}

	plan := root.Plan()
	position := map[digest.Digest]int{}
	for i, s := range plan {
		position[s.Digest] = i
	}
	if len(plan) != 8 || position[g.image.Digest] != 7 {
		t.Fatalf("plan of %d steps, the image at %d: want 6 artifacts, the index, then the image", len(plan), position[g.image.Digest])
	}
	for _, before := range [][2]ocispec.Descriptor{
		{g.imageGraph.sig, g.sbom},   // what hangs under a manifest before it
		{g.sbomSig, g.sbom},          // by tag too
		{g.sbom, g.sig},              // referrers before tag-schema artifacts
		{g.listed, g.index},          // what an index lists before it
		{g.index, g.image},           // the index before its subject
		{g.sig, g.image},             // everything before the root
		{g.att, g.image},             // everything before the root
		{g.imageGraph.sig, g.listed}, // a referrer's graph before the tag-schema's
	} {
		if position[before[0].Digest] > position[before[1].Digest] {
			t.Errorf("plan deletes %s after %s", before[0].Digest, before[1].Digest)
		}
	}
	if s := plan[position[g.index.Digest]]; s.Tag != reference.SchemaTag(g.image.Digest) {
		t.Errorf("the index's step names tag %q", s.Tag)
	}

	// a tag moved since the graph was read names what this delete is not about
	moved := pushCosignStyle(t, store, reference.SchemaTag(g.image.Digest)+".att", typeDSSE, "attested again")

	result, err := DeleteGraph(t.Context(), store, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(result.Deleted) != 8 {
		t.Errorf("deleted %d manifests, want 8", len(result.Deleted))
	}
	for _, d := range []ocispec.Descriptor{g.image, g.sbom, g.imageGraph.sig, g.sig, g.att, g.sbomSig, g.listed, g.index} {
		if ok, _ := store.Exists(t.Context(), d); ok {
			t.Errorf("%s is still there", d.Digest)
		}
	}
	for _, tag := range []string{reference.SchemaTag(g.image.Digest), reference.SchemaTag(g.image.Digest) + ".sig", reference.SchemaTag(g.sbom.Digest) + ".sig"} {
		if d := taggedDigest(t, store, tag); d != "" {
			t.Errorf("tag %s still names %s", tag, d)
		}
	}
	if d := taggedDigest(t, store, reference.SchemaTag(g.image.Digest)+".att"); d != moved.Digest {
		t.Errorf("the moved tag names %q, want %s", d, moved.Digest)
	}
	for _, d := range []ocispec.Descriptor{other.image, other.sig, other.att, other.sbomSig, other.listed, other.index} {
		if ok, _ := store.Exists(t.Context(), d); !ok {
			t.Errorf("%s of the other image is gone", d.Digest)
		}
	}
}

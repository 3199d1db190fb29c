package storetest

import (
	"maps"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// tagArtifacts returns every tag-schema artifact of subject in repo, a page of 2 at a
// time, so that paging is tested too.
func tagArtifacts(t *testing.T, r metastore.Reader, repo string, subject digest.Digest) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	var after digest.Digest
	for {
		page, err := r.TagArtifacts(t.Context(), repo, reference.SchemaKeyOf(subject), after, 2)
		if err != nil {
			t.Fatalf("TagArtifacts(%s): %v", subject, err)
		}
		out = append(out, page...)
		if len(page) < 2 {
			return out
		}
		after = page[len(page)-1]
	}
}

func wantArtifacts(t *testing.T, s metastore.Store, repo string, subject digest.Digest, want ...digest.Digest) {
	t.Helper()
	got := tagArtifacts(t, s, repo, subject)
	if want := sorted(want...); !slices.Equal(got, want) {
		t.Errorf("TagArtifacts(%s) = %v, want %v", subject, got, want)
	}
}

func nodeOf(t *testing.T, s metastore.Store, repo string, d digest.Digest) metastore.Node {
	t.Helper()
	ns, err := s.Nodes(t.Context(), repo, "", 1000)
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	for _, n := range ns {
		if n.Digest == d {
			return n
		}
	}
	t.Fatalf("no node %s", d)
	return metastore.Node{}
}

// testTagEdges: a tag of the referrers tag schema makes the manifest it names an
// artifact of the manifest it is named after, and a fallback index tag the manifests
// the index lists too; the edges follow the tags as they are set, moved and deleted,
// and the manifests as they are deleted.
func testTagEdges(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	const repo = "graph/cosign"
	subject := image(repo, "subject")
	other := image(repo, "other")
	sig := artifact(repo, "sig", "", "") // cosign's tag-schema signature: no subject field
	att := artifact(repo, "att", "", "")
	notation1 := artifact(repo, "notation 1", typeSignature, subject.Digest)
	notation2 := artifact(repo, "notation 2", typeSignature, subject.Digest)
	fallback := index(repo, "fallback", notation1, notation2)
	put(t, s, subject, other, sig, att, notation1, notation2, fallback)
	hex := subject.Digest.Encoded()
	setTag(t, s, repo, "sha256-"+hex+".sig", sig.Digest)
	setTag(t, s, repo, "sha256-"+hex+".att", att.Digest)
	setTag(t, s, repo, "sha256-"+hex, fallback.Digest)
	setTag(t, s, repo, "latest", subject.Digest)
	wantArtifacts(t, s, repo, subject.Digest, sig.Digest, att.Digest, fallback.Digest, notation1.Digest, notation2.Digest)
	wantArtifacts(t, s, repo, other.Digest)

	// The metadata of an artifact names what it is an artifact of.
	for _, d := range []digest.Digest{sig.Digest, fallback.Digest, notation1.Digest} {
		if m := getManifest(t, s, repo, d); m.TagSubject != subject.Digest.String() {
			t.Errorf("TagSubject of %s = %q, want %s", d, m.TagSubject, subject.Digest)
		}
	}
	if m := getManifest(t, s, repo, subject.Digest); m.TagSubject != "" {
		t.Errorf("TagSubject of the subject = %q, want none", m.TagSubject)
	}

	// Garbage collection sees who is an artifact of whom, and that a tag-schema tag
	// does not keep a manifest the way other tags do.
	for d, want := range map[digest.Digest]metastore.Node{
		sig.Digest:       {TagSubjects: []string{subject.Digest.String()}},
		fallback.Digest:  {TagSubjects: []string{subject.Digest.String()}, Children: sorted(notation1.Digest, notation2.Digest)},
		notation1.Digest: {Subject: subject.Digest, TagSubjects: []string{subject.Digest.String()}},
		subject.Digest:   {Tagged: true},
		other.Digest:     {},
	} {
		n := nodeOf(t, s, repo, d)
		if n.Tagged != want.Tagged || !slices.Equal(n.TagSubjects, want.TagSubjects) ||
			n.Subject != want.Subject || !slices.Equal(n.Children, want.Children) {
			t.Errorf("node %s = tagged %v, tag subjects %v, subject %q, children %v; want %v, %v, %q, %v", d,
				n.Tagged, n.TagSubjects, n.Subject, n.Children, want.Tagged, want.TagSubjects, want.Subject, want.Children)
		}
	}
	// Another tag keeps it.
	setTag(t, s, repo, "keep", sig.Digest)
	if n := nodeOf(t, s, repo, sig.Digest); !n.Tagged {
		t.Errorf("a signature with a tag of its own is not Tagged")
	}

	// A moved tag moves its edges: the fallback index now lists notation 1 only.
	smaller := index(repo, "fallback 2", notation1)
	put(t, s, smaller)
	setTag(t, s, repo, "sha256-"+hex, smaller.Digest)
	wantArtifacts(t, s, repo, subject.Digest, sig.Digest, att.Digest, smaller.Digest, notation1.Digest)

	// A deleted tag takes its edges; so does a deleted manifest, those of its tags and
	// those that made it an artifact.
	update(t, s, func(tx metastore.Tx) error { return tx.DeleteTag(ctx, repo, "sha256-"+hex+".att") })
	wantArtifacts(t, s, repo, subject.Digest, sig.Digest, smaller.Digest, notation1.Digest)
	update(t, s, func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, repo, notation1.Digest) })
	wantArtifacts(t, s, repo, subject.Digest, sig.Digest, smaller.Digest)
	update(t, s, func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, repo, smaller.Digest) })
	wantArtifacts(t, s, repo, subject.Digest, sig.Digest)

	// Edges are per repository, and other tags make none.
	const elsewhere = "graph/elsewhere"
	sig2 := artifact(elsewhere, "sig", "", "")
	put(t, s, sig2)
	setTag(t, s, elsewhere, "sha256-"+hex+".sig", sig2.Digest)
	setTag(t, s, elsewhere, "sha256-"+hex+"-sig", sig2.Digest)
	setTag(t, s, elsewhere, "sha256-"+hex[:60], sig2.Digest)
	wantArtifacts(t, s, elsewhere, subject.Digest, sig2.Digest)
	wantArtifacts(t, s, repo, subject.Digest, sig.Digest)
}

// testTagEdgeFilter: the manifest listing selects tag-schema artifacts, and manifests
// of a kind.
func testTagEdgeFilter(t *testing.T, s metastore.Store) {
	const repo = "graph/filter"
	subject := image(repo, "subject")
	subject.Kind = "image"
	sig := artifact(repo, "sig", "", "")
	sig.Kind = "signature"
	sbom := artifact(repo, "sbom", typeSBOM, subject.Digest)
	sbom.Kind = "sbom"
	put(t, s, subject, sig, sbom)
	setTag(t, s, repo, "sha256-"+subject.Digest.Encoded()+".sig", sig.Digest)
	for _, tc := range []struct {
		f    metastore.Filter
		want []digest.Digest
	}{
		{metastore.Filter{TagEdge: true}, []digest.Digest{sig.Digest}},
		{metastore.Filter{Kind: "signature"}, []digest.Digest{sig.Digest}},
		{metastore.Filter{Kind: "sbom"}, []digest.Digest{sbom.Digest}},
		{metastore.Filter{Kind: "image"}, []digest.Digest{subject.Digest}},
		{metastore.Filter{Kind: "attestation"}, nil},
		{metastore.Filter{Kind: "signature", ArtifactType: sig.ArtifactType}, []digest.Digest{sig.Digest}},
		{metastore.Filter{TagEdge: true, Kind: "sbom"}, nil},
	} {
		ms, err := s.Manifests(t.Context(), repo, tc.f, "", 100)
		if err != nil {
			t.Fatalf("Manifests(%+v): %v", tc.f, err)
		}
		var got []digest.Digest
		for _, m := range ms {
			got = append(got, m.Digest)
			if m.Kind == "" {
				t.Errorf("Manifests(%+v): %s has no kind", tc.f, m.Digest)
			}
		}
		if want := sorted(tc.want...); !slices.Equal(got, want) {
			t.Errorf("Manifests(%+v) = %v, want %v", tc.f, got, want)
		}
	}
}

// testKindCounts: how many artifacts of each kind hang under a manifest, counting an
// artifact that is both a referrer and a tag-schema artifact once.
func testKindCounts(t *testing.T, s metastore.Store) {
	const repo = "graph/counts"
	subject := image(repo, "subject")
	bare := image(repo, "bare")
	sig := artifact(repo, "sig", "", "")
	sig.Kind = "signature"
	notation := artifact(repo, "notation", typeSignature, subject.Digest)
	notation.Kind = "signature"
	sbom := artifact(repo, "sbom", typeSBOM, subject.Digest)
	sbom.Kind = "sbom"
	fallback := index(repo, "fallback", notation)
	fallback.Kind = "index"
	put(t, s, subject, bare, sig, notation, sbom, fallback)
	setTag(t, s, repo, "sha256-"+subject.Digest.Encoded()+".sig", sig.Digest)
	setTag(t, s, repo, "sha256-"+subject.Digest.Encoded(), fallback.Digest)
	got, err := s.KindCounts(t.Context(), repo, []digest.Digest{subject.Digest, bare.Digest, sig.Digest})
	if err != nil {
		t.Fatal(err)
	}
	want := map[digest.Digest]map[string]int64{subject.Digest: {"signature": 2, "sbom": 1, "index": 1}}
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("KindCounts = %v, want %v", got, want)
	}
}

// testKinds: a manifest's kind is kept as given.
func testKinds(t *testing.T, s metastore.Store) {
	const repo = "graph/kinds"
	var ms []*metastore.Manifest
	for _, k := range []string{"image", "index", "signature", "attestation", "sbom", "artifact"} {
		m := image(repo, k)
		m.Kind = k
		ms = append(ms, m)
	}
	put(t, s, ms...)
	for _, m := range ms {
		if got := getManifest(t, s, repo, m.Digest); got.Kind != m.Kind {
			t.Errorf("Kind of %s = %q, want %q", m.Digest, got.Kind, m.Kind)
		}
		if n := nodeOf(t, s, repo, m.Digest); n.Kind != m.Kind {
			t.Errorf("Kind of node %s = %q, want %q", m.Digest, n.Kind, m.Kind)
		}
	}
}

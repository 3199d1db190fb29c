package e2e

import (
	"net/http"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
	"github.com/graft-registry/graft/internal/server"
)

// graph is an image with supply-chain artifacts: an SBOM, a signature of the SBOM and
// a signature of the image.
type graph struct {
	image                 apitest.Image
	sbom, sbomSig, imgSig ocispec.Descriptor
}

func (g graph) referrers() []ocispec.Descriptor {
	return []ocispec.Descriptor{g.sbom, g.sbomSig, g.imgSig}
}

func pushGraph(t *testing.T, srv *graftest.Server, repoName, tag string, im apitest.Image) graph {
	t.Helper()
	repo := repository(t, srv, repoName)
	copyImage(t, repo, im, tag)
	g := graph{image: im}
	g.sbom = attach(t, repo, im.Desc(), typeSBOM, "SBOM of "+tag, map[string]string{"org.example.of": tag})
	g.sbomSig = attach(t, repo, g.sbom, typeSignature, "signature of the SBOM of "+tag, nil)
	g.imgSig = attach(t, repo, im.Desc(), typeSignature, "signature of "+tag, nil)
	return g
}

// deleteManifest deletes ref from repo and returns the answer, which must be 202.
func deleteManifest(t *testing.T, srv *graftest.Server, repo, ref string) *apitest.Response {
	t.Helper()
	r := srv.Do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+ref, nil)
	apitest.WantStatus(t, "DELETE "+repo+"/"+ref, r, http.StatusAccepted)
	return r
}

// wantManifests checks that each of ds answers GET in repo with status.
func wantManifests(t *testing.T, srv *graftest.Server, repo string, status int, ds ...ocispec.Descriptor) {
	t.Helper()
	for _, d := range ds {
		r := srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+d.Digest.String(), nil,
			"Accept", d.MediaType)
		if r.Status != status {
			t.Errorf("GET %s/%s (%s): status %d, want %d", repo, d.Digest, d.ArtifactType, r.Status, status)
		} else if status == http.StatusNotFound {
			apitest.WantError(t, "GET deleted "+d.Digest.String(), r, status, "MANIFEST_UNKNOWN")
		}
	}
}

// wantReferrers checks the referrers of subject in repo.
func wantReferrers(t *testing.T, srv *graftest.Server, repo string, subject digest.Digest, want ...ocispec.Descriptor) {
	t.Helper()
	idx, _ := referrers(t, srv, repo, subject, "")
	if got, w := apitest.Digests(idx.Manifests), apitest.Digests(want); !slices.Equal(got, w) {
		t.Errorf("referrers of %s in %s: %v, want %v", subject, repo, got, w)
	}
}

func TestCascadeDelete(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	target := pushGraph(t, srv, "app", "v1", apitest.NewImage(t, linuxAMD64, "shared base layer", "layer of v1 only"))
	sibling := pushGraph(t, srv, "app", "v2", apitest.NewImage(t, linuxAMD64, "shared base layer", "layer of v2 only"))

	// The same graph in another repository, copied with its referrers.
	src, dst := repository(t, srv, "app"), repository(t, srv, "mirror")
	if _, err := oras.ExtendedCopy(t.Context(), src, "v1", dst, "v1", oras.DefaultExtendedCopyOptions); err != nil {
		t.Fatalf("extended copy: %v", err)
	}
	wantManifests(t, srv, "mirror", http.StatusOK, append(target.referrers(), target.image.Desc())...)
	wantReferrers(t, srv, "mirror", target.image.Desc().Digest, target.sbom, target.imgSig)

	r := deleteManifest(t, srv, "app", target.image.Desc().Digest.String())
	apitest.WantHeader(t, "cascading delete", r, server.CascadeHeader, "3")

	wantManifests(t, srv, "app", http.StatusNotFound, append(target.referrers(), target.image.Desc())...)
	if s := manifestStatus(t, srv, "app", "v1"); s != http.StatusNotFound {
		t.Errorf("tag v1 of the deleted image answers %d, want 404", s)
	}
	wantReferrers(t, srv, "app", target.image.Desc().Digest)
	wantReferrers(t, srv, "app", target.sbom.Digest)

	// Nothing outside the graph is touched.
	wantManifests(t, srv, "app", http.StatusOK, append(sibling.referrers(), sibling.image.Desc())...)
	if s := manifestStatus(t, srv, "app", "v2"); s != http.StatusOK {
		t.Errorf("tag v2 answers %d after deleting v1's graph", s)
	}
	wantReferrers(t, srv, "app", sibling.image.Desc().Digest, sibling.sbom, sibling.imgSig)
	wantReferrers(t, srv, "app", sibling.sbom.Digest, sibling.sbomSig)
	for _, b := range sibling.image.Blobs() {
		wantBlob(t, srv, "app", b.Desc.Digest, b.Data)
	}
	wantManifests(t, srv, "mirror", http.StatusOK, append(target.referrers(), target.image.Desc())...)
	wantReferrers(t, srv, "mirror", target.image.Desc().Digest, target.sbom, target.imgSig)
	wantReferrers(t, srv, "mirror", target.sbom.Digest, target.sbomSig)
	pulled := memory.New()
	if _, err := oras.ExtendedCopy(t.Context(), dst, "v1", pulled, "v1", oras.DefaultExtendedCopyOptions); err != nil {
		t.Errorf("the mirror's graph can no longer be pulled whole: %v", err)
	}
	for _, b := range target.image.Blobs() {
		wantBlob(t, srv, "mirror", b.Desc.Digest, b.Data)
	}

	// Deleting a referrer takes the graph under it, and nothing above it.
	r = deleteManifest(t, srv, "app", sibling.sbom.Digest.String())
	apitest.WantHeader(t, "delete the SBOM", r, server.CascadeHeader, "1")
	wantManifests(t, srv, "app", http.StatusNotFound, sibling.sbom, sibling.sbomSig)
	wantManifests(t, srv, "app", http.StatusOK, sibling.image.Desc(), sibling.imgSig)
	wantReferrers(t, srv, "app", sibling.image.Desc().Digest, sibling.imgSig)

	tags := srv.Do(t, http.MethodGet, "/v2/app/tags/list", nil)
	var l struct{ Tags []string }
	apitest.Decode(t, "tags", tags.Body, &l)
	if !slices.Equal(l.Tags, []string{"v2"}) {
		t.Errorf("tags after the deletes: %q, want [v2]", l.Tags)
	}

	// Deleting the graph's root again finds nothing.
	r = srv.Do(t, http.MethodDelete, "/v2/app/manifests/"+target.image.Desc().Digest.String(), nil)
	apitest.WantError(t, "DELETE again", r, http.StatusNotFound, "MANIFEST_UNKNOWN")
}

func TestCascadeDeleteIndex(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	const name = "multi"
	repo := repository(t, srv, name)

	// p1 is used by idx alone; p2 is also listed by another index; p3 is tagged.
	p1 := apitest.NewImage(t, linuxAMD64, "p1 layer")
	p2 := apitest.NewImage(t, linuxARM64, "p2 layer")
	s390x := ocispec.Platform{OS: "linux", Architecture: "s390x"}
	p3 := apitest.NewImage(t, s390x, "p3 layer")
	copyImage(t, repo, p1, "")
	copyImage(t, repo, p2, "")
	copyImage(t, repo, p3, "p3")
	idx := apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{
		apitest.WithPlatform(p1.Desc(), linuxAMD64), apitest.WithPlatform(p2.Desc(), linuxARM64), apitest.WithPlatform(p3.Desc(), s390x),
	}, nil)
	other := apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{apitest.WithPlatform(p2.Desc(), linuxARM64)},
		map[string]string{"org.example.name": "the other index"})
	push(t, repo, idx, other)
	if err := repo.Tag(t.Context(), idx.Desc, "latest"); err != nil {
		t.Fatal(err)
	}

	idxSig := attach(t, repo, idx.Desc, typeSignature, "signature of the index", nil)
	idxSigSig := attach(t, repo, idxSig, typeSignature, "counter-signature", nil)
	p1SBOM := attach(t, repo, p1.Desc(), typeSBOM, "SBOM of p1", nil)
	p2SBOM := attach(t, repo, p2.Desc(), typeSBOM, "SBOM of p2", nil)
	p3SBOM := attach(t, repo, p3.Desc(), typeSBOM, "SBOM of p3", nil)
	otherSig := attach(t, repo, other.Desc, typeSignature, "signature of the other index", nil)

	// A copy of the whole graph in another repository: its index listing p1
	// does not keep p1 in this one.
	if _, err := oras.ExtendedCopy(t.Context(), repo, "latest", repository(t, srv, "mirror"), "latest",
		oras.DefaultExtendedCopyOptions); err != nil {
		t.Fatalf("extended copy: %v", err)
	}
	mirrored := []ocispec.Descriptor{idx.Desc, idxSig, idxSigSig, p1.Desc(), p2.Desc(), p3.Desc()}
	wantManifests(t, srv, "mirror", http.StatusOK, mirrored...)

	r := deleteManifest(t, srv, name, idx.Desc.Digest.String())
	apitest.WantHeader(t, "delete the index", r, server.CascadeHeader, "4")

	wantManifests(t, srv, name, http.StatusNotFound, idx.Desc, idxSig, idxSigSig, p1.Desc(), p1SBOM)
	wantManifests(t, srv, name, http.StatusOK, p2.Desc(), p2SBOM, p3.Desc(), p3SBOM, other.Desc, otherSig)
	if s := manifestStatus(t, srv, name, "latest"); s != http.StatusNotFound {
		t.Errorf("the deleted index's tag answers %d", s)
	}
	if s := manifestStatus(t, srv, name, "p3"); s != http.StatusOK {
		t.Errorf("the kept platform manifest's tag answers %d", s)
	}
	wantReferrers(t, srv, name, p2.Desc().Digest, p2SBOM)
	wantReferrers(t, srv, name, p3.Desc().Digest, p3SBOM)
	wantReferrers(t, srv, name, other.Desc.Digest, otherSig)

	// The other index is still whole: oras-go pulls it with its children.
	pulled := memory.New()
	if err := oras.CopyGraph(t.Context(), repo, pulled, other.Desc, oras.DefaultCopyGraphOptions); err != nil {
		t.Errorf("pulling the other index: %v", err)
	}
	wantManifests(t, srv, "mirror", http.StatusOK, mirrored...)
	wantReferrers(t, srv, "mirror", idx.Desc.Digest, idxSig)

	// Once the other index is gone too, p2 is used by nothing and goes with it;
	// p3, tagged, stays.
	r = deleteManifest(t, srv, name, other.Desc.Digest.String())
	apitest.WantHeader(t, "delete the other index", r, server.CascadeHeader, "3")
	wantManifests(t, srv, name, http.StatusNotFound, other.Desc, otherSig, p2.Desc(), p2SBOM)
	wantManifests(t, srv, name, http.StatusOK, p3.Desc(), p3SBOM)
}

func TestDeleteTag(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	g := pushGraph(t, srv, "app", "v1", apitest.NewImage(t, linuxAMD64, "tagged twice"))
	if err := repository(t, srv, "app").Tag(t.Context(), g.image.Desc(), "stable"); err != nil {
		t.Fatal(err)
	}

	r := deleteManifest(t, srv, "app", "v1")
	if h := r.Header.Get(server.CascadeHeader); h != "" && h != "0" {
		t.Errorf("deleting a tag: %s is %q", server.CascadeHeader, h)
	}
	if s := manifestStatus(t, srv, "app", "v1"); s != http.StatusNotFound {
		t.Errorf("the deleted tag answers %d", s)
	}
	if s := manifestStatus(t, srv, "app", "stable"); s != http.StatusOK {
		t.Errorf("the other tag answers %d", s)
	}
	wantManifests(t, srv, "app", http.StatusOK, append(g.referrers(), g.image.Desc())...)
	wantReferrers(t, srv, "app", g.image.Desc().Digest, g.sbom, g.imgSig)
	tags := srv.Do(t, http.MethodGet, "/v2/app/tags/list", nil)
	var l struct{ Tags []string }
	apitest.Decode(t, "tags", tags.Body, &l)
	if !slices.Equal(l.Tags, []string{"stable"}) {
		t.Errorf("tags after deleting v1: %q, want [stable]", l.Tags)
	}
	apitest.WantError(t, "deleting an unknown tag", srv.Do(t, http.MethodDelete, "/v2/app/manifests/v1", nil),
		http.StatusNotFound, "MANIFEST_UNKNOWN")
}

func TestDeleteWithoutCascade(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t, "--delete-cascade=false")
	g := pushGraph(t, srv, "app", "v1", apitest.NewImage(t, linuxAMD64, "kept referrers"))

	r := deleteManifest(t, srv, "app", g.image.Desc().Digest.String())
	if h := r.Header.Get(server.CascadeHeader); h != "" && h != "0" {
		t.Errorf("delete without cascade: %s is %q", server.CascadeHeader, h)
	}
	wantManifests(t, srv, "app", http.StatusNotFound, g.image.Desc())
	wantManifests(t, srv, "app", http.StatusOK, g.referrers()...)
	// The referrers of a deleted subject stay listed, as the spec allows.
	wantReferrers(t, srv, "app", g.image.Desc().Digest, g.sbom, g.imgSig)
	wantReferrers(t, srv, "app", g.sbom.Digest, g.sbomSig)
}

// TestCascadeKeepsReferrersListedOutside: an index outside the graph that lists a
// referrer keeps it: the cascade never leaves an index of the repository's own with a
// missing child.
func TestCascadeKeepsReferrersListedOutside(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	const name = "outside"
	repo := repository(t, srv, name)
	g := pushGraph(t, srv, name, "v1", apitest.NewImage(t, linuxAMD64, "outside layer"))
	outside := apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{g.imgSig}, nil)
	push(t, repo, outside)
	if err := repo.Tag(t.Context(), outside.Desc, "signatures"); err != nil {
		t.Fatal(err)
	}

	r := deleteManifest(t, srv, name, g.image.Desc().Digest.String())
	// the image, its SBOM and the SBOM's signature; not the listed signature
	apitest.WantHeader(t, "DELETE", r, "Graft-Cascade-Deleted", "2")
	wantManifests(t, srv, name, http.StatusNotFound, g.image.Desc(), g.sbom, g.sbomSig)
	wantManifests(t, srv, name, http.StatusOK, g.imgSig, outside.Desc)
}

// TestCascadeTakesFallbackIndex: the referrers tag schema's index of an image (tagged
// sha256-<hex> after it) is in the image's graph, with what it lists: the delete takes
// it, and the signature it lists.
func TestCascadeTakesFallbackIndex(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	const name = "fallback"
	repo := repository(t, srv, name)
	g := pushGraph(t, srv, name, "v1", apitest.NewImage(t, linuxAMD64, "fallback layer"))
	fallback := apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{g.imgSig}, nil)
	push(t, repo, fallback)
	if err := repo.Tag(t.Context(), fallback.Desc, "sha256-"+g.image.Desc().Digest.Encoded()); err != nil {
		t.Fatal(err)
	}

	r := deleteManifest(t, srv, name, g.image.Desc().Digest.String())
	// the image, its SBOM and the SBOM's signature, its signature and the index
	apitest.WantHeader(t, "DELETE", r, "Graft-Cascade-Deleted", "4")
	wantManifests(t, srv, name, http.StatusNotFound, g.image.Desc(), g.sbom, g.sbomSig, g.imgSig, fallback.Desc)
}

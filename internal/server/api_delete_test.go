package server_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/registrytest"
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

func (g graph) all() []ocispec.Descriptor { return append(g.referrers(), g.image.Desc()) }

func pushGraph(t *testing.T, srv *registrytest.Server, repo, tag string, im apitest.Image) graph {
	t.Helper()
	srv.PushImage(t, repo, tag, im)
	g := graph{image: im}
	g.sbom = attach(t, srv, repo, typeSBOM, "SBOM of "+tag, im.Desc())
	g.sbomSig = attach(t, srv, repo, typeSignature, "signature of the SBOM of "+tag, g.sbom)
	g.imgSig = attach(t, srv, repo, typeSignature, "signature of "+tag, im.Desc())
	return g
}

// cascadeAnswer is the body of a manifest delete.
type cascadeAnswer struct {
	Deleted []digest.Digest `json:"deleted"`
	Locked  []digest.Digest `json:"locked"`
}

// wantDeleted deletes root from repo by digest and checks the answer: root deleted
// first, then exactly the others of deleted in any order; the cascade stopped at
// exactly locked.
func wantDeleted(t *testing.T, srv *registrytest.Server, repo string, root ocispec.Descriptor, deleted, locked []ocispec.Descriptor) {
	t.Helper()
	r := call{method: http.MethodDelete, target: "/v2/" + repo + "/manifests/" + root.Digest.String(),
		status: http.StatusAccepted, headers: map[string]string{
			server.CascadeHeader: strconv.Itoa(len(deleted)), server.CascadeLockedHeader: strconv.Itoa(len(locked)),
			"Content-Type": "application/json",
		}}.check(t, srv)
	apitest.WantHeader(t, "DELETE", r, "Content-Length", strconv.Itoa(len(r.Body)))
	var body cascadeAnswer
	apitest.Decode(t, "DELETE "+root.Digest.String(), r.Body, &body)
	if len(body.Deleted) == 0 || body.Deleted[0] != root.Digest {
		t.Errorf("DELETE %s: deleted %v, want it first", root.Digest, body.Deleted)
	}
	if got, want := apitest.Sorted(body.Deleted...), apitest.Digests(append(deleted, root)); !slices.Equal(got, want) {
		t.Errorf("DELETE %s: deleted %v, want %v", root.Digest, got, want)
	}
	if body.Locked == nil {
		t.Errorf("DELETE %s: locked is not a list: %s", root.Digest, r.Body)
	}
	if got, want := apitest.Sorted(body.Locked...), apitest.Digests(locked); !slices.Equal(got, want) {
		t.Errorf("DELETE %s: locked %v, want %v", root.Digest, got, want)
	}
}

// wantManifests checks that each of descs is (or is not) in repo.
func wantManifests(t *testing.T, srv *registrytest.Server, repo string, there bool, descs ...ocispec.Descriptor) {
	t.Helper()
	for _, d := range descs {
		if there {
			srv.Want(t, http.StatusOK, http.MethodHead, "/v2/"+repo+"/manifests/"+d.Digest.String(), nil)
		} else {
			wantNoManifest(t, srv, repo, d.Digest.String())
		}
	}
}

func TestCascadeDelete(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "del/app"
		target := pushGraph(t, srv, repo, "v1", apitest.NewImage(t, linuxAMD64, "shared base layer", "layer of v1 only"))
		sibling := pushGraph(t, srv, repo, "v2", apitest.NewImage(t, linuxAMD64, "shared base layer", "layer of v2 only"))
		// The same graph in another repository.
		mirror := pushGraph(t, srv, "del/mirror", "v1", target.image)

		wantDeleted(t, srv, repo, target.image.Desc(), target.referrers(), nil)
		wantManifests(t, srv, repo, false, target.all()...)
		wantNoManifest(t, srv, repo, "v1")
		wantReferrers(t, srv, repo, target.image.Desc().Digest)
		wantReferrers(t, srv, repo, target.sbom.Digest)
		// The blobs stay for garbage collection to judge.
		for _, b := range target.image.Blobs() {
			wantBlob(t, srv, repo, b.Data)
		}

		// Nothing outside the graph is touched.
		wantManifests(t, srv, repo, true, sibling.all()...)
		wantManifest(t, srv, repo, "v2", sibling.image.Manifest)
		wantReferrers(t, srv, repo, sibling.image.Desc().Digest, sibling.sbom, sibling.imgSig)
		wantManifests(t, srv, "del/mirror", true, mirror.all()...)
		wantReferrers(t, srv, "del/mirror", mirror.image.Desc().Digest, mirror.sbom, mirror.imgSig)

		// A referrer takes the graph under it, and nothing above it.
		wantDeleted(t, srv, repo, sibling.sbom, []ocispec.Descriptor{sibling.sbomSig}, nil)
		wantManifests(t, srv, repo, true, sibling.image.Desc(), sibling.imgSig)
		wantReferrers(t, srv, repo, sibling.image.Desc().Digest, sibling.imgSig)
		if got := srv.Tags(t, repo); !slices.Equal(got, []string{"v2"}) {
			t.Errorf("tags %q after the deletes, want [v2]", got)
		}

		absent := digest.FromString("never pushed").String()
		run(t, srv, []call{
			{name: "the root again", method: http.MethodDelete, target: "/v2/" + repo + "/manifests/" + target.image.Desc().Digest.String(),
				status: http.StatusNotFound, code: "MANIFEST_UNKNOWN"},
			{name: "an unknown digest", method: http.MethodDelete, target: "/v2/" + repo + "/manifests/" + absent,
				status: http.StatusNotFound, code: "MANIFEST_UNKNOWN", message: "manifest " + absent + " is not in the repository"},
			{name: "an unknown repository", method: http.MethodDelete, target: "/v2/del/none/manifests/" + absent,
				status: http.StatusNotFound, code: "MANIFEST_UNKNOWN"},
			{name: "a malformed digest", method: http.MethodDelete, target: "/v2/" + repo + "/manifests/sha256:abc",
				status: http.StatusBadRequest, code: "DIGEST_INVALID"},
			{name: "an invalid name", method: http.MethodDelete, target: "/v2/Del/manifests/" + absent,
				status: http.StatusBadRequest, code: "NAME_INVALID"},
		})
	})
}

func TestDeleteTag(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "del/tags"
		g := pushGraph(t, srv, repo, "v1", apitest.NewImage(t, linuxAMD64, "tagged twice"))
		srv.PushManifest(t, repo, "stable", g.image.Manifest)
		run(t, srv, []call{
			{name: "a tag", method: http.MethodDelete, target: "/v2/" + repo + "/manifests/v1", status: http.StatusAccepted,
				answer: []byte{}, headers: map[string]string{"Content-Length": "0", server.CascadeHeader: "", server.CascadeLockedHeader: ""}},
			{name: "the tag again", method: http.MethodDelete, target: "/v2/" + repo + "/manifests/v1", status: http.StatusNotFound,
				code: "MANIFEST_UNKNOWN", message: "manifest v1 is not in the repository"},
			{name: "an invalid tag", method: http.MethodDelete, target: "/v2/" + repo + "/manifests/-v1", status: http.StatusNotFound,
				code: "MANIFEST_UNKNOWN"},
		})
		wantNoManifest(t, srv, repo, "v1")
		wantManifest(t, srv, repo, "stable", g.image.Manifest)
		wantManifests(t, srv, repo, true, g.all()...)
		wantReferrers(t, srv, repo, g.image.Desc().Digest, g.sbom, g.imgSig)
		if got := srv.Tags(t, repo); !slices.Equal(got, []string{"stable"}) {
			t.Errorf("tags %q, want [stable]", got)
		}
	})
}

func TestCascadeDeleteIndex(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "del/multi"
		s390x := ocispec.Platform{OS: "linux", Architecture: "s390x"}
		// p1 is used by idx alone; p2 is also listed by another index; p3 is tagged.
		p1 := apitest.NewImage(t, linuxAMD64, "p1 layer")
		p2 := apitest.NewImage(t, linuxARM64, "p2 layer")
		p3 := apitest.NewImage(t, s390x, "p3 layer")
		srv.PushImage(t, repo, "", p1)
		srv.PushImage(t, repo, "", p2)
		srv.PushImage(t, repo, "p3", p3)
		idx := apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{
			apitest.WithPlatform(p1.Desc(), linuxAMD64), apitest.WithPlatform(p2.Desc(), linuxARM64), apitest.WithPlatform(p3.Desc(), s390x),
		}, nil)
		other := apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{apitest.WithPlatform(p2.Desc(), linuxARM64)},
			map[string]string{"org.example.name": "the other index"})
		srv.PushManifest(t, repo, "latest", idx)
		srv.PushManifest(t, repo, "", other)
		idxSig := attach(t, srv, repo, typeSignature, "signature of the index", idx.Desc)
		idxSigSig := attach(t, srv, repo, typeSignature, "counter-signature", idxSig)
		p1SBOM := attach(t, srv, repo, typeSBOM, "SBOM of p1", p1.Desc())
		p2SBOM := attach(t, srv, repo, typeSBOM, "SBOM of p2", p2.Desc())
		p3SBOM := attach(t, srv, repo, typeSBOM, "SBOM of p3", p3.Desc())
		otherSig := attach(t, srv, repo, typeSignature, "signature of the other index", other.Desc)

		wantDeleted(t, srv, repo, idx.Desc, []ocispec.Descriptor{idxSig, idxSigSig, p1.Desc(), p1SBOM}, nil)
		wantManifests(t, srv, repo, true, p2.Desc(), p2SBOM, p3.Desc(), p3SBOM, other.Desc, otherSig)
		wantNoManifest(t, srv, repo, "latest")
		wantManifest(t, srv, repo, "p3", p3.Manifest)

		// Once the other index is gone too, p2 is used by nothing and goes with it;
		// p3, tagged, stays.
		wantDeleted(t, srv, repo, other.Desc, []ocispec.Descriptor{otherSig, p2.Desc(), p2SBOM}, nil)
		wantManifests(t, srv, repo, true, p3.Desc(), p3SBOM)
	})
}

// TestCascadeKeepsReferrersListedOutside: an index outside the graph that lists a
// referrer (as clients without the referrers API keep them, under a sha256-<hex> tag)
// keeps it: the cascade never leaves an index with a missing child.
func TestCascadeKeepsReferrersListedOutside(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "del/outside"
		g := pushGraph(t, srv, repo, "v1", apitest.NewImage(t, linuxAMD64, "outside layer"))
		outside := apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{g.imgSig}, nil)
		srv.PushManifest(t, repo, "signatures", outside)
		wantDeleted(t, srv, repo, g.image.Desc(), []ocispec.Descriptor{g.sbom, g.sbomSig}, nil)
		wantManifests(t, srv, repo, true, g.imgSig, outside.Desc)
	})
}

// TestCascadeTakesFallbackIndex: the referrers tag schema's index of an image, tagged
// sha256-<hex> after it, is in its graph with what it lists.
func TestCascadeTakesFallbackIndex(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "del/fallback"
		g := pushGraph(t, srv, repo, "v1", apitest.NewImage(t, linuxAMD64, "fallback layer"))
		fallback := apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{g.imgSig}, nil)
		srv.PushManifest(t, repo, "sha256-"+g.image.Desc().Digest.Encoded(), fallback)
		wantDeleted(t, srv, repo, g.image.Desc(), []ocispec.Descriptor{g.sbom, g.sbomSig, g.imgSig, fallback.Desc}, nil)
	})
}

func TestDeleteWithoutCascade(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "del/single"
		g := pushGraph(t, srv, repo, "v1", apitest.NewImage(t, linuxAMD64, "kept referrers"))
		wantDeleted(t, srv, repo, g.image.Desc(), nil, nil)
		wantManifests(t, srv, repo, false, g.image.Desc())
		wantManifests(t, srv, repo, true, g.referrers()...)
		// The referrers of a deleted subject stay listed, as the spec allows.
		wantReferrers(t, srv, repo, g.image.Desc().Digest, g.sbom, g.imgSig)
		wantReferrers(t, srv, repo, g.sbom.Digest, g.sbomSig)
	}, func(c *config.Config) { c.Delete.Cascade = false })
}

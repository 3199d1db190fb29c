package metadata

import (
	"net/http"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
)

// Each lock that refuses a delete, and the attributes it leaves.
var deleteLocks = []struct {
	name   string
	repo   string // a suffix of repository names
	lock   string
	locked attributes
}{
	{"deleteEnabled", "delete", `{"deleteEnabled": false}`, attributes{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true}},
	{"writeEnabled", "write", `{"writeEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: false, ReadEnabled: true, ListEnabled: true}},
}

func TestCascadeKeepsLockedReferrers(t *testing.T) {
	t.Parallel()
	c := start(t)
	for _, tt := range deleteLocks {
		t.Run(tt.name, func(t *testing.T) {
			c := &client{t: t, srv: c.srv}
			r := c.repo("cascade/referrers-" + tt.repo)
			img := r.image(linux, "layer of the image")
			r.tag(img, "v1")
			sig := r.artifact(typeSignature, img, "signature of the image")
			sbom := r.artifact(typeSBOM, img, "sbom of the image")
			sbomSig := r.artifact(typeSignature, sbom, "signature of the sbom")
			other := r.image(linux, "an image outside the graph")
			r.tag(other, "other")
			r.check("after the pushes")

			r.patchManifest(sbom, "", tt.lock, tt.locked)
			c.denied(http.MethodDelete, manifestPath(r.name, sbom.Digest.String()), nil)

			r.deleteManifest(img, []*pushed{sig}, []*pushed{sbom})
			r.check("after deleting the image")
			for _, gone := range []*pushed{img, sig} {
				apitest.CheckError(t, "GET a deleted manifest", c.do(http.MethodGet, manifestPath(r.name, gone.Digest.String()), nil),
					http.StatusNotFound, "MANIFEST_UNKNOWN")
			}
			apitest.CheckError(t, "GET the deleted tag", c.do(http.MethodGet, manifestPath(r.name, "v1"), nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
			r.pull(sbom, sbom.Digest.String())
			r.pull(sbomSig, sbomSig.Digest.String())
			r.pull(other, "other")
			// The kept sbom still names the deleted image as its subject.
			if got := apitest.Digests(c.srv.Referrers(c.t, r.name, img.Digest)); !slices.Equal(got, []digest.Digest{sbom.Digest}) {
				t.Errorf("referrers of the deleted image: %v, want the kept sbom %s", got, sbom.Digest)
			}
			if got := apitest.Digests(c.srv.Referrers(c.t, r.name, sbom.Digest)); !slices.Equal(got, []digest.Digest{sbomSig.Digest}) {
				t.Errorf("referrers of the sbom: %v, want its signature %s", got, sbomSig.Digest)
			}

			c.denied(http.MethodDelete, manifestPath(r.name, sbom.Digest.String()), nil)
			r.check("after the refused delete of the sbom")

			r.patchManifest(sbom, "", `{"deleteEnabled": true, "writeEnabled": true}`, allEnabled)
			r.deleteManifest(sbom, []*pushed{sbomSig}, nil)
			r.check("after deleting the sbom")
			if got := apitest.Digests(c.srv.Referrers(c.t, r.name, img.Digest)); len(got) != 0 {
				t.Errorf("referrers of the deleted image: %v, want none", got)
			}
		})
	}
}

func TestCascadeKeepsLockedChild(t *testing.T) {
	t.Parallel()
	c := start(t)
	for _, tt := range deleteLocks {
		t.Run(tt.name, func(t *testing.T) {
			c := &client{t: t, srv: c.srv}
			r := c.repo("cascade/index-" + tt.repo)
			amd64 := r.image(linux, "amd64 layer")
			arm64 := r.image(ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "arm64 layer")
			idx := r.index(amd64, arm64)
			r.tag(idx, "multi")
			idxSig := r.artifact(typeSignature, idx, "signature of the index")
			childSig := r.artifact(typeSignature, amd64, "signature of the amd64 image")
			r.check("after the pushes")

			r.patchManifest(amd64, "", tt.lock, tt.locked)
			r.deleteManifest(idx, []*pushed{arm64, idxSig}, []*pushed{amd64})
			rp := r.check("after deleting the index")
			if rp.ManifestCount != 2 || rp.TagCount != 0 {
				t.Errorf("%d manifests and %d tags left, want the locked child and its signature, untagged",
					rp.ManifestCount, rp.TagCount)
			}
			r.pull(amd64, amd64.Digest.String())
			r.pull(childSig, childSig.Digest.String())
			apitest.CheckError(t, "GET the deleted sibling", c.do(http.MethodGet, manifestPath(r.name, arm64.Digest.String()), nil),
				http.StatusNotFound, "MANIFEST_UNKNOWN")
		})
	}
}

// A locked manifest deep in a graph keeps itself and what hangs under it, however
// the graph reaches it.
func TestCascadeLockedDeepInGraph(t *testing.T) {
	t.Parallel()
	c := start(t)
	r := c.repo("cascade/deep")
	img := r.image(linux, "layer of the image")
	att := r.artifact(typeSBOM, img, "attestation")
	attSig := r.artifact(typeSignature, att, "signature of the attestation")
	attSigSig := r.artifact(typeSignature, attSig, "countersignature")
	other := r.artifact(typeSignature, img, "another signature")
	otherSig := r.artifact(typeSignature, other, "signature of the other signature")

	r.patchManifest(attSig, "", `{"deleteEnabled": false}`, attributes{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true})
	r.deleteManifest(img, []*pushed{att, other, otherSig}, []*pushed{attSig})
	r.check("after deleting the image")
	r.pull(attSigSig, attSigSig.Digest.String())
	if got := apitest.Digests(c.srv.Referrers(c.t, r.name, att.Digest)); !slices.Equal(got, []digest.Digest{attSig.Digest}) {
		t.Errorf("referrers of the deleted attestation: %v, want the kept signature", got)
	}
}

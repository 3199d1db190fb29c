package graph

import (
	"net/http"
	"slices"
	"testing"
)

func TestGCTakesTagSchemaArtifacts(t *testing.T) {
	t.Parallel()
	eachDeployment(t, testGCTakesTagSchemaArtifacts)
}

// testGCTakesTagSchemaArtifacts: a cosign .sig or .att tag does not keep its manifest
// as a tag of its own would. `graft gc`, run beside the server, removes an untagged
// image with its signature and attestation, tags and all; with orphan referrers kept,
// it removes the image and keeps them, and a later run that does not keep them removes
// them. A tagged signed image stays throughout.
func testGCTakesTagSchemaArtifacts(t *testing.T, r *registry) {
	const repo = "team/gc"
	c := newCosign(t, r)
	kept := c.signImage(repo, "kept", "layer of the image that stays tagged", false)
	x := c.signImage(repo, "x", "layer of the image collected with its artifacts", false)
	y := c.signImage(repo, "y", "layer of the image whose artifacts are kept as orphans", false)
	untag := func(s cosigned) {
		t.Helper()
		r.Want(t, http.StatusAccepted, http.MethodDelete, manifestPath(repo, s.tag), nil)
		r.wantThere(t, "after untagging "+s.tag, repo, s.image.String(), s.sig.String(), s.att.String())
		r.wantThere(t, "after untagging "+s.tag, repo, s.schemaTags()...)
	}
	wantRemoved := func(what string, got []string, want []string) {
		t.Helper()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s removed %q, want %q", what, got, want)
		}
	}

	untag(x)
	wantRemoved("graft gc", gc(t, c.Tools, r), inRepo(repo, x.graph()...))
	r.wantGone(t, "after graft gc", repo, x.refs()...)

	untag(y)
	wantRemoved("graft gc --gc-orphan-referrers keep", gc(t, c.Tools, r, "--gc-orphan-referrers", "keep"), inRepo(repo, y.image))
	r.wantGone(t, "after graft gc keeping orphans", repo, y.image.String())
	r.wantThere(t, "after graft gc keeping orphans", repo, y.sig.String(), y.att.String())
	r.wantThere(t, "after graft gc keeping orphans", repo, y.schemaTags()...)

	wantRemoved("graft gc after it", gc(t, c.Tools, r), inRepo(repo, y.sig, y.att))
	r.wantGone(t, "after graft gc", repo, y.refs()...)

	r.wantThere(t, "after the collections", repo, kept.refs()...)
	r.wantTags(t, "after the collections", repo, append([]string{kept.tag}, kept.schemaTags()...)...)
	kept.wantInfo(t, r, repo)
	c.wantVerified("after the collections", repo, kept)
}

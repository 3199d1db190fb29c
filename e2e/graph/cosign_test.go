package graph

import (
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/clienttest"
)

// cosign runs the real cosign with a key pair of the test's own, offline: nothing goes
// to a transparency log, and verification does not ask one.
type cosign struct {
	*clienttest.Tools
	t *testing.T
	r *registry
}

func newCosign(t *testing.T, r *registry) *cosign {
	t.Helper()
	c := &cosign{Tools: clienttest.New(t), t: t, r: r}
	c.Must("cosign", "generate-key-pair")
	c.WriteFile("predicate.json", `{"builder":{"id":"graft e2e"},"buildType":"test"}`)
	return c
}

// The registries are plain HTTP on loopback.
var cosignRegistryFlags = []string{"--allow-insecure-registry", "--allow-http-registry"}

// cosignOCI11 is the environment cosign's oci-1-1 mode needs: it is experimental.
var cosignOCI11 = []string{"COSIGN_EXPERIMENTAL=1"}

func (c *cosign) cmd(env []string, args ...string) (string, error) {
	c.t.Helper()
	return c.Run(env, "cosign", append(args, cosignRegistryFlags...)...)
}

func (c *cosign) mustCmd(env []string, args ...string) {
	c.t.Helper()
	if _, err := c.cmd(env, args...); err != nil {
		c.t.Fatal(err)
	}
}

// sign runs `cosign sign` on ref with flags: by default, in tag mode.
func (c *cosign) sign(ref string, env []string, flags ...string) {
	c.t.Helper()
	c.mustCmd(env, append(append([]string{"sign", "-y", "--key", "cosign.key", "--tlog-upload=false"}, flags...), ref)...)
}

// verify runs `cosign verify` on ref with flags.
func (c *cosign) verify(ref string, env []string, flags ...string) error {
	c.t.Helper()
	_, err := c.cmd(env, append(append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog"}, flags...), ref)...)
	return err
}

// cosigned is an image and what cosign attached to it in its default tag mode.
type cosigned struct {
	tag                   string
	image, sig, att, sbom digest.Digest // sbom is "" when none was attached
}

// graph is the image and its artifacts.
func (s cosigned) graph() []digest.Digest {
	out := []digest.Digest{s.image, s.sig, s.att}
	if s.sbom != "" {
		out = append(out, s.sbom)
	}
	return out
}

// schemaTags are the tags cosign gave the artifacts.
func (s cosigned) schemaTags() []string {
	out := []string{schemaTag(s.image) + ".sig", schemaTag(s.image) + ".att"}
	if s.sbom != "" {
		out = append(out, schemaTag(s.image)+".sbom")
	}
	return out
}

// refs are the digests and tags of the image and its artifacts.
func (s cosigned) refs() []string {
	out := append([]string{s.tag}, s.schemaTags()...)
	for _, d := range s.graph() {
		out = append(out, d.String())
	}
	return out
}

// spdx is a minimal SPDX document named name.
func spdx(name string) string {
	return `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"` + name + `"}`
}

// signImage pushes an image of content to repo as tag, and signs and attests it with
// cosign in its default tag mode, and attaches an SBOM of its own if sbom is set.
func (c *cosign) signImage(repo, tag, content string, sbom bool) cosigned {
	c.t.Helper()
	sbomFile := ""
	if sbom {
		sbomFile = "sbom-" + tag + ".spdx.json"
		c.WriteFile(sbomFile, spdx("the sbom of "+tag))
	}
	return c.signImageWith(repo, tag, content, sbomFile)
}

// signImageWith is signImage with the SBOM in sbomFile ("" for none).
func (c *cosign) signImageWith(repo, tag, content, sbomFile string) cosigned {
	c.t.Helper()
	t, r := c.t, c.r
	s := cosigned{tag: tag, image: r.pushImage(t, repo, tag, content)}
	ref := r.ref(repo, s.image)
	c.sign(ref, nil)
	c.mustCmd(nil, "attest", "-y", "--key", "cosign.key", "--tlog-upload=false", "--predicate", "predicate.json", ref)
	if sbomFile != "" {
		// Deprecated in favour of SBOM attestations, but still what many pipelines run.
		c.mustCmd(nil, "attach", "sbom", "--sbom", sbomFile, "--type", "spdx", ref)
		s.sbom = r.resolve(t, repo, schemaTag(s.image)+".sbom")
	}
	s.sig = r.resolve(t, repo, schemaTag(s.image)+".sig")
	s.att = r.resolve(t, repo, schemaTag(s.image)+".att")
	return s
}

// wantInfo fails the test unless the metadata API shows s as a graph: the image
// signed, with its artifacts counted by kind, and each artifact of its kind, an
// artifact of the image by tag.
func (s cosigned) wantInfo(t *testing.T, r *registry, repo string) {
	t.Helper()
	counts := map[string]int64{"signature": 1, "attestation": 1}
	if s.sbom != "" {
		counts["sbom"] = 1
		r.wantInfo(t, repo, manifestInfo{Digest: s.sbom, Tags: []string{schemaTag(s.image) + ".sbom"}, Kind: "sbom", Subject: s.image, Edge: "tag"})
	}
	r.wantInfo(t, repo, manifestInfo{Digest: s.image, Tags: []string{s.tag}, Kind: "image", Artifacts: counts, Signed: true})
	r.wantInfo(t, repo, manifestInfo{Digest: s.sig, Tags: []string{schemaTag(s.image) + ".sig"}, Kind: "signature", Subject: s.image, Edge: "tag"})
	r.wantInfo(t, repo, manifestInfo{Digest: s.att, Tags: []string{schemaTag(s.image) + ".att"}, Kind: "attestation", Subject: s.image, Edge: "tag"})
}

// wantVerified fails the test unless cosign verifies s's signature and attestation.
func (c *cosign) wantVerified(what, repo string, s cosigned) {
	c.t.Helper()
	ref := c.r.ref(repo, s.image)
	if err := c.verify(ref, nil); err != nil {
		c.t.Errorf("%s: %v", what, err)
	}
	if _, err := c.cmd(nil, "verify-attestation", "--key", "cosign.pub", "--insecure-ignore-tlog", ref); err != nil {
		c.t.Errorf("%s: %v", what, err)
	}
}

func TestCosignTagModeDelete(t *testing.T) {
	t.Parallel()
	eachDeployment(t, testCosignTagModeDelete)
}

// testCosignTagModeDelete: cosign's default tag-mode signature, attestation and SBOM
// are the image's artifacts in the metadata API; deleting the image by digest, with the
// API or with `graft delete`, takes all of them with their tags, and leaves another
// signed image of the repository as it was.
func testCosignTagModeDelete(t *testing.T, r *registry) {
	const repo = "team/app"
	c := newCosign(t, r)
	kept := c.signImage(repo, "kept", "layer of the image that stays", false)
	byAPI := c.signImage(repo, "v1", "layer of the image deleted with the API", true)
	byVerb := c.signImage(repo, "v2", "layer of the image deleted with graft delete", true)
	var tagEdges, signatures []digest.Digest
	for _, s := range []cosigned{kept, byAPI, byVerb} {
		s.wantInfo(t, r, repo)
		c.wantVerified("before the deletes", repo, s)
		tagEdges = append(tagEdges, s.graph()[1:]...)
		signatures = append(signatures, s.sig)
	}
	if got := r.listed(t, repo, "edge=tag"); !sameSet(got, tagEdges) {
		t.Errorf("the manifests known as artifacts by a tag are %v, want %v", got, tagEdges)
	}
	if got := r.listed(t, repo, "kind=signature"); !sameSet(got, signatures) {
		t.Errorf("the signatures are %v, want %v", got, signatures)
	}

	resp, body := r.deleteManifest(t, repo, byAPI.image)
	wantCascade(t, "DELETE the image cosign signed", resp, body, byAPI.graph(), nil)
	r.wantGone(t, "after the delete by the API", repo, byAPI.refs()...)
	if got := r.Referrers(t, repo, byAPI.image); len(got) != 0 {
		t.Errorf("referrers of the deleted image: %v", apitest.Digests(got))
	}

	var result struct {
		deleted
		ByServer bool `json:"byServer"`
	}
	decodeJSON(t, "graft delete", c.Must("graft", "delete", r.ref(repo, byVerb.image), "--yes", "-o", "json"), &result)
	if !sameSet(result.Deleted, byVerb.graph()) || len(result.Locked) != 0 || !result.ByServer {
		t.Errorf("graft delete removed %v (locked %v, by the server %v), want %v by the server", result.Deleted, result.Locked, result.ByServer, byVerb.graph())
	}
	r.wantGone(t, "after graft delete", repo, byVerb.refs()...)

	r.wantThere(t, "after the deletes", repo, kept.refs()...)
	r.wantTags(t, "after the deletes", repo, append([]string{kept.tag}, kept.schemaTags()...)...)
	kept.wantInfo(t, r, repo)
	c.wantVerified("after the deletes", repo, kept)
}

func TestCosignOCI11Delete(t *testing.T) {
	t.Parallel()
	eachDeployment(t, testCosignOCI11Delete)
}

// testCosignOCI11Delete: a signature cosign pushes in oci-1-1 mode has a subject and no
// tag; deleting its image takes it, and leaves another image's alone.
func testCosignOCI11Delete(t *testing.T, r *registry) {
	const repo = "team/oci11"
	c := newCosign(t, r)
	oci11 := "--registry-referrers-mode=oci-1-1"
	img := r.pushImage(t, repo, "v1", "layer of the image deleted")
	other := r.pushImage(t, repo, "v2", "layer of the image that stays")
	signature := func(img digest.Digest) digest.Digest {
		t.Helper()
		c.sign(r.ref(repo, img), cosignOCI11, oci11)
		refs := r.Referrers(t, repo, img)
		if len(refs) != 1 || refs[0].ArtifactType != "application/vnd.dev.cosign.artifact.sig.v1+json" {
			t.Fatalf("referrers of %s after cosign sign %s: %v", img, oci11, refs)
		}
		return refs[0].Digest
	}
	sig, otherSig := signature(img), signature(other)
	r.wantInfo(t, repo, manifestInfo{Digest: img, Tags: []string{"v1"}, Kind: "image", Artifacts: map[string]int64{"signature": 1}, Signed: true})
	r.wantInfo(t, repo, manifestInfo{Digest: sig, Kind: "signature", Subject: img, Edge: "subject"})
	if err := c.verify(r.ref(repo, img), cosignOCI11, "--experimental-oci11"); err != nil {
		t.Fatal(err)
	}

	resp, body := r.deleteManifest(t, repo, img)
	wantCascade(t, "DELETE the image", resp, body, []digest.Digest{img, sig}, nil)
	r.wantGone(t, "after the delete", repo, img.String(), sig.String(), "v1")
	if got := r.Referrers(t, repo, img); len(got) != 0 {
		t.Errorf("referrers of the deleted image: %v", apitest.Digests(got))
	}
	r.wantThere(t, "after the delete", repo, other.String(), otherSig.String())
	r.wantTags(t, "after the delete", repo, "v2")
	if err := c.verify(r.ref(repo, other), cosignOCI11, "--experimental-oci11"); err != nil {
		t.Errorf("after the delete: %v", err)
	}
}

func TestLockedSignatureStopsCascade(t *testing.T) {
	t.Parallel()
	eachDeployment(t, testLockedSignatureStopsCascade)
}

// testLockedSignatureStopsCascade: a cosign signature locked against deletes stays when
// its image is deleted, with its tag, and the delete says so.
func testLockedSignatureStopsCascade(t *testing.T, r *registry) {
	const repo = "team/locked"
	c := newCosign(t, r)
	s := c.signImage(repo, "v1", "layer of the image whose signature is locked", false)
	target := "/graft/v1/" + repo + "/_manifests/" + s.sig.String()
	r.Want(t, http.StatusOK, http.MethodPatch, target, []byte(`{"deleteEnabled": false}`), "Content-Type", "application/json")

	resp, body := r.deleteManifest(t, repo, s.image)
	wantCascade(t, "DELETE the image", resp, body, []digest.Digest{s.image, s.att}, []digest.Digest{s.sig})
	r.wantGone(t, "after the delete", repo, s.image.String(), s.att.String(), s.tag, schemaTag(s.image)+".att")
	r.wantThere(t, "after the delete", repo, s.sig.String(), schemaTag(s.image)+".sig")
	r.wantTags(t, "after the delete", repo, schemaTag(s.image)+".sig")
}

func TestSharedSBOMStaysWithTheOtherImage(t *testing.T) {
	t.Parallel()
	eachDeployment(t, testSharedSBOMStaysWithTheOtherImage)
}

// testSharedSBOMStaysWithTheOtherImage: `cosign attach sbom` of one SBOM to two images
// pushes one manifest (its bytes name neither image) under both images' .sbom tags: an
// artifact of both. Deleting one image takes its own .sbom tag but leaves the SBOM,
// which the other image's tag still names; deleting the other image takes it too.
func testSharedSBOMStaysWithTheOtherImage(t *testing.T, r *registry) {
	const repo = "team/shared"
	c := newCosign(t, r)
	c.WriteFile("sbom.spdx.json", spdx("one sbom for two images"))
	a := c.signImageWith(repo, "a", "layer of image a", "sbom.spdx.json")
	b := c.signImageWith(repo, "b", "layer of image b", "sbom.spdx.json")
	if a.sbom != b.sbom {
		t.Fatalf("cosign pushed two SBOM manifests, %s and %s: the test needs one under two tags", a.sbom, b.sbom)
	}

	resp, body := r.deleteManifest(t, repo, a.image)
	wantCascade(t, "DELETE image a", resp, body, []digest.Digest{a.image, a.sig, a.att}, nil)
	r.wantGone(t, "after deleting image a", repo, a.image.String(), a.sig.String(), a.att.String(), a.tag,
		schemaTag(a.image)+".sig", schemaTag(a.image)+".att", schemaTag(a.image)+".sbom")
	r.wantThere(t, "after deleting image a", repo, b.refs()...)
	r.wantTags(t, "after deleting image a", repo, append([]string{b.tag}, b.schemaTags()...)...)
	b.wantInfo(t, r, repo)

	resp, body = r.deleteManifest(t, repo, b.image)
	wantCascade(t, "DELETE image b", resp, body, b.graph(), nil)
	r.wantGone(t, "after deleting image b", repo, b.refs()...)
	r.wantTags(t, "after deleting both images", repo)
}

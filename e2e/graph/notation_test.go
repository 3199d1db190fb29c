package graph

import (
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/clienttest"
)

// notary runs the notation CLI with a key and self-signed certificate of the test's
// own (`notation cert generate-test`, which also puts the certificate in the trust
// store graft-e2e) and a trust policy that trusts it, strictly, for every registry.
type notary struct {
	*clienttest.Tools
	t *testing.T
	r *registry
}

const trustPolicy = `{"version": "1.0", "trustPolicies": [{"name": "graft-e2e", "registryScopes": ["*"],
 "signatureVerification": {"level": "strict"}, "trustStores": ["ca:graft-e2e"], "trustedIdentities": ["*"]}]}`

func newNotary(t *testing.T, r *registry) *notary {
	t.Helper()
	n := &notary{Tools: clienttest.New(t), t: t, r: r}
	n.Must("notation", "cert", "generate-test", "--default", "graft-e2e")
	n.WriteFile("trustpolicy.json", trustPolicy)
	n.Must("notation", "policy", "import", "--force", n.Path("trustpolicy.json"))
	return n
}

// sign signs manifest img of repo as `notation sign` does by default, and returns the
// signature's digest, which it finds as the one the fallback index lists anew.
func (n *notary) sign(repo string, img digest.Digest) digest.Digest {
	n.t.Helper()
	t, r := n.t, n.r
	var before []digest.Digest
	if r.present(t, repo, schemaTag(img)) {
		before = r.index(t, repo, schemaTag(img))
	}
	n.Must("notation", "sign", "--insecure-registry", r.ref(repo, img))
	after := r.index(t, repo, schemaTag(img))
	if len(after) != len(before)+1 || !slices.Equal(after[:len(before)], before) {
		t.Fatalf("notation sign: the fallback index lists %v, was %v: want one signature more", after, before)
	}
	return after[len(before)]
}

// verify runs `notation verify`, which reads the signatures with the referrers API.
func (n *notary) verify(repo string, img digest.Digest) error {
	n.t.Helper()
	_, err := n.Run(nil, "notation", "verify", "--insecure-registry", n.r.ref(repo, img))
	return err
}

// discoverByTag lists the referrers of img as oras reads them from the referrers tag
// schema, as on a registry without the referrers API.
func (n *notary) discoverByTag(repo string, img digest.Digest) []digest.Digest {
	n.t.Helper()
	var tree struct {
		Referrers []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"referrers"`
	}
	decodeJSON(n.t, "oras discover", n.Must("oras", "discover", "--plain-http", "--distribution-spec", "v1.1-referrers-tag",
		"--format", "json", n.r.ref(repo, img)), &tree)
	out := []digest.Digest{}
	for _, d := range tree.Referrers {
		out = append(out, d.Digest)
	}
	return out
}

func TestNotationSignatures(t *testing.T) {
	t.Parallel()
	eachDeployment(t, testNotationSignatures)
}

// testNotationSignatures: notation signs an image twice, each signature with a subject
// and listed by the fallback index tagged sha256-<hex>. Deleting one signature by
// digest writes the index again without it and moves the tag, and notation still
// verifies the image with the other; deleting the image takes the other signature, the
// index and its tag. Another signed image of the repository stays as it was.
func testNotationSignatures(t *testing.T, r *registry) {
	const repo = "team/notation"
	n := newNotary(t, r)
	other := r.pushImage(t, repo, "other", "layer of the image that stays")
	otherSig := n.sign(repo, other)
	otherIndex := r.resolve(t, repo, schemaTag(other))
	img := r.pushImage(t, repo, "v1", "layer of the image signed twice")
	first := n.sign(repo, img)
	second := n.sign(repo, img)
	index := r.resolve(t, repo, schemaTag(img))

	r.wantInfo(t, repo, manifestInfo{Digest: img, Tags: []string{"v1"}, Kind: "image",
		Artifacts: map[string]int64{"signature": 2, "index": 1}, Signed: true})
	for _, sig := range []digest.Digest{first, second} {
		r.wantInfo(t, repo, manifestInfo{Digest: sig, Kind: "signature", Subject: img, Edge: "subject"})
	}
	r.wantInfo(t, repo, manifestInfo{Digest: index, Tags: []string{schemaTag(img)}, Kind: "index", Subject: img, Edge: "tag"})
	if err := n.verify(repo, img); err != nil {
		t.Fatal(err)
	}

	// One signature goes: the index is written again without it, under the same tag.
	resp, body := r.deleteManifest(t, repo, first)
	wantCascade(t, "DELETE the first signature", resp, body, []digest.Digest{first, index}, nil)
	r.wantGone(t, "after deleting the first signature", repo, first.String(), index.String())
	rewritten := r.resolve(t, repo, schemaTag(img))
	if got := r.index(t, repo, schemaTag(img)); !slices.Equal(got, []digest.Digest{second}) {
		t.Errorf("after deleting the first signature, the fallback index lists %v, want only the second %s", got, second)
	}
	if got := n.discoverByTag(repo, img); !slices.Equal(got, []digest.Digest{second}) {
		t.Errorf("after deleting the first signature, oras reads %v from the fallback index, want only the second %s", got, second)
	}
	if got := apitest.Digests(r.Referrers(t, repo, img)); !slices.Equal(got, []digest.Digest{second}) {
		t.Errorf("after deleting the first signature, the referrers are %v, want only the second %s", got, second)
	}
	r.wantInfo(t, repo, manifestInfo{Digest: img, Tags: []string{"v1"}, Kind: "image",
		Artifacts: map[string]int64{"signature": 1, "index": 1}, Signed: true})
	r.wantInfo(t, repo, manifestInfo{Digest: rewritten, Tags: []string{schemaTag(img)}, Kind: "index", Subject: img, Edge: "tag"})
	if err := n.verify(repo, img); err != nil {
		t.Errorf("after deleting the first signature: %v", err)
	}

	// The image goes, and its whole graph with it.
	resp, body = r.deleteManifest(t, repo, img)
	wantCascade(t, "DELETE the image", resp, body, []digest.Digest{img, second, rewritten}, nil)
	r.wantGone(t, "after deleting the image", repo, img.String(), second.String(), rewritten.String(), "v1", schemaTag(img))
	if got := r.Referrers(t, repo, img); len(got) != 0 {
		t.Errorf("after deleting the image, the referrers API lists %v under it", apitest.Digests(got))
	}

	r.wantThere(t, "after the deletes", repo, other.String(), otherSig.String(), otherIndex.String())
	r.wantTags(t, "after the deletes", repo, "other", schemaTag(other))
	if got := r.index(t, repo, schemaTag(other)); !slices.Equal(got, []digest.Digest{otherSig}) {
		t.Errorf("after the deletes, the other image's fallback index lists %v, want its signature %s", got, otherSig)
	}
	if err := n.verify(repo, other); err != nil {
		t.Errorf("after the deletes: %v", err)
	}
}

package retention

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
)

// immutableTags makes every tag of team/ immutable, as ECR's IMMUTABLE setting does:
// the referrers tag schema's tags among them, which are exempt all the same.
const immutableTags = `immutable-tags:
  - repositories: ["team/**"]
    tags: ["*"]
`

// notation's trust policy for `notation verify`: the test's own certificate, for every
// registry.
const trustPolicy = `{"version": "1.0", "trustPolicies": [{"name": "graft-e2e", "registryScopes": ["*"],
 "signatureVerification": {"level": "strict"}, "trustStores": ["ca:graft-e2e"], "trustedIdentities": ["*"]}]}`

func TestImmutableTags(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) { testImmutableTags(t, d.start(t, immutableTags)) })
}

// testImmutableTags: under immutable-tags, the real clients cannot move v1 (oras push
// of other content, crane tag of another manifest: refused with 403, and an exit status
// that says so) nor delete it (graft tag delete, crane delete, regctl tag delete, a
// DELETE by tag or by digest), but can push it again as it is, sign it with cosign in
// its default tag mode (twice: the .sig tag moves) and with notation (twice: its
// sha256-<hex> index moves), and attach an SBOM with oras; both signatures verify. The
// same moves and deletes are done in a repository the rule does not match.
func testImmutableTags(t *testing.T, r *registry) {
	s := newSigner(t, r)
	s.Must("notation", "cert", "generate-test", "--default", "graft-e2e")
	s.WriteFile("trustpolicy.json", trustPolicy)
	s.Must("notation", "policy", "import", "--force", s.Path("trustpolicy.json"))
	s.WriteFile("release-1.txt", "release 1")
	s.WriteFile("release-2.txt", "release 2")
	push := func(ref, file string) error {
		_, err := s.Run(nil, "oras", "push", "--plain-http", ref, file)
		return err
	}
	v1Ref := r.Addr + "/" + repo + ":v1"
	if err := push(v1Ref, "release-1.txt"); err != nil {
		t.Fatal(err)
	}
	v1 := r.resolve(t, repo, "v1")
	other := r.pushImage(t, repo, "", linuxAMD64, "another build")

	// v1 does not move.
	refused(t, "oras push of other content as v1", push(v1Ref, "release-2.txt"))
	_, err := s.Run(nil, "crane", "tag", "--insecure", r.ref(repo, other.Digest), "v1")
	refused(t, "crane tag of another manifest as v1", err)
	otherBytes := r.Want(t, http.StatusOK, http.MethodGet, manifestPath(repo, other.Digest.String()), nil,
		"Accept", ocispec.MediaTypeImageManifest).Body
	apitest.CheckError(t, "PUT another manifest as v1", r.PutManifest(t, repo, "v1", ocispec.MediaTypeImageManifest, otherBytes),
		http.StatusForbidden, "DENIED")
	s.Must("crane", "tag", "--insecure", r.ref(repo, v1), "v1") // as it is: no move
	if got := r.resolve(t, repo, "v1"); got != v1 {
		t.Fatalf("v1 names %s, want %s", got, v1)
	}

	// Signing and attaching go on.
	var sigs []digest.Digest
	for i := range 2 {
		// Another annotation, another signature: cosign appends it to its .sig
		// manifest, which it pushes anew and tags again.
		s.cosignSign(false, "-a", fmt.Sprintf("round=%d", i), r.ref(repo, v1))
		sig := r.resolve(t, repo, schemaTag(v1)+".sig")
		if slices.Contains(sigs, sig) {
			t.Errorf("cosign sign again: the .sig tag still names %s", sig)
		}
		sigs = append(sigs, sig)
	}
	var indexes []digest.Digest
	for range 2 {
		s.Must("notation", "sign", "--insecure-registry", r.ref(repo, v1))
		idx := r.resolve(t, repo, schemaTag(v1))
		if slices.Contains(indexes, idx) {
			t.Errorf("notation sign again: the %s index still is %s", schemaTag(v1), idx)
		}
		indexes = append(indexes, idx)
	}
	sbom := s.attachSBOM(r.ref(repo, v1), "sbom of v1")
	refs := r.Referrers(t, repo, v1)
	var notations []digest.Digest
	for _, d := range refs {
		if d.ArtifactType == "application/vnd.cncf.notary.signature" {
			notations = append(notations, d.Digest)
		}
	}
	if len(notations) != 2 || !slices.Contains(digestsOf(refs), sbom) || len(refs) != 3 {
		t.Errorf("the referrers of v1 are %v, want notation's two signatures and the SBOM %s", digestsOf(refs), sbom)
	}
	wantSet(t, "the manifests the notation index lists", r.index(t, repo, schemaTag(v1)), notations)
	if _, err := s.Run(nil, "cosign", append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog"},
		append(cosignRegistryFlags, r.ref(repo, v1))...)...); err != nil {
		t.Error(err)
	}
	if _, err := s.Run(nil, "notation", "verify", "--insecure-registry", r.ref(repo, v1)); err != nil {
		t.Error(err)
	}

	// v1 is not deleted, nor what it names.
	_, err = s.Run(nil, "graft", "tag", "delete", v1Ref)
	if code := exitCode(err); code != 4 {
		t.Errorf("graft tag delete %s: exit status %d, want 4 (denied): %v", v1Ref, code, err)
	}
	_, err = s.Run(nil, "crane", "delete", "--insecure", r.ref(repo, v1))
	refused(t, "crane delete of v1's manifest", err)
	_, err = s.Run(nil, "regctl", "tag", "delete", "--host", "reg="+r.Addr+",tls=disabled", v1Ref)
	refused(t, "regctl tag delete of v1", err)
	apitest.CheckError(t, "DELETE v1", r.Do(t, http.MethodDelete, manifestPath(repo, "v1"), nil), http.StatusForbidden, "DENIED")
	apitest.CheckError(t, "DELETE v1 by digest", r.Do(t, http.MethodDelete, manifestPath(repo, v1.String()), nil),
		http.StatusForbidden, "DENIED")
	if got := r.resolve(t, repo, "v1"); got != v1 {
		t.Errorf("after the refusals, v1 names %s, want %s", got, v1)
	}
	r.pullsCompletely(t, repo, "v1")

	// Where the rule does not reach, the same moves and deletes are done.
	if err := push(r.Addr+"/other/app:v1", "release-1.txt"); err != nil {
		t.Fatal(err)
	}
	if err := push(r.Addr+"/other/app:v1", "release-2.txt"); err != nil {
		t.Errorf("moving v1 of a repository the rule does not match: %v", err)
	}
	if _, err := s.Run(nil, "graft", "tag", "delete", r.Addr+"/other/app:v1"); err != nil {
		t.Errorf("deleting v1 of a repository the rule does not match: %v", err)
	}
}

// index returns the digests the image index tag names in repo lists.
func (r *registry) index(t *testing.T, repo, tag string) []digest.Digest {
	t.Helper()
	resp := r.Want(t, http.StatusOK, http.MethodGet, manifestPath(repo, tag), nil, "Accept", ocispec.MediaTypeImageIndex)
	var idx ocispec.Index
	apitest.Decode(t, "GET "+manifestPath(repo, tag), resp.Body, &idx)
	var out []digest.Digest
	for _, d := range idx.Manifests {
		out = append(out, d.Digest)
	}
	return out
}

package registry

import (
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/pattern"
	"github.com/graft-registry/graft/internal/reference"
)

func mustPatterns(t *testing.T, compile func([]string) (pattern.Set, error), ps ...string) pattern.Set {
	t.Helper()
	s, err := compile(ps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestImmutableTags(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			r := dep.open(t)
			r.opts.ImmutableTags = []ImmutableTags{{
				Repositories: mustPatterns(t, pattern.Repositories, "team/**"),
				Tags:         mustPatterns(t, pattern.Tags, "v*"),
			}}
			testImmutableTags(t, r)
		})
	}
}

// testImmutableTags: a tag an immutable-tags rule matches cannot be moved or deleted,
// nor the manifest it names; tags of the referrers tag schema and pushes with a subject
// still attach signatures to it; other repositories and tags are free.
func testImmutableTags(t *testing.T, r *Registry) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/app"
	v1 := g.image(repo, "v1", nil, "", "release 1")
	g.image(repo, "latest", nil, "", "release 1") // latest moves freely
	other := g.image(repo, "", nil, "", "another build")
	denied := func(what string, err error) {
		t.Helper()
		if !isCode(err, errcode.Denied) {
			t.Errorf("%s: %v, want DENIED", what, err)
		}
	}
	content := g.content(repo, other)
	_, err := r.PutManifest(ctx, repo, "v1", ocispec.MediaTypeImageManifest, content, nil)
	denied("moving v1", err)
	_, err = r.PutManifest(ctx, repo, other.Digest.String(), ocispec.MediaTypeImageManifest, content, []string{"v1"})
	denied("moving v1 with ?tag=", err)
	_, err = r.DeleteManifest(ctx, repo, "v1")
	denied("deleting v1", err)
	_, err = r.DeleteManifest(ctx, repo, v1.Digest.String())
	denied("deleting the manifest v1 names", err)
	_, err = r.DeletePlan(ctx, repo, v1.Digest.String())
	denied("planning to delete it", err)
	// pushing v1 again with its own content is no move
	if _, err := r.PutManifest(ctx, repo, "v1", ocispec.MediaTypeImageManifest, g.content(repo, v1), nil); err != nil {
		t.Errorf("pushing v1 again as it is: %v", err)
	}
	if d, _ := g.tagged(repo, "v1"); d != v1.Digest {
		t.Fatalf("v1 names %s, want %s", d, v1.Digest)
	}
	// Signing stays possible: cosign's tags, a referrer, and the fallback index,
	// written and moved.
	g.cosignSig(repo, v1.Digest, "sig", "signature of v1")
	g.cosignSig(repo, v1.Digest, "sig", "signature of v1, signed again")
	n1 := g.image(repo, "", &v1, artifact.MediaTypeNotarySignature, "notation 1")
	g.fallback(repo, v1.Digest, n1)
	n2 := g.image(repo, "", &v1, artifact.MediaTypeNotarySignature, "notation 2")
	g.fallback(repo, v1.Digest, n1, n2)
	if _, err := r.DeleteManifest(ctx, repo, reference.SchemaTag(v1.Digest)+".sig"); err != nil {
		t.Errorf("deleting the signature's tag: %v", err)
	}
	if _, err := r.DeleteManifest(ctx, repo, n1.Digest.String()); err != nil {
		t.Errorf("deleting a signature by digest: %v", err)
	}
	// Elsewhere, tags are free.
	g.image("other/app", "v1", nil, "", "release 1")
	g.image("other/app", "v1", nil, "", "release 2")
	g.image(repo, "latest", nil, "", "another build")
	// A cascade stops at a manifest an immutable tag names, and says so.
	base := g.image(repo, "", nil, "", "base")
	sbom := g.image(repo, "v1-sbom", &base, "application/spdx+json", "sbom of base")
	del, err := r.DeleteManifest(ctx, repo, base.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(del.Manifests, []digest.Digest{base.Digest}) || !sameSet(del.Locked, []digest.Digest{sbom.Digest}) {
		t.Errorf("deleted %v, locked %v; want the base deleted, its SBOM (tagged v1-sbom) kept", del.Manifests, del.Locked)
	}
}

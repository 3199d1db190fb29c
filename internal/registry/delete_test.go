package registry

import (
	"errors"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/errcode"
)

// TestDeletePlan: the plan of a delete names exactly what the delete then removes and
// the locked manifests it stops at, and removes nothing itself.
func TestDeletePlan(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testDeletePlan(t, dep.open(t)) })
	}
}

func testDeletePlan(t *testing.T, r *Registry) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/app"

	a := g.image(repo, "v1", nil, "", "layer a")
	sbom := g.image(repo, "", &a, "application/spdx+json", "sbom of a")
	sig := g.image(repo, "", &sbom, "application/vnd.dev.cosign.artifact.sig.v1+json", "signature of the sbom")
	att := g.image(repo, "", &a, "application/vnd.in-toto+json", "attestation of a")
	attSig := g.image(repo, "", &att, "application/vnd.dev.cosign.artifact.sig.v1+json", "signature of the attestation")
	no := false
	if _, err := r.UpdateManifest(ctx, repo, att.Digest.String(), AttributesPatch{DeleteEnabled: &no}); err != nil {
		t.Fatal(err)
	}

	// an index: an untagged child goes with it; a tagged one, and one another index
	// lists too, stay
	c1 := g.image(repo, "", nil, "", "child 1")
	c2 := g.image(repo, "c2", nil, "", "child 2")
	c3 := g.image(repo, "", nil, "", "child 3")
	idx := g.index(repo, "multi", c1, c2, c3)
	g.index(repo, "other", c3)

	all := []digest.Digest{a.Digest, sbom.Digest, sig.Digest, att.Digest, attSig.Digest, c1.Digest, c2.Digest, c3.Digest, idx.Digest}
	for _, tc := range []struct {
		name         string
		root         digest.Digest
		want, locked []digest.Digest
	}{
		{"image", a.Digest, []digest.Digest{a.Digest, sbom.Digest, sig.Digest}, []digest.Digest{att.Digest}},
		{"index", idx.Digest, []digest.Digest{idx.Digest, c1.Digest}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := r.DeletePlan(ctx, repo, tc.root.String())
			if err != nil {
				t.Fatal(err)
			}
			if plan.Manifests[0] != tc.root || !sameSet(plan.Manifests, tc.want) || !sameSet(plan.Locked, tc.locked) {
				t.Fatalf("plan: %v, locked %v; want %v, locked %v", plan.Manifests, plan.Locked, tc.want, tc.locked)
			}
			for _, d := range all {
				if !g.exists(repo, d) {
					t.Fatalf("%s is gone after a plan", d)
				}
			}
			done, err := r.DeleteManifest(ctx, repo, tc.root.String())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(done.Manifests, plan.Manifests) || !slices.Equal(done.Locked, plan.Locked) {
				t.Fatalf("deleted %v, locked %v; the plan said %v, locked %v", done.Manifests, done.Locked, plan.Manifests, plan.Locked)
			}
			for _, d := range tc.want {
				if g.exists(repo, d) {
					t.Errorf("%s is still there", d)
				}
			}
			all = slices.DeleteFunc(all, func(d digest.Digest) bool { return slices.Contains(tc.want, d) })
			for _, d := range all {
				if !g.exists(repo, d) {
					t.Errorf("%s, outside the graph, is gone", d)
				}
			}
		})
	}

	// what a delete refuses, a plan refuses alike
	if _, err := r.DeletePlan(ctx, repo, att.Digest.String()); !isCode(err, errcode.Denied) {
		t.Errorf("plan of a locked manifest: %v, want DENIED", err)
	}
	if _, err := r.DeletePlan(ctx, repo, digest.FromString("nothing").String()); !isCode(err, errcode.ManifestUnknown) {
		t.Errorf("plan of an unknown manifest: %v, want MANIFEST_UNKNOWN", err)
	}
	if plan, err := r.DeletePlan(ctx, repo, "c2"); err != nil || len(plan.Manifests) != 0 {
		t.Errorf("plan of a tag: %+v, %v; want nothing but the tag", plan, err)
	}
	if _, err := r.DeletePlan(ctx, repo, "nope"); !isCode(err, errcode.ManifestUnknown) {
		t.Errorf("plan of an unknown tag: %v, want MANIFEST_UNKNOWN", err)
	}
	if _, err := r.UpdateManifest(ctx, repo, "c2", AttributesPatch{DeleteEnabled: &no}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DeletePlan(ctx, repo, "c2"); !isCode(err, errcode.Denied) {
		t.Errorf("plan of a tag of a locked manifest: %v, want DENIED", err)
	}
	if _, err := r.UpdateRepository(ctx, repo, AttributesPatch{DeleteEnabled: &no}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DeletePlan(ctx, repo, c1.Digest.String()); !isCode(err, errcode.Denied) {
		t.Errorf("plan in a locked repository: %v, want DENIED", err)
	}
	for _, d := range all {
		if !g.exists(repo, d) {
			t.Errorf("%s is gone after the refused plans", d)
		}
	}
}

// TestDeletePlanWithoutCascade: a registry that does not cascade plans the root alone.
func TestDeletePlanWithoutCascade(t *testing.T) {
	t.Parallel()
	r := openEmbedded(t)
	r.opts.Cascade = false
	g := &graph{t: t, r: r, ctx: t.Context()}
	a := g.image("app", "v1", nil, "", "layer")
	g.image("app", "", &a, "application/spdx+json", "sbom")
	plan, err := r.DeletePlan(t.Context(), "app", a.Digest.String())
	if err != nil || !slices.Equal(plan.Manifests, []digest.Digest{a.Digest}) || len(plan.Locked) != 0 {
		t.Fatalf("plan: %+v, %v; want the root alone", plan, err)
	}
}

func sameSet(a, b []digest.Digest) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(d digest.Digest) bool { return !slices.Contains(b, d) })
}

func isCode(err error, c errcode.Code) bool {
	var e *errcode.Error
	return errors.As(err, &e) && e.Code == c
}

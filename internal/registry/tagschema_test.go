package registry

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// cosignSig pushes what `cosign sign` pushes in its default mode for subject: an image
// manifest with a simple-signing layer and no subject field, tagged
// sha256-<hex>.<suffix>.
func (g *graph) cosignSig(repo string, subject digest.Digest, suffix, payload string) ocispec.Descriptor {
	g.t.Helper()
	layerType := map[string]string{"sig": artifact.MediaTypeCosignSimpleSigning, "att": artifact.MediaTypeDSSEEnvelope,
		"sbom": "text/spdx+json"}[suffix]
	v := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    g.blob(repo, "cosign config "+payload),
		Layers:    []ocispec.Descriptor{g.blob(repo, payload)},
	}
	v.SchemaVersion = 2
	v.Config.MediaType = ocispec.MediaTypeImageConfig
	v.Layers[0].MediaType = layerType
	return g.put(repo, reference.SchemaTag(subject)+"."+suffix, ocispec.MediaTypeImageManifest, v)
}

// fallback pushes the referrers tag schema's index of subject, listing descs.
func (g *graph) fallback(repo string, subject digest.Digest, descs ...ocispec.Descriptor) ocispec.Descriptor {
	g.t.Helper()
	v := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs,
		Annotations: map[string]string{"example.written-by": "a client"}}
	v.SchemaVersion = 2
	return g.put(repo, reference.SchemaTag(subject), ocispec.MediaTypeImageIndex, v)
}

func (g *graph) tagged(repo, tag string) (digest.Digest, bool) {
	g.t.Helper()
	info, err := g.r.ManifestInfo(g.ctx, repo, tag)
	if isCode(err, errcode.ManifestUnknown) {
		return "", false
	}
	if err != nil {
		g.t.Fatalf("ManifestInfo(%s:%s): %v", repo, tag, err)
	}
	return info.Digest, true
}

func (g *graph) tagArtifacts(repo string, d digest.Digest) []digest.Digest {
	g.t.Helper()
	ds, _, err := g.r.TagArtifacts(g.ctx, repo, d, "", 0)
	if err != nil {
		g.t.Fatal(err)
	}
	return ds
}

func TestTagSchemaCascade(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testTagSchemaCascade(t, dep.open(t)) })
	}
}

// testTagSchemaCascade: deleting an image takes its cosign signature, attestation and
// SBOM (tag schema), the signature of that SBOM, its notation signatures and their
// fallback index, and leaves another signed image of the repository alone.
func testTagSchemaCascade(t *testing.T, r *Registry) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/app"
	a := g.image(repo, "v1", nil, "", "layer a")
	b := g.image(repo, "v2", nil, "", "layer b")
	sig := g.cosignSig(repo, a.Digest, "sig", "signature of a")
	att := g.cosignSig(repo, a.Digest, "att", "attestation of a")
	sbom := g.cosignSig(repo, a.Digest, "sbom", "sbom of a")
	sbomSig := g.cosignSig(repo, sbom.Digest, "sig", "signature of the sbom")
	n1 := g.image(repo, "", &a, artifact.MediaTypeNotarySignature, "notation 1")
	n2 := g.image(repo, "", &a, artifact.MediaTypeNotarySignature, "notation 2")
	idx := g.fallback(repo, a.Digest, n1, n2)
	bSig := g.cosignSig(repo, b.Digest, "sig", "signature of b")

	if got, want := g.tagArtifacts(repo, a.Digest), []digest.Digest{sig.Digest, att.Digest, sbom.Digest, idx.Digest, n1.Digest, n2.Digest}; !sameSet(got, want) || len(got) != len(want) || !slices.IsSorted(got) {
		t.Fatalf("TagArtifacts(a) = %v, want %v", got, want)
	}
	info, err := r.ManifestInfo(ctx, repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"signature": 3, "attestation": 1, "sbom": 1, "index": 1}
	if !maps.Equal(info.Artifacts, want) || !info.Signed() || info.Kind != "image" {
		t.Errorf("v1: kind %q, artifacts %v, signed %v; want image, %v, signed", info.Kind, info.Artifacts, info.Signed(), want)
	}
	sigInfo, err := r.ManifestInfo(ctx, repo, sig.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if s, e := sigInfo.ArtifactOf(); s != a.Digest.String() || e != EdgeTag || sigInfo.Kind != "signature" {
		t.Errorf("the cosign signature is an artifact of %q by %q, kind %q; want %s by tag, signature", s, e, sigInfo.Kind, a.Digest)
	}

	del, err := r.DeleteManifest(ctx, repo, a.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	gone := []digest.Digest{a.Digest, sig.Digest, att.Digest, sbom.Digest, sbomSig.Digest, n1.Digest, n2.Digest, idx.Digest}
	if del.Manifests[0] != a.Digest || !sameSet(del.Manifests, gone) || len(del.Locked) != 0 {
		t.Errorf("deleted %v (locked %v), want %v", del.Manifests, del.Locked, gone)
	}
	for _, d := range gone {
		if g.exists(repo, d) {
			t.Errorf("%s is still there", d)
		}
	}
	for _, tag := range []string{".sig", ".att", ".sbom", ""} {
		if d, ok := g.tagged(repo, reference.SchemaTag(a.Digest)+tag); ok {
			t.Errorf("tag %s%s still names %s", reference.SchemaTag(a.Digest), tag, d)
		}
	}
	if refs, err := r.Referrers(ctx, repo, a.Digest.String(), "", "", 0); err != nil || len(refs.Index.Manifests) != 0 {
		t.Errorf("referrers of the deleted image: %v, %v", refs, err)
	}
	for _, d := range []digest.Digest{b.Digest, bSig.Digest} {
		if !g.exists(repo, d) {
			t.Errorf("%s, outside the graph, is gone", d)
		}
	}
	if d, ok := g.tagged(repo, reference.SchemaTag(b.Digest)+".sig"); !ok || d != bSig.Digest {
		t.Errorf("b's signature tag names %s, %v", d, ok)
	}
}

func TestSharedTagArtifact(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testSharedTagArtifact(t, dep.open(t)) })
	}
}

// testSharedTagArtifact: one SBOM cosign attached to two images is one manifest, tagged
// after each: deleting one image takes its tag, and leaves the SBOM to the other.
func testSharedTagArtifact(t *testing.T, r *Registry) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/shared"
	a := g.image(repo, "a", nil, "", "layer a")
	b := g.image(repo, "b", nil, "", "layer b")
	sbom := g.cosignSig(repo, a.Digest, "sbom", "the same SBOM")
	if again := g.cosignSig(repo, b.Digest, "sbom", "the same SBOM"); again.Digest != sbom.Digest {
		t.Fatal("the SBOMs differ")
	}
	plan, err := r.DeletePlan(ctx, repo, a.Digest.String())
	if err != nil || !sameSet(plan.Manifests, []digest.Digest{a.Digest}) {
		t.Errorf("the plan: %v, %v; want the image alone", plan, err)
	}
	del, err := r.DeleteManifest(ctx, repo, a.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(del.Manifests, []digest.Digest{a.Digest}) {
		t.Errorf("deleted %v, want the image alone", del.Manifests)
	}
	if _, ok := g.tagged(repo, reference.SchemaTag(a.Digest)+".sbom"); ok {
		t.Error("the deleted image's SBOM tag is still there")
	}
	if d, ok := g.tagged(repo, reference.SchemaTag(b.Digest)+".sbom"); !ok || d != sbom.Digest {
		t.Errorf("the other image's SBOM tag names %s, %v", d, ok)
	}
	// Deleting the other image now takes the SBOM.
	del, err = r.DeleteManifest(ctx, repo, b.Digest.String())
	if err != nil || !sameSet(del.Manifests, []digest.Digest{b.Digest, sbom.Digest}) {
		t.Errorf("deleted %v, %v; want the other image and the SBOM", del, err)
	}
}

func TestFallbackIndexStaysTrue(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testFallbackIndexStaysTrue(t, dep.open(t)) })
	}
}

// testFallbackIndexStaysTrue: deleting a manifest a fallback index lists writes the
// index again without it, moves the tag, and removes the old index; the last one gone
// takes the tag.
func testFallbackIndexStaysTrue(t *testing.T, r *Registry) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/notation"
	a := g.image(repo, "v1", nil, "", "layer a")
	n1 := g.image(repo, "", &a, artifact.MediaTypeNotarySignature, "notation 1")
	n2 := g.image(repo, "", &a, artifact.MediaTypeNotarySignature, "notation 2")
	old := g.fallback(repo, a.Digest, n1, n2)
	tag := reference.SchemaTag(a.Digest)

	del, err := r.DeleteManifest(ctx, repo, n1.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(del.Manifests, []digest.Digest{n1.Digest, old.Digest}) {
		t.Errorf("deleted %v, want the signature and the old index", del.Manifests)
	}
	now, ok := g.tagged(repo, tag)
	if !ok || now == old.Digest {
		t.Fatalf("the fallback tag names %s (%v), want a new index", now, ok)
	}
	c, err := r.GetManifest(ctx, repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	var index ocispec.Index
	if err := json.Unmarshal(c.Bytes, &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Digest != n2.Digest || index.Annotations["example.written-by"] != "a client" ||
		index.MediaType != ocispec.MediaTypeImageIndex || c.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("the index is now %s (%s)", c.Bytes, c.MediaType)
	}
	if g.exists(repo, old.Digest) {
		t.Errorf("the old index %s is still there", old.Digest)
	}
	if got := g.tagArtifacts(repo, a.Digest); !sameSet(got, []digest.Digest{now, n2.Digest}) {
		t.Errorf("TagArtifacts(a) = %v, want the new index and the other signature", got)
	}
	// The last one gone takes the tag and the index.
	del, err = r.DeleteManifest(ctx, repo, n2.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(del.Manifests, []digest.Digest{n2.Digest, now}) {
		t.Errorf("deleted %v, want the signature and the index", del.Manifests)
	}
	if d, ok := g.tagged(repo, tag); ok {
		t.Errorf("the fallback tag still names %s", d)
	}
	if !g.exists(repo, a.Digest) {
		t.Error("the image is gone")
	}
	// An index of the repository's own is no fallback index: it keeps its children's
	// descriptors as written.
	c1 := g.image(repo, "", nil, "", "child 1")
	c2 := g.image(repo, "", nil, "", "child 2")
	own := g.index(repo, "multi", c1, c2)
	if _, err := r.DeleteManifest(ctx, repo, c1.Digest.String()); err != nil {
		t.Fatal(err)
	}
	if d, _ := g.tagged(repo, "multi"); d != own.Digest {
		t.Errorf("tag multi names %s, want %s unchanged", d, own.Digest)
	}
}

func TestTagSchemaGC(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			for _, keep := range []bool{false, true} {
				t.Run(fmt.Sprintf("keep-orphans=%v", keep), func(t *testing.T) {
					testTagSchemaGC(t, dep.open(t), keep)
				})
			}
		})
	}
}

// testTagSchemaGC: a tag-schema tag does not keep a manifest as other tags do: once its
// image is untagged, garbage collection removes the image with its signatures and
// attestations, tags and all, unless orphans are kept; another tag of its own keeps a
// signature.
func testTagSchemaGC(t *testing.T, r *Registry, keepOrphans bool) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/gc"
	a := g.image(repo, "v1", nil, "", "layer a")
	sig := g.cosignSig(repo, a.Digest, "sig", "signature of a")
	att := g.cosignSig(repo, a.Digest, "att", "attestation of a")
	b := g.image(repo, "v2", nil, "", "layer b")
	bSig := g.cosignSig(repo, b.Digest, "sig", "signature of b")
	ghost := digest.FromString("never pushed")
	orphan := g.cosignSig(repo, ghost, "sig", "signature of nothing")
	kept := g.cosignSig(repo, ghost, "att", "attestation kept by a tag")
	g.put(repo, "mine", ocispec.MediaTypeImageManifest, json.RawMessage(g.content(repo, kept)))
	if _, err := r.DeleteManifest(ctx, repo, "v1"); err != nil { // untag a
		t.Fatal(err)
	}
	later(r, time.Hour)
	if _, err := r.GC(ctx, GCOptions{KeepOrphanReferrers: keepOrphans}); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[digest.Digest]bool{
		a.Digest: false, sig.Digest: keepOrphans, att.Digest: keepOrphans, orphan.Digest: keepOrphans,
		b.Digest: true, bSig.Digest: true, kept.Digest: true,
	} {
		if got := g.exists(repo, d); got != want {
			t.Errorf("after GC, %s is there: %v, want %v", d, got, want)
		}
	}
	if _, ok := g.tagged(repo, reference.SchemaTag(a.Digest)+".sig"); ok != keepOrphans {
		t.Errorf("after GC, the orphan signature's tag is there: %v, want %v", ok, keepOrphans)
	}
}

func TestTagSchemaLocked(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testTagSchemaLocked(t, dep.open(t)) })
	}
}

// testTagSchemaLocked: a locked signature stops the cascade, and is reported.
func testTagSchemaLocked(t *testing.T, r *Registry) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/locked"
	a := g.image(repo, "v1", nil, "", "layer a")
	sig := g.cosignSig(repo, a.Digest, "sig", "signature of a")
	att := g.cosignSig(repo, a.Digest, "att", "attestation of a")
	no := false
	if _, err := r.UpdateManifest(ctx, repo, sig.Digest.String(), AttributesPatch{DeleteEnabled: &no}); err != nil {
		t.Fatal(err)
	}
	del, err := r.DeleteManifest(ctx, repo, a.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(del.Manifests, []digest.Digest{a.Digest, att.Digest}) || !sameSet(del.Locked, []digest.Digest{sig.Digest}) {
		t.Errorf("deleted %v, locked %v; want a and its attestation, the signature locked", del.Manifests, del.Locked)
	}
	if d, ok := g.tagged(repo, reference.SchemaTag(a.Digest)+".sig"); !ok || d != sig.Digest {
		t.Errorf("the locked signature's tag names %s, %v", d, ok)
	}
}

func TestFallbackIndexConcurrency(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testFallbackIndexConcurrency(t, dep.open(t)) })
	}
}

// testFallbackIndexConcurrency: 12 clients attach signatures through the fallback index
// as oras and notation do (read the index, add theirs, push it back under its tag, on
// the condition that the tag still names what they read), while 4 others delete
// signatures as they appear: afterwards the index lists exactly the signatures that
// are there.
func testFallbackIndexConcurrency(t *testing.T, r *Registry) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	const (
		repo      = "team/race"
		attachers = 12
		deleters  = 4
		each      = 4
	)
	a := g.image(repo, "v1", nil, "", "layer a")
	tag := reference.SchemaTag(a.Digest)
	var (
		mu       sync.Mutex
		attached []digest.Digest
		wg       sync.WaitGroup
		errs     = make(chan error, attachers+deleters)
		finished atomic.Bool // the attachers are done
	)
	attach := func(desc ocispec.Descriptor) error {
		for try := 0; ; try++ {
			var (
				index ocispec.Index
				cond  = Precondition{Absent: true}
			)
			c, err := r.GetManifest(ctx, repo, tag)
			switch {
			case err == nil:
				if err := json.Unmarshal(c.Bytes, &index); err != nil {
					return err
				}
				cond = Precondition{Digest: c.Digest}
			case !isCode(err, errcode.ManifestUnknown):
				return err
			default:
				index = ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
				index.SchemaVersion = 2
			}
			index.Manifests = append(index.Manifests, desc)
			b, _ := json.Marshal(index)
			_, err = r.PutManifestIf(ctx, repo, tag, ocispec.MediaTypeImageIndex, b, nil, cond)
			// Refused when another client moved the tag since, or a signature the index
			// read lists is gone since: read it again.
			if isCode(err, errcode.PreconditionFailed) || isCode(err, errcode.ManifestBlobUnknown) {
				continue
			}
			return err
		}
	}
	for i := range attachers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				sig, err := pushImage(ctx, r, repo, "", &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: a.Digest, Size: a.Size},
					artifact.MediaTypeNotarySignature, []string{fmt.Sprintf("signature %d.%d", i, j)})
				if err == nil {
					err = attach(sig)
				}
				if err != nil {
					errs <- fmt.Errorf("attacher %d: %w", i, err)
					return
				}
				mu.Lock()
				attached = append(attached, sig.Digest)
				mu.Unlock()
			}
		}()
	}
	var dwg sync.WaitGroup
	for i := range deleters {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for deleted := 0; deleted < each; { // attachers attach more than deleters delete
				mu.Lock()
				var d digest.Digest
				if len(attached) > 0 { // take one, so that each delete is of a signature that is there
					k := rng.IntN(len(attached))
					d = attached[k]
					attached = slices.Delete(attached, k, k+1)
				}
				mu.Unlock()
				if d == "" && finished.Load() {
					return // an attacher failed: nothing more comes
				}
				if d == "" {
					time.Sleep(time.Millisecond)
					continue
				}
				if _, err := r.DeleteManifest(ctx, repo, d.String()); err != nil {
					errs <- fmt.Errorf("deleter %d: %w", i, err)
					return
				}
				deleted++
			}
		}()
	}
	wg.Wait()
	finished.Store(true)
	dwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	refs, err := r.Referrers(ctx, repo, a.Digest.String(), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var there []digest.Digest
	for _, d := range refs.Index.Manifests {
		there = append(there, d.Digest)
	}
	var listed []digest.Digest
	c, err := r.GetManifest(ctx, repo, tag)
	switch {
	case err == nil:
		var index ocispec.Index
		if err := json.Unmarshal(c.Bytes, &index); err != nil {
			t.Fatal(err)
		}
		for _, d := range index.Manifests {
			listed = append(listed, d.Digest)
		}
	case !isCode(err, errcode.ManifestUnknown):
		t.Fatal(err)
	}
	if !sameSet(listed, there) || len(listed) != len(there) {
		t.Errorf("the fallback index lists %d signatures %v; %d are there %v", len(listed), listed, len(there), there)
	}
	if want := (attachers - deleters) * each; len(there) != want {
		t.Errorf("%d signatures are there, want %d attached less %d deleted", len(there), want, deleters*each)
	}
}

// BenchmarkTagSchemaCascade deletes an image with 1,000 tag-schema artifacts (cosign
// tags, as a long-lived image gathers signatures), in repositories with few and with
// many other manifests: the cost follows the graph, not the repository.
func BenchmarkTagSchemaCascade(b *testing.B) {
	const artifacts = 1000
	for _, fillers := range []int{100, 10_000} {
		b.Run(fmt.Sprint("fillers=", fillers), func(b *testing.B) {
			r := openEmbedded(b)
			ctx := b.Context()
			const repo = "bench/cascade"
			put := func(ms []*metastore.Manifest, tags map[digest.Digest]string) {
				for chunk := range slices.Chunk(ms, 500) {
					err := r.meta.Update(ctx, func(tx metastore.Tx) error {
						for _, m := range chunk {
							if err := tx.PutManifest(ctx, m); err != nil {
								return err
							}
							if tag, ok := tags[m.Digest]; ok {
								if err := tx.SetTag(ctx, repo, tag, m.Digest); err != nil {
									return err
								}
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			var fill []*metastore.Manifest
			for i := range fillers {
				fill = append(fill, benchManifest(repo, fmt.Sprint("filler ", i)))
			}
			put(fill, nil)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				subject := benchManifest(repo, fmt.Sprint("image ", i))
				ms := []*metastore.Manifest{subject}
				tags := map[digest.Digest]string{subject.Digest: fmt.Sprint("v", i)}
				for j := range artifacts {
					m := benchManifest(repo, fmt.Sprintf("signature %d of %d", j, i))
					ms = append(ms, m)
					tags[m.Digest] = fmt.Sprintf("%s.sig%d", reference.SchemaTag(subject.Digest), j)
				}
				put(ms, tags)
				b.StartTimer()
				del, err := r.DeleteManifest(ctx, repo, subject.Digest.String())
				if err != nil || len(del.Manifests) != artifacts+1 {
					b.Fatalf("deleted %d manifests, %v; want %d", len(del.Manifests), err, artifacts+1)
				}
			}
		})
	}
}

// benchManifest is a small image manifest of repo, distinct for each name; the blobs it
// names need not exist for the store.
func benchManifest(repo, name string) *metastore.Manifest {
	b := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":2},"layers":[],"annotations":{"n":%q}}`,
		ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, digest.FromString("config"), name)
	return &metastore.Manifest{Repo: repo, Digest: digest.FromBytes(b), MediaType: ocispec.MediaTypeImageManifest,
		Size: int64(len(b)), Content: b, ArtifactType: ocispec.MediaTypeImageConfig, Kind: "image"}
}

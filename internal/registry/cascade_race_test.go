package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/reference"
)

// TestCascadeRacingAttach races a cascade delete of a subject S against an attach to S
// and an attach to S's signature, 150 times over (30 with -short). An attach to S after S went is legal
// (a subject need not exist yet), so the pair cannot be serialized away: the attach may
// leave a referrer whose subject is gone, by its subject field or by a tag of the
// referrers tag schema. The next collection, its grace period passed, removes every
// such orphan, and nothing else.
func TestCascadeRacingAttach(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testCascadeRacingAttach(t, dep.open(t)) })
	}
}

func testCascadeRacingAttach(t *testing.T, r *Registry) {
	ctx := t.Context()
	const (
		repo     = "race/attach"
		parallel = 6
	)
	triples := 150
	if testing.Short() {
		triples = 30 // the races, not their number: a quick run of the package
	}
	// What stays: a tagged image with a signature, untouched by the races.
	keeper, err := pushImage(ctx, r, repo, "keeper", nil, "", []string{"keeper layer"})
	if err != nil {
		t.Fatal(err)
	}
	keeperSig, err := pushImage(ctx, r, repo, "", &keeper, typeSig, []string{"signature of the keeper"})
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		subjects []digest.Digest // the deleted subjects and their signatures
		attached []digest.Digest // what the attaches pushed
		errs     []error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range triples {
		s, err := pushImage(ctx, r, repo, fmt.Sprintf("s%d", i), nil, "", []string{fmt.Sprintf("layer of subject %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		sig, err := pushImage(ctx, r, repo, "", &s, typeSig, []string{fmt.Sprintf("signature of subject %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, s.Digest, sig.Digest)
		// A third of the triples attach by subject, a third by a tag of the referrers tag
		// schema (as cosign does by default), and a third by the schema's fallback index
		// (as notation does for registries without the referrers API).
		how := i % 3
		// The attaches' blobs are there before the race, as a client uploads them
		// before it pushes the manifest: the race is of the manifest pushes and the
		// delete.
		for _, what := range []string{fmt.Sprintf("attached to subject %d", i), fmt.Sprintf("attached to the signature of subject %d", i)} {
			for _, c := range []string{"config " + fmt.Sprint([]string{what}), what} {
				if _, err := r.PutBlob(ctx, repo, digest.FromString(c).String(), Chunk{Body: strings.NewReader(c), Start: -1, Length: int64(len(c))}); err != nil {
					t.Fatal(err)
				}
			}
		}
		attach := func(to ocispec.Descriptor, what string) {
			defer wg.Done()
			var (
				d   ocispec.Descriptor
				err error
			)
			switch how {
			case 0:
				d, err = pushImage(ctx, r, repo, "", &to, typeSBOMRace, []string{what})
			case 1:
				d, err = pushImage(ctx, r, repo, reference.SchemaTag(to.Digest)+".att", nil, "", []string{what})
			case 2:
				if d, err = pushImage(ctx, r, repo, "", nil, typeSBOMRace, []string{what}); err == nil {
					var ix ocispec.Descriptor
					ix, err = pushIndex(ctx, r, repo, reference.SchemaTag(to.Digest), d)
					if err == nil {
						mu.Lock()
						attached = append(attached, ix.Digest)
						mu.Unlock()
					}
				}
			}
			if err != nil {
				fail(fmt.Errorf("attach %s: %w", what, err))
				return
			}
			mu.Lock()
			attached = append(attached, d.Digest)
			mu.Unlock()
		}
		sem <- struct{}{}
		start := make(chan struct{})
		wg.Add(3)
		go func() {
			defer wg.Done()
			<-start
			if _, err := r.DeleteManifest(ctx, repo, s.Digest.String()); err != nil {
				fail(fmt.Errorf("delete subject %d: %w", i, err))
			}
		}()
		go func() { <-start; attach(s, fmt.Sprintf("attached to subject %d", i)) }()
		go func() { <-start; attach(sig, fmt.Sprintf("attached to the signature of subject %d", i)) }()
		go func() {
			close(start)
			wg.Wait() // of this triple and those before it: a bound on those in flight
			<-sem
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// What the races left: the deleted subjects are gone; attaches that came after
	// their subject's delete are orphans.
	_, all := reachable(t, r)
	var orphans []string
	for _, d := range attached {
		if _, ok := all[repo][d]; ok {
			orphans = append(orphans, repo+"@"+d.String())
		}
	}
	for _, d := range subjects {
		if _, ok := all[repo][d]; ok {
			t.Errorf("the deleted subject (or its signature) %s is still there", d)
		}
	}
	t.Logf("%d of %d attaches left orphans; the cascades took the others", len(orphans), len(attached))

	later(r, 2*time.Hour)
	rep, err := r.GC(ctx, GCOptions{Delay: time.Hour})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	slices.Sort(orphans)
	if got := slices.Sorted(slices.Values(rep.Manifests)); !slices.Equal(got, orphans) {
		t.Errorf("GC removed manifests\n%v\nwant the orphans\n%v", got, orphans)
	}
	_, all = reachable(t, r)
	keys := map[string]bool{}
	for d := range all[repo] {
		keys[reference.SchemaKeyOf(d)] = true
	}
	for d, n := range all[repo] {
		if _, ok := all[repo][n.Subject]; n.Subject != "" && !ok {
			t.Errorf("referrer %s of the deleted %s survived the collection", d, n.Subject)
		}
		for _, k := range n.TagSubjects {
			if !keys[k] {
				t.Errorf("tag-schema artifact %s of the deleted %s survived the collection", d, k)
			}
		}
	}
	for _, d := range []digest.Digest{keeper.Digest, keeperSig.Digest} {
		if _, ok := all[repo][d]; !ok {
			t.Errorf("the collection removed %s, which stays", d)
		}
	}
	if len(all[repo]) != 2 {
		t.Errorf("after the collection the repository holds %d manifests, want the keeper and its signature", len(all[repo]))
	}
	checkReachable(t, r)
	if c, err := r.GetManifest(ctx, repo, "keeper"); err != nil || c.Digest != keeper.Digest {
		t.Errorf("keeper: %v", err)
	}
}

// pushIndex pushes an image index of children under tag.
func pushIndex(ctx context.Context, r *Registry, repo, tag string, children ...ocispec.Descriptor) (ocispec.Descriptor, error) {
	v := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: children}
	v.SchemaVersion = 2
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := r.PutManifest(ctx, repo, tag, ocispec.MediaTypeImageIndex, b, nil); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("put index: %w", err)
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b))}, nil
}

const (
	typeSig      = "application/vnd.dev.cosign.artifact.sig.v1+json"
	typeSBOMRace = "application/spdx+json"
)

package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/graft-registry/graft/internal/clienttest"
)

// dropPolicy keeps, of the drop-* tags of each repository under push/, only the
// newest; no rule removes the keep-* tags.
const dropPolicy = `retention:
  - name: drop
    repositories: ["push/**"]
    keep-tags: {match: ["drop-*"], last: 1}
`

func TestGCAmongPushers(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		// The servers collect too, under the same policy, every few seconds.
		testGCAmongPushers(t, d.start(t, dropPolicy+"gc:\n  interval: 3s\n"))
	})
}

// pushed is what a pusher pushed under a tag and the registry acknowledged: an image
// and an SBOM referring to it.
type pushed struct {
	repo, tag   string
	image, sbom digest.Digest
}

func (p pushed) keep() bool { return strings.HasPrefix(p.tag, "keep-") }

// testGCAmongPushers: 16 clients push releases (an image by tag, then an SBOM whose
// subject it is) with oras-go, tagged keep-* and drop-* in turn, into four
// repositories, while `graft gc` runs in a loop, with the default grace period, under a
// policy that keeps only the newest drop-* tag (and the servers collect under the same
// policy): no run removes anything, and every release acknowledged stays where it was
// pushed and pulls completely with its SBOM. A run with no grace period after the
// pushes removes exactly the older drop-* tags and their graphs, and leaves each
// repository its keep-* releases and its newest drop-* release, whole.
//
// The runs among the pushes keep the grace period: with none, a run may delete the
// bytes of a blob whose upload is still being completed (graft gc's contract: nothing
// younger than gc.delay is touched), and on a busy machine a completion takes seconds.
func testGCAmongPushers(t *testing.T, r *registry) {
	const (
		pushers = 16
		repos   = 4
		// Each pusher pushes at least minEach releases, and goes on until minRuns
		// collections have ended while it pushed and each server collected once: pushes
		// fast enough end before the servers' first periodic collection otherwise.
		minEach, minRuns, maxEach = 4, 2, 100
	)
	c := clienttest.New(t)
	config := r.gcConfig(t, "drop", dropPolicy)
	ctx := t.Context()
	var (
		runs    atomic.Int32
		gcEnded atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		all     []pushed
		errs    = make(chan error, pushers+1)
		done    = make(chan struct{})
	)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		defer gcEnded.Store(true)
		for {
			select {
			case <-done:
				return
			default:
			}
			out, err := c.Run(nil, "graft", append([]string{"gc", "--config", config, "-o", "json"}, r.admin...)...)
			if err != nil {
				errs <- err
				return
			}
			var rep gcReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				errs <- fmt.Errorf("graft gc: %v\n%s", err, out)
				return
			}
			if len(rep.Tags)+len(rep.Manifests)+len(rep.Links)+len(rep.Blobs) > 0 {
				errs <- fmt.Errorf("a collection among the pushes removed tags %q, manifests %q, links %q, blobs %q",
					rep.Tags, rep.Manifests, rep.Links, rep.Blobs)
			}
			runs.Add(1)
		}
	}()
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("push/%d", p%repos)
			repo, err := remote.NewRepository(r.Addr + "/" + name)
			if err != nil {
				errs <- err
				return
			}
			repo.PlainHTTP = true
			start := runs.Load()
			for i := 0; i < maxEach && (i < minEach || (runs.Load() < start+minRuns || !r.collected()) && !gcEnded.Load()); i++ {
				kind := "keep"
				if i%2 == 1 {
					kind = "drop"
				}
				rel, err := pushRelease(ctx, repo, fmt.Sprintf("%s-p%d-%d", kind, p, i))
				if err != nil {
					errs <- fmt.Errorf("pusher %d: %w", p, err)
					return
				}
				mu.Lock()
				all = append(all, rel)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(done)
	<-collected
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d releases pushed among %d collections", len(all), runs.Load())
	if t.Failed() {
		return
	}
	for _, rel := range all {
		wantRelease(t, r, rel)
	}
	for _, s := range r.servers {
		if log := s.Log(); strings.Contains(log, "garbage collection failed") || !strings.Contains(log, collectionLogged) {
			t.Errorf("the server's collections did not all run and succeed:\n%s", log)
		}
	}

	// The grace period waived, the policy keeps the keep-* releases and the newest
	// drop-* release of each repository, and nothing else.
	rep := r.gc(t, c, config, "--gc-delay", "0")
	var goneTags, goneManifests []string
	for i := range repos {
		name := fmt.Sprintf("push/%d", i)
		var want []string
		var manifests []digest.Digest
		drop := map[string]pushed{}
		for _, rel := range all {
			switch {
			case rel.repo != name:
			case rel.keep():
				want = append(want, rel.tag)
				manifests = append(manifests, rel.image, rel.sbom)
			default:
				drop[rel.tag] = rel
			}
		}
		var drops []string
		for _, tag := range r.Tags(t, name) {
			if m, _ := path.Match("drop-*", tag); m {
				drops = append(drops, tag)
			}
		}
		if len(drops) != 1 {
			t.Errorf("%s keeps the drop-* tags %q, want one", name, drops)
			continue
		}
		kept, ok := drop[drops[0]]
		if !ok {
			t.Errorf("%s keeps %s, which no pusher pushed", name, drops[0])
			continue
		}
		wantRelease(t, r, kept)
		for _, rel := range all {
			if rel.repo == name && rel.keep() {
				wantRelease(t, r, rel)
			}
		}
		for _, rel := range drop {
			if rel != kept {
				goneTags = append(goneTags, name+":"+rel.tag)
				goneManifests = append(goneManifests, inRepo(name, rel.image, rel.sbom)...)
			}
		}
		wantSet(t, "the tags of "+name, r.Tags(t, name), append(want, kept.tag))
		wantSet(t, "the manifests of "+name, slices.Collect(maps.Keys(r.manifests(t, name))), append(manifests, kept.image, kept.sbom))
	}
	wantSet(t, "the tags the run with no grace period removed", rep.Tags, goneTags)
	wantSet(t, "the manifests the run with no grace period removed", rep.Manifests, goneManifests)
}

// wantRelease checks that rel is where it was pushed: its tag names its image, whose
// only referrer is its SBOM, and both pull completely.
func wantRelease(t *testing.T, r *registry, rel pushed) {
	t.Helper()
	if got := r.resolve(t, rel.repo, rel.tag); got != rel.image {
		t.Errorf("%s:%s names %s, want %s as pushed", rel.repo, rel.tag, got, rel.image)
	}
	if refs := digestsOf(r.Referrers(t, rel.repo, rel.image)); len(refs) != 1 || refs[0] != rel.sbom {
		t.Errorf("the referrers of %s:%s are %v, want its SBOM %s", rel.repo, rel.tag, refs, rel.sbom)
	}
	r.pullsCompletely(t, rel.repo, rel.tag)
	r.pullsCompletely(t, rel.repo, rel.sbom.String())
}

// pushRelease pushes, as `oras push` and `oras attach` do, an image of one layer
// tagged tag (its manifest and tag in one request), then an SBOM whose subject it is.
func pushRelease(ctx context.Context, repo *remote.Repository, tag string) (pushed, error) {
	rel := pushed{repo: repo.Reference.Repository, tag: tag}
	image, err := pushArtifact(ctx, repo, tag, "application/vnd.graft.test.release", nil, "layer of "+rel.repo+":"+tag)
	if err != nil {
		return rel, err
	}
	sbom, err := pushArtifact(ctx, repo, "", "application/spdx+json", &image,
		`{"spdxVersion":"SPDX-2.3","name":"sbom of `+rel.repo+":"+tag+`"}`)
	if err != nil {
		return rel, err
	}
	rel.image, rel.sbom = image.Digest, sbom.Digest
	return rel, nil
}

// pushArtifact pushes an artifact manifest of artifactType with one layer of data and
// the empty config, tagged tag ("" for none).
func pushArtifact(ctx context.Context, repo *remote.Repository, tag, artifactType string, subject *ocispec.Descriptor,
	data string) (ocispec.Descriptor, error) {
	push := func(desc ocispec.Descriptor, b []byte) error { return repo.Push(ctx, desc, bytes.NewReader(b)) }
	layer := content.NewDescriptorFromBytes(artifactType+".layer", []byte(data))
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType, Config: ocispec.DescriptorEmptyJSON, Layers: []ocispec.Descriptor{layer}, Subject: subject}
	b, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, b)
	desc.ArtifactType = artifactType
	if err := push(ocispec.DescriptorEmptyJSON, ocispec.DescriptorEmptyJSON.Data); err != nil {
		return desc, err
	}
	if err := push(layer, []byte(data)); err != nil {
		return desc, err
	}
	if tag == "" {
		return desc, push(desc, b)
	}
	return desc, repo.PushReference(ctx, desc, bytes.NewReader(b), tag)
}

// collectionLogged is what a server logs when a periodic collection ends.
const collectionLogged = `"msg":"garbage collection"`

// collected reports whether every server of r logged the end of a periodic collection.
func (r *registry) collected() bool {
	for _, s := range r.servers {
		if !strings.Contains(s.Log(), collectionLogged) {
			return false
		}
	}
	return true
}

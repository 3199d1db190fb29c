package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/graft-registry/graft/internal/clienttest"
)

// tightPolicy keeps only the newest tag of each repository under push/.
const tightPolicy = `retention:
  - name: tight
    repositories: ["push/**"]
    keep-tags: {match: ["*"], last: 1}
`

func TestGCAmongPushers(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		// The servers collect too, under the same policy, every few seconds.
		testGCAmongPushers(t, d.start(t, tightPolicy+"gc:\n  interval: 4s\n"))
	})
}

// pushed is what a pusher pushed under a tag: an image and an SBOM referring to it.
type pushed struct {
	repo, tag   string
	image, sbom digest.Digest
}

// testGCAmongPushers: `graft gc`, run in a loop with the default grace period and a
// policy that keeps one tag per repository, while 16 clients push images and their
// SBOMs with oras-go (and the servers collect under the same policy), removes nothing:
// every tag pushed stays where it was pushed, and pulls completely with its SBOM. Once
// the grace period is waived, the policy keeps the newest tag of each repository and
// its graph, and nothing else.
func testGCAmongPushers(t *testing.T, r *registry) {
	const (
		pushers = 16
		repos   = 4
		// Each pusher pushes at least minEach releases, and goes on until minRuns
		// collections have ended while it pushed.
		minEach, minRuns, maxEach = 3, 2, 100
	)
	c := clienttest.New(t)
	config := r.gcConfig(t, "tight", tightPolicy)
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
			for i := 0; i < maxEach && (i < minEach || runs.Load() < start+minRuns && !gcEnded.Load()); i++ {
				rel, err := pushRelease(ctx, repo, fmt.Sprintf("p%d-%d", p, i))
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

	newest := map[string]pushed{}
	for _, rel := range all {
		if got := r.resolve(t, rel.repo, rel.tag); got != rel.image {
			t.Errorf("%s:%s names %s, want %s as pushed", rel.repo, rel.tag, got, rel.image)
		}
		if refs := digestsOf(r.Referrers(t, rel.repo, rel.image)); len(refs) != 1 || refs[0] != rel.sbom {
			t.Errorf("the referrers of %s:%s are %v, want its SBOM %s", rel.repo, rel.tag, refs, rel.sbom)
		}
		r.pullsCompletely(t, rel.repo, rel.tag)
		r.pullsCompletely(t, rel.repo, rel.sbom.String())
	}
	for _, s := range r.servers {
		if log := s.Log(); strings.Contains(log, "garbage collection failed") || !strings.Contains(log, `"msg":"garbage collection"`) {
			t.Errorf("the server's collections did not all run and succeed:\n%s", log)
		}
	}

	// The grace period waived, the policy keeps the newest tag of each repository.
	rep := r.gc(t, c, config, "--gc-delay", "0")
	for i := range repos {
		name := fmt.Sprintf("push/%d", i)
		tags := r.Tags(t, name)
		if len(tags) != 1 {
			t.Errorf("%s keeps the tags %q, want one", name, tags)
			continue
		}
		for _, rel := range all {
			if rel.repo == name && rel.tag == tags[0] {
				newest[name] = rel
			}
		}
		kept, ok := newest[name]
		if !ok {
			t.Errorf("%s keeps %s, which no pusher pushed", name, tags[0])
			continue
		}
		wantSet(t, "the manifests "+name+" keeps", slices.Collect(maps.Keys(r.manifests(t, name))), []digest.Digest{kept.image, kept.sbom})
		r.pullsCompletely(t, name, kept.tag)
	}
	var tags, manifests []string
	for _, rel := range all {
		if newest[rel.repo] != rel {
			tags = append(tags, rel.repo+":"+rel.tag)
			manifests = append(manifests, inRepo(rel.repo, rel.image, rel.sbom)...)
		}
	}
	wantSet(t, "the tags the collection with no grace period removed", rep.Tags, tags)
	wantSet(t, "the manifests the collection with no grace period removed", rep.Manifests, manifests)
}

// pushRelease pushes, as `oras push` and `oras attach` do, an image of one layer
// tagged tag, then an SBOM whose subject it is.
func pushRelease(ctx context.Context, repo *remote.Repository, tag string) (pushed, error) {
	rel := pushed{repo: repo.Reference.Repository, tag: tag}
	push := func(mediaType, data string) (ocispec.Descriptor, error) {
		desc := content.NewDescriptorFromBytes(mediaType, []byte(data))
		return desc, repo.Push(ctx, desc, bytes.NewReader([]byte(data)))
	}
	layer, err := push(ocispec.MediaTypeImageLayer, "layer of "+rel.repo+":"+tag)
	if err != nil {
		return rel, err
	}
	image, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.graft.test.release",
		oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		return rel, err
	}
	if err := repo.Tag(ctx, image, tag); err != nil {
		return rel, err
	}
	doc, err := push("application/spdx+json", `{"spdxVersion":"SPDX-2.3","name":"sbom of `+rel.repo+":"+tag+`"}`)
	if err != nil {
		return rel, err
	}
	sbom, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/spdx+json",
		oras.PackManifestOptions{Subject: &image, Layers: []ocispec.Descriptor{doc}})
	if err != nil {
		return rel, err
	}
	rel.image, rel.sbom = image.Digest, sbom.Digest
	return rel, nil
}

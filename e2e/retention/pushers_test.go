package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"oras.land/oras-go/v2/registry/remote/errcode"

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
// repositories, while `graft gc` runs in a loop under a policy that keeps only the
// newest drop-* tag, in turn with the default grace period and with none (and the
// servers collect under the same policy). The runs with the grace period remove
// nothing; those with none remove drop-* tags and their graphs, never a keep-* tag
// nor the graph of one. Every keep-* release acknowledged stays where it was pushed,
// and pulls completely with its SBOM. A run with none after the pushes leaves each
// repository its keep-* releases and one drop-* release, and nothing else.
//
// With no grace period a collection may take a blob a pusher uploaded and has yet to
// name in a manifest: the push of the manifest is then refused (BLOB_UNKNOWN or
// MANIFEST_BLOB_UNKNOWN), nothing is acknowledged, and the pusher pushes again.
func testGCAmongPushers(t *testing.T, r *registry) {
	const (
		pushers = 16
		repos   = 4
		// Each pusher pushes at least minEach releases, and goes on until a
		// collection with no grace period that started after its first drop-*
		// release was acknowledged has ended.
		minEach, maxEach = 4, 60
	)
	c := clienttest.New(t)
	config := r.gcConfig(t, "drop", dropPolicy)
	ctx := t.Context()
	var (
		started, ended atomic.Int32 // collections with no grace period
		gcEnded        atomic.Bool
		retries        atomic.Int32
		wg             sync.WaitGroup
		mu             sync.Mutex
		all            []pushed
		removed        []*gcReport // by the collections with no grace period
		errs           = make(chan error, pushers+1)
		done           = make(chan struct{})
	)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		defer gcEnded.Store(true)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			args := append([]string{"gc", "--config", config, "-o", "json"}, r.admin...)
			noGrace := i%2 == 0
			if noGrace {
				args = append(args, "--gc-delay", "0")
				started.Add(1)
			}
			out, err := c.Run(nil, "graft", args...)
			if err != nil {
				errs <- err
				return
			}
			var rep gcReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				errs <- fmt.Errorf("graft gc: %v\n%s", err, out)
				return
			}
			if noGrace {
				mu.Lock()
				removed = append(removed, &rep)
				mu.Unlock()
				ended.Add(1)
			} else if len(rep.Tags)+len(rep.Manifests)+len(rep.Links)+len(rep.Blobs) > 0 {
				errs <- fmt.Errorf("a collection with the grace period removed tags %q, manifests %q, links %q, blobs %q",
					rep.Tags, rep.Manifests, rep.Links, rep.Blobs)
			}
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
			mark := int32(-1) // the collections started when the first drop-* was acknowledged
			for i := 0; i < maxEach && (i < minEach || mark < 0 || ended.Load() <= mark && !gcEnded.Load()); i++ {
				kind := "keep"
				if i%2 == 1 {
					kind = "drop"
				}
				rel, err := pushRelease(ctx, repo, fmt.Sprintf("%s-p%d-%d", kind, p, i), &retries)
				if err != nil {
					errs <- fmt.Errorf("pusher %d: %w", p, err)
					return
				}
				mu.Lock()
				all = append(all, rel)
				mu.Unlock()
				if kind == "drop" && mark < 0 {
					mark = started.Load()
				}
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
	var tagsGone int
	for _, rep := range removed {
		tagsGone += len(rep.Tags)
	}
	t.Logf("%d releases pushed (%d pushes again after a collection took a blob) among %d collections with no grace period, which removed %d tags",
		len(all), retries.Load(), ended.Load(), tagsGone)
	if t.Failed() {
		return
	}

	// What the collections with no grace period removed: drop-* tags and graphs only.
	keeps := map[string]pushed{} // by repo@digest of the image and of the SBOM
	for _, rel := range all {
		if rel.keep() {
			keeps[rel.repo+"@"+rel.image.String()], keeps[rel.repo+"@"+rel.sbom.String()] = rel, rel
		}
	}
	for _, rep := range removed {
		for _, tag := range rep.Tags {
			if _, name, _ := strings.Cut(tag, ":"); !strings.HasPrefix(name, "drop-") {
				t.Errorf("a collection with no grace period removed the tag %s", tag)
			}
		}
		for _, m := range rep.Manifests {
			if rel, ok := keeps[m]; ok {
				t.Errorf("a collection with no grace period removed %s, of %s:%s", m, rel.repo, rel.tag)
			}
		}
	}
	if tagsGone == 0 {
		t.Errorf("the collections with no grace period removed no drop-* tag while the pushers pushed")
	}
	// Every keep-* release acknowledged is where it was pushed, whole.
	for _, rel := range all {
		if rel.keep() {
			wantRelease(t, r, rel)
		}
	}
	for _, s := range r.servers {
		if log := s.Log(); strings.Contains(log, "garbage collection failed") || !strings.Contains(log, `"msg":"garbage collection"`) {
			t.Errorf("the server's collections did not all run and succeed:\n%s", log)
		}
	}

	// Once the pushers are done, a run with no grace period leaves the keep-* releases
	// and the newest drop-* release of each repository, and nothing else.
	r.gc(t, c, config, "--gc-delay", "0")
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
		rel, ok := drop[drops[0]]
		if !ok {
			t.Errorf("%s keeps %s, which no pusher pushed", name, drops[0])
			continue
		}
		wantRelease(t, r, rel)
		wantSet(t, "the tags of "+name, r.Tags(t, name), append(want, rel.tag))
		wantSet(t, "the manifests of "+name, slices.Collect(maps.Keys(r.manifests(t, name))), append(manifests, rel.image, rel.sbom))
	}
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
// A push a collection refused for a blob it took is made again, counted in retries.
func pushRelease(ctx context.Context, repo *remote.Repository, tag string, retries *atomic.Int32) (pushed, error) {
	rel := pushed{repo: repo.Reference.Repository, tag: tag}
	image, err := pushArtifact(ctx, repo, tag, "application/vnd.graft.test.release", nil, "layer of "+rel.repo+":"+tag, retries)
	if err != nil {
		return rel, err
	}
	sbom, err := pushArtifact(ctx, repo, "", "application/spdx+json", &image,
		`{"spdxVersion":"SPDX-2.3","name":"sbom of `+rel.repo+":"+tag+`"}`, retries)
	if err != nil {
		return rel, err
	}
	rel.image, rel.sbom = image.Digest, sbom.Digest
	return rel, nil
}

// pushArtifact pushes an artifact manifest of artifactType with one layer of data and
// the empty config, tagged tag ("" for none), again as long as the registry refuses it
// for a blob a collection took (at most 20 times).
func pushArtifact(ctx context.Context, repo *remote.Repository, tag, artifactType string, subject *ocispec.Descriptor,
	data string, retries *atomic.Int32) (ocispec.Descriptor, error) {
	push := func(desc ocispec.Descriptor, b []byte) error { return repo.Push(ctx, desc, bytes.NewReader(b)) }
	for attempt := 0; ; attempt++ {
		layer := content.NewDescriptorFromBytes(artifactType+".layer", []byte(data))
		m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			ArtifactType: artifactType, Config: ocispec.DescriptorEmptyJSON, Layers: []ocispec.Descriptor{layer}, Subject: subject}
		b, err := json.Marshal(m)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, b)
		desc.ArtifactType = artifactType
		if err = push(ocispec.DescriptorEmptyJSON, ocispec.DescriptorEmptyJSON.Data); err == nil {
			if err = push(layer, []byte(data)); err == nil {
				if tag != "" {
					err = repo.PushReference(ctx, desc, bytes.NewReader(b), tag)
				} else {
					err = repo.Push(ctx, desc, bytes.NewReader(b))
				}
			}
		}
		if err == nil || !blobTaken(err) || attempt == 20 {
			return desc, err
		}
		retries.Add(1)
	}
}

// blobTaken reports whether err is the registry's refusal of a manifest for a blob it
// does not have.
func blobTaken(err error) bool {
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	for _, e := range resp.Errors {
		if e.Code == "BLOB_UNKNOWN" || e.Code == "MANIFEST_BLOB_UNKNOWN" {
			return true
		}
	}
	return false
}

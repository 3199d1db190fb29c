package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
)

// The stores each test runs on are opened by deployments (deployments_test.go).

// graph pushes content through the registry's API, as clients do.
type graph struct {
	t   *testing.T
	r   *Registry
	ctx context.Context
}

func (g *graph) blob(repo string, content string) ocispec.Descriptor {
	g.t.Helper()
	d := digest.FromString(content)
	if _, err := g.r.PutBlob(g.ctx, repo, d.String(), Chunk{Body: bytes.NewReader([]byte(content)), Start: -1, Length: int64(len(content))}); err != nil {
		g.t.Fatalf("PutBlob(%s): %v", repo, err)
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(content))}
}

// image pushes an image of repo with a config and the layers named, under tag (or by
// digest when tag is ""), with subject when it is set.
func (g *graph) image(repo, tag string, subject *ocispec.Descriptor, artifactType string, layers ...string) ocispec.Descriptor {
	g.t.Helper()
	v := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       g.blob(repo, "config of "+fmt.Sprint(layers)),
		Subject:      subject,
	}
	v.SchemaVersion = 2
	v.Config.MediaType = ocispec.MediaTypeImageConfig
	for _, l := range layers {
		v.Layers = append(v.Layers, g.blob(repo, l))
	}
	return g.put(repo, tag, ocispec.MediaTypeImageManifest, v)
}

func (g *graph) index(repo, tag string, children ...ocispec.Descriptor) ocispec.Descriptor {
	g.t.Helper()
	v := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: children}
	v.SchemaVersion = 2
	return g.put(repo, tag, ocispec.MediaTypeImageIndex, v)
}

func (g *graph) put(repo, tag, mediaType string, v any) ocispec.Descriptor {
	g.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		g.t.Fatal(err)
	}
	d := digest.FromBytes(b)
	ref := tag
	if ref == "" {
		ref = d.String()
	}
	if _, err := g.r.PutManifest(g.ctx, repo, ref, mediaType, b, nil); err != nil {
		g.t.Fatalf("PutManifest(%s:%s): %v", repo, ref, err)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

func (g *graph) exists(repo string, d digest.Digest) bool {
	g.t.Helper()
	_, err := g.r.GetManifest(g.ctx, repo, d.String())
	var e *errcode.Error
	if errors.As(err, &e) && e.Code == errcode.ManifestUnknown {
		return false
	}
	if err != nil {
		g.t.Fatalf("GetManifest(%s@%s): %v", repo, d, err)
	}
	return true
}

func (g *graph) stored(d digest.Digest) bool {
	g.t.Helper()
	_, err := g.r.blobs.Stat(g.ctx, d)
	if errors.Is(err, blobstore.ErrNotFound) {
		return false
	}
	if err != nil {
		g.t.Fatalf("Stat(%s): %v", d, err)
	}
	return true
}

func (g *graph) readable(repo string, d digest.Digest) bool {
	g.t.Helper()
	_, _, err := g.r.StatBlob(g.ctx, repo, d.String())
	return err == nil
}

// later makes the registry's clock run ahead, so that everything pushed so far is older
// than the grace period.
func later(r *Registry, by time.Duration) {
	r.now = func() time.Time { return time.Now().Add(by) }
}

func TestGC(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			for _, keep := range []bool{false, true} {
				t.Run(fmt.Sprintf("keep-orphans=%v", keep), func(t *testing.T) {
					testGCRules(t, dep.open(t), keep)
				})
			}
		})
	}
}

func testGCRules(t *testing.T, r *Registry, keepOrphans bool) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/app"

	// What stays.
	a := g.image(repo, "v1", nil, "", "layer a", "shared layer")
	sbom := g.image(repo, "", &a, "application/spdx+json", "sbom of a")
	sig := g.image(repo, "", &sbom, "application/vnd.dev.cosign.artifact.sig.v1+json", "signature of the sbom")
	c1 := g.image(repo, "", nil, "", "platform 1")
	c2 := g.image(repo, "", nil, "", "platform 2")
	multi := g.index(repo, "multi", c1, c2)
	locked := g.image(repo, "", nil, "", "locked layer")
	if _, err := r.UpdateManifest(ctx, repo, locked.Digest.String(), AttributesPatch{DeleteEnabled: ptr(false)}); err != nil {
		t.Fatalf("lock: %v", err)
	}
	other := g.image("other", "v1", nil, "", "shared layer", "other layer")

	// What goes.
	b := g.image(repo, "", nil, "", "layer b", "shared layer")
	bRef := g.image(repo, "", &b, "application/spdx+json", "sbom of b")
	c3 := g.image(repo, "", nil, "", "platform 3")
	j := g.index(repo, "", c3, c1) // c1 stays: multi lists it
	orphan := g.image(repo, "", &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
		Digest: digest.FromString("never pushed"), Size: 3}, "application/spdx+json", "orphan's layer")
	stray := g.blob(repo, "a blob no manifest names")
	moved := g.image(repo, "v2", nil, "", "first v2")
	v2 := g.image(repo, "v2", nil, "", "second v2")

	lockedRepo := "frozen"
	frozen := g.image(lockedRepo, "", nil, "", "frozen layer")
	if _, err := r.UpdateRepository(ctx, lockedRepo, AttributesPatch{DeleteEnabled: ptr(false)}); err != nil {
		t.Fatalf("lock repository: %v", err)
	}

	opts := GCOptions{Delay: time.Hour, KeepOrphanReferrers: keepOrphans}

	// Within the grace period nothing goes.
	rep, err := r.GC(ctx, opts)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if len(rep.Manifests)+len(rep.Links)+len(rep.Blobs) != 0 {
		t.Fatalf("GC within the grace period removed %+v", rep)
	}

	later(r, 2*time.Hour)
	dry := opts
	dry.DryRun = true
	rep, err = r.GC(ctx, dry)
	if err != nil {
		t.Fatalf("GC dry run: %v", err)
	}
	wantGone := []digest.Digest{b.Digest, c3.Digest, j.Digest, moved.Digest}
	if !keepOrphans {
		wantGone = append(wantGone, bRef.Digest, orphan.Digest)
	}
	var want []string
	for _, d := range wantGone {
		want = append(want, repo+"@"+d.String())
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(rep.Manifests))
	if !slices.Equal(got, want) {
		t.Errorf("dry run lists manifests\n%v\nwant\n%v", got, want)
	}
	if !slices.Contains(rep.Links, repo+"@"+stray.Digest.String()) {
		t.Errorf("dry run does not list the stray blob's link: %v", rep.Links)
	}
	for _, d := range wantGone {
		if !g.exists(repo, d) {
			t.Fatalf("dry run removed %s", d)
		}
	}
	if !g.readable(repo, stray.Digest) {
		t.Fatal("dry run removed a link")
	}

	runs := testutil.ToFloat64(r.gcm.runs.WithLabelValues("ok"))
	rep, err = r.GC(ctx, opts)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	got = slices.Sorted(slices.Values(rep.Manifests))
	if !slices.Equal(got, want) {
		t.Errorf("GC removed manifests\n%v\nwant\n%v", got, want)
	}
	for _, d := range wantGone {
		if g.exists(repo, d) {
			t.Errorf("manifest %s is still there", d)
		}
	}
	for name, d := range map[string]ocispec.Descriptor{"a": a, "sbom of a": sbom, "signature of the sbom": sig,
		"c1": c1, "c2": c2, "multi": multi, "locked": locked, "v2": v2} {
		if !g.exists(repo, d.Digest) {
			t.Errorf("GC removed %s, which stays", name)
		}
	}
	if keepOrphans && (!g.exists(repo, bRef.Digest) || !g.exists(repo, orphan.Digest)) {
		t.Error("GC removed orphan referrers that gc.orphan-referrers=keep keeps")
	}
	if !g.exists("other", other.Digest) || !g.exists(lockedRepo, frozen.Digest) {
		t.Error("GC removed a manifest of another repository")
	}
	if g.readable(repo, stray.Digest) || g.stored(stray.Digest) {
		t.Error("the stray blob is still there")
	}
	if !g.stored(digest.FromString("shared layer")) || !g.readable(repo, digest.FromString("shared layer")) {
		t.Error("GC removed the shared layer, which a manifest that stays names")
	}
	// The layer only b named is gone, bytes and all: b's removal released it, and the
	// clock is past the grace period of that release too.
	if g.stored(digest.FromString("layer b")) {
		t.Error("the layer only a removed manifest named is still stored")
	}
	if !g.stored(digest.FromString("locked layer")) || !g.stored(digest.FromString("frozen layer")) {
		t.Error("GC removed a blob of a locked manifest or repository")
	}
	if got := testutil.ToFloat64(r.gcm.runs.WithLabelValues("ok")); got != runs+1 {
		t.Errorf("graft_gc_runs_total{outcome=ok} = %v, want %v", got, runs+1)
	}
	if got := testutil.ToFloat64(r.gcm.removed.WithLabelValues("blobs")); got < float64(len(rep.Blobs)) || len(rep.Blobs) == 0 {
		t.Errorf("graft_gc_removed_total{kind=blobs} = %v after a run that removed %d blobs", got, len(rep.Blobs))
	}

	// A second run finds nothing.
	rep, err = r.GC(ctx, opts)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if len(rep.Manifests)+len(rep.Links)+len(rep.Blobs) != 0 {
		t.Errorf("a second GC removed %+v", rep)
	}
}

func ptr[T any](v T) *T { return &v }

// TestGCStress pushes images with attached artifacts from 16 goroutines (30 rounds each,
// 6 with -short), moves tags, deletes images and pushes shared layers again, while
// garbage collection runs in a loop. Afterwards every manifest that is tagged or reachable pulls completely, and a
// last collection leaves nothing unreachable.
func TestGCStress(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testGCStress(t, dep.open(t)) })
	}
}

func testGCStress(t *testing.T, r *Registry) {
	ctx := t.Context()
	const pushers = 16
	rounds := 30
	if testing.Short() {
		rounds = 6 // the races, not their number: a quick run of the package
	}
	// The grace period is counted in collections, not in time, so that the test races
	// the same way on a fast machine and on a slow one: a collection keeps what was
	// linked or pushed since the collection two before it began. A push that takes
	// longer than that, from its first blob to its manifest, meets MANIFEST_BLOB_UNKNOWN
	// and uploads again.
	clock := &gcClock{grace: 2}
	r.now = clock.now
	opts := GCOptions{Delay: gcClockDelay}
	stop := make(chan struct{})
	gcDone := make(chan error, 1)
	var removed int
	go func() {
		for {
			select {
			case <-stop:
				gcDone <- nil
				return
			default:
			}
			clock.begin()
			rep, err := r.GC(ctx, opts)
			if err != nil {
				clock.stop()
				gcDone <- err
				return
			}
			removed += len(rep.Manifests) + len(rep.Links) + len(rep.Blobs)
			clock.end()
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, pushers)
	wants := make([]map[string][]digest.Digest, pushers)
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if wants[p], err = push(ctx, r, p, rounds, clock.wait); err != nil {
				errs <- fmt.Errorf("pusher %d: %w", p, err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-gcDone; err != nil {
		t.Fatalf("GC during the pushes: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	gcRuns := clock.done()
	t.Logf("%d garbage collections removed %d manifests, links and blobs during the pushes", gcRuns, removed)
	if removed == 0 {
		t.Errorf("%d garbage collections removed nothing during the pushes; the test did not race them", gcRuns)
	}

	checkPushed(t, r, wants)
	checkReachable(t, r)
	later(r, time.Hour)
	if _, err := r.GC(ctx, opts); err != nil {
		t.Fatalf("last GC: %v", err)
	}
	checkPushed(t, r, wants)
	checkReachable(t, r)
	checkNoGarbage(t, r)
}

// gcClockDelay is the grace period a test gives collections that run on a gcClock.
const gcClockDelay = time.Hour

// gcClock is a registry's clock (Registry.now) for collections that run one after the
// other, with a grace period of gcClockDelay: it makes the collection under way keep
// what changed since the collection grace rounds before it began, and nothing older,
// however long the rounds take.
type gcClock struct {
	grace   int
	mu      sync.Mutex
	cond    *sync.Cond
	starts  []time.Time // of each collection, in order
	ended   int
	stopped bool
}

// begin records that a collection begins.
func (c *gcClock) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.starts = append(c.starts, time.Now())
}

// end records that the collection under way has ended, and wakes those waiting for it.
func (c *gcClock) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended++
	if c.cond != nil {
		c.cond.Broadcast()
	}
}

// stop records that no collection will run any more, and wakes those waiting for one.
func (c *gcClock) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.cond != nil {
		c.cond.Broadcast()
	}
}

// done returns how many collections ended.
func (c *gcClock) done() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// wait waits until a collection ends after the call, or ctx ends, or collections
// stopped.
func (c *gcClock) wait(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cond == nil {
		c.cond = sync.NewCond(&c.mu)
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.cond.Broadcast()
	})
	defer stop()
	for target := c.ended + 1; c.ended < target && !c.stopped && ctx.Err() == nil; {
		c.cond.Wait()
	}
}

// now is the registry's time: gcClockDelay past the start of the collection grace
// rounds before the one under way, so that the collection's cutoff is that start. Before
// there was such a collection, it is the zero time's: nothing is old enough to go.
func (c *gcClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := len(c.starts) - 1 - c.grace; i >= 0 {
		return c.starts[i].Add(gcClockDelay)
	}
	return time.Time{}.Add(gcClockDelay)
}

// checkPushed checks that every tag a pusher left names the image it pushed last under
// it, and that the image's SBOM and the SBOM's signature are there.
func checkPushed(t *testing.T, r *Registry, wants []map[string][]digest.Digest) {
	t.Helper()
	for p, want := range wants {
		repo := stressRepo(p)
		for tag, ds := range want {
			c, err := r.GetManifest(t.Context(), repo, tag)
			if err != nil {
				t.Errorf("%s:%s: %v", repo, tag, err)
				continue
			}
			if c.Digest != ds[0] {
				t.Errorf("%s:%s names %s, want %s", repo, tag, c.Digest, ds[0])
			}
			for _, d := range ds[1:] {
				if _, err := r.GetManifest(t.Context(), repo, d.String()); err != nil {
					t.Errorf("referrer %s of %s:%s: %v", d, repo, tag, err)
				}
			}
		}
	}
}

func stressRepo(p int) string { return fmt.Sprintf("stress/%d", p%4) } // four pushers share each repository

// push is one client: each round it pushes an image sharing layers with the others
// under a tag that moves, attaches an SBOM and a signature of the SBOM, and sometimes
// deletes an image it pushed earlier; every third round it waits for a collection to
// pass, so that collections overtake it however fast either runs. A push that loses a
// blob to the collector (the client saw it in the repository, and it went before the
// manifest came) uploads it again, as clients do on MANIFEST_BLOB_UNKNOWN; one that
// a collection overtook between the commit of a blob and its link pushes the blob
// again, as clients do on a server error.
func push(ctx context.Context, r *Registry, p, rounds int, collected func(context.Context)) (map[string][]digest.Digest, error) {
	repo := stressRepo(p)
	rng := rand.New(rand.NewPCG(uint64(p), 7))
	var pushed []ocispec.Descriptor
	want := map[string][]digest.Digest{} // tag → image, SBOM, signature
	shared := make([]int, rounds)
	// pushRound pushes round j's image under its tag, with its SBOM and signature.
	pushRound := func(j int) (ocispec.Descriptor, error) {
		layers := []string{fmt.Sprintf("shared layer %d", shared[j]), fmt.Sprintf("layer %d/%d", p, j)}
		tag := fmt.Sprintf("p%d-%d", p, j%3)
		img, err := pushImage(ctx, r, repo, tag, nil, "", layers)
		if err != nil {
			return img, err
		}
		sbom, err := pushImage(ctx, r, repo, "", &img, "application/spdx+json", []string{fmt.Sprintf("sbom %d/%d", p, j)})
		if err != nil {
			return img, err
		}
		sig, err := pushImage(ctx, r, repo, "", &sbom, "application/vnd.dev.cosign.artifact.sig.v1+json",
			[]string{fmt.Sprintf("sig %d/%d", p, j)})
		if err != nil {
			return img, err
		}
		want[tag] = []digest.Digest{img.Digest, sbom.Digest, sig.Digest}
		return img, nil
	}
	for i := range rounds {
		shared[i] = rng.IntN(3)
		img, err := pushRound(i)
		if err != nil {
			return nil, err
		}
		if i > 3 && rng.IntN(4) == 0 {
			// A rollback: an older image, untagged by now and perhaps marked as garbage
			// by a collection in progress, gets its tag back.
			if _, err := pushRound(rng.IntN(i - 1)); err != nil {
				return nil, fmt.Errorf("roll back: %w", err)
			}
		}
		pushed = append(pushed, img)
		if i%3 == 2 {
			collected(ctx)
		}
		if rng.IntN(3) == 0 && len(pushed) > 1 {
			victim := pushed[rng.IntN(len(pushed)-1)]
			_, err := r.DeleteManifest(ctx, repo, victim.Digest.String())
			var e *errcode.Error
			if err != nil && !(errors.As(err, &e) && e.Code == errcode.ManifestUnknown) {
				return nil, fmt.Errorf("delete: %w", err)
			}
			for tag, ds := range want {
				if ds[0] == victim.Digest {
					delete(want, tag) // the delete took the tag and the graph under it
				}
			}
		}
	}
	return want, nil
}

// pushRetry is how long pushImage keeps pushing again a manifest whose blobs a
// collection took meanwhile: a bound in time, not in attempts, which a slow machine
// would use up sooner.
const pushRetry = 5 * time.Minute

func pushImage(ctx context.Context, r *Registry, repo, tag string, subject *ocispec.Descriptor, artifactType string, layers []string) (ocispec.Descriptor, error) {
	contents := append([]string{"config " + fmt.Sprint(layers)}, layers...)
	v := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Subject: subject}
	v.SchemaVersion = 2
	for i, c := range contents {
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString(c), Size: int64(len(c))}
		if i == 0 {
			desc.MediaType = ocispec.MediaTypeImageConfig
			v.Config = desc
		} else {
			v.Layers = append(v.Layers, desc)
		}
	}
	b, _ := json.Marshal(v)
	d := digest.FromBytes(b)
	ref := tag
	if ref == "" {
		ref = d.String()
	}
	deadline := time.Now().Add(pushRetry)
	for attempt := 0; ; attempt++ {
		for _, c := range contents {
			bd := digest.FromString(c)
			if attempt == 0 {
				if _, _, err := r.StatBlob(ctx, repo, bd.String()); err == nil {
					continue // the client sees it there and skips the upload
				}
			}
			for {
				_, err := r.PutBlob(ctx, repo, bd.String(), Chunk{Body: bytes.NewReader([]byte(c)), Start: -1, Length: int64(len(c))})
				if isCode(err, errcode.Unavailable) && time.Now().Before(deadline) {
					continue // collected between its commit and its link: a client retries a server error
				}
				if err != nil {
					return ocispec.Descriptor{}, fmt.Errorf("put blob: %w", err)
				}
				break
			}
		}
		_, err := r.PutManifest(ctx, repo, ref, ocispec.MediaTypeImageManifest, b, nil)
		var e *errcode.Error
		if err != nil && errors.As(err, &e) && e.Code == errcode.ManifestBlobUnknown && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("put manifest (attempt %d): %w", attempt+1, err)
		}
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(b))}, nil
	}
}

// reachable returns, per repository, the manifests that a tag reaches through index
// children and referrers, with everything else the store holds.
func reachable(t *testing.T, r *Registry) (live, all map[string]map[digest.Digest]metastore.Node) {
	t.Helper()
	ctx := t.Context()
	live, all = map[string]map[digest.Digest]metastore.Node{}, map[string]map[digest.Digest]metastore.Node{}
	repos, err := r.meta.RepositoryList(ctx, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range repos {
		nodes := map[digest.Digest]metastore.Node{}
		var after digest.Digest
		for {
			page, err := r.meta.Nodes(ctx, repo.Name, after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range page {
				nodes[n.Digest] = n
			}
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].Digest
		}
		all[repo.Name] = nodes
		l := map[digest.Digest]metastore.Node{}
		var walk func(d digest.Digest)
		walk = func(d digest.Digest) {
			n, ok := nodes[d]
			if !ok {
				return
			}
			if _, seen := l[d]; seen {
				return
			}
			l[d] = n
			for _, c := range n.Children {
				walk(c)
			}
			for _, m := range nodes {
				if m.Subject == d {
					walk(m.Digest)
				}
			}
		}
		for d, n := range nodes {
			if n.Tagged {
				walk(d)
			}
		}
		live[repo.Name] = l
	}
	return live, all
}

// checkReachable pulls every reachable manifest completely, verifying every blob.
func checkReachable(t *testing.T, r *Registry) {
	t.Helper()
	ctx := t.Context()
	live, _ := reachable(t, r)
	n := 0
	for repo, nodes := range live {
		for d := range nodes {
			c, err := r.GetManifest(ctx, repo, d.String())
			if err != nil {
				t.Errorf("reachable manifest %s@%s: %v", repo, d, err)
				continue
			}
			var v ocispec.Manifest
			if err := json.Unmarshal(c.Bytes, &v); err != nil {
				t.Fatalf("manifest %s: %v", d, err)
			}
			for _, desc := range append([]ocispec.Descriptor{v.Config}, v.Layers...) {
				b, err := r.OpenBlob(ctx, repo, desc.Digest.String())
				if err != nil {
					t.Errorf("blob %s of reachable manifest %s@%s: %v", desc.Digest, repo, d, err)
					continue
				}
				got, err := desc.Digest.Algorithm().FromReader(b)
				b.Close()
				if err != nil || got != desc.Digest {
					t.Errorf("blob %s of %s@%s reads as %s, %v", desc.Digest, repo, d, got, err)
				}
			}
			n++
		}
	}
	if n == 0 {
		t.Error("nothing is reachable")
	}
	t.Logf("%d reachable manifests pull completely", n)
}

// checkNoGarbage checks that only reachable manifests, and only blobs they name, remain.
func checkNoGarbage(t *testing.T, r *Registry) {
	t.Helper()
	ctx := t.Context()
	live, all := reachable(t, r)
	named := map[digest.Digest]bool{}
	for repo, nodes := range all {
		for d := range nodes {
			if _, ok := live[repo][d]; !ok {
				t.Errorf("unreachable manifest %s@%s survived the last GC", repo, d)
			}
			c, err := r.GetManifest(ctx, repo, d.String())
			if err != nil {
				t.Fatal(err)
			}
			var v ocispec.Manifest
			json.Unmarshal(c.Bytes, &v)
			for _, desc := range append([]ocispec.Descriptor{v.Config}, v.Layers...) {
				named[desc.Digest] = true
			}
		}
		if ds, err := r.meta.UnreferencedBlobs(ctx, repo, time.Now().Add(time.Hour), "", 10); err != nil || len(ds) != 0 {
			t.Errorf("repository %s still links unreferenced blobs %v (%v)", repo, ds, err)
		}
	}
	err := r.blobs.Walk(ctx, func(d digest.Digest, _ int64) error {
		if !named[d] {
			t.Errorf("blob %s, which no manifest names, survived the last GC", d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGCRechecks changes the graph between a collection's mark and its sweep: whatever
// came to be reached meanwhile stays.
func TestGCRechecks(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			r := dep.open(t)
			ctx := t.Context()
			g := &graph{t: t, r: r, ctx: ctx}
			const repo = "race"
			tagged := g.image(repo, "", nil, "", "tagged meanwhile")
			listed := g.image(repo, "", nil, "", "listed meanwhile")
			locked := g.image(repo, "", nil, "", "locked meanwhile")
			subject := g.image("elsewhere", "v1", nil, "", "subject pushed meanwhile")
			referrer := g.image(repo, "", &subject, "application/spdx+json", "its referrer")
			gone := g.image(repo, "", nil, "", "garbage all along")
			named := g.blob(repo, "named meanwhile")
			claimed := digest.FromString("uploaded meanwhile")

			r.gcPaused = func(phase, in string) {
				if in != repo {
					return
				}
				switch phase {
				case "manifests":
					g.put(repo, "v1", ocispec.MediaTypeImageManifest, json.RawMessage(g.content(repo, tagged)))
					g.index(repo, "multi", listed)
					if _, err := r.UpdateManifest(ctx, repo, locked.Digest.String(), AttributesPatch{DeleteEnabled: ptr(false)}); err != nil {
						t.Fatal(err)
					}
					if again := g.image(repo, "", nil, "", "subject pushed meanwhile"); again.Digest != subject.Digest {
						t.Fatal("the subject pushed again differs")
					}
				case "links":
					v := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: named}
					v.SchemaVersion = 2
					v.Config.MediaType = ocispec.MediaTypeImageConfig
					g.put(repo, "names-it", ocispec.MediaTypeImageManifest, v)
				}
			}
			// A clock past the grace period of everything: only what the checks in the
			// sweep see keeps a manifest or link.
			later(r, 2*time.Hour)
			rep, err := r.GC(ctx, GCOptions{Delay: time.Hour})
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			for name, d := range map[string]digest.Digest{"tagged": tagged.Digest, "listed": listed.Digest,
				"locked": locked.Digest, "referrer": referrer.Digest} {
				if !g.exists(repo, d) {
					t.Errorf("GC removed the manifest %s meanwhile (report %v)", name, rep.Manifests)
				}
			}
			if g.exists(repo, gone.Digest) {
				t.Error("GC kept a manifest that was garbage all along")
			}
			if !g.readable(repo, named.Digest) {
				t.Errorf("GC took a blob a manifest came to name meanwhile (report %v)", rep.Links)
			}

			// A claim is younger than any grace period: the real clock, no delay.
			r.now = time.Now
			// The bytes of an upload that never got linked (its process died): the
			// collection's candidate.
			commit := func() {
				u, err := r.blobs.NewUpload(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer u.Close()
				u.Append(ctx, bytes.NewReader([]byte("uploaded meanwhile")))
				if _, err := u.Commit(ctx, claimed); err != nil {
					t.Fatal(err)
				}
			}
			commit()
			r.gcPaused = func(phase, _ string) {
				if phase == "blobs" {
					// An upload of the same blob claims it and commits it, finding its
					// bytes there; it links the blob once the commit returns.
					r.gcPaused = nil
					if _, err := r.claim(ctx, claimed, 18); err != nil {
						t.Fatal(err)
					}
					commit()
				}
			}
			if _, err := r.GC(ctx, GCOptions{}); err != nil {
				t.Fatalf("GC: %v", err)
			}
			if !g.stored(claimed) {
				t.Error("GC removed a blob claimed and committed meanwhile")
			}
		})
	}
}

func (g *graph) content(repo string, d ocispec.Descriptor) []byte {
	g.t.Helper()
	c, err := g.r.GetManifest(g.ctx, repo, d.Digest.String())
	if err != nil {
		g.t.Fatal(err)
	}
	return c.Bytes
}

// A dry run lists exactly what the run then removes, on a graph where removing
// manifests frees links and, once no repository may read them, blobs.
func TestGCDryRunIsTheRun(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			for _, delay := range []time.Duration{0, time.Hour} {
				t.Run(fmt.Sprintf("delay=%v", delay), func(t *testing.T) {
					testGCDryRunIsTheRun(t, dep.open(t), delay)
				})
			}
		})
	}
}

func testGCDryRunIsTheRun(t *testing.T, r *Registry, delay time.Duration) {
	ctx := t.Context()
	g := &graph{t: t, r: r, ctx: ctx}
	g.image("team/app", "v1", nil, "", "kept layer")
	old := g.image("team/app", "", nil, "", "layer only old names", "shared layer")
	g.image("team/app", "", &old, "application/spdx+json", "sbom of old")
	g.image("team/other", "v1", nil, "", "shared layer")
	g.blob("team/app", "a blob no manifest names")
	if delay > 0 {
		later(r, 2*delay)
	}
	opts := GCOptions{Delay: delay}
	dry := opts
	dry.DryRun = true
	want, err := r.GC(ctx, dry)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	got, err := r.GC(ctx, opts)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if len(got.Manifests) != 2 || len(got.Links) < 5 || len(got.Blobs) < 4 {
		t.Errorf("the run removed %d manifests, %d links, %d blobs; want 2 manifests and what they alone named",
			len(got.Manifests), len(got.Links), len(got.Blobs))
	}
	sorted := func(s []string) []string { return slices.Sorted(slices.Values(s)) }
	if a, b := sorted(want.Manifests), sorted(got.Manifests); !slices.Equal(a, b) {
		t.Errorf("manifests: the dry run listed\n%v\nthe run removed\n%v", a, b)
	}
	if a, b := sorted(want.Links), sorted(got.Links); !slices.Equal(a, b) {
		t.Errorf("links: the dry run listed\n%v\nthe run removed\n%v", a, b)
	}
	if a, b := slices.Sorted(slices.Values(want.Blobs)), slices.Sorted(slices.Values(got.Blobs)); !slices.Equal(a, b) || want.Bytes != got.Bytes {
		t.Errorf("blobs: the dry run listed\n%v (%d bytes)\nthe run removed\n%v (%d bytes)", a, want.Bytes, b, got.Bytes)
	}
	if !g.readable("team/other", digest.FromString("shared layer")) || !g.stored(digest.FromString("shared layer")) {
		t.Error("a blob another repository reads was removed")
	}
}

package registry

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/pattern"
	"github.com/graft-registry/graft/internal/reference"
)

// clock is a test's time: the registry's and its store's, moved by hand, so that ages
// do not depend on the speed of the machine.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func setClock(t *testing.T, r *Registry) *clock {
	t.Helper()
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.now = c.Now
	s, ok := r.meta.(interface{ SetClock(func() time.Time) })
	if !ok {
		t.Fatalf("the store %T keeps no clock a test may set", r.meta)
	}
	s.SetClock(c.Now)
	return c
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// release is what a test pushes for one tag: the image, an SBOM referrer, and, when
// signed, a cosign signature by tag and one by subject.
type release struct {
	tag                      string
	image, sbom, sig, ociSig ocispec.Descriptor
}

func (g *graph) release(repo, tag string, signed bool) release {
	g.t.Helper()
	rel := release{tag: tag}
	rel.image = g.image(repo, tag, nil, "", "layer of "+tag)
	rel.sbom = g.image(repo, "", &rel.image, "application/spdx+json", "sbom of "+tag)
	if signed {
		rel.sig = g.cosignSig(repo, rel.image.Digest, "sig", "signature of "+tag)
		rel.ociSig = g.image(repo, "", &rel.image, artifact.MediaTypeCosignSignature, "oci signature of "+tag)
	}
	return rel
}

func (rel release) all() []digest.Digest {
	out := []digest.Digest{rel.image.Digest, rel.sbom.Digest}
	if rel.sig.Digest != "" {
		out = append(out, rel.sig.Digest, rel.ociSig.Digest)
	}
	return out
}

func TestRetention(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			for _, tc := range retentionCases {
				t.Run(tc.name, func(t *testing.T) { testRetention(t, dep.open(t), tc) })
			}
		})
	}
}

type retentionCase struct {
	name   string
	policy func(t *testing.T) RetentionPolicy
	// keep are the numbers (of v1 … v15) whose tags stay.
	keep []int
	// pull are the releases pulled before the collection; with sign, only those
	// releases are signed (else all are).
	pull, sign []int
}

var retentionCases = []retentionCase{
	{name: "last 10 pushed", policy: func(t *testing.T) RetentionPolicy {
		return RetentionPolicy{KeepTags: mustPatterns(t, pattern.Tags, "v*"), KeepLast: 10, Order: ByPush}
	}, keep: []int{6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
	// pushed v1 … v15 in a shuffled order; semver keeps the highest
	{name: "last 5 semver", policy: func(t *testing.T) RetentionPolicy {
		return RetentionPolicy{KeepTags: mustPatterns(t, pattern.Tags, "v*"), KeepLast: 5, Order: BySemver}
	}, keep: []int{11, 12, 13, 14, 15}},
	// the first seven were pushed 40 days ago, the others 10 days ago
	{name: "older than 30 days", policy: func(t *testing.T) RetentionPolicy {
		return RetentionPolicy{DeleteTagsOlderThan: 30 * 24 * time.Hour}
	}, keep: []int{8, 9, 10, 11, 12, 13, 14, 15}},
	{name: "pulled within a week", policy: func(t *testing.T) RetentionPolicy {
		return RetentionPolicy{DeleteTagsOlderThan: 30 * 24 * time.Hour, KeepPulledWithin: 7 * 24 * time.Hour}
	}, keep: []int{2, 5, 8, 9, 10, 11, 12, 13, 14, 15}, pull: []int{2, 5}},
	{name: "keep signed", policy: func(t *testing.T) RetentionPolicy {
		return RetentionPolicy{KeepTags: mustPatterns(t, pattern.Tags, "v*"), KeepLast: 3, KeepSigned: true}
	}, keep: []int{1, 4, 13, 14, 15}, sign: []int{1, 4}},
}

// testRetention: a repository with tags v1 … v15 (each with an SBOM and cosign
// signatures by tag and by subject), a multi-arch index, untagged leftovers and a
// locked tag, collected under one policy: exactly the expected tags and graphs stay,
// every remaining tag pulls completely, the dry run listed exactly what went, and a
// repository no policy matches keeps its tags.
func testRetention(t *testing.T, r *Registry, tc retentionCase) {
	ctx := t.Context()
	c := setClock(t, r)
	p := tc.policy(t)
	p.Name = "team"
	p.Repositories = mustPatterns(t, pattern.Repositories, "team/**")
	r.opts.Retention = []RetentionPolicy{p}
	g := &graph{t: t, r: r, ctx: ctx}
	const repo, other = "team/app", "other/app"
	day := 24 * time.Hour

	order := []int{3, 1, 2, 5, 4, 7, 6, 9, 8, 10, 12, 11, 15, 13, 14} // semver's order is not push order
	if tc.name == "last 10 pushed" {
		order = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	}
	rels := map[int]release{}
	for i, n := range order {
		if i == 7 {
			c.add(30 * day) // the first seven are 40 days old at the collection, the others 10
		}
		rels[n] = g.release(repo, fmt.Sprintf("v%d", n), tc.sign == nil || slices.Contains(tc.sign, n))
		c.add(time.Minute)
	}
	c.add(10 * day)
	// A multi-arch index tagged latest, its platforms untagged: the policy's v* does
	// not match it, and it is young.
	amd, arm := g.image(repo, "", nil, "", "amd64"), g.image(repo, "", nil, "", "arm64")
	multi := g.index(repo, "latest", amd, arm)
	// A locked tag stays, whatever the policy says.
	locked := g.image(repo, "locked", nil, "", "locked release")
	no := false
	if _, err := r.UpdateManifest(ctx, repo, "locked", AttributesPatch{DeleteEnabled: &no}); err != nil {
		t.Fatal(err)
	}
	// Untagged leftovers with nothing above them go, as garbage does.
	leftover := g.image(repo, "", nil, "", "leftover")
	// Another repository, another policy: none.
	elsewhere := g.release(other, "v1", true)
	if tc.sign != nil {
		for n, rel := range rels { // an attestation is no signature
			if !slices.Contains(tc.sign, n) {
				g.cosignSig(repo, rel.image.Digest, "att", fmt.Sprintf("attestation of v%d", n))
			}
		}
	}
	c.add(day)
	for _, n := range tc.pull {
		r.opts.TrackPulls = true
		r.RecordPull(repo, rels[n].image.Digest, fmt.Sprintf("v%d", n))
	}
	if err := r.FlushPulls(ctx); err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Hour) // past gc.delay

	dry, err := r.GC(ctx, GCOptions{Delay: time.Hour, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.GC(ctx, GCOptions{Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// The dry run listed exactly what went.
	for _, l := range [][2][]string{{dry.Tags, rep.Tags}, {dry.Manifests, rep.Manifests}, {dry.Links, rep.Links}} {
		if !slices.Equal(slices.Sorted(slices.Values(l[0])), slices.Sorted(slices.Values(l[1]))) {
			t.Errorf("the dry run listed %v; the run removed %v", l[0], l[1])
		}
	}

	keep := map[int]bool{}
	for _, n := range tc.keep {
		keep[n] = true
	}
	var wantTags []string
	for n, rel := range rels {
		for _, d := range rel.all() {
			if got := g.exists(repo, d); got != keep[n] {
				t.Errorf("v%d: %s is there: %v, want %v", n, d, got, keep[n])
			}
		}
		_, tagged := g.tagged(repo, rel.tag)
		if tagged != keep[n] {
			t.Errorf("tag v%d is there: %v, want %v", n, tagged, keep[n])
		}
		if _, sig := g.tagged(repo, reference.SchemaTag(rel.image.Digest)+".sig"); sig != (keep[n] && rel.sig.Digest != "") {
			t.Errorf("the signature tag of v%d is there: %v, want %v", n, sig, keep[n])
		}
		if keep[n] {
			wantTags = append(wantTags, rel.tag)
		} else {
			wantRemoved(t, rep, repo+":"+rel.tag, "team")
		}
	}
	for _, d := range []digest.Digest{multi.Digest, amd.Digest, arm.Digest, locked.Digest} {
		if !g.exists(repo, d) {
			t.Errorf("%s is gone", d)
		}
	}
	if g.exists(repo, leftover.Digest) {
		t.Error("the untagged leftover stays")
	}
	for _, d := range elsewhere.all() {
		if !g.exists(other, d) {
			t.Errorf("%s of the repository no policy matches is gone", d)
		}
	}
	// Every tag left pulls completely: its manifest and every blob it names.
	tags, err := r.Tags(ctx, repo, "", MaxPage)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags.Items {
		pullsCompletely(t, r, repo, tag)
	}
	wantTags = append(wantTags, "latest", "locked")
	var plain []string
	for _, tag := range tags.Items {
		if _, _, schema := reference.SchemaKey(tag); !schema {
			plain = append(plain, tag)
		}
	}
	sort.Strings(wantTags)
	if !slices.Equal(plain, wantTags) {
		t.Errorf("tags left %v, want %v", plain, wantTags)
	}
}

// wantRemoved checks that rep says which rule removed what.
func wantRemoved(t *testing.T, rep *GCReport, tag, policy string) {
	t.Helper()
	for _, d := range rep.Decisions {
		if d.Repo+":"+d.Tag == tag {
			if !d.Remove || d.Policy != policy || d.Rule == "" {
				t.Errorf("%s: decision %+v, want removed by a rule of %s", tag, d, policy)
			}
			return
		}
	}
	t.Errorf("%s: no decision in the report", tag)
}

// pullsCompletely checks that tag of repo, and everything under it, can be read.
func pullsCompletely(t *testing.T, r *Registry, repo, ref string) {
	t.Helper()
	ctx := t.Context()
	c, err := r.GetManifest(ctx, repo, ref)
	if err != nil {
		t.Errorf("pull %s:%s: %v", repo, ref, err)
		return
	}
	parsed, err := manifest.Parse(c.MediaType, c.Bytes)
	if err != nil {
		t.Errorf("%s:%s: %v", repo, ref, err)
		return
	}
	for _, b := range parsed.Blobs {
		if _, _, err := r.StatBlob(ctx, repo, b.Digest.String()); err != nil {
			t.Errorf("%s:%s: blob %s: %v", repo, ref, b.Digest, err)
		}
	}
	for _, m := range parsed.Manifests {
		pullsCompletely(t, r, repo, m.Digest.String())
	}
}

func TestRetentionDuringPushes(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testRetentionDuringPushes(t, dep.open(t)) })
	}
}

// testRetentionDuringPushes: a collection under a policy that keeps only the newest
// tag, run while 16 clients push, removes nothing a pusher just pushed: every tag
// pushed within the grace period stays and pulls completely.
func testRetentionDuringPushes(t *testing.T, r *Registry) {
	ctx := t.Context()
	c := setClock(t, r)
	r.opts.Retention = []RetentionPolicy{{Name: "tight", Repositories: mustPatterns(t, pattern.Repositories, "**"),
		KeepTags: mustPatterns(t, pattern.Tags, "*"), KeepLast: 1, DeleteTagsOlderThan: time.Minute}}
	const pushers, each = 16, 4
	var (
		wg     sync.WaitGroup
		pushed sync.Map // repo:tag → digest
		done   atomic.Bool
		errs   = make(chan error, pushers+1)
	)
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("push/%d", p%4)
			for i := range each {
				tag := fmt.Sprintf("p%d-%d", p, i)
				d, err := pushImage(ctx, r, repo, tag, nil, "", []string{tag})
				if err != nil {
					errs <- fmt.Errorf("pusher %d: %w", p, err)
					return
				}
				pushed.Store(repo+":"+tag, d.Digest)
			}
		}()
	}
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for !done.Load() {
			if _, err := r.GC(ctx, GCOptions{Delay: time.Hour}); err != nil {
				errs <- fmt.Errorf("gc: %w", err)
				return
			}
		}
	}()
	wg.Wait()
	done.Store(true)
	<-gcDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Everything was pushed within the grace period (the clock did not move): it all
	// stays.
	pushed.Range(func(k, v any) bool {
		ref := k.(string)
		repo, tag := ref[:len("push/0")], ref[len("push/0")+1:]
		info, err := r.ManifestInfo(ctx, repo, tag)
		if err != nil || info.Digest != v.(digest.Digest) {
			t.Errorf("%s: %v, %v; want %s", ref, info, err, v)
		}
		pullsCompletely(t, r, repo, tag)
		return true
	})
	// Once they are old, the policy keeps the newest tag of each repository.
	c.add(2 * time.Hour)
	if _, err := r.GC(ctx, GCOptions{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		tags, err := r.Tags(ctx, fmt.Sprintf("push/%d", i), "", MaxPage)
		if err != nil || len(tags.Items) != 1 {
			t.Errorf("push/%d keeps %v, %v; want one tag", i, tags, err)
		}
	}
}

// TestRetentionPolicyTime: a collection as of another time measures the ages and pulls
// its policy looks at from then, and still keeps what the grace period keeps by the
// clock.
func TestRetentionPolicyTime(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := openEmbedded(t)
	c := setClock(t, r)
	r.opts.TrackPulls = true
	day := 24 * time.Hour
	p := RetentionPolicy{Name: "team", DeleteTagsOlderThan: 2 * day, KeepPulledWithin: day, DeleteUntaggedOlderThan: 2 * day}
	p.Repositories = mustPatterns(t, pattern.Repositories, "team/**")
	r.opts.Retention = []RetentionPolicy{p}
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/app"
	t0 := c.Now()
	old := g.image(repo, "old", nil, "", "old")
	pulled := g.image(repo, "pulled", nil, "", "pulled")
	leftover := g.image(repo, "", nil, "", "leftover")
	c.add(day + 12*time.Hour)
	g.image(repo, "young", nil, "", "young")
	c.add(12 * time.Hour)
	r.RecordPull(repo, pulled.Digest, "pulled")
	if err := r.FlushPulls(ctx); err != nil {
		t.Fatal(err)
	}
	c.add(time.Hour) // the clock: t0 + 2d1h

	manifests := func(ds ...ocispec.Descriptor) []string {
		out := []string{}
		for _, d := range ds {
			out = append(out, repo+"@"+d.Digest.String())
		}
		return slices.Sorted(slices.Values(out))
	}
	for _, tc := range []struct {
		name      string
		at        time.Time
		delay     time.Duration
		tags      []string
		manifests []string
	}{
		{"now", time.Time{}, 0, []string{repo + ":old"}, manifests(old, leftover)},
		{"a day on", t0.Add(3*day + 30*time.Minute), 0, []string{repo + ":old", repo + ":pulled"}, manifests(old, pulled, leftover)},
		{"a day before", t0.Add(day), 0, []string{}, []string{}},
		// the grace period, by the clock, keeps what was pushed since
		{"within the grace period", t0.Add(20 * day), 2*day + 30*time.Minute, []string{repo + ":old", repo + ":pulled"},
			manifests(old, pulled, leftover)},
		{"within a longer grace period", t0.Add(20 * day), 3 * day, []string{}, []string{}},
	} {
		rep, err := r.GC(ctx, GCOptions{Delay: tc.delay, DryRun: true, PolicyTime: tc.at})
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(slices.Values(rep.Tags)); !slices.Equal(got, tc.tags) {
			t.Errorf("%s: tags removed %v, want %v", tc.name, got, tc.tags)
		}
		if got := slices.Sorted(slices.Values(rep.Manifests)); !slices.Equal(got, tc.manifests) {
			t.Errorf("%s: manifests removed %v, want %v", tc.name, got, tc.manifests)
		}
	}
}

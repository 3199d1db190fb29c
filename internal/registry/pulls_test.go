package registry

import (
	"testing"
	"time"
)

func TestPulls(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) { testPulls(t, dep.open(t)) })
	}
}

// testPulls: pulls recorded in memory reach the store at the flush, the last of them
// per manifest and tag; none before it.
func testPulls(t *testing.T, r *Registry) {
	ctx := t.Context()
	r.opts.TrackPulls = true
	g := &graph{t: t, r: r, ctx: ctx}
	const repo = "team/pulls"
	a := g.image(repo, "v1", nil, "", "layer a")
	b := g.image(repo, "v2", nil, "", "layer b")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r.now = func() time.Time { return at }
	r.RecordPull(repo, a.Digest, "v1")
	r.RecordPull(repo, b.Digest, "")
	if info, err := r.ManifestInfo(ctx, repo, "v1"); err != nil || !info.LastPulled.IsZero() {
		t.Fatalf("before the flush: %v, %v; want no pull yet", info.LastPulled, err)
	}
	at = at.Add(time.Minute)
	r.RecordPull(repo, a.Digest, "v1") // the later one counts
	if err := r.FlushPulls(ctx); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]time.Time{"v1": at, "v2": at.Add(-time.Minute)} {
		info, err := r.ManifestInfo(ctx, repo, d)
		if err != nil || !info.LastPulled.Equal(want) {
			t.Errorf("%s: last pulled %v, %v; want %v", d, info.LastPulled, err, want)
		}
	}
	tags, err := r.meta.TagList(ctx, repo, "", 10)
	if err != nil || len(tags) != 2 || !tags[0].LastPulled.Equal(at) || !tags[1].LastPulled.IsZero() {
		t.Errorf("tags: %+v, %v; want v1 pulled at %v, v2 never by its tag", tags, err, at)
	}
	// Nothing recorded: a flush writes nothing, and fails at nothing.
	if err := r.FlushPulls(ctx); err != nil {
		t.Error(err)
	}
	r.opts.TrackPulls = false
	r.RecordPull(repo, b.Digest, "v2")
	if r.pulls.last != nil {
		t.Error("pulls recorded with TrackPulls off")
	}
}

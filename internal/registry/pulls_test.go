package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
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

// TestPullsInOrder: a flush hands its pulls to the store sorted by repository,
// digest and tag, whatever the order they were made in. Replicas flushing the same
// rows in different orders deadlocked one another on PostgreSQL.
func TestPullsInOrder(t *testing.T) {
	t.Parallel()
	r := openEmbedded(t)
	r.opts.TrackPulls = true
	rec := &pullOrder{Store: r.meta}
	r.meta = rec
	var want []metastore.Pull
	for i := range 40 {
		p := metastore.Pull{Repo: fmt.Sprintf("team/r%d", i%3), Digest: digest.FromString(fmt.Sprint(i % 7)), Tag: fmt.Sprint("v", i%5)}
		if i%4 == 0 {
			p.Tag = ""
		}
		want = append(want, p)
		r.RecordPull(p.Repo, p.Digest, p.Tag)
	}
	if err := r.FlushPulls(t.Context()); err != nil {
		t.Fatal(err)
	}
	key := func(p metastore.Pull) string { return p.Repo + " " + p.Digest.String() + " " + p.Tag }
	var wantKeys, got []string
	for _, p := range want {
		wantKeys = append(wantKeys, key(p))
	}
	slices.Sort(wantKeys)
	wantKeys = slices.Compact(wantKeys) // a pull made twice is flushed once
	for _, p := range rec.got {
		got = append(got, key(p))
	}
	if !slices.Equal(got, wantKeys) {
		t.Errorf("the flush recorded\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantKeys, "\n"))
	}
}

// pullOrder is a store that notes the pulls its transactions record, in order.
type pullOrder struct {
	metastore.Store
	got []metastore.Pull
}

func (s *pullOrder) RecordPulls(ctx context.Context, ps []metastore.Pull) error {
	s.got = append(s.got, ps...)
	return s.Store.RecordPulls(ctx, ps)
}

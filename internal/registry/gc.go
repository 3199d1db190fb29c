package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// Garbage collection runs while pushes go on. It marks what stays, then removes the
// rest one item at a time, each in a transaction that checks again that the item is
// still garbage: a tag, a parent index or a push that arrived since the mark keeps it.
// A grace period protects what is younger than it: the blobs and child manifests a
// client uploaded for a manifest it has not pushed yet, and referrers pushed before
// their subject.
//
// What stays: every manifest that is tagged, locked, younger than the grace period, or
// reached from one of those through the manifests an index lists or through the
// referrers of a manifest that stays. Referrers whose subject is gone go too, unless
// GCOptions.KeepOrphanReferrers. Then the blobs a repository may read but none of its
// manifests names, and the bytes of blobs no repository may read.

// GCOptions configure a garbage collection.
type GCOptions struct {
	// Delay is the grace period.
	Delay time.Duration
	// KeepOrphanReferrers keeps manifests that have a subject whatever becomes of it.
	KeepOrphanReferrers bool
	// DryRun reports what would go and removes nothing. It leaves out what a real run
	// would free by removing manifests: the blobs those name get a grace period of
	// their own.
	DryRun bool
}

// GCReport is what a garbage collection removed, or would remove.
type GCReport struct {
	// Manifests are the manifests removed, as repo@digest.
	Manifests []string `json:"manifests"`
	// Links are the blobs taken from a repository, as repo@digest.
	Links []string `json:"links"`
	// Blobs are the blobs whose bytes were removed.
	Blobs []digest.Digest `json:"blobs"`
	// Bytes is the size of those blobs, where known.
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration"`
}

// gcBatch is how many items one transaction of the sweep removes.
const gcBatch = 100

type gcMetrics struct {
	runs      *prometheus.CounterVec
	removed   *prometheus.CounterVec
	bytes     prometheus.Counter
	duration  prometheus.Histogram
	lastClean prometheus.Gauge
}

func newGCMetrics() *gcMetrics {
	return &gcMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_gc_runs_total",
			Help: "Garbage collections by outcome (ok, error).",
		}, []string{"outcome"}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_gc_removed_total",
			Help: "What garbage collection removed: manifests, links (blobs taken from a repository) and blobs.",
		}, []string{"kind"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "graft_gc_freed_bytes_total",
			Help: "Bytes of blobs garbage collection removed.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "graft_gc_duration_seconds",
			Help:    "How long garbage collections took.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
		lastClean: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "graft_gc_last_success_timestamp_seconds",
			Help: "When the last garbage collection that succeeded ended.",
		}),
	}
}

// Collectors are the registry's metrics.
func (r *Registry) Collectors() []prometheus.Collector {
	m := r.gcm
	return []prometheus.Collector{m.runs, m.removed, m.bytes, m.duration, m.lastClean}
}

// GC collects garbage once.
func (r *Registry) GC(ctx context.Context, o GCOptions) (*GCReport, error) {
	start := r.now()
	rep := &GCReport{Manifests: []string{}, Links: []string{}, Blobs: []digest.Digest{}}
	err := r.gc(ctx, o, rep)
	rep.Duration = r.now().Sub(start)
	if !o.DryRun {
		m := r.gcm
		m.removed.WithLabelValues("manifests").Add(float64(len(rep.Manifests)))
		m.removed.WithLabelValues("links").Add(float64(len(rep.Links)))
		m.removed.WithLabelValues("blobs").Add(float64(len(rep.Blobs)))
		m.bytes.Add(float64(rep.Bytes))
		m.duration.Observe(rep.Duration.Seconds())
		if err != nil {
			m.runs.WithLabelValues("error").Inc()
		} else {
			m.runs.WithLabelValues("ok").Inc()
			m.lastClean.SetToCurrentTime()
		}
	}
	return rep, err
}

func (r *Registry) gc(ctx context.Context, o GCOptions, rep *GCReport) error {
	for repo, err := range metastore.All(ctx, r.meta.RepositoryList, metastore.Repository.Key) {
		if err != nil {
			return fmt.Errorf("gc: list repositories: %w", err)
		}
		if !deletable(repo.Attributes) {
			continue // a repository locked against deletes keeps everything
		}
		if err := r.gcManifests(ctx, o, repo.Name, rep); err != nil {
			return err
		}
		if err := r.gcLinks(ctx, o, repo.Name, rep); err != nil {
			return err
		}
	}
	return r.gcBlobs(ctx, o, rep)
}

// gcManifests removes the manifests of repo that nothing keeps.
func (r *Registry) gcManifests(ctx context.Context, o GCOptions, repo string, rep *GCReport) error {
	cutoff := r.now().Add(-o.Delay)
	nodes := map[digest.Digest]*metastore.Node{}
	var order []digest.Digest
	list := func(ctx context.Context, after digest.Digest, n int) ([]metastore.Node, error) {
		return r.meta.Nodes(ctx, repo, after, n)
	}
	for n, err := range metastore.All(ctx, list, metastore.Node.Key) {
		if err != nil {
			return fmt.Errorf("gc: manifests of %s: %w", repo, err)
		}
		nodes[n.Digest] = &n
		order = append(order, n.Digest)
	}
	// The tag-schema edges name their subjects by key: a digest, cut to 64 characters.
	byKey := make(map[string]digest.Digest, len(order))
	for _, d := range order {
		byKey[reference.SchemaKeyOf(d)] = d
	}
	referrers := map[digest.Digest][]digest.Digest{}
	subjects := map[digest.Digest][]digest.Digest{} // those of the subjects that are here
	parents := map[digest.Digest][]digest.Digest{}
	for _, d := range order {
		n := nodes[d]
		if n.Subject != "" {
			referrers[n.Subject] = append(referrers[n.Subject], d)
			subjects[d] = append(subjects[d], n.Subject)
		}
		for _, k := range n.TagSubjects {
			if s, ok := byKey[k]; ok {
				referrers[s] = append(referrers[s], d)
				subjects[d] = append(subjects[d], s)
			}
		}
		for _, c := range n.Children {
			parents[c] = append(parents[c], d)
		}
	}

	// Mark.
	live := map[digest.Digest]bool{}
	var stack []digest.Digest
	keep := func(d digest.Digest) {
		if _, ok := nodes[d]; ok && !live[d] {
			live[d] = true
			stack = append(stack, d)
		}
	}
	for _, d := range order {
		n := nodes[d]
		artifact := n.Subject != "" || len(n.TagSubjects) > 0
		if n.Tagged || !n.DeleteEnabled || !n.Updated.Before(cutoff) || (artifact && o.KeepOrphanReferrers) {
			keep(d)
		}
	}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range nodes[d].Children {
			keep(c)
		}
		for _, ref := range referrers[d] {
			keep(ref)
		}
	}

	// Sweep parents before their children and subjects before their referrers, so that
	// what a removal leaves behind is garbage when its turn comes and the check in
	// its transaction holds.
	var dead []digest.Digest
	seen := map[digest.Digest]bool{}
	var visit func(d digest.Digest)
	visit = func(d digest.Digest) {
		if seen[d] || live[d] {
			return
		}
		seen[d] = true
		for _, p := range parents[d] {
			visit(p)
		}
		for _, s := range subjects[d] {
			if _, ok := nodes[s]; ok {
				visit(s)
			}
		}
		dead = append(dead, d)
	}
	for _, d := range order {
		visit(d)
	}
	r.pause("manifests", repo)
	if o.DryRun {
		for _, d := range dead {
			rep.Manifests = append(rep.Manifests, repo+"@"+d.String())
		}
		return nil
	}
	for len(dead) > 0 {
		batch := dead[:min(gcBatch, len(dead))]
		dead = dead[len(batch):]
		var removed []digest.Digest
		err := r.meta.Update(ctx, func(tx metastore.Tx) error {
			removed = removed[:0]
			for _, d := range batch {
				ok, err := removeManifest(ctx, tx, repo, d, cutoff)
				if err != nil {
					return err
				}
				if ok {
					removed = append(removed, d)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("gc: remove manifests of %s: %w", repo, err)
		}
		for _, d := range removed {
			rep.Manifests = append(rep.Manifests, repo+"@"+d.String())
			r.log.Debug("gc removed manifest", "repo", repo, "digest", d)
		}
	}
	return nil
}

// graphWriter removes manifests from a graph.
type graphWriter interface {
	graphReader
	metastore.ManifestWriter
}

// removeManifest removes manifest d of repo when it is still garbage: not locked
// against deletes, older than cutoff, listed by no index, named by no tag but
// tag-schema tags whose subjects are gone, and, if it has a subject, the subject is
// gone.
func removeManifest(ctx context.Context, tx graphWriter, repo string, d digest.Digest, cutoff time.Time) (bool, error) {
	m, err := tx.Manifest(ctx, repo, d)
	if errors.Is(err, metastore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// The mark kept the manifests whose delete attribute is off; a write lock refuses
	// a delete too, and is looked at here.
	if !deletable(m.Attributes) || !m.Updated.Before(cutoff) {
		return false, nil
	}
	ps, err := tx.Parents(ctx, repo, d)
	if err != nil || len(ps) > 0 {
		return false, err
	}
	var subjects []digest.Digest
	if m.Subject != "" {
		subjects = append(subjects, m.Subject)
	}
	if m.TagCount > 0 {
		tags, err := tx.TagsOf(ctx, repo, d)
		if err != nil {
			return false, err
		}
		for _, t := range tags {
			key, _, ok := reference.SchemaKey(t)
			if !ok {
				return false, nil // a tag of its own
			}
			s, err := digest.Parse(key)
			if err != nil {
				return false, nil // a key cut short of a digest: its subject may be here
			}
			subjects = append(subjects, s)
		}
	}
	if len(subjects) > 0 {
		missing, err := tx.MissingManifests(ctx, repo, subjects)
		if err != nil || len(missing) < len(subjects) {
			return false, err
		}
	}
	return true, tx.DeleteManifest(ctx, repo, d)
}

// gcLinks takes from repo the blobs none of its manifests names.
func (r *Registry) gcLinks(ctx context.Context, o GCOptions, repo string, rep *GCReport) error {
	cutoff := r.now().Add(-o.Delay)
	var after digest.Digest
	for {
		ds, err := r.meta.UnreferencedBlobs(ctx, repo, cutoff, after, gcBatch)
		if err != nil {
			return fmt.Errorf("gc: blobs of %s: %w", repo, err)
		}
		if len(ds) == 0 {
			return nil
		}
		after = ds[len(ds)-1]
		r.pause("links", repo)
		if o.DryRun {
			for _, d := range ds {
				rep.Links = append(rep.Links, repo+"@"+d.String())
			}
			continue
		}
		var removed []digest.Digest
		err = r.meta.Update(ctx, func(tx metastore.Tx) error {
			removed = removed[:0]
			for _, d := range ds {
				ok, err := tx.UnlinkUnreferenced(ctx, repo, d, cutoff)
				if err != nil {
					return err
				}
				if ok {
					removed = append(removed, d)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("gc: unlink blobs of %s: %w", repo, err)
		}
		for _, d := range removed {
			rep.Links = append(rep.Links, repo+"@"+d.String())
		}
	}
}

// gcBlobs removes the bytes of blobs no repository may read: those the metadata store
// knows, and those only the blob store holds (an upload that never got linked).
func (r *Registry) gcBlobs(ctx context.Context, o GCOptions, rep *GCReport) error {
	cutoff := r.now().Add(-o.Delay)
	candidates := map[digest.Digest]int64{}
	for d, err := range metastore.All(ctx, r.meta.UnlinkedBlobs, metastore.Itself) {
		if err != nil {
			return fmt.Errorf("gc: unlinked blobs: %w", err)
		}
		candidates[d] = -1
	}
	err := r.blobs.Walk(ctx, func(d digest.Digest, size int64) error {
		if _, ok := candidates[d]; ok {
			candidates[d] = size
			return nil
		}
		_, err := r.meta.BlobRepository(ctx, d)
		if errors.Is(err, metastore.ErrNotFound) {
			candidates[d] = size
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("gc: walk blobs: %w", err)
	}
	r.pause("blobs", "")
	for d, size := range candidates {
		if o.DryRun {
			rep.Blobs = append(rep.Blobs, d)
			rep.Bytes += max(size, 0)
			continue
		}
		swept, err := r.meta.SweepBlob(ctx, d, cutoff, func(ctx context.Context) error {
			err := r.blobs.Delete(ctx, d)
			if errors.Is(err, blobstore.ErrNotFound) {
				size = -1 // a record without bytes
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("gc: remove blob %s: %w", d, err)
		}
		if swept && size >= 0 {
			rep.Blobs = append(rep.Blobs, d)
			rep.Bytes += size
			r.log.Debug("gc removed blob", "digest", d, "size", size)
		}
	}
	return nil
}

func (r *Registry) pause(phase, repo string) {
	if r.gcPaused != nil {
		r.gcPaused(phase, repo)
	}
}

// RunGC collects garbage every interval until ctx ends, logging what each run removed.
func (r *Registry) RunGC(ctx context.Context, interval time.Duration, o GCOptions) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := r.GC(ctx, o)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Error("garbage collection failed", "err", err)
			}
			continue
		}
		r.log.Info("garbage collection", "manifests", len(rep.Manifests), "links", len(rep.Links),
			"blobs", len(rep.Blobs), "bytes", rep.Bytes, "duration", rep.Duration)
	}
}

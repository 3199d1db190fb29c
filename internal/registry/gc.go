package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/graft-registry/graft/internal/artifact"
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
	// DryRun reports what a run would remove, and removes nothing: each repository's
	// removals are made in a transaction that is rolled back, so that what removing
	// manifests frees (links, then blobs) is listed as the run would find it.
	DryRun bool
	// PolicyTime, when set, is the time retention policies measure the ages of tags
	// and untagged manifests and the last pulls from, instead of the clock: what the
	// policies remove as of that day. The grace period is the clock's all the same, so
	// that nothing just pushed goes.
	PolicyTime time.Time
}

// GCReport is what a garbage collection removed, or would remove.
type GCReport struct {
	// Tags are the tags retention policies removed, as repo:tag.
	Tags []string `json:"tags"`
	// Manifests are the manifests removed, as repo@digest.
	Manifests []string `json:"manifests"`
	// Links are the blobs taken from a repository, as repo@digest.
	Links []string `json:"links"`
	// Blobs are the blobs whose bytes were removed.
	Blobs []digest.Digest `json:"blobs"`
	// Bytes is the size of those blobs, where known.
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration"`
	// Decisions say, for every tag and manifest removed, and every one a retention
	// policy kept, the rule that decided.
	Decisions []Decision `json:"decisions"`
}

// gcBatch is how many items one transaction of the sweep removes.
const gcBatch = 100

type gcMetrics struct {
	runs      *prometheus.CounterVec
	removed   *prometheus.CounterVec
	retained  *prometheus.CounterVec
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
			Help: "What garbage collection removed: tags (by retention policies), manifests, links (blobs taken from a repository) and blobs.",
		}, []string{"kind"}),
		retained: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_retention_removed_total",
			Help: "What retention policies removed, by policy: tags, and the manifests only those tags kept.",
		}, []string{"policy", "kind"}),
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
	return []prometheus.Collector{m.runs, m.removed, m.retained, m.bytes, m.duration, m.lastClean, statsCollector{r}}
}

// GC collects garbage once.
func (r *Registry) GC(ctx context.Context, o GCOptions) (*GCReport, error) {
	start := r.now()
	rep := &GCReport{Tags: []string{}, Manifests: []string{}, Links: []string{}, Blobs: []digest.Digest{}, Decisions: []Decision{}}
	err := r.gc(ctx, o, rep)
	rep.Duration = r.now().Sub(start)
	if !o.DryRun {
		m := r.gcm
		m.removed.WithLabelValues("tags").Add(float64(len(rep.Tags)))
		m.removed.WithLabelValues("manifests").Add(float64(len(rep.Manifests)))
		for _, d := range rep.Decisions {
			if d.Remove && d.Policy != "" {
				kind := "manifests"
				if d.Tag != "" {
					kind = "tags"
				}
				m.retained.WithLabelValues(d.Policy, kind).Inc()
			}
		}
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
	// unlinked are the blobs a dry run took from repositories, with those
	// repositories: the blob phase finds them as the run would.
	unlinked := map[digest.Digest][]string{}
	for repo, err := range metastore.All(ctx, r.meta.RepositoryList, metastore.Repository.Key) {
		if err != nil {
			return fmt.Errorf("gc: list repositories: %w", err)
		}
		if !deletable(repo.Attributes) {
			continue // a repository locked against deletes keeps everything
		}
		plan, err := r.planRepository(ctx, o, repo.Name)
		if err != nil {
			return err
		}
		if o.DryRun {
			if err := r.simulateRepository(ctx, o, plan, rep, unlinked); err != nil {
				return err
			}
			continue
		}
		if err := r.removeTags(ctx, plan); err != nil {
			return err
		}
		if err := r.removeManifests(ctx, plan, rep); err != nil {
			return err
		}
		if err := r.gcLinks(ctx, o, repo.Name, rep); err != nil {
			return err
		}
	}
	return r.gcBlobs(ctx, o, rep, unlinked)
}

// errRollback ends a transaction of a dry run, which must change nothing.
var errRollback = errors.New("gc: dry run")

// simulate runs fn in a transaction that is rolled back. fn may run more than once.
func (r *Registry) simulate(ctx context.Context, fn func(tx metastore.Tx) error) error {
	err := r.meta.Update(ctx, func(tx metastore.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRollback
	})
	if errors.Is(err, errRollback) {
		return nil
	}
	return err
}

// simulateRepository removes, in a transaction it rolls back, what a run removes of
// a repository: the tags and manifests of plan, as removeTags and removeManifests do,
// then the links gcLinks would find once they are gone, and reports them. The links it
// took are added to unlinked.
func (r *Registry) simulateRepository(ctx context.Context, o GCOptions, plan *repoPlan, rep *GCReport, unlinked map[digest.Digest][]string) error {
	repo := plan.repo
	var (
		tags             []Decision
		manifests, links []digest.Digest
	)
	err := r.simulate(ctx, func(tx metastore.Tx) error {
		var err error
		if tags, manifests, err = plan.untag(ctx, tx, plan.tags); err != nil {
			return err
		}
		links = links[:0]
		for _, d := range plan.dead {
			ok, err := removeManifest(ctx, tx, repo, d, plan.cutoff)
			if err != nil {
				return err
			}
			if ok {
				manifests = append(manifests, d)
			}
		}
		// The links phase starts after the manifests are gone, with a cutoff of its own.
		cutoff := r.now().Add(-o.Delay)
		r.pause("links", repo)
		list := func(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error) {
			return tx.UnreferencedBlobs(ctx, repo, cutoff, after, n)
		}
		for d, err := range metastore.All(ctx, list, metastore.Itself) {
			if err != nil {
				return err
			}
			links = append(links, d)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: dry run of %s: %w", repo, err)
	}
	plan.report(rep, tags, manifests)
	for _, d := range links {
		rep.Links = append(rep.Links, repo+"@"+d.String())
		unlinked[d] = append(unlinked[d], repo)
	}
	return nil
}

// repoPlan is what garbage collection removes of a repository, and why.
type repoPlan struct {
	reg    *Registry
	repo   string
	policy *RetentionPolicy
	// tags are the tags the policy removes.
	tags []Decision
	// dead are the manifests that nothing keeps once those tags are gone, in the order
	// they are to be removed, with the rule that removes each.
	dead []digest.Digest
	why  map[digest.Digest]string
	// sizes are the sizes of the manifests of the repository.
	sizes map[digest.Digest]int64
	// cutoff is when a manifest must have been last updated before to go: the grace
	// period, or the policy's delete-untagged-older-than when longer.
	cutoff time.Time
	// kept are the decisions of the policy that keep something: tags, and manifests
	// its rules keep.
	kept []Decision
	// untagged are the manifests removed with their tags, in removeTags.
	untagged []digest.Digest
}

// planRepository decides what garbage collection removes of repo: the tags its
// retention policy removes, then the manifests that nothing keeps once they are gone.
func (r *Registry) planRepository(ctx context.Context, o GCOptions, repo string) (*repoPlan, error) {
	now := r.now()
	grace := now.Add(-o.Delay)
	if !o.PolicyTime.IsZero() {
		now = o.PolicyTime
	}
	plan := &repoPlan{reg: r, repo: repo, policy: r.policy(repo), cutoff: grace, why: map[digest.Digest]string{},
		sizes: map[digest.Digest]int64{}}
	nodes := map[digest.Digest]*metastore.Node{}
	var order []digest.Digest
	list := func(ctx context.Context, after digest.Digest, n int) ([]metastore.Node, error) {
		return r.meta.Nodes(ctx, repo, after, n)
	}
	for n, err := range metastore.All(ctx, list, metastore.Node.Key) {
		if err != nil {
			return nil, fmt.Errorf("gc: manifests of %s: %w", repo, err)
		}
		nodes[n.Digest] = &n
		order = append(order, n.Digest)
		plan.sizes[n.Digest] = n.Size
	}
	// The tag-schema edges name their subjects by key: a digest, cut to 64 characters.
	byKey := make(map[string]digest.Digest, len(order))
	for _, d := range order {
		byKey[reference.SchemaKeyOf(d)] = d
	}
	referrers := map[digest.Digest][]digest.Digest{}
	subjects := map[digest.Digest][]digest.Digest{} // those of the subjects that are here
	parents := map[digest.Digest][]digest.Digest{}
	signed := map[digest.Digest]bool{}
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
		if n.Kind == string(artifact.Signature) {
			for _, s := range subjects[d] {
				signed[s] = true
			}
		}
		for _, c := range n.Children {
			parents[c] = append(parents[c], d)
		}
	}

	// A policy removes tags first: what they alone kept is then untagged.
	tagged := func(d digest.Digest) bool { return nodes[d].Tagged }
	p := plan.policy
	if p != nil {
		if p.DeleteUntaggedOlderThan > o.Delay {
			if c := now.Add(-p.DeleteUntaggedOlderThan); c.Before(grace) { // a later PolicyTime keeps the grace period
				plan.cutoff = c
			}
		}
		var tags []metastore.TagInfo
		list := func(ctx context.Context, after string, n int) ([]metastore.TagInfo, error) {
			return r.meta.TagList(ctx, repo, after, n)
		}
		for t, err := range metastore.All(ctx, list, metastore.TagInfo.Key) {
			if err != nil {
				return nil, fmt.Errorf("gc: tags of %s: %w", repo, err)
			}
			tags = append(tags, t)
		}
		facts := func(d digest.Digest) manifestFacts {
			n, ok := nodes[d]
			if !ok {
				return manifestFacts{}
			}
			return manifestFacts{locked: !n.DeleteEnabled, lastPulled: n.LastPulled, signed: signed[d]}
		}
		stays := map[digest.Digest]bool{}
		for _, d := range p.decideTags(repo, now, grace, tags, facts, func(t string) bool { return r.immutable(repo, t) }) {
			if d.Remove {
				plan.tags = append(plan.tags, d)
			} else {
				plan.kept = append(plan.kept, d)
				stays[d.Digest] = true
			}
		}
		tagged = func(d digest.Digest) bool { return stays[d] }
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
		switch {
		case tagged(d) || !n.DeleteEnabled || !n.Updated.Before(grace) || (artifact && o.KeepOrphanReferrers):
			keep(d)
		case p == nil:
		case !n.Updated.Before(plan.cutoff):
			plan.keptBy(n, RuleUntaggedWindow)
			keep(d)
		case p.KeepPulledWithin > 0 && now.Sub(n.LastPulled) < p.KeepPulledWithin:
			plan.keptBy(n, RulePulledWithin)
			keep(d)
		case p.KeepSigned && signed[d]:
			plan.keptBy(n, RuleSigned)
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
		plan.dead = append(plan.dead, d)
		n := nodes[d]
		switch {
		case (n.Subject != "" || len(n.TagSubjects) > 0) && len(subjects[d]) == 0:
			plan.why[d] = RuleOrphan
		case len(subjects[d]) > 0:
			plan.why[d] = RuleFollows
		case n.Tagged:
			plan.why[d] = RuleTagsGo
		case p != nil && p.DeleteUntaggedOlderThan > o.Delay:
			plan.why[d] = RuleUntaggedWindow
		default:
			plan.why[d] = RuleUnreached
		}
	}
	for _, d := range order {
		visit(d)
	}
	r.pause("manifests", repo)
	return plan, nil
}

// keptBy records that the policy's rule keeps manifest n.
func (p *repoPlan) keptBy(n *metastore.Node, rule string) {
	p.kept = append(p.kept, Decision{Repo: p.repo, Digest: n.Digest, Policy: p.policy.Name, Rule: rule})
}

// report adds to rep what a run removed of the plan's repository, and what its policy
// kept.
func (p *repoPlan) report(rep *GCReport, tags []Decision, manifests []digest.Digest) {
	for _, d := range tags {
		rep.Tags = append(rep.Tags, p.repo+":"+d.Tag)
		rep.Decisions = append(rep.Decisions, d)
	}
	for _, d := range manifests {
		rep.Manifests = append(rep.Manifests, p.repo+"@"+d.String())
		dec := Decision{Repo: p.repo, Digest: d, Remove: true, Rule: p.why[d], Size: p.sizes[d]}
		if dec.Rule == RuleUntaggedWindow || dec.Rule == RuleTagsGo {
			dec.Policy = p.policy.Name
		}
		rep.Decisions = append(rep.Decisions, dec)
	}
	rep.Decisions = append(rep.Decisions, p.kept...)
}

// removeTags removes the tags the plan's policy removes, each when it still names the
// manifest it was decided on and that manifest is not locked, and in the same
// transaction the manifests nothing keeps once they are untagged (see untag). Tags of
// one manifest go in one transaction; manifests go parents first, as in the sweep.
func (r *Registry) removeTags(ctx context.Context, plan *repoPlan) error {
	byDigest := map[digest.Digest][]Decision{}
	for _, d := range plan.tags {
		byDigest[d.Digest] = append(byDigest[d.Digest], d)
	}
	rank := map[digest.Digest]int{}
	for i, d := range plan.dead {
		rank[d] = i + 1
	}
	order := slices.SortedFunc(maps.Keys(byDigest), func(a, b digest.Digest) int {
		return cmp.Or(cmp.Compare(rank[a], rank[b]), strings.Compare(string(a), string(b)))
	})
	var tags []Decision
	for batch := range slices.Chunk(order, gcBatch) {
		var decisions []Decision
		for _, d := range batch {
			decisions = append(decisions, byDigest[d]...)
		}
		var done []Decision
		var gone []digest.Digest
		err := r.meta.Update(ctx, func(tx metastore.Tx) error {
			var err error
			done, gone, err = plan.untag(ctx, tx, decisions)
			return err
		})
		if err != nil {
			return fmt.Errorf("gc: remove tags of %s: %w", plan.repo, err)
		}
		tags = append(tags, done...)
		plan.untagged = append(plan.untagged, gone...)
	}
	for _, d := range tags {
		r.log.Debug("retention removed a tag", "repo", plan.repo, "tag", d.Tag, "policy", d.Policy, "rule", d.Rule)
	}
	plan.tags = tags
	return nil
}

// untag removes, in tx, the tags of decisions that still name their manifests, then
// those of the manifests they named that the plan finds dead and nothing keeps now.
// Those manifests are judged by their age before their tags went: removing a tag marks
// a manifest updated, which would otherwise keep it a grace period longer; a push that
// touches it meanwhile cannot come between, in one transaction.
func (p *repoPlan) untag(ctx context.Context, tx metastore.Tx, decisions []Decision) (tags []Decision, manifests []digest.Digest, err error) {
	before := map[digest.Digest]time.Time{}
	for _, d := range decisions {
		if _, ok := before[d.Digest]; !ok {
			m, err := tx.Manifest(ctx, p.repo, d.Digest)
			if err != nil && !errors.Is(err, metastore.ErrNotFound) {
				return nil, nil, err
			}
			if err == nil {
				before[d.Digest] = m.Updated
			}
		}
		ok, err := removeTag(ctx, tx, p.repo, d)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			tags = append(tags, d)
			if err := p.reg.publishUntag(ctx, tx, p.repo, d.Tag, d.Digest, byRetention); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, d := range p.dead {
		updated, untagged := before[d]
		if !untagged {
			continue
		}
		ok, err := removeManifestAsOf(ctx, tx, p.repo, d, p.cutoff, &updated)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			manifests = append(manifests, d)
			if err := p.reg.publishDelete(ctx, tx, p.repo, d, nil, byRetention); err != nil {
				return nil, nil, err
			}
		}
	}
	return tags, manifests, nil
}

// removeTag removes tag d.Tag of repo when it still names d.Digest, unlocked.
func removeTag(ctx context.Context, tx metastore.Tx, repo string, d Decision) (bool, error) {
	m, err := tx.Tag(ctx, repo, d.Tag)
	if errors.Is(err, metastore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if m.Digest != d.Digest || !deletable(m.Attributes) || !deletable(m.RepoAttributes) {
		return false, nil
	}
	return true, tx.DeleteTag(ctx, repo, d.Tag)
}

// removeManifests removes the manifests of the plan, each when it is still garbage,
// and reports them with the tags removed before them.
func (r *Registry) removeManifests(ctx context.Context, plan *repoPlan, rep *GCReport) error {
	all := plan.untagged
	for batch := range slices.Chunk(plan.dead, gcBatch) {
		var removed []digest.Digest
		err := r.meta.Update(ctx, func(tx metastore.Tx) error {
			removed = removed[:0]
			for _, d := range batch {
				ok, err := removeManifest(ctx, tx, plan.repo, d, plan.cutoff)
				if err != nil {
					return err
				}
				if ok {
					removed = append(removed, d)
					if err := r.publishDelete(ctx, tx, plan.repo, d, nil, byGC); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("gc: remove manifests of %s: %w", plan.repo, err)
		}
		for _, d := range removed {
			r.log.Debug("gc removed manifest", "repo", plan.repo, "digest", d, "rule", plan.why[d])
		}
		all = append(all, removed...)
	}
	plan.report(rep, plan.tags, all)
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
	return removeManifestAsOf(ctx, tx, repo, d, cutoff, nil)
}

// removeManifestAsOf is removeManifest with the time the manifest was last updated
// given, when not nil, rather than read.
func removeManifestAsOf(ctx context.Context, tx graphWriter, repo string, d digest.Digest, cutoff time.Time, updated *time.Time) (bool, error) {
	m, err := tx.Manifest(ctx, repo, d)
	if errors.Is(err, metastore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if updated == nil {
		updated = &m.Updated
	}
	// The mark kept the manifests whose delete attribute is off; a write lock refuses
	// a delete too, and is looked at here.
	if !deletable(m.Attributes) || !updated.Before(cutoff) {
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
// knows, and those only the blob store holds (an upload that never got linked). A dry
// run also counts those that unlinked lists, once no other repository may read them.
func (r *Registry) gcBlobs(ctx context.Context, o GCOptions, rep *GCReport, unlinked map[digest.Digest][]string) error {
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
	if o.DryRun {
		return r.simulateBlobs(ctx, cutoff, candidates, unlinked, rep)
	}
	for d, size := range candidates {
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

// simulateBlobs reports the candidates that a run's SweepBlob would remove: no
// repository may read them (once the links a dry run took are gone), no one claimed
// them at or after cutoff, and the blob store has their bytes.
func (r *Registry) simulateBlobs(ctx context.Context, cutoff time.Time, candidates map[digest.Digest]int64, unlinked map[digest.Digest][]string, rep *GCReport) error {
	for d := range unlinked {
		if _, ok := candidates[d]; !ok {
			candidates[d] = -1
		}
	}
	for _, d := range slices.Sorted(maps.Keys(candidates)) {
		var (
			linked  bool
			claimed time.Time
		)
		err := r.simulate(ctx, func(tx metastore.Tx) error {
			for _, repo := range unlinked[d] {
				if err := tx.UnlinkBlob(ctx, repo, d); err != nil && !errors.Is(err, metastore.ErrNotFound) {
					return err
				}
			}
			var err error
			linked, claimed, err = tx.BlobState(ctx, d)
			return err
		})
		if err != nil {
			return fmt.Errorf("gc: dry run of blob %s: %w", d, err)
		}
		if linked || !claimed.IsZero() && !claimed.Before(cutoff) {
			continue
		}
		size, err := r.blobs.Stat(ctx, d)
		if errors.Is(err, blobstore.ErrNotFound) {
			continue // a record without bytes: the run removes it and reports nothing
		}
		if err != nil {
			return fmt.Errorf("gc: dry run of blob %s: %w", d, err)
		}
		rep.Blobs = append(rep.Blobs, d)
		rep.Bytes += size
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
		byPolicy := map[string]int{}
		for _, d := range rep.Decisions {
			if d.Remove && d.Policy != "" {
				byPolicy[d.Policy]++
			}
		}
		r.log.Info("garbage collection", "tags", len(rep.Tags), "manifests", len(rep.Manifests), "links", len(rep.Links),
			"blobs", len(rep.Blobs), "bytes", rep.Bytes, "retention", byPolicy, "duration", rep.Duration.String())
	}
}

package registry

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/pattern"
	"github.com/graft-registry/graft/internal/reference"
)

// TagOrder is how a retention policy ranks the tags it keeps the newest of.
type TagOrder string

const (
	// ByPush ranks tags by when they were set, the last set first.
	ByPush TagOrder = "pushed"
	// BySemver ranks tags as versions (v1.10.0 before v1.9.0, with or without the v);
	// tags that are no version come after them, by push.
	BySemver TagOrder = "semver"
)

// A RetentionPolicy says what garbage collection removes of the repositories it
// matches, beyond what nothing reaches: tags, and with them the graphs only they kept.
// What goes is always a whole graph; signatures, SBOMs and attestations are never tags
// to keep or delete but follow their subject; locked manifests and immutable tags are
// never touched.
type RetentionPolicy struct {
	Name         string
	Repositories pattern.Set
	// KeepTags are the tags of which the KeepLast newest, in Order, are kept, and the
	// others removed.
	KeepTags pattern.Set
	KeepLast int
	Order    TagOrder
	// DeleteTagsOlderThan, when set, removes the tags KeepTags does not match once they
	// were set this long ago.
	DeleteTagsOlderThan time.Duration
	// DeleteUntaggedOlderThan, when set, keeps the untagged manifests nothing reaches
	// this long (and at least the grace period) before they go.
	DeleteUntaggedOlderThan time.Duration
	// KeepPulledWithin, when set, keeps a tag or manifest pulled this recently.
	KeepPulledWithin time.Duration
	// KeepSigned keeps a manifest with a signature under it, and its tags.
	KeepSigned bool
}

// ImmutableTags are tags that may be neither moved nor deleted: those Tags matches in
// the repositories Repositories matches. Tags of the referrers tag schema never are,
// so that an immutable release can still be signed and attested.
type ImmutableTags struct {
	Repositories, Tags pattern.Set
}

// policy returns the retention policy of repo: the first that matches it, or nil.
func (r *Registry) policy(repo string) *RetentionPolicy {
	for i := range r.opts.Retention {
		if p := &r.opts.Retention[i]; p.Repositories.Match(repo) {
			return p
		}
	}
	return nil
}

// immutable reports whether tag of repo may be neither moved nor deleted.
func (r *Registry) immutable(repo, tag string) bool {
	if _, _, schema := reference.SchemaKey(tag); schema {
		return false
	}
	for _, it := range r.opts.ImmutableTags {
		if it.Repositories.Match(repo) && it.Tags.Match(tag) {
			return true
		}
	}
	return false
}

// hasImmutableTags reports whether any tag of repo may be immutable: the check a delete
// of a manifest makes is then worth its query.
func (r *Registry) hasImmutableTags(repo string) bool {
	for _, it := range r.opts.ImmutableTags {
		if it.Repositories.Match(repo) {
			return true
		}
	}
	return false
}

// immutableTagOf returns an immutable tag of manifest d of repo, or "".
func (r *Registry) immutableTagOf(ctx context.Context, rd metastore.ManifestReader, repo string, d digest.Digest) (string, error) {
	if !r.hasImmutableTags(repo) {
		return "", nil
	}
	tags, err := rd.TagsOf(ctx, repo, d)
	if err != nil {
		return "", err
	}
	for _, t := range tags {
		if r.immutable(repo, t) {
			return t, nil
		}
	}
	return "", nil
}

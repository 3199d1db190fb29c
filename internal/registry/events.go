package registry

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/metastore"
)

// Who removed what an event of a delete reports, besides a client.
const (
	byCascade   = "cascade"
	byGC        = "gc"
	byRetention = "retention"
)

// publish writes an event of a change to the outbox in tx, the change's transaction,
// when the registry keeps one: the event commits with the change, or neither does.
func (r *Registry) publish(ctx context.Context, tx metastore.EventWriter, typ, repo string, data any) error {
	if !r.opts.Events {
		return nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", typ, err)
	}
	return tx.AppendEvent(ctx, &metastore.Event{Type: typ, Repo: repo, Time: r.now(), Data: b})
}

// published tells Options.Published that events have committed.
func (r *Registry) published() {
	if r.opts.Events && r.opts.Published != nil {
		r.opts.Published()
	}
}

// publishPush writes the events of a push of m under tags: the push, and each tag it
// moved from another manifest (previous, by tag).
func (r *Registry) publishPush(ctx context.Context, tx metastore.EventWriter, m *metastore.Manifest, tags []string, previous map[string]digest.Digest) error {
	err := r.publish(ctx, tx, events.ManifestPushed, m.Repo, events.Manifest{
		Repository: m.Repo, Digest: m.Digest, MediaType: m.MediaType, Size: m.Size,
		ArtifactType: m.ArtifactType, Kind: m.Kind, Subject: m.Subject, Tags: tags,
	})
	if err != nil {
		return err
	}
	for _, t := range tags {
		if p, ok := previous[t]; ok && p != m.Digest {
			err := r.publish(ctx, tx, events.TagMoved, m.Repo, events.Tag{Repository: m.Repo, Tag: t, Digest: m.Digest, Previous: p})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Registry) publishUntag(ctx context.Context, tx metastore.EventWriter, repo, tag string, d digest.Digest, by string) error {
	return r.publish(ctx, tx, events.TagDeleted, repo, events.Tag{Repository: repo, Tag: tag, Digest: d, By: by})
}

func (r *Registry) publishDelete(ctx context.Context, tx metastore.EventWriter, repo string, d digest.Digest, cascade []digest.Digest, by string) error {
	return r.publish(ctx, tx, events.ManifestDeleted, repo, events.Deleted{Repository: repo, Digest: d, Cascade: cascade, By: by})
}

// publishDeleted writes the events of a manifest delete: the manifests it removed, the
// tags named after them that it removed from manifests it kept, and the fallback
// indexes it wrote again without them.
func (r *Registry) publishDeleted(ctx context.Context, tx metastore.Tx, repo string, out *Deleted, changes *fallbackChanges) error {
	if err := r.publishDelete(ctx, tx, repo, out.Manifests[0], out.Manifests[1:], ""); err != nil {
		return err
	}
	for _, t := range append(out.tags, changes.untagged...) {
		if err := r.publishUntag(ctx, tx, repo, t.Tag, t.Digest, byCascade); err != nil {
			return err
		}
	}
	for _, w := range changes.written {
		if err := r.publishPush(ctx, tx, w.m, w.tags, nil); err != nil {
			return err
		}
	}
	return nil
}

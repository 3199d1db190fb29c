package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// The referrers tag schema's fallback index of a manifest (the index tagged
// "sha256-<hex>" after it) lists its artifacts for the clients that read the tag. When
// a manifest it lists goes, the registry writes the index again without it, in the
// same transaction, and moves the tag to the new index (deletes it when nothing is
// left): a client never reads a descriptor of a manifest that is not there. The
// transaction reads the tag and moves it, so a client's concurrent push of the tag and
// the rewrite are serialized; a client that read the index before the delete and
// pushes it back with the gone manifest in it is refused, as the manifest is missing.

// dropFromFallbacks writes again, without the manifests of gone, the fallback indexes
// of repo that listed any of them, and returns the digests of the index versions it
// removed. An index locked against writes or deletes is left as it is.
func dropFromFallbacks(ctx context.Context, tx metastore.Tx, repo string, gone []digest.Digest) ([]digest.Digest, *fallbackChanges, error) {
	isGone := make(map[digest.Digest]bool, len(gone))
	for _, d := range gone {
		isGone[d] = true
	}
	var (
		indexes []digest.Digest
		seen    = map[digest.Digest]bool{}
	)
	for _, d := range gone {
		parents, err := tx.Parents(ctx, repo, d)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range parents {
			if !seen[p] && !isGone[p] {
				seen[p] = true
				indexes = append(indexes, p)
			}
		}
	}
	var removed []digest.Digest
	changes := &fallbackChanges{}
	for _, p := range indexes {
		ok, err := rewriteFallback(ctx, tx, repo, p, isGone, changes)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			removed = append(removed, p)
		}
	}
	return removed, changes, nil
}

// fallbackChanges are the tag moves of rewriting fallback indexes, for their events.
type fallbackChanges struct {
	// written are the new indexes, each with the tags moved to it.
	written []fallbackIndex
	// untagged are the tags removed with indexes that would have been left empty,
	// each with what it named.
	untagged []Decision
}

type fallbackIndex struct {
	m    *metastore.Manifest
	tags []string
}

// rewriteFallback writes index p of repo again without the manifests gone names, when
// a fallback index tag names p, moves its fallback tags to the new index, and removes
// p unless something else keeps it (another tag, an index listing it). It reports
// whether it removed p.
func rewriteFallback(ctx context.Context, tx metastore.Tx, repo string, p digest.Digest, gone map[digest.Digest]bool, changes *fallbackChanges) (bool, error) {
	tags, err := tx.TagsOf(ctx, repo, p)
	if err != nil {
		return false, err
	}
	var fallback, others []string
	for _, t := range tags {
		if _, suffix, ok := reference.SchemaKey(t); ok && suffix == "" {
			fallback = append(fallback, t)
		} else {
			others = append(others, t)
		}
	}
	if len(fallback) == 0 {
		return false, nil // an index of the repository's own: not the registry's to edit
	}
	old, err := tx.Manifest(ctx, repo, p)
	if err != nil {
		return false, err
	}
	if !deletable(old.Attributes) {
		return false, nil
	}
	body, left, err := withoutManifests(old.Content, gone)
	if err != nil {
		return false, fmt.Errorf("rewrite fallback index %s: %w", p, err)
	}
	if left == 0 {
		for _, t := range fallback {
			if err := tx.DeleteTag(ctx, repo, t); err != nil {
				return false, err
			}
			changes.untagged = append(changes.untagged, Decision{Tag: t, Digest: p})
		}
	} else {
		parsed, err := manifest.Parse(old.MediaType, body)
		if err != nil {
			return false, fmt.Errorf("rewrite fallback index %s: %w", p, err)
		}
		m := record(repo, digest.FromBytes(body), body, parsed)
		if err := tx.PutManifest(ctx, m); err != nil {
			return false, err
		}
		for _, t := range fallback {
			if err := tx.SetTag(ctx, repo, t, m.Digest); err != nil {
				return false, err
			}
		}
		changes.written = append(changes.written, fallbackIndex{m: m, tags: fallback})
	}
	if len(others) > 0 {
		return false, nil
	}
	if parents, err := tx.Parents(ctx, repo, p); err != nil || len(parents) > 0 {
		return false, err
	}
	return true, tx.DeleteManifest(ctx, repo, p)
}

// withoutManifests returns the index content without the descriptors of gone, its
// other fields as they were, and how many descriptors are left.
func withoutManifests(content []byte, gone map[digest.Digest]bool) ([]byte, int, error) {
	var index map[string]json.RawMessage
	if err := json.Unmarshal(content, &index); err != nil {
		return nil, 0, err
	}
	var descs []json.RawMessage
	if err := json.Unmarshal(index["manifests"], &descs); err != nil {
		return nil, 0, err
	}
	descs = slices.DeleteFunc(descs, func(raw json.RawMessage) bool {
		var d struct {
			Digest digest.Digest `json:"digest"`
		}
		return json.Unmarshal(raw, &d) == nil && gone[d.Digest]
	})
	if descs == nil {
		descs = []json.RawMessage{}
	}
	b, err := json.Marshal(descs)
	if err != nil {
		return nil, 0, err
	}
	index["manifests"] = b
	out, err := json.Marshal(index)
	return out, len(descs), err
}

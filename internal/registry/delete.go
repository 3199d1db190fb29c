package registry

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// Deleted is the outcome of a manifest delete.
type Deleted struct {
	// Manifests are the digests of the manifests removed, the one named first; empty
	// when a tag was deleted.
	Manifests []digest.Digest
	// Locked are the manifests of the graph a cascade kept because they are locked
	// against deletes; what hangs under them is kept too.
	Locked []digest.Digest
}

// DeleteManifest deletes ref from repo. Deleting a tag removes only the tag. Deleting a
// digest removes the manifest and its tags and, when the registry cascades, its graph:
// every artifact of a manifest in the graph (its referrers, and its tag-schema
// artifacts: those tagged "sha256-<hex>.<suffix>" after it, its fallback index tagged
// "sha256-<hex>" and what that lists), and every untagged child of an index in the
// graph, recursively, but none that an index outside the graph lists. Nothing outside
// the graph is touched, but for the fallback indexes that listed what went, which are
// written again without it (see dropFromFallbacks); blobs the graph alone used are left
// for garbage collection. A locked manifest is never removed: naming it is DENIED, and
// a cascade stops at it.
func (r *Registry) DeleteManifest(ctx context.Context, repo, ref string) (*Deleted, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	if !reference.IsDigest(ref) {
		return &Deleted{}, r.deleteTag(ctx, repo, ref)
	}
	d, err := parseDigest(ref)
	if err != nil {
		return nil, err
	}
	out := &Deleted{}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error {
		*out = Deleted{}
		if err := checkRepoDelete(ctx, tx, repo); err != nil {
			return err
		}
		root, err := tx.Manifest(ctx, repo, d)
		if err != nil {
			return err
		}
		if !deletable(root.Attributes) {
			return errDenied("manifest %s is locked against deletes", d)
		}
		graph := []digest.Digest{d}
		if r.opts.Cascade {
			if graph, out.Locked, err = cascade(ctx, tx, repo, d); err != nil {
				return err
			}
		}
		for _, m := range graph {
			if err := tx.DeleteManifest(ctx, repo, m); err != nil {
				return err
			}
		}
		rewritten, err := dropFromFallbacks(ctx, tx, repo, graph)
		if err != nil {
			return err
		}
		out.Manifests = append(graph, rewritten...)
		return nil
	})
	if errors.Is(err, metastore.ErrNotFound) {
		return nil, errManifestUnknown(ref)
	}
	if err != nil {
		return nil, internal("delete manifest", err)
	}
	return out, nil
}

func (r *Registry) deleteTag(ctx context.Context, repo, tag string) error {
	if !reference.ValidTag(tag) {
		return errManifestUnknown(tag)
	}
	err := r.meta.Update(ctx, func(tx metastore.Tx) error {
		if err := checkRepoDelete(ctx, tx, repo); err != nil {
			return err
		}
		m, err := tx.Tag(ctx, repo, tag)
		if err != nil {
			return err
		}
		if !deletable(m.Attributes) {
			return errDenied("tag %s names manifest %s, which is locked against deletes", tag, m.Digest)
		}
		return tx.DeleteTag(ctx, repo, tag)
	})
	if errors.Is(err, metastore.ErrNotFound) {
		return errManifestUnknown(tag)
	}
	if err != nil {
		return internal("delete tag", err)
	}
	return nil
}

// graphReader reads manifests and the edges between them.
type graphReader interface {
	metastore.ManifestReader
	metastore.GraphReader
}

func descriptorKey(d ocispec.Descriptor) digest.Digest { return d.Digest }

// cascade returns root and the graph under it in repo, root first, and the locked
// manifests it stopped at.
//
// An artifact (a referrer, a tag-schema artifact) joins the graph with its subject, and
// a child of an index with the index when it is untagged; either only once every index that lists it is in the graph too,
// so that nothing outside the graph loses a child. Candidates are looked at again
// whenever the graph has grown.
func cascade(ctx context.Context, tx graphReader, repo string, root digest.Digest) (graph, locked []digest.Digest, err error) {
	in := map[digest.Digest]bool{}
	seen := map[digest.Digest]bool{}
	type candidate struct {
		d     digest.Digest
		child bool // of an index, not a referrer
	}
	var (
		queue   = []digest.Digest{root}
		pending []candidate
	)
	for len(queue) > 0 {
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			if seen[x] {
				continue
			}
			seen[x] = true
			m, err := tx.Manifest(ctx, repo, x)
			if errors.Is(err, metastore.ErrNotFound) && x != root {
				continue // a child deleted on its own earlier
			}
			if err != nil {
				return nil, nil, err
			}
			if !deletable(m.Attributes) {
				locked = append(locked, x)
				continue
			}
			in[x] = true
			graph = append(graph, x)
			referrers := func(ctx context.Context, after digest.Digest, n int) ([]ocispec.Descriptor, error) {
				return tx.Referrers(ctx, repo, x, "", after, n)
			}
			for ref, err := range metastore.All(ctx, referrers, descriptorKey) {
				if err != nil {
					return nil, nil, err
				}
				pending = append(pending, candidate{d: ref.Digest})
			}
			tagArtifacts := func(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error) {
				return tx.TagArtifacts(ctx, repo, reference.SchemaKeyOf(x), after, n)
			}
			for a, err := range metastore.All(ctx, tagArtifacts, metastore.Itself) {
				if err != nil {
					return nil, nil, err
				}
				pending = append(pending, candidate{d: a})
			}
			if parsed, err := manifest.Parse(m.MediaType, m.Content); err == nil {
				for _, c := range parsed.Manifests {
					pending = append(pending, candidate{d: c.Digest, child: true})
				}
			}
		}
		rest := pending[:0]
		for _, c := range pending {
			if seen[c.d] {
				continue
			}
			ok, err := onlyUsedBy(ctx, tx, repo, c.d, in, c.child)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				queue = append(queue, c.d)
			} else {
				rest = append(rest, c)
			}
		}
		pending = rest
	}
	return graph, locked, nil
}

// onlyUsedBy reports whether manifest c of repo is listed only by indexes in graph
// and, when untagged is set, has no tag.
func onlyUsedBy(ctx context.Context, tx graphReader, repo string, c digest.Digest, graph map[digest.Digest]bool, untagged bool) (bool, error) {
	if untagged {
		tags, err := tx.TagsOf(ctx, repo, c)
		if err != nil || len(tags) > 0 {
			return false, err
		}
	}
	parents, err := tx.Parents(ctx, repo, c)
	if err != nil {
		return false, err
	}
	for _, p := range parents {
		if !graph[p] {
			return false, nil
		}
	}
	return true, nil
}

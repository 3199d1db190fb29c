package registry

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"

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
// every manifest whose subject is in the graph, and every child of an index in the graph
// that is untagged and listed by no index outside it, recursively. Nothing outside the
// graph is touched; blobs it alone used are left for garbage collection. A locked
// manifest is never removed: naming it is DENIED, and a cascade stops at it.
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
		out.Manifests = graph
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
		if !m.Attributes.WriteEnabled {
			return errDenied("tag %s names manifest %s, which is locked for writes", tag, m.Digest)
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

// cascade returns root and the graph under it in repo, root first, and the locked
// manifests it stopped at.
func cascade(ctx context.Context, tx metastore.Tx, repo string, root digest.Digest) (graph, locked []digest.Digest, err error) {
	in := map[digest.Digest]bool{}
	seen := map[digest.Digest]bool{}
	var (
		queue    = []digest.Digest{root}
		children []digest.Digest // of indexes in the graph, not yet taken
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
			var after digest.Digest
			for {
				refs, err := tx.Referrers(ctx, repo, x, "", after, ReferrersPage)
				if err != nil {
					return nil, nil, err
				}
				for _, ref := range refs {
					queue = append(queue, ref.Digest)
				}
				if len(refs) < ReferrersPage {
					break
				}
				after = refs[len(refs)-1].Digest
			}
			if parsed, err := manifest.Parse(m.MediaType, m.Content); err == nil {
				for _, c := range parsed.Manifests {
					children = append(children, c.Digest)
				}
			}
		}
		// A child joins the graph once every index listing it is in the graph, so
		// children are looked at again whenever the graph has grown.
		rest := children[:0]
		for _, c := range children {
			if seen[c] {
				continue
			}
			ok, err := onlyUsedBy(ctx, tx, repo, c, in)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				queue = append(queue, c)
			} else {
				rest = append(rest, c)
			}
		}
		children = rest
	}
	return graph, locked, nil
}

// onlyUsedBy reports whether manifest c of repo is untagged and listed only by
// indexes in graph.
func onlyUsedBy(ctx context.Context, tx metastore.Tx, repo string, c digest.Digest, graph map[digest.Digest]bool) (bool, error) {
	tags, err := tx.TagsOf(ctx, repo, c)
	if err != nil || len(tags) > 0 {
		return false, err
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

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
}

// DeleteManifest deletes ref from repo. Deleting a tag removes only the tag. Deleting a
// digest removes the manifest and its tags and, when the registry cascades, its graph:
// every manifest whose subject is in the graph, and every child of an index in the graph
// that is untagged and listed by no index outside it, recursively. Nothing outside the
// graph is touched; blobs it alone used are left for garbage collection.
func (r *Registry) DeleteManifest(ctx context.Context, repo, ref string) (*Deleted, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	if !reference.IsDigest(ref) {
		if !reference.ValidTag(ref) {
			return nil, errManifestUnknown(ref)
		}
		err := r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteTag(ctx, repo, ref) })
		if errors.Is(err, metastore.ErrNotFound) {
			return nil, errManifestUnknown(ref)
		}
		if err != nil {
			return nil, internal("delete tag", err)
		}
		return &Deleted{}, nil
	}
	d, err := parseDigest(ref)
	if err != nil {
		return nil, err
	}
	out := &Deleted{}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error {
		out.Manifests = out.Manifests[:0]
		graph := []digest.Digest{d}
		if r.opts.Cascade {
			var err error
			if graph, err = cascade(ctx, tx, repo, d); err != nil {
				return err
			}
		}
		for _, m := range graph {
			if err := tx.DeleteManifest(ctx, repo, m); err != nil {
				return err
			}
			out.Manifests = append(out.Manifests, m)
		}
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

// cascade returns root and the graph under it in repo, root first.
func cascade(ctx context.Context, tx metastore.Tx, repo string, root digest.Digest) ([]digest.Digest, error) {
	in := map[digest.Digest]bool{}
	var (
		order    []digest.Digest
		queue    = []digest.Digest{root}
		children []digest.Digest // of indexes in the graph, not yet taken
	)
	for len(queue) > 0 {
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			if in[x] {
				continue
			}
			m, err := tx.Manifest(ctx, repo, x)
			if errors.Is(err, metastore.ErrNotFound) && x != root {
				continue // a child deleted on its own earlier
			}
			if err != nil {
				return nil, err // ErrNotFound for root: the manifest is unknown
			}
			in[x] = true
			order = append(order, x)
			var after digest.Digest
			for {
				refs, err := tx.Referrers(ctx, repo, x, "", after, ReferrersPage)
				if err != nil {
					return nil, err
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
			if in[c] {
				continue
			}
			ok, err := onlyUsedBy(ctx, tx, repo, c, in)
			if err != nil {
				return nil, err
			}
			if ok {
				queue = append(queue, c)
			} else {
				rest = append(rest, c)
			}
		}
		children = rest
	}
	return order, nil
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

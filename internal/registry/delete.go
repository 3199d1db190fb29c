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
	// tags are the tag-schema tags, named after manifests of the graph, of manifests
	// something outside the graph keeps, with what they name: they go, the manifests
	// stay.
	tags []Decision
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
	if err := r.checkClientChange(repo); err != nil {
		return nil, err
	}
	if !reference.IsDigest(ref) {
		return &Deleted{}, r.deleteTag(ctx, repo, ref)
	}
	d, err := parseDigest(ref)
	if err != nil {
		return nil, err
	}
	var out *Deleted
	err = r.meta.Update(ctx, func(tx metastore.Tx) error {
		var err error
		if out, err = r.plan(ctx, tx, repo, d); err != nil {
			return err
		}
		for _, m := range out.Manifests {
			if err := tx.DeleteManifest(ctx, repo, m); err != nil {
				return err
			}
		}
		for _, t := range out.tags {
			if err := tx.DeleteTag(ctx, repo, t.Tag); err != nil {
				return err
			}
		}
		rewritten, changes, err := dropFromFallbacks(ctx, tx, repo, out.Manifests)
		if err != nil {
			return err
		}
		out.Manifests = append(out.Manifests, rewritten...)
		return r.publishDeleted(ctx, tx, repo, out, changes)
	})
	if errors.Is(err, metastore.ErrNotFound) {
		return nil, errManifestUnknown(ref)
	}
	if err != nil {
		return nil, internal("delete manifest", err)
	}
	r.published()
	return out, nil
}

// DeletePlan returns what DeleteManifest(ctx, repo, ref) would remove now, and the
// locked manifests it would stop at, removing nothing: the preview a user confirms. It
// leaves out the old versions of the fallback indexes the delete writes again.
// It refuses what DeleteManifest would refuse, with the same error. A tag's plan is
// empty: deleting a tag removes only the tag.
func (r *Registry) DeletePlan(ctx context.Context, repo, ref string) (*Deleted, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	if err := r.checkClientChange(repo); err != nil {
		return nil, err
	}
	var (
		out *Deleted
		err error
	)
	if reference.IsDigest(ref) {
		var d digest.Digest
		if d, err = parseDigest(ref); err != nil {
			return nil, err
		}
		out, err = r.plan(ctx, r.meta, repo, d)
	} else {
		out = &Deleted{}
		_, err = r.checkTagDelete(ctx, r.meta, repo, ref)
	}
	if errors.Is(err, metastore.ErrNotFound) {
		return nil, errManifestUnknown(ref)
	}
	if err != nil {
		return nil, internal("plan delete", err)
	}
	return out, nil
}

// plan returns what deleting manifest d of repo removes, as rd sees it: d and, when
// the registry cascades, the graph under it, with the locked manifests a cascade
// stops at.
func (r *Registry) plan(ctx context.Context, rd planReader, repo string, d digest.Digest) (*Deleted, error) {
	if err := checkRepoDelete(ctx, rd, repo); err != nil {
		return nil, err
	}
	root, err := rd.Manifest(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	if !deletable(root.Attributes) {
		return nil, errDenied("manifest %s is locked against deletes", d)
	}
	if t, err := r.immutableTagOf(ctx, rd, repo, d); err != nil || t != "" {
		if err != nil {
			return nil, err
		}
		return nil, errDenied("manifest %s is tagged %s, which is immutable", d, t)
	}
	out := &Deleted{Manifests: []digest.Digest{d}}
	if r.opts.Cascade {
		if out.Manifests, out.Locked, out.tags, err = r.cascade(ctx, rd, repo, d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *Registry) deleteTag(ctx context.Context, repo, tag string) error {
	err := r.meta.Update(ctx, func(tx metastore.Tx) error {
		d, err := r.checkTagDelete(ctx, tx, repo, tag)
		if err != nil {
			return err
		}
		if err := tx.DeleteTag(ctx, repo, tag); err != nil {
			return err
		}
		return r.publishUntag(ctx, tx, repo, tag, d, "")
	})
	if errors.Is(err, metastore.ErrNotFound) {
		return errManifestUnknown(tag)
	}
	if err != nil {
		return internal("delete tag", err)
	}
	r.published()
	return nil
}

// checkTagDelete refuses a delete of tag in repo that the locks forbid, and returns
// what the tag names; metastore.ErrNotFound for a tag that is not there.
func (r *Registry) checkTagDelete(ctx context.Context, rd planReader, repo, tag string) (digest.Digest, error) {
	if !reference.ValidTag(tag) {
		return "", metastore.ErrNotFound
	}
	if err := checkRepoDelete(ctx, rd, repo); err != nil {
		return "", err
	}
	m, err := rd.Tag(ctx, repo, tag)
	if err != nil {
		return "", err
	}
	if !deletable(m.Attributes) {
		return "", errDenied("tag %s names manifest %s, which is locked against deletes", tag, m.Digest)
	}
	if r.immutable(repo, tag) {
		return "", errDenied("tag %s is immutable", tag)
	}
	return m.Digest, nil
}

// graphReader reads manifests and the edges between them.
type graphReader interface {
	metastore.ManifestReader
	metastore.GraphReader
}

// planReader reads what a delete checks and removes.
type planReader interface {
	graphReader
	metastore.RepositoryReader
}

func descriptorKey(d ocispec.Descriptor) digest.Digest { return d.Digest }

// cascade returns root and the graph under it in repo, root first, and the locked
// manifests it stopped at, as rd sees them; a manifest an immutable tag names counts as
// locked. It also returns the tag-schema tags that name manifests kept out of the graph
// after a manifest in it: they go with that manifest.
//
// An artifact (a referrer, a tag-schema artifact) joins the graph with its subject, and
// a child of an index with the index when it is untagged; either only once nothing
// outside the graph keeps it: every index that lists it is in the graph too, and every
// tag-schema tag that names it is named after a manifest in the graph (one SBOM file
// that cosign attached to two images is one manifest, an artifact of both). Candidates
// are looked at again whenever the graph has grown.
func (r *Registry) cascade(ctx context.Context, rd graphReader, repo string, root digest.Digest) (graph, locked []digest.Digest, tags []Decision, err error) {
	g := &cascadeGraph{in: map[digest.Digest]bool{}, keys: map[string]bool{}}
	seen := map[digest.Digest]bool{}
	type candidate struct {
		d     digest.Digest
		child bool // of an index, not an artifact
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
			m, err := rd.Manifest(ctx, repo, x)
			if errors.Is(err, metastore.ErrNotFound) && x != root {
				continue // a child deleted on its own earlier
			}
			if err != nil {
				return nil, nil, nil, err
			}
			immutable, err := r.immutableTagOf(ctx, rd, repo, x)
			if err != nil {
				return nil, nil, nil, err
			}
			if !deletable(m.Attributes) || immutable != "" {
				locked = append(locked, x)
				continue
			}
			g.add(x)
			graph = append(graph, x)
			referrers := func(ctx context.Context, after digest.Digest, n int) ([]ocispec.Descriptor, error) {
				return rd.Referrers(ctx, repo, x, "", after, n)
			}
			for ref, err := range metastore.All(ctx, referrers, descriptorKey) {
				if err != nil {
					return nil, nil, nil, err
				}
				pending = append(pending, candidate{d: ref.Digest})
			}
			tagArtifacts := func(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error) {
				return rd.TagArtifacts(ctx, repo, reference.SchemaKeyOf(x), after, n)
			}
			for a, err := range metastore.All(ctx, tagArtifacts, metastore.Itself) {
				if err != nil {
					return nil, nil, nil, err
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
			ok, err := g.onlyKeeps(ctx, rd, repo, c.d, c.child)
			if err != nil {
				return nil, nil, nil, err
			}
			if ok {
				queue = append(queue, c.d)
			} else {
				rest = append(rest, c)
			}
		}
		pending = rest
	}
	// What stays may carry tags named after what goes.
	kept := map[digest.Digest]bool{}
	for _, c := range pending {
		if kept[c.d] || g.in[c.d] {
			continue
		}
		kept[c.d] = true
		names, err := rd.TagsOf(ctx, repo, c.d)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, t := range names {
			if key, _, schema := reference.SchemaKey(t); schema && g.keys[key] {
				tags = append(tags, Decision{Tag: t, Digest: c.d})
			}
		}
	}
	return graph, locked, tags, nil
}

// cascadeGraph is the graph a cascade has gathered so far.
type cascadeGraph struct {
	in map[digest.Digest]bool
	// keys are the tag-schema keys of what is in.
	keys map[string]bool
}

func (g *cascadeGraph) add(d digest.Digest) {
	g.in[d] = true
	g.keys[reference.SchemaKeyOf(d)] = true
}

// onlyKeeps reports whether nothing outside g keeps manifest c of repo: every index
// that lists it is in g, every tag-schema tag that names it is named after a manifest
// in g, and, when untagged is set, no other tag names it.
func (g *cascadeGraph) onlyKeeps(ctx context.Context, rd graphReader, repo string, c digest.Digest, untagged bool) (bool, error) {
	tags, err := rd.TagsOf(ctx, repo, c)
	if err != nil {
		return false, err
	}
	for _, t := range tags {
		key, _, schema := reference.SchemaKey(t)
		if schema && !g.keys[key] || !schema && untagged {
			return false, nil
		}
	}
	parents, err := rd.Parents(ctx, repo, c)
	if err != nil {
		return false, err
	}
	for _, p := range parents {
		if !g.in[p] {
			return false, nil
		}
	}
	return true, nil
}

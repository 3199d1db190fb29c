package client

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry"

	"github.com/graft-registry/graft/internal/reference"
)

// Edge says how the client knows that an artifact belongs to the manifest above it.
type Edge string

const (
	// EdgeSubject: the artifact names the manifest as its subject, and the registry
	// lists it as a referrer (through the referrers API, or the fallback index of the
	// tag schema where it has no API).
	EdgeSubject Edge = "subject"
	// EdgeTag: a tag of the referrers tag schema names the artifact (cosign's
	// sha256-<hex>.sig, .att, .sbom), or names an index that lists it which the
	// registry's referrers API does not (notation writes both).
	EdgeTag Edge = "tag"
)

// A Node is a manifest and its artifacts: the manifests whose subject it is, and those
// the tag schema names for it. Each artifact is a Node in turn.
type Node struct {
	ocispec.Descriptor
	// Edge says how the node was found under its parent; empty for the root.
	Edge Edge
	// Tag is the tag-schema tag that names this manifest (sha256-<hex>.sig), if any:
	// copy sets it at the destination, delete removes it.
	Tag string
	// IndexTag is the sha256-<hex> tag of the fallback index this manifest was found
	// in, when the referrers API did not list it.
	IndexTag string
	// Referrers are the node's artifacts, by either edge, sorted by artifact type and
	// digest.
	Referrers []*Node
	// Index is the fallback index tagged for this manifest (sha256-<hex>), if there is
	// one: no artifact of its own but the list of some, which goes with the manifest.
	Index *ocispec.Descriptor
}

// DiscoverOptions narrow Discover.
type DiscoverOptions struct {
	// ArtifactType, when set, keeps only the root's artifacts of that type (and
	// everything under those): a signature of an SBOM is still shown when asking for
	// SBOMs.
	ArtifactType string
	// Depth limits how many levels of artifacts are listed; 0 lists them all.
	Depth int
}

// maxDepth stops a registry that answers with a cycle (a referrer cannot be its own
// ancestor by content addressing, but a broken index or a tag can say so).
const maxDepth = 64

// Discover returns the artifact graph of root in target: at every level, the referrers
// of a manifest, and the artifacts the referrers tag schema names for it. A registry
// without the referrers API is read through the fallback index (a sha256-<hex> index
// per subject), which oras-go falls back to by itself; an OCI layout through the
// subjects of the manifests it holds. The tag schema is read by resolving the tags it
// would have, never by listing tags.
func Discover(ctx context.Context, target oras.ReadOnlyGraphTarget, root ocispec.Descriptor, opts DiscoverOptions) (*Node, error) {
	node := &Node{Descriptor: root}
	if err := discover(ctx, target, node, opts.ArtifactType, 1, opts.Depth, map[digest.Digest]bool{root.Digest: true}); err != nil {
		return nil, err
	}
	return node, nil
}

func discover(ctx context.Context, target oras.ReadOnlyGraphTarget, node *Node, artifactType string, level, depth int, onPath map[digest.Digest]bool) error {
	if (depth > 0 && level > depth) || level > maxDepth {
		return nil
	}
	referrers, err := registry.Referrers(ctx, target, node.Descriptor, artifactType)
	if err != nil {
		return fmt.Errorf("listing the referrers of %s: %w", node.Digest, err)
	}
	children := map[digest.Digest]*Node{}
	for _, r := range referrers {
		if onPath[r.Digest] {
			return fmt.Errorf("the referrers of %s lead back to %s: the registry's referrers index is inconsistent", node.Digest, r.Digest)
		}
		if children[r.Digest] == nil {
			children[r.Digest] = &Node{Descriptor: r, Edge: EdgeSubject}
		}
	}
	byTag, index, err := byTagSchema(ctx, target, node.Digest, func(d digest.Digest) bool { return children[d] != nil })
	if err != nil {
		return fmt.Errorf("reading the tag schema of %s: %w", node.Digest, err)
	}
	node.Index = index
	for _, a := range byTag {
		if known := children[a.desc.Digest]; known != nil {
			// a referrer tagged as well: one node, whose tag goes where it goes
			known.Tag = cmp.Or(known.Tag, a.tag)
			continue
		}
		// tags are anyone's to move: one that names a manifest above this one is
		// no edge, whereas a referrers index that does is broken
		if onPath[a.desc.Digest] || (artifactType != "" && artifactTypeOf(a.desc) != artifactType) {
			continue
		}
		children[a.desc.Digest] = &Node{Descriptor: a.desc, Edge: EdgeTag, Tag: a.tag, IndexTag: a.index}
	}
	for _, child := range children {
		node.Referrers = append(node.Referrers, child)
	}
	// registries answer in their own order; sort so that the same graph prints the
	// same everywhere
	slices.SortFunc(node.Referrers, func(a, b *Node) int {
		return cmp.Or(cmp.Compare(artifactTypeOf(a.Descriptor), artifactTypeOf(b.Descriptor)), cmp.Compare(a.Digest, b.Digest))
	})
	for _, child := range node.Referrers {
		onPath[child.Digest] = true
		if err := discover(ctx, target, child, "", level+1, depth, onPath); err != nil {
			return err
		}
		delete(onPath, child.Digest)
	}
	return nil
}

// keep drops the artifacts under n whose artifact type is not one of types, with
// everything under them.
func (n *Node) keep(types []string) {
	n.Referrers = slices.DeleteFunc(n.Referrers, func(r *Node) bool {
		return !slices.Contains(types, artifactTypeOf(r.Descriptor))
	})
	for _, r := range n.Referrers {
		r.keep(types)
	}
}

// Count returns how many artifacts the graph under n holds, at every level.
func (n *Node) Count() int {
	c := 0
	for _, r := range n.Referrers {
		c += 1 + r.Count()
	}
	return c
}

// Step is a manifest to delete, and the tag-schema tag that names it, if any.
type Step struct {
	ocispec.Descriptor
	Tag string
}

// Plan lists the manifests of the graph in the order they can be deleted without
// leaving an artifact whose subject is gone: under each manifest, its referrers, then
// its tag-schema artifacts, each after everything under it; then its fallback index,
// after what it lists; then the manifest. The root comes last.
func (n *Node) Plan() []Step {
	var out []Step
	seen := map[digest.Digest]bool{}
	add := func(s Step) {
		if !seen[s.Digest] {
			seen[s.Digest] = true
			out = append(out, s)
		}
	}
	var walk func(*Node)
	walk = func(n *Node) {
		for _, edge := range []Edge{EdgeSubject, EdgeTag} {
			for _, r := range n.Referrers {
				if r.Edge == edge {
					walk(r)
				}
			}
		}
		if n.Index != nil {
			add(Step{Descriptor: *n.Index, Tag: reference.SchemaTag(n.Digest)})
		}
		add(Step{Descriptor: n.Descriptor, Tag: n.Tag})
	}
	walk(n)
	return out
}

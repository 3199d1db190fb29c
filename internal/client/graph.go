package client

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
)

// A Node is a manifest and the manifests whose subject it is: a referrer graph.
type Node struct {
	ocispec.Descriptor
	Referrers []*Node
}

// DiscoverOptions narrow Discover.
type DiscoverOptions struct {
	// ArtifactType, when set, keeps only the root's referrers of that type (and
	// everything that refers to those): a signature of an SBOM is still shown when
	// asking for SBOMs.
	ArtifactType string
	// Depth limits how many levels of referrers are listed; 0 lists them all.
	Depth int
}

// maxDepth stops a registry that answers with a cycle (a referrer cannot be its own
// ancestor by content addressing, but a broken index can say so).
const maxDepth = 64

// Discover returns the referrer graph of root in target. A registry without the
// referrers API is read through the referrers tag schema (a sha256-<hex> index per
// subject), which oras-go falls back to by itself; an OCI layout through the subjects
// of the manifests it holds.
func Discover(ctx context.Context, target content.ReadOnlyGraphStorage, root ocispec.Descriptor, opts DiscoverOptions) (*Node, error) {
	node := &Node{Descriptor: root}
	if err := discover(ctx, target, node, opts.ArtifactType, 1, opts.Depth, map[digest.Digest]bool{root.Digest: true}); err != nil {
		return nil, err
	}
	return node, nil
}

func discover(ctx context.Context, target content.ReadOnlyGraphStorage, node *Node, artifactType string, level, depth int, onPath map[digest.Digest]bool) error {
	if (depth > 0 && level > depth) || level > maxDepth {
		return nil
	}
	referrers, err := registry.Referrers(ctx, target, node.Descriptor, artifactType)
	if err != nil {
		return fmt.Errorf("listing the referrers of %s: %w", node.Digest, err)
	}
	// registries answer in their own order; sort so that the same graph prints the
	// same everywhere
	slices.SortFunc(referrers, func(a, b ocispec.Descriptor) int {
		return cmp.Or(cmp.Compare(a.ArtifactType, b.ArtifactType), cmp.Compare(a.Digest, b.Digest))
	})
	referrers = slices.CompactFunc(referrers, func(a, b ocispec.Descriptor) bool { return a.Digest == b.Digest })
	for _, r := range referrers {
		if onPath[r.Digest] {
			return fmt.Errorf("the referrers of %s lead back to %s: the registry's referrers index is inconsistent", node.Digest, r.Digest)
		}
		child := &Node{Descriptor: r}
		onPath[r.Digest] = true
		if err := discover(ctx, target, child, "", level+1, depth, onPath); err != nil {
			return err
		}
		delete(onPath, r.Digest)
		node.Referrers = append(node.Referrers, child)
	}
	return nil
}

// Count returns how many referrers the graph under n holds, at every level.
func (n *Node) Count() int {
	c := 0
	for _, r := range n.Referrers {
		c += 1 + r.Count()
	}
	return c
}

// BottomUp returns the referrers under n, each after everything that refers to it:
// the order in which they can be deleted without leaving a referrer whose subject is
// gone. n itself is not included.
func (n *Node) BottomUp() []ocispec.Descriptor {
	var out []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	var walk func(*Node)
	walk = func(n *Node) {
		for _, r := range n.Referrers {
			walk(r)
			if !seen[r.Digest] {
				seen[r.Digest] = true
				out = append(out, r.Descriptor)
			}
		}
	}
	walk(n)
	return out
}

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
)

// CopyOptions control Copy.
type CopyOptions struct {
	// Recursive copies the referrers of the root too, at every level, and for an
	// index the referrers of every manifest it lists.
	Recursive bool
	// Progress draws bars for the transfers; nil draws none.
	Progress *Progress
}

// CopyResult says what Copy did.
type CopyResult struct {
	// Manifests and Blobs count what was written to the destination (blobs mounted
	// there too), Bytes their size.
	Manifests int   `json:"manifests"`
	Blobs     int   `json:"blobs"`
	Bytes     int64 `json:"bytes"`
	// Referrers counts the referrers of the graph, at every level, copied now or found
	// there already (Recursive only).
	Referrers int `json:"referrers"`
	// Present counts the manifests and blobs the destination had already; a manifest
	// counts for what it references too, which was not looked at.
	Present int `json:"present"`
}

// Copy copies the manifest root and everything it references from src to dst, tagged
// tag there unless tag is empty. A destination without the referrers API gets the
// referrers tag schema (a sha256-<hex> index per subject) written for it: oras-go's
// repository does that when the registry does not acknowledge a subject.
func Copy(ctx context.Context, src, dst Target, root ocispec.Descriptor, tag string, opts CopyOptions) (CopyResult, error) {
	t := &tally{referrers: map[digest.Digest]bool{}}
	graphOpts := oras.DefaultCopyGraphOptions
	graphOpts.PostCopy, graphOpts.OnMounted, graphOpts.OnCopySkipped = t.copied, t.copied, t.present
	if from, ok := mountSource(src, dst); ok {
		// blobs stay in the registry: a mount is a metadata operation there
		graphOpts.MountFrom = func(context.Context, ocispec.Descriptor) ([]string, error) { return []string{from}, nil }
	}
	tracked := withProgress(src, opts.Progress)
	if err := copyRoot(ctx, tracked, dst, root, tag, graphOpts); err != nil {
		return t.result(), err
	}
	if !opts.Recursive {
		return t.result(), nil
	}
	extended := oras.ExtendedCopyGraphOptions{
		CopyGraphOptions: graphOpts,
		// only referrers: an OCI layout's predecessors also include the indexes that
		// list a manifest, which are not part of its graph
		FindPredecessors: func(ctx context.Context, _ content.ReadOnlyGraphStorage, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			referrers, err := registry.Referrers(ctx, src, desc, "")
			t.found(referrers)
			return referrers, err
		},
	}
	nodes, err := withChildren(ctx, src, root)
	if err != nil {
		return t.result(), err
	}
	for _, node := range nodes {
		if err := oras.ExtendedCopyGraph(ctx, tracked, dst, node, extended); err != nil {
			return t.result(), fmt.Errorf("copying the referrers of %s: %w", node.Digest, err)
		}
	}
	return t.result(), nil
}

// tally counts what a copy does; oras-go copies concurrently.
type tally struct {
	mu        sync.Mutex
	r         CopyResult
	referrers map[digest.Digest]bool
}

func (t *tally) copied(_ context.Context, desc ocispec.Descriptor) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if isManifest(desc.MediaType) {
		t.r.Manifests++
	} else {
		t.r.Blobs++
	}
	t.r.Bytes += desc.Size
	return nil
}

func (t *tally) present(context.Context, ocispec.Descriptor) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.Present++
	return nil
}

func (t *tally) found(referrers []ocispec.Descriptor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range referrers {
		t.referrers[r.Digest] = true
	}
}

func (t *tally) result() CopyResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.r
	r.Referrers = len(t.referrers)
	return r
}

// mountSource returns the repository dst can mount src's blobs from: src's own, when
// both are repositories of the same registry.
func mountSource(src, dst Target) (string, bool) {
	s, ok1 := src.(*remote.Repository)
	d, ok2 := dst.(*remote.Repository)
	if !ok1 || !ok2 || s.Reference.Registry != d.Reference.Registry || s.Reference.Repository == d.Reference.Repository {
		return "", false
	}
	return s.Reference.Repository, true
}

// withChildren returns root and, for an index, the manifests it lists: each can have
// referrers of its own (a signature per platform).
func withChildren(ctx context.Context, src content.Fetcher, root ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	nodes := []ocispec.Descriptor{root}
	if root.MediaType != ocispec.MediaTypeImageIndex && root.MediaType != "application/vnd.docker.distribution.manifest.list.v2+json" {
		return nodes, nil
	}
	b, err := content.FetchAll(ctx, src, root)
	if err != nil {
		return nil, fmt.Errorf("fetching index %s: %w", root.Digest, err)
	}
	var index ocispec.Index
	if err := json.Unmarshal(b, &index); err != nil {
		return nil, fmt.Errorf("decoding index %s: %w", root.Digest, err)
	}
	return append(nodes, index.Manifests...), nil
}

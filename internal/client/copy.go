package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
)

// CopyOptions control Copy.
type CopyOptions struct {
	// Recursive copies the artifacts of the root too (see Discover), at every level,
	// and for an index the artifacts of every manifest it lists.
	Recursive bool
	// ArtifactTypes, when not empty, are the only artifact types copied with
	// Recursive (each with what hangs under it); the root and the manifests an index
	// lists always are.
	ArtifactTypes []string
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
	// Referrers counts the artifacts of the graph, at every level, copied now or found
	// there already (Recursive only): referrers and tag-schema artifacts alike.
	Referrers int `json:"referrers"`
	// Present counts the manifests and blobs the destination had already; a manifest
	// counts for what it references too, which was not looked at.
	Present int `json:"present"`
}

// Add adds what another copy did to r.
func (r *CopyResult) Add(o CopyResult) {
	r.Manifests += o.Manifests
	r.Blobs += o.Blobs
	r.Bytes += o.Bytes
	r.Referrers += o.Referrers
	r.Present += o.Present
}

// Copy copies the manifest root and everything it references from src to dst, tagged
// tag there unless tag is empty. With Recursive, the graph under root comes along, as
// Discover finds it: a tag-schema artifact gets its tag at the destination too (the
// subject's digest, and so the tag's name, is the same there), and a destination
// without the referrers API gets the fallback index (a sha256-<hex> index per subject)
// written for the referrers: oras-go's repository does that when the registry does not
// acknowledge a subject.
func Copy(ctx context.Context, src oras.ReadOnlyGraphTarget, dst Target, root ocispec.Descriptor, tag string, opts CopyOptions) (CopyResult, error) {
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
	nodes, err := withChildren(ctx, src, root)
	if err != nil {
		return t.result(), err
	}
	for _, node := range nodes {
		graph, err := Discover(ctx, src, node, DiscoverOptions{})
		if err != nil {
			return t.result(), fmt.Errorf("finding the artifacts of %s: %w", node.Digest, err)
		}
		if len(opts.ArtifactTypes) > 0 {
			graph.keep(opts.ArtifactTypes)
		}
		if err := copyArtifacts(ctx, tracked, dst, graph, graphOpts, t); err != nil {
			return t.result(), err
		}
	}
	return t.result(), nil
}

// copyArtifacts copies the artifacts under n, each before those under it, so that an
// interrupted copy leaves no artifact without its subject.
func copyArtifacts(ctx context.Context, src oras.ReadOnlyGraphTarget, dst Target, n *Node, opts oras.CopyGraphOptions, t *tally) error {
	for _, a := range n.Referrers {
		t.found(a.Digest)
		if a.Tag != "" {
			if err := checkRetag(ctx, src, dst, a.Descriptor, a.Tag); err != nil {
				return err
			}
		}
		if err := copyRoot(ctx, src, dst, a.Descriptor, a.Tag, opts); err != nil {
			return fmt.Errorf("copying %s (%s), an artifact of %s: %w", a.Digest, artifactTypeOf(a.Descriptor), n.Digest, err)
		}
		if err := copyArtifacts(ctx, src, dst, a, opts, t); err != nil {
			return err
		}
	}
	return nil
}

// checkRetag refuses to move the tag-schema tag at dst from a manifest that lists
// content desc does not: that would drop signatures which exist only at the
// destination. cosign adds each new signature of an image as a layer of the manifest
// its .sig tag names, so a source signed again since the last copy lists every layer
// of the destination's older manifest, and the tag moves.
func checkRetag(ctx context.Context, src content.Fetcher, dst Target, desc ocispec.Descriptor, tag string) error {
	current, err := dst.Resolve(ctx, tag)
	if errors.Is(err, errdef.ErrNotFound) || (err == nil && current.Digest == desc.Digest) {
		return nil
	} else if err != nil {
		return fmt.Errorf("resolving tag %s at the destination: %w", tag, err)
	}
	have, err := listed(ctx, dst, current)
	if err != nil {
		return fmt.Errorf("reading %s, tagged %s at the destination: %w", current.Digest, tag, err)
	}
	coming, err := listed(ctx, src, desc)
	if err != nil {
		return fmt.Errorf("reading %s: %w", desc.Digest, err)
	}
	for _, d := range have {
		if !slices.Contains(coming, d) {
			return fmt.Errorf("tag %s at the destination names %s, which lists %s, and %s does not: moving the tag would lose it there (delete the tag there first to replace it)",
				tag, current.Digest, d, desc.Digest)
		}
	}
	return nil
}

// listed returns what the manifest desc lists: an image manifest's layers, an index's
// manifests.
func listed(ctx context.Context, f content.Fetcher, desc ocispec.Descriptor) ([]digest.Digest, error) {
	if desc.Size > maxManifestBytes {
		return nil, fmt.Errorf("%s claims %d bytes: more than a manifest may have", desc.Digest, desc.Size)
	}
	b, err := content.FetchAll(ctx, f, desc)
	if err != nil {
		return nil, err
	}
	var m struct {
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", desc.Digest, err)
	}
	var out []digest.Digest
	for _, d := range append(m.Layers, m.Manifests...) {
		out = append(out, d.Digest)
	}
	return out, nil
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

func (t *tally) found(d digest.Digest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.referrers[d] = true
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
func mountSource(src oras.ReadOnlyGraphTarget, dst Target) (string, bool) {
	s, ok1 := src.(*remote.Repository)
	d, ok2 := dst.(*remote.Repository)
	if !ok1 || !ok2 || s.Reference.Registry != d.Reference.Registry || s.Reference.Repository == d.Reference.Repository {
		return "", false
	}
	return s.Reference.Repository, true
}

// withChildren returns root and, for an index, the manifests it lists: each can have
// artifacts of its own (a signature per platform).
func withChildren(ctx context.Context, src content.Fetcher, root ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	nodes := []ocispec.Descriptor{root}
	if !isIndexType(root.MediaType) {
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

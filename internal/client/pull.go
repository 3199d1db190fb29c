package client

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/file"
)

// mediaTypeDockerManifest is Docker's image manifest, which has the layout of an OCI one.
const mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"

// PullResult is what Pull wrote.
type PullResult struct {
	Descriptor ocispec.Descriptor `json:"descriptor"`
	// Files are the paths written, in the order of the manifest.
	Files []string `json:"files"`
	// Skipped counts the layers without a file name (org.opencontainers.image.title),
	// such as an image's filesystem layers, which Pull does not write.
	Skipped int `json:"skipped"`
}

// Pull writes the layers of the manifest root in src that carry a file name into dir,
// under that name; for an index, those of every manifest it lists. The subject of an
// artifact is not pulled: pulling an SBOM does not pull the image it describes. The
// file store refuses names that would escape dir.
func Pull(ctx context.Context, src oras.ReadOnlyGraphTarget, root ocispec.Descriptor, dir string, progress *Progress) (PullResult, error) {
	store, err := file.New(dir)
	if err != nil {
		return PullResult{}, fmt.Errorf("preparing %s: %w", dir, err)
	}
	defer store.Close()

	result := PullResult{Descriptor: root, Files: []string{}}
	var mu sync.Mutex
	var written []ocispec.Descriptor
	opts := oras.DefaultCopyGraphOptions
	opts.FindSuccessors = func(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		successors, skipped, err := pullSuccessors(ctx, fetcher, desc)
		mu.Lock()
		result.Skipped += skipped
		mu.Unlock()
		return successors, err
	}
	opts.PostCopy = func(_ context.Context, desc ocispec.Descriptor) error {
		if desc.Annotations[ocispec.AnnotationTitle] != "" {
			mu.Lock()
			written = append(written, desc)
			mu.Unlock()
		}
		return nil
	}
	if err := oras.CopyGraph(ctx, withProgress(src, progress), store, root, opts); err != nil {
		return PullResult{}, fmt.Errorf("pulling %s into %s: %w", root.Digest, dir, err)
	}
	// copies run concurrently; report the files in a stable order
	slices.SortFunc(written, func(a, b ocispec.Descriptor) int {
		return cmp.Compare(a.Annotations[ocispec.AnnotationTitle], b.Annotations[ocispec.AnnotationTitle])
	})
	for _, d := range written {
		result.Files = append(result.Files, filepath.Join(dir, d.Annotations[ocispec.AnnotationTitle]))
	}
	return result, nil
}

// pullSuccessors are the parts of desc that Pull fetches: for an image manifest its
// config and its named layers (it returns how many it left out); for anything else
// what content.Successors finds. Never the subject.
func pullSuccessors(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) ([]ocispec.Descriptor, int, error) {
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
		b, err := content.FetchAll(ctx, fetcher, desc)
		if err != nil {
			return nil, 0, fmt.Errorf("fetching manifest %s: %w", desc.Digest, err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, 0, fmt.Errorf("decoding manifest %s: %w", desc.Digest, err)
		}
		out, skipped := []ocispec.Descriptor{m.Config}, 0
		for _, l := range m.Layers {
			if l.Annotations[ocispec.AnnotationTitle] == "" {
				skipped++
				continue
			}
			out = append(out, l)
		}
		return out, skipped, nil
	}
	successors, err := content.Successors(ctx, fetcher, desc)
	if err != nil {
		return nil, 0, fmt.Errorf("reading manifest %s: %w", desc.Digest, err)
	}
	subject, err := subjectOf(ctx, fetcher, desc)
	if err != nil || subject == nil {
		return successors, 0, err
	}
	return slices.DeleteFunc(successors, func(d ocispec.Descriptor) bool { return d.Digest == subject.Digest }), 0, nil
}

// subjectOf returns the subject of the manifest desc, or nil.
func subjectOf(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) (*ocispec.Descriptor, error) {
	if !isManifest(desc.MediaType) {
		return nil, nil
	}
	b, err := content.FetchAll(ctx, fetcher, desc)
	if err != nil {
		return nil, fmt.Errorf("fetching manifest %s: %w", desc.Digest, err)
	}
	var m struct {
		Subject *ocispec.Descriptor `json:"subject"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding manifest %s: %w", desc.Digest, err)
	}
	return m.Subject, nil
}

// ManifestMediaTypes are the manifest types graft reads, in the order it asks for them.
var ManifestMediaTypes = []string{
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
	mediaTypeDockerManifest,
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.artifact.manifest.v1+json",
}

func isManifest(mediaType string) bool { return slices.Contains(ManifestMediaTypes, mediaType) }

package ui

import (
	"context"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
)

// kindOf returns what manifest m of its repository is, parsed its content when the
// caller has read it. The metadata store does not keep a manifest's kind yet, so it
// is classified here from the manifest's content, which costs a read of it; once
// metastore.Manifest carries Kind, this is
//
//	return artifact.Kind(m.Kind)
//
// and every listing and graph is spared those reads. Content locked for reads is
// classified from what the metadata says.
func (h *Handler) kindOf(ctx context.Context, m *metastore.Manifest, parsed *manifest.Manifest) artifact.Kind {
	if parsed != nil {
		return artifact.Classify(parsed)
	}
	if c, err := h.reg.GetManifest(ctx, m.Repo, m.Digest.String()); err == nil {
		if parsed, err := manifest.Parse(c.MediaType, c.Bytes); err == nil {
			return artifact.Classify(parsed)
		}
	}
	return classifyMetadata(m)
}

// classifyMetadata classifies m from its media types alone.
func classifyMetadata(m *metastore.Manifest) artifact.Kind {
	parsed := &manifest.Manifest{MediaType: m.MediaType, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	switch m.MediaType {
	case ocispec.MediaTypeImageIndex, manifest.MediaTypeDockerManifestList:
		parsed.Kind = manifest.Index
	case ocispec.MediaTypeImageManifest, manifest.MediaTypeDockerManifest:
		parsed.Kind = manifest.Image
	default:
		parsed.Kind = manifest.Artifact
	}
	if m.ConfigMediaType != "" {
		parsed.Config = &ocispec.Descriptor{MediaType: m.ConfigMediaType}
		parsed.Blobs = []ocispec.Descriptor{*parsed.Config}
	}
	return artifact.Classify(parsed)
}

// storeFilterKind asks the metadata store for manifests of kind k only, and reports
// whether it can. It cannot yet: the repository page then classifies what a listing
// returns, a bounded number of manifests per page. Once metastore.Filter has Kind,
// this sets f.Kind = k and returns true.
func storeFilterKind(f *metastore.Filter, k artifact.Kind) bool {
	_, _ = f, k
	return false
}

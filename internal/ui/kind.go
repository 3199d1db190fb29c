package ui

import (
	"context"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
)

// kindOf returns what manifest m of its repository is: the kind the registry
// recorded at push, else (a manifest pushed before kinds were kept, not yet classified)
// what its parsed content, when the caller has read it, or its metadata say.
func (h *Handler) kindOf(_ context.Context, m *metastore.Manifest, parsed *manifest.Manifest) artifact.Kind {
	if k := artifact.Kind(m.Kind); k.Valid() {
		return k
	}
	if parsed != nil {
		return artifact.Classify(parsed)
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

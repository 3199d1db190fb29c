package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"

	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/reference"
)

// The referrers tag schema names a manifest's artifacts by tag: the distribution spec's
// fallback index "sha256-<hex>", which lists them, and the tags signing tools give
// artifacts that carry no subject, "sha256-<hex>.<suffix>". The client reads both
// beside the referrers API, so that the signatures most tools make by default belong to
// the graph they sign.

// schemaSuffixes are the suffixes cosign tags its artifacts of a manifest with:
// signatures (.sig), attestations (.att) and SBOMs (.sbom). Only these are looked up:
// the client resolves tags it can name, and never lists a repository's tags, which
// may be many more than the graph has manifests.
var schemaSuffixes = []string{"sig", "att", "sbom"}

// maxManifestBytes bounds a manifest read by tag: the distribution spec lets
// registries refuse larger ones, so no tool writes them.
const maxManifestBytes = 4 << 20

// tagged is an artifact of a manifest that the tag schema names.
type tagged struct {
	desc ocispec.Descriptor
	// tag is the tag that names desc itself (cosign's sha256-<hex>.sig); index the tag
	// of the fallback index that lists it. One of them is set.
	tag, index string
}

// byTagSchema returns the artifacts the tag schema names for the manifest subject in
// target, and the fallback index tagged for it, if any. Members of that index for
// which known is true (the referrers API listed them) are returned without being
// fetched; a member the registry does not have (an index may name a manifest deleted
// since) is left out.
func byTagSchema(ctx context.Context, target oras.ReadOnlyTarget, subject digest.Digest, known func(digest.Digest) bool) ([]tagged, *ocispec.Descriptor, error) {
	base := reference.SchemaTag(subject)
	var out []tagged
	var index *ocispec.Descriptor
	desc, b, err := fetchTag(ctx, target, base)
	switch {
	case errors.Is(err, errdef.ErrNotFound):
	case err != nil:
		return nil, nil, err
	case isIndexType(desc.MediaType):
		index = &desc
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, nil, fmt.Errorf("decoding the index tagged %s: %w", base, err)
		}
		for _, m := range idx.Manifests {
			if !known(m.Digest) {
				if m.Size > maxManifestBytes {
					return nil, nil, fmt.Errorf("%s, listed in the index tagged %s, claims %d bytes: more than a manifest may have", m.Digest, base, m.Size)
				}
				b, err := content.FetchAll(ctx, target, m)
				if errors.Is(err, errdef.ErrNotFound) {
					continue
				} else if err != nil {
					return nil, nil, fmt.Errorf("fetching %s, listed in the index tagged %s: %w", m.Digest, base, err)
				}
				// what the index says of it (oras-go filters the fallback on that),
				// else what the manifest says of itself
				described := describe(m, b)
				m.ArtifactType = cmp.Or(m.ArtifactType, described.ArtifactType)
				if m.Annotations == nil {
					m.Annotations = described.Annotations
				}
			}
			out = append(out, tagged{desc: m, index: base})
		}
	default:
		// a tag without a suffix that names no index names an artifact all the same
		out = append(out, tagged{desc: describe(desc, b), tag: base})
	}
	for _, suffix := range schemaSuffixes {
		tag := base + "." + suffix
		desc, b, err := fetchTag(ctx, target, tag)
		if errors.Is(err, errdef.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		out = append(out, tagged{desc: describe(desc, b), tag: tag})
	}
	return out, index, nil
}

// fetchTag fetches the manifest tag names in target: one GET, which answers whether it
// exists too.
func fetchTag(ctx context.Context, target oras.ReadOnlyTarget, tag string) (ocispec.Descriptor, []byte, error) {
	desc, b, err := oras.FetchBytes(ctx, target, tag, oras.FetchBytesOptions{MaxBytes: maxManifestBytes})
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetching tag %s: %w", tag, err)
	}
	return desc, b, nil
}

// describe returns desc with the artifact type and annotations of the manifest b, as
// the referrers API describes a referrer: its artifactType, else its config's media
// type. But a tag-schema artifact of cosign carries a plain image config, which says
// nothing of what it is; its layers say (a simple-signing payload, a DSSE envelope, an
// SPDX document): for a manifest whose config is an image's or empty, the media type
// of its first layer.
func describe(desc ocispec.Descriptor, b []byte) ocispec.Descriptor {
	var m struct {
		ArtifactType string               `json:"artifactType"`
		Config       *ocispec.Descriptor  `json:"config"`
		Layers       []ocispec.Descriptor `json:"layers"`
		Annotations  map[string]string    `json:"annotations"`
	}
	if json.Unmarshal(b, &m) != nil {
		return desc // not a manifest graft can read: what the registry said is all there is
	}
	desc.Annotations = m.Annotations
	switch {
	case m.ArtifactType != "":
		desc.ArtifactType = m.ArtifactType
	case m.Config == nil:
	case len(m.Layers) > 0 && isPlainConfig(m.Config.MediaType):
		desc.ArtifactType = m.Layers[0].MediaType
	default:
		desc.ArtifactType = m.Config.MediaType
	}
	return desc
}

// isPlainConfig reports whether a config of this media type says only that its
// manifest is an image, or nothing.
func isPlainConfig(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageConfig || mediaType == manifest.MediaTypeDockerConfig ||
		mediaType == ocispec.MediaTypeEmptyJSON
}

func isIndexType(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == manifest.MediaTypeDockerManifestList
}

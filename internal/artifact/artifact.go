// Package artifact tells what a manifest is to the people who look at a graph: an
// image, an index, a signature, an attestation, an SBOM, or another artifact. The
// metadata API, retention policies and the web view classify with it, so that they
// agree.
//
// A manifest is classified from what clients write into it: its artifactType (OCI 1.1
// referrers), else the media types of its config and layers (cosign's tag-schema
// signatures and attestations, which carry no artifactType). Signatures come first: a
// notation signature of an SBOM is a signature.
package artifact

import (
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/manifest"
)

// Kind is what a manifest is.
type Kind string

const (
	Image       Kind = "image"
	Index       Kind = "index"
	Signature   Kind = "signature"
	Attestation Kind = "attestation"
	SBOM        Kind = "sbom"
	// Artifact is anything else: a manifest with an artifactType none of the above
	// knows, or an artifact manifest.
	Artifact Kind = "artifact"
)

// Kinds are the kinds in the order the metadata API lists counts of them.
var Kinds = []Kind{Image, Index, Signature, Attestation, SBOM, Artifact}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

// Media types that name what an artifact is. Those of the signing tools are not in any
// spec package.
const (
	// cosign: the simple-signing payload of a tag-schema signature (the layer of a
	// sha256-<hex>.sig manifest), and the artifact types of its OCI 1.1 mode.
	MediaTypeCosignSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	MediaTypeCosignSignature     = "application/vnd.dev.cosign.artifact.sig.v1+json"
	MediaTypeCosignAttestation   = "application/vnd.dev.cosign.artifact.att.v1+json"
	MediaTypeCosignSBOM          = "application/vnd.dev.cosign.artifact.sbom.v1+json"
	// sigstore bundles (cosign --new-bundle-format, and other sigstore clients); an
	// attestation bundle names its predicate type in an annotation.
	MediaTypeSigstoreBundlePrefix   = "application/vnd.dev.sigstore.bundle"
	AnnotationSigstorePredicateType = "dev.sigstore.bundle.predicateType"
	MediaTypeNotarySignature        = "application/vnd.cncf.notary.signature"
	MediaTypeDSSEEnvelope           = "application/vnd.dsse.envelope.v1+json"
	MediaTypeInToto                 = "application/vnd.in-toto+json"
	mediaTypeInTotoPrefix           = "application/vnd.in-toto"
)

// Classify returns what m is.
func Classify(m *manifest.Manifest) Kind {
	types := make([]string, 0, 1+len(m.Blobs))
	if m.ArtifactType != "" {
		types = append(types, m.ArtifactType)
	}
	for _, b := range m.Blobs { // the config first, then the layers
		types = append(types, b.MediaType)
	}
	if k := classifyTypes(types, m.Annotations); k != "" {
		return k
	}
	switch m.Kind {
	case manifest.Index:
		return Index
	case manifest.Image:
		if m.Config != nil && isImageConfig(m.Config.MediaType) && m.ArtifactType == m.Config.MediaType {
			return Image
		}
	}
	return Artifact
}

// classifyTypes returns the kind the media types name, signatures first, or "".
func classifyTypes(types []string, annotations map[string]string) Kind {
	for _, t := range types {
		switch {
		case t == MediaTypeCosignSimpleSigning, t == MediaTypeCosignSignature, t == MediaTypeNotarySignature:
			return Signature
		case strings.HasPrefix(t, MediaTypeSigstoreBundlePrefix):
			if annotations[AnnotationSigstorePredicateType] != "" {
				return Attestation
			}
			return Signature
		}
	}
	for _, t := range types {
		switch {
		case t == MediaTypeDSSEEnvelope, t == MediaTypeCosignAttestation, strings.HasPrefix(t, mediaTypeInTotoPrefix):
			return Attestation
		}
	}
	for _, t := range types {
		if t == MediaTypeCosignSBOM || isSBOM(t) {
			return SBOM
		}
	}
	return ""
}

// isSBOM reports whether t is the media type of an SPDX, CycloneDX or Syft document,
// whatever its spelling (application/spdx+json, text/spdx, application/vnd.cyclonedx+xml,
// application/vnd.syft+json, …).
func isSBOM(t string) bool {
	t = strings.ToLower(t)
	return strings.Contains(t, "spdx") || strings.Contains(t, "cyclonedx") || strings.Contains(t, "vnd.syft")
}

func isImageConfig(t string) bool {
	return t == ocispec.MediaTypeImageConfig || t == manifest.MediaTypeDockerConfig
}

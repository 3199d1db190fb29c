package artifact_test

import (
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/manifest"
)

func desc(mediaType string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromString(mediaType), Size: 1}
}

// parse builds an image manifest with the given config and layer media types, as the
// clients push them, and parses it as the registry does.
func parse(t *testing.T, v any) *manifest.Manifest {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("", b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func image(artifactType, config string, annotations map[string]string, layers ...string) ocispec.Manifest {
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
		Config: desc(config), Layers: []ocispec.Descriptor{}, Annotations: annotations}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, desc(l))
	}
	return m
}

func TestClassify(t *testing.T) {
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc(ocispec.MediaTypeImageManifest)}}
	index.SchemaVersion = 2
	fallback := index
	fallback.Manifests = []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("x"),
		Size: 1, ArtifactType: artifact.MediaTypeNotarySignature}}
	for _, tc := range []struct {
		name string
		v    any
		want artifact.Kind
	}{
		{"OCI image", image("", ocispec.MediaTypeImageConfig, nil, ocispec.MediaTypeImageLayerGzip), artifact.Image},
		{"Docker image", image("", manifest.MediaTypeDockerConfig, nil, "application/vnd.docker.image.rootfs.diff.tar.gzip"), artifact.Image},
		{"index", index, artifact.Index},
		// a fallback index lists signatures, and is an index all the same
		{"referrers tag schema index", fallback, artifact.Index},
		{"cosign tag-schema signature", image("", ocispec.MediaTypeImageConfig, nil, artifact.MediaTypeCosignSimpleSigning), artifact.Signature},
		{"cosign tag-schema attestation", image("", ocispec.MediaTypeImageConfig, nil, artifact.MediaTypeDSSEEnvelope), artifact.Attestation},
		{"cosign tag-schema SBOM", image("", ocispec.MediaTypeImageConfig, nil, "text/spdx+json"), artifact.SBOM},
		{"cosign OCI 1.1 signature", image(artifact.MediaTypeCosignSignature, ocispec.MediaTypeEmptyJSON, nil, artifact.MediaTypeCosignSimpleSigning), artifact.Signature},
		{"sigstore bundle signature", image("application/vnd.dev.sigstore.bundle.v0.3+json", ocispec.MediaTypeEmptyJSON, nil, "application/vnd.dev.sigstore.bundle.v0.3+json"), artifact.Signature},
		{"sigstore bundle attestation", image("application/vnd.dev.sigstore.bundle.v0.3+json", ocispec.MediaTypeEmptyJSON,
			map[string]string{artifact.AnnotationSigstorePredicateType: "https://slsa.dev/provenance/v1"}, "application/vnd.dev.sigstore.bundle.v0.3+json"), artifact.Attestation},
		{"notation signature", image(artifact.MediaTypeNotarySignature, ocispec.MediaTypeEmptyJSON, nil, "application/jose+json"), artifact.Signature},
		{"in-toto attestation", image("application/vnd.in-toto+json", ocispec.MediaTypeEmptyJSON, nil, "application/vnd.in-toto+json"), artifact.Attestation},
		{"SPDX SBOM", image("application/spdx+json", ocispec.MediaTypeEmptyJSON, nil, "application/spdx+json"), artifact.SBOM},
		{"CycloneDX SBOM", image("application/vnd.cyclonedx+json", ocispec.MediaTypeEmptyJSON, nil, "application/vnd.cyclonedx+json"), artifact.SBOM},
		{"SBOM by config type", image("", "application/vnd.cyclonedx+xml", nil), artifact.SBOM},
		{"other artifact", image("application/vnd.example.report", ocispec.MediaTypeEmptyJSON, nil, "text/plain"), artifact.Artifact},
		{"image config with an artifactType", image("application/vnd.example.thing", ocispec.MediaTypeImageConfig, nil, ocispec.MediaTypeImageLayerGzip), artifact.Artifact},
		{"artifact manifest", map[string]any{"mediaType": manifest.MediaTypeArtifact, "artifactType": "application/vnd.example",
			"blobs": []ocispec.Descriptor{desc("text/plain")}}, artifact.Artifact},
		{"ORAS artifact signature", map[string]any{"mediaType": manifest.MediaTypeORASArtifact, "artifactType": artifact.MediaTypeNotarySignature,
			"blobs": []ocispec.Descriptor{desc("application/jose+json")}}, artifact.Signature},
		// a signature whose payload is an SBOM is a signature
		{"signature before SBOM", image(artifact.MediaTypeNotarySignature, "application/spdx+json", nil), artifact.Signature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := artifact.Classify(parse(t, tc.v)); got != tc.want {
				t.Errorf("Classify = %q, want %q", got, tc.want)
			}
			if !tc.want.Valid() {
				t.Errorf("%q is not Valid", tc.want)
			}
		})
	}
	if artifact.Kind("tag").Valid() {
		t.Error(`Kind("tag") is Valid`)
	}
}

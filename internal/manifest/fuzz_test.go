package manifest_test

import (
	"errors"
	"reflect"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/manifest"
)

// kindOf is the kind each accepted media type must parse to, spelled out here rather
// than taken from the package so that a wrong entry there shows.
var kindOf = map[string]manifest.Kind{
	ocispec.MediaTypeImageManifest:       manifest.Image,
	manifest.MediaTypeDockerManifest:     manifest.Image,
	ocispec.MediaTypeImageIndex:          manifest.Index,
	manifest.MediaTypeDockerManifestList: manifest.Index,
	manifest.MediaTypeArtifact:           manifest.Artifact,
	manifest.MediaTypeORASArtifact:       manifest.Artifact,
}

var nonDistributable = map[string]bool{
	ocispec.MediaTypeImageLayerNonDistributable:     true,
	ocispec.MediaTypeImageLayerNonDistributableGzip: true,
	ocispec.MediaTypeImageLayerNonDistributableZstd: true,
	dockerForeign: true,
}

// FuzzParse checks that Parse never panics, refuses only with a *manifest.Error, and
// that what it accepts is safe for the registry to index: every descriptor it hands
// on can be looked up by digest, and the fields match the kind.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		m, err := manifest.Parse(contentType, body)
		if err != nil {
			var merr *manifest.Error
			if !errors.As(err, &merr) {
				t.Fatalf("Parse error %v (%T) is not a *manifest.Error", err, err)
			}
			if m != nil {
				t.Fatalf("Parse returned a manifest with error %v", err)
			}
			return
		}
		want, ok := kindOf[m.MediaType]
		if !ok {
			t.Fatalf("accepted media type %q is not a manifest type", m.MediaType)
		}
		if m.Kind != want {
			t.Fatalf("media type %q parsed as kind %d, want %d", m.MediaType, m.Kind, want)
		}
		for i, d := range m.Blobs {
			checkDescriptor(t, "Blobs", i, d)
		}
		for i, d := range m.Manifests {
			checkDescriptor(t, "Manifests", i, d)
		}
		if m.Subject != nil {
			checkDescriptor(t, "Subject", 0, *m.Subject)
		}
		switch m.Kind {
		case manifest.Image:
			if m.Config == nil {
				t.Fatal("image without Config")
			}
			if len(m.Blobs) == 0 || !reflect.DeepEqual(m.Blobs[0], *m.Config) {
				t.Fatalf("image Blobs %v do not start with the config %v", m.Blobs, *m.Config)
			}
			for _, d := range m.Blobs[1:] {
				if nonDistributable[d.MediaType] {
					t.Fatalf("non-distributable layer %v in Blobs", d)
				}
			}
			if len(m.Manifests) != 0 {
				t.Fatalf("image with Manifests %v", m.Manifests)
			}
			if m.ArtifactType == "" {
				t.Fatal("image without ArtifactType: it falls back to the config's media type, which is required")
			}
		case manifest.Index:
			if len(m.Blobs) != 0 || m.Config != nil {
				t.Fatalf("index with Blobs %v or Config %v", m.Blobs, m.Config)
			}
		case manifest.Artifact:
			if len(m.Manifests) != 0 || m.Config != nil {
				t.Fatalf("artifact with Manifests %v or Config %v", m.Manifests, m.Config)
			}
		}
	})
}

func checkDescriptor(t *testing.T, field string, i int, d ocispec.Descriptor) {
	t.Helper()
	if err := d.Digest.Validate(); err != nil {
		t.Fatalf("%s[%d] has digest %q: %v", field, i, d.Digest, err)
	}
	if d.Size < 0 {
		t.Fatalf("%s[%d] has size %d", field, i, d.Size)
	}
	if d.MediaType == "" {
		t.Fatalf("%s[%d] has no media type", field, i)
	}
}

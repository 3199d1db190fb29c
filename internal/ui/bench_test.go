package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// What a page costs the server, in process through the real handler, registry and
// stores (SQLite in a temp dir): the goal is under 50 ms for a repository of 10,000
// manifests and for the graph of a manifest with 1,000 referrers.

func serve(b *testing.B, f *fixture, target string) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	rec := httptest.NewRecorder()
	f.srv.Config.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d\n%s", target, rec.Code, rec.Body)
	}
}

// BenchmarkRepositoryPage: a repository of 10,000 manifests, half of them tagged, a
// tenth of them signatures of others.
func BenchmarkRepositoryPage(b *testing.B) {
	f := newFixture(b, nil)
	const repo, n = "bench/app", 10000
	config := f.blob(repo, ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	layer := f.blob(repo, ocispec.MediaTypeImageLayerGzip, []byte("a layer"))
	var last ocispec.Descriptor
	for i := range n {
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{layer},
			Annotations: map[string]string{"n": fmt.Sprint(i)}}
		m.SchemaVersion = 2
		if i%10 == 9 {
			m.ArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
			m.Subject = &last
		}
		tag := ""
		if i%2 == 0 {
			tag = fmt.Sprintf("v%05d", i)
		}
		last = f.put(repo, tag, ocispec.MediaTypeImageManifest, m)
	}
	for _, page := range []string{"", "?tab=untagged", "?tab=tagged&kind=image", "?tab=untagged&kind=sbom"} {
		name := strings.NewReplacer("?", "", "&", ",").Replace(page)
		if name == "" {
			name = "tagged"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				serve(b, f, Prefix+repo+page)
			}
		})
	}
}

// BenchmarkManifestPage: the picture of an image with 1,000 referrers, 600 signatures
// and 400 SBOMs, each SBOM signed once more.
func BenchmarkManifestPage(b *testing.B) {
	f := newFixture(b, nil)
	const repo = "bench/graph"
	root := f.image(push{repo: repo, tag: "v1", config: `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`, layers: []string{"layer"}})
	empty := f.blob(repo, ocispec.MediaTypeEmptyJSON, []byte("{}"))
	layer := f.blob(repo, "application/octet-stream", []byte("payload"))
	artifact := func(artifactType string, subject ocispec.Descriptor, i int) ocispec.Descriptor {
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Config: empty,
			Layers: []ocispec.Descriptor{layer}, Subject: &subject, Annotations: map[string]string{"n": fmt.Sprint(i)}}
		m.SchemaVersion = 2
		return f.put(repo, "", ocispec.MediaTypeImageManifest, m)
	}
	for i := range 1000 {
		if i < 600 {
			artifact("application/vnd.dev.cosign.artifact.sig.v1+json", root, i)
			continue
		}
		sbom := artifact("application/spdx+json", root, i)
		artifact("application/vnd.dev.cosign.artifact.sig.v1+json", sbom, i)
	}
	b.Run("graph", func(b *testing.B) {
		for b.Loop() {
			serve(b, f, Prefix+repo+":v1")
		}
	})
	b.Run("referrers", func(b *testing.B) {
		for b.Loop() {
			serve(b, f, Prefix+repo+":v1?referrers=application%2Fspdx%2Bjson")
		}
	})
}

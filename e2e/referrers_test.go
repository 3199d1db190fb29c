package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
	"github.com/graft-registry/graft/internal/manifest"
)

const (
	typeSBOM      = "application/vnd.example.sbom.v1+json"
	typeSignature = "application/vnd.example.signature.v1"
)

// recorder is an http.RoundTripper that keeps the answers to manifest PUTs, which
// oras-go reads and does not hand on.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	puts map[string]http.Header // path → answer headers
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/") {
		r.mu.Lock()
		r.puts[req.URL.Path] = resp.Header.Clone()
		r.mu.Unlock()
	}
	return resp, err
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	repo := repository(t, srv, "app")
	rec := &recorder{base: httpClient.Transport, puts: map[string]http.Header{}}
	repo.Client = &http.Client{Transport: rec}

	subject := apitest.NewImage(t, linuxAMD64, "the subject's layer")
	copyImage(t, repo, subject, "v1")
	sbomAnnotations := map[string]string{"org.example.kind": "sbom", "org.example.format": "spdx"}
	sbom := attach(t, repo, subject.Desc(), typeSBOM, "an SBOM", sbomAnnotations)
	sig := attach(t, repo, subject.Desc(), typeSignature, "a signature", map[string]string{"org.example.kind": "signature"})

	t.Run("OCI-Subject", func(t *testing.T) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, d := range []digest.Digest{sbom.Digest, sig.Digest} {
			h, ok := rec.puts["/v2/app/manifests/"+d.String()]
			if !ok {
				t.Fatalf("oras-go did not PUT %s by digest; PUTs: %v", d, slices.Collect(maps.Keys(rec.puts)))
			}
			if got := h.Get("OCI-Subject"); got != subject.Desc().Digest.String() {
				t.Errorf("PUT %s: OCI-Subject is %q, want %q", d, got, subject.Desc().Digest)
			}
		}
		if h := rec.puts["/v2/app/manifests/v1"]; h == nil || h.Get("OCI-Subject") != "" {
			t.Errorf("PUT of the subject (no subject of its own): headers %v, want no OCI-Subject", h)
		}
		// With the subject acknowledged, oras-go must not fall back to the
		// referrers tag schema.
		tags := srv.Do(t, http.MethodGet, "/v2/app/tags/list", nil)
		var list struct{ Tags []string }
		apitest.Decode(t, "tags", tags.Body, &list)
		if !slices.Equal(list.Tags, []string{"v1"}) {
			t.Errorf("tags are %q, want only v1", list.Tags)
		}
	})

	t.Run("index", func(t *testing.T) {
		idx, r := referrers(t, srv, "app", subject.Desc().Digest, "")
		if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
			t.Errorf("schemaVersion %d, mediaType %q: want 2 and %q", idx.SchemaVersion, idx.MediaType, ocispec.MediaTypeImageIndex)
		}
		if h := r.Header.Get("OCI-Filters-Applied"); h != "" {
			t.Errorf("OCI-Filters-Applied is %q without a filter", h)
		}
		want := map[digest.Digest]ocispec.Descriptor{}
		for _, d := range []ocispec.Descriptor{sbom, sig} {
			want[d.Digest] = ocispec.Descriptor{
				MediaType:    ocispec.MediaTypeImageManifest,
				Digest:       d.Digest,
				Size:         d.Size,
				ArtifactType: d.ArtifactType,
				Annotations:  manifestAnnotations(t, repo, d),
			}
		}
		if want[sbom.Digest].Annotations["org.example.format"] != "spdx" {
			t.Fatalf("the SBOM was pushed without its annotations: %v", want[sbom.Digest].Annotations)
		}
		checkDescriptors(t, idx.Manifests, want)
	})

	t.Run("filter", func(t *testing.T) {
		for _, tc := range []struct {
			artifactType string
			want         []digest.Digest
		}{
			{typeSBOM, []digest.Digest{sbom.Digest}},
			{typeSignature, []digest.Digest{sig.Digest}},
			{"application/vnd.example.none", nil},
		} {
			idx, r := referrers(t, srv, "app", subject.Desc().Digest, "artifactType="+url.QueryEscape(tc.artifactType))
			apitest.WantHeader(t, "filter "+tc.artifactType, r, "OCI-Filters-Applied", "artifactType")
			if got := apitest.Digests(idx.Manifests); !slices.Equal(got, apitest.Sorted(tc.want...)) {
				t.Errorf("artifactType=%s: got %v, want %v", tc.artifactType, got, tc.want)
			}
			for _, d := range idx.Manifests {
				if d.ArtifactType != tc.artifactType {
					t.Errorf("artifactType=%s: listed %s of type %q", tc.artifactType, d.Digest, d.ArtifactType)
				}
			}
			var viaORAS []ocispec.Descriptor
			err := repo.Referrers(t.Context(), subject.Desc(), tc.artifactType, func(page []ocispec.Descriptor) error {
				viaORAS = append(viaORAS, page...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := apitest.Digests(viaORAS); !slices.Equal(got, apitest.Sorted(tc.want...)) {
				t.Errorf("oras-go Referrers(%s): got %v, want %v", tc.artifactType, got, tc.want)
			}
		}
	})

	t.Run("oras-go", func(t *testing.T) {
		preds, err := repo.Predecessors(t.Context(), subject.Desc())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := apitest.Digests(preds), apitest.Sorted(sbom.Digest, sig.Digest); !slices.Equal(got, want) {
			t.Errorf("Predecessors: %v, want %v", got, want)
		}
	})

	t.Run("artifactType from the config", func(t *testing.T) {
		// An image manifest without artifactType is listed with its config's
		// media type, as the spec says, and the filter matches on it.
		const configType = "application/vnd.example.config.v1+json"
		config := apitest.NewBlob(configType, []byte(`{"tool":"example"}`))
		layer := apitest.NewBlob("application/vnd.example.payload", []byte("config-typed payload"))
		push(t, repo, config, layer)
		other := apitest.NewImage(t, linuxARM64, "a subject with a config-typed referrer")
		copyImage(t, repo, other, "")
		d, err := oras.PackManifest(t.Context(), repo, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{
			Subject:          &other.Manifest.Desc,
			Layers:           []ocispec.Descriptor{layer.Desc},
			ConfigDescriptor: &config.Desc,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"", "artifactType=" + url.QueryEscape(configType)} {
			idx, _ := referrers(t, srv, "app", other.Desc().Digest, q)
			if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != d.Digest || idx.Manifests[0].ArtifactType != configType {
				t.Errorf("referrers?%s: %+v, want %s with artifactType %s", q, idx.Manifests, d.Digest, configType)
			}
		}
	})

	t.Run("other repository", func(t *testing.T) {
		// A referrer pushed to another repository is that repository's: it is
		// not listed here, and this repository's are not listed there.
		other := repository(t, srv, "other")
		copyImage(t, other, subject, "v1")
		elsewhere := attach(t, other, subject.Desc(), typeSBOM, "an SBOM in another repository", nil)
		idx, _ := referrers(t, srv, "app", subject.Desc().Digest, "")
		if got, want := apitest.Digests(idx.Manifests), apitest.Sorted(sbom.Digest, sig.Digest); !slices.Equal(got, want) {
			t.Errorf("referrers in app: %v, want %v", got, want)
		}
		idx, _ = referrers(t, srv, "other", subject.Desc().Digest, "")
		if got := apitest.Digests(idx.Manifests); !slices.Equal(got, []digest.Digest{elsewhere.Digest}) {
			t.Errorf("referrers in other: %v, want [%s]", got, elsewhere.Digest)
		}
	})

	t.Run("unknown digest", func(t *testing.T) {
		unknown := digest.FromString("no manifest has this digest")
		for _, repoName := range []string{"app", "no/such/repo"} {
			target := "/v2/" + repoName + "/referrers/" + unknown.String()
			r := srv.Do(t, http.MethodGet, target, nil)
			apitest.WantStatus(t, "GET "+target, r, http.StatusOK)
			apitest.WantHeader(t, "GET "+target, r, "Content-Type", ocispec.MediaTypeImageIndex)
			var raw map[string]any
			apitest.Decode(t, "GET "+target, r.Body, &raw)
			if m, ok := raw["manifests"].([]any); !ok || len(m) != 0 {
				t.Errorf("GET %s: manifests is %#v, want an empty list", target, raw["manifests"])
			}
		}
	})

	t.Run("subject pushed later or never", func(t *testing.T) {
		// The spec lets a referrer arrive before its subject; it is listed at once.
		later := apitest.NewImage(t, linuxARM64, "a subject pushed after its referrer")
		early := attach(t, repo, later.Desc(), typeSignature, "signed early", nil)
		idx, _ := referrers(t, srv, "app", later.Desc().Digest, "")
		if got := apitest.Digests(idx.Manifests); !slices.Equal(got, []digest.Digest{early.Digest}) {
			t.Errorf("before the subject: referrers %v, want [%s]", got, early.Digest)
		}
		copyImage(t, repo, later, "later")
		idx, _ = referrers(t, srv, "app", later.Desc().Digest, "")
		if got := apitest.Digests(idx.Manifests); !slices.Equal(got, []digest.Digest{early.Digest}) {
			t.Errorf("after the subject: referrers %v, want [%s]", got, early.Digest)
		}

		never := ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    digest.FromString("a subject that is never pushed"),
			Size:      1234,
		}
		orphan := attach(t, repo, never, typeSBOM, "an orphan SBOM", nil)
		idx, _ = referrers(t, srv, "app", never.Digest, "")
		if got := apitest.Digests(idx.Manifests); !slices.Equal(got, []digest.Digest{orphan.Digest}) {
			t.Errorf("subject that does not exist: referrers %v, want [%s]", got, orphan.Digest)
		}
		if s := manifestStatus(t, srv, "app", orphan.Digest.String()); s != http.StatusOK {
			t.Errorf("the orphan referrer answers GET with %d", s)
		}
	})
}

// manifestAnnotations reads the annotations of manifest desc from repo.
func manifestAnnotations(t *testing.T, src content.Fetcher, desc ocispec.Descriptor) map[string]string {
	t.Helper()
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	apitest.Decode(t, "manifest "+desc.Digest.String(), fetchAll(t, src, desc), &m)
	return m.Annotations
}

// checkDescriptors checks that got lists exactly the descriptors of want, once each.
func checkDescriptors(t *testing.T, got []ocispec.Descriptor, want map[digest.Digest]ocispec.Descriptor) {
	t.Helper()
	seen := map[digest.Digest]bool{}
	for _, d := range got {
		w, ok := want[d.Digest]
		if !ok {
			t.Errorf("unexpected descriptor %+v", d)
			continue
		}
		if seen[d.Digest] {
			t.Errorf("%s listed twice", d.Digest)
		}
		seen[d.Digest] = true
		if d.MediaType != w.MediaType || d.Size != w.Size || d.ArtifactType != w.ArtifactType || !maps.Equal(d.Annotations, w.Annotations) {
			t.Errorf("descriptor of %s:\n got %+v\nwant %+v", d.Digest, d, w)
		}
	}
	for d := range want {
		if !seen[d] {
			t.Errorf("%s is not listed", d)
		}
	}
}

func TestReferrersPagination(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	repo := repository(t, srv, "many")
	subject := apitest.NewImage(t, linuxAMD64, "a much referred-to layer")
	copyImage(t, repo, subject, "v1")

	// Two artifact types, to page through a filtered listing too. The manifests
	// are made here and pushed concurrently, so the test stays fast.
	const total = 1100
	types := []string{typeSBOM, typeSignature}
	push(t, repo, apitest.NewBlob(ocispec.MediaTypeEmptyJSON, ocispec.DescriptorEmptyJSON.Data))
	manifests := make([]apitest.Blob, total)
	want := map[digest.Digest]string{}
	for i := range manifests {
		m := ocispec.Manifest{
			Versioned:    specs.Versioned{SchemaVersion: 2},
			MediaType:    ocispec.MediaTypeImageManifest,
			ArtifactType: types[i%2],
			Config:       ocispec.DescriptorEmptyJSON,
			Layers:       []ocispec.Descriptor{ocispec.DescriptorEmptyJSON},
			Subject:      &subject.Manifest.Desc,
			Annotations:  map[string]string{"org.example.n": strconv.Itoa(i)},
		}
		manifests[i] = apitest.ManifestBlob(t, ocispec.MediaTypeImageManifest, m)
		want[manifests[i].Desc.Digest] = types[i%2]
	}
	parallel(t, total, 16, func(ctx context.Context, i int) error {
		return repo.Push(ctx, manifests[i].Desc, strings.NewReader(string(manifests[i].Data)))
	})

	walk := func(t *testing.T, query string, wantType string, wantPages int) {
		t.Helper()
		target := "/v2/many/referrers/" + subject.Desc().Digest.String()
		if query != "" {
			target += "?" + query
		}
		pages := srv.Pages(t, target, 50)
		seen := map[digest.Digest]int{}
		for i, p := range pages {
			var idx ocispec.Index
			apitest.Decode(t, fmt.Sprintf("page %d", i), p.Body, &idx)
			if got := p.Header.Get("OCI-Filters-Applied"); (wantType != "") != (got == "artifactType") {
				t.Errorf("page %d: OCI-Filters-Applied %q with filter %q", i, got, wantType)
			}
			if len(idx.Manifests) == 0 {
				t.Errorf("page %d is empty", i)
			}
			for _, d := range idx.Manifests {
				seen[d.Digest]++
				if wantType != "" && d.ArtifactType != wantType {
					t.Errorf("page %d: %s has type %q, want only %q", i, d.Digest, d.ArtifactType, wantType)
				}
			}
		}
		if len(pages) != wantPages {
			t.Errorf("%d pages, want %d", len(pages), wantPages)
		}
		n := 0
		for d, typ := range want {
			if wantType != "" && typ != wantType {
				continue
			}
			n++
			if seen[d] != 1 {
				t.Errorf("%s listed %d times, want once", d, seen[d])
			}
		}
		if len(seen) != n {
			t.Errorf("%d distinct referrers listed, want %d", len(seen), n)
		}
	}
	t.Run("default page size", func(t *testing.T) {
		// The registry's page is 1000: a second page holds the rest.
		walk(t, "", "", 2)
	})
	t.Run("n=300", func(t *testing.T) {
		walk(t, "n=300", "", 4)
	})
	t.Run("filtered n=200", func(t *testing.T) {
		walk(t, "n=200&artifactType="+url.QueryEscape(typeSBOM), typeSBOM, 3)
	})
	t.Run("oras-go", func(t *testing.T) {
		seen := map[digest.Digest]int{}
		pages := 0
		err := repo.Referrers(t.Context(), subject.Desc(), "", func(page []ocispec.Descriptor) error {
			pages++
			for _, d := range page {
				seen[d.Digest]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if pages < 2 {
			t.Errorf("oras-go got %d pages, want at least 2", pages)
		}
		if len(seen) != total {
			t.Errorf("oras-go sees %d referrers, want %d", len(seen), total)
		}
		for d, n := range seen {
			if n != 1 || want[d] == "" {
				t.Errorf("oras-go: %s seen %d times (known: %v)", d, n, want[d] != "")
			}
		}
	})
}

func TestArtifactManifestTypes(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	repo := repository(t, srv, "artifacts")
	subject := apitest.NewImage(t, linuxAMD64, "subject layer")
	copyImage(t, repo, subject, "v1")
	payload := apitest.NewBlob("application/vnd.example.payload", []byte("artifact payload"))
	push(t, repo, payload)

	artifacts := []apitest.Blob{
		apitest.ManifestBlob(t, manifest.MediaTypeArtifact, map[string]any{
			"mediaType":    manifest.MediaTypeArtifact,
			"artifactType": "application/vnd.example.oci-artifact",
			"blobs":        []ocispec.Descriptor{payload.Desc},
			"subject":      subject.Desc(),
			"annotations":  map[string]string{"org.example.kind": "oci-artifact"},
		}),
		apitest.ManifestBlob(t, manifest.MediaTypeORASArtifact, map[string]any{
			"mediaType":    manifest.MediaTypeORASArtifact,
			"artifactType": "application/vnd.example.oras-artifact",
			"blobs":        []ocispec.Descriptor{payload.Desc},
			"subject":      subject.Desc(),
			"annotations":  map[string]string{"org.example.kind": "oras-artifact"},
		}),
	}
	want := map[digest.Digest]ocispec.Descriptor{}
	for _, a := range artifacts {
		r := srv.PutManifest(t, "artifacts", a.Desc.Digest.String(), a.Desc.MediaType, a.Data)
		apitest.WantStatus(t, "PUT "+a.Desc.MediaType, r, http.StatusCreated)
		apitest.WantHeader(t, "PUT "+a.Desc.MediaType, r, "OCI-Subject", subject.Desc().Digest.String())
		apitest.WantHeader(t, "PUT "+a.Desc.MediaType, r, "Docker-Content-Digest", a.Desc.Digest.String())
		var m struct {
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		}
		apitest.Decode(t, "artifact", a.Data, &m)
		want[a.Desc.Digest] = ocispec.Descriptor{
			MediaType: a.Desc.MediaType, Digest: a.Desc.Digest, Size: a.Desc.Size,
			ArtifactType: m.ArtifactType, Annotations: m.Annotations,
		}

		get := srv.Do(t, http.MethodGet, "/v2/artifacts/manifests/"+a.Desc.Digest.String(), nil, "Accept", a.Desc.MediaType)
		apitest.WantStatus(t, "GET "+a.Desc.MediaType, get, http.StatusOK)
		apitest.WantHeader(t, "GET "+a.Desc.MediaType, get, "Content-Type", a.Desc.MediaType)
		if string(get.Body) != string(a.Data) {
			t.Errorf("GET %s: body differs from the pushed manifest", a.Desc.MediaType)
		}
	}
	idx, _ := referrers(t, srv, "artifacts", subject.Desc().Digest, "")
	checkDescriptors(t, idx.Manifests, want)

	for _, a := range artifacts {
		typ := want[a.Desc.Digest].ArtifactType
		idx, _ := referrers(t, srv, "artifacts", subject.Desc().Digest, "artifactType="+url.QueryEscape(typ))
		if got := apitest.Digests(idx.Manifests); !slices.Equal(got, []digest.Digest{a.Desc.Digest}) {
			t.Errorf("artifactType=%s: %v, want [%s]", typ, got, a.Desc.Digest)
		}
	}

	// An artifact manifest's blobs must be in the repository too.
	missing := apitest.NewBlob("application/vnd.example.payload", []byte("never uploaded"))
	bad := apitest.ManifestBlob(t, manifest.MediaTypeArtifact, map[string]any{
		"mediaType": manifest.MediaTypeArtifact,
		"blobs":     []ocispec.Descriptor{missing.Desc},
		"subject":   subject.Desc(),
	})
	r := srv.PutManifest(t, "artifacts", bad.Desc.Digest.String(), manifest.MediaTypeArtifact, bad.Data)
	apitest.WantError(t, "artifact with a missing blob", r, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")

	// oras-go lists the artifacts of every manifest type.
	var listed []ocispec.Descriptor
	err := repo.Referrers(t.Context(), subject.Desc(), "", func(page []ocispec.Descriptor) error {
		listed = append(listed, page...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := apitest.Digests(listed), apitest.Sorted(slices.Collect(maps.Keys(want))...); !slices.Equal(got, want) {
		t.Errorf("oras-go Referrers: %v, want %v", got, want)
	}
}

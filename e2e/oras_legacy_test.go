package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
	"github.com/graft-registry/graft/internal/manifest"
)

// TestLegacyORASAPI covers /oras/artifacts/v1/, which early ORAS clients use.
func TestLegacyORASAPI(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	const name = "legacy/app"
	repo := repository(t, srv, name)
	subject := apitest.NewImage(t, linuxAMD64, "legacy subject layer")
	copyImage(t, repo, subject, "v1")
	payload := apitest.NewBlob("application/vnd.example.payload", []byte("legacy payload"))
	push(t, repo, payload)

	const typeA, typeB = "application/vnd.example.a", "application/vnd.example.b"
	orasArtifact := apitest.ManifestBlob(t, manifest.MediaTypeORASArtifact, map[string]any{
		"mediaType":    manifest.MediaTypeORASArtifact,
		"artifactType": typeA,
		"blobs":        []ocispec.Descriptor{payload.Desc},
		"subject":      subject.Desc(),
	})
	ociArtifact := apitest.ManifestBlob(t, manifest.MediaTypeArtifact, map[string]any{
		"mediaType":    manifest.MediaTypeArtifact,
		"artifactType": typeB,
		"blobs":        []ocispec.Descriptor{payload.Desc},
		"subject":      subject.Desc(),
	})
	for _, a := range []apitest.Blob{orasArtifact, ociArtifact} {
		r := srv.PutManifest(t, name, a.Desc.Digest.String(), a.Desc.MediaType, a.Data)
		apitest.WantStatus(t, "PUT "+a.Desc.MediaType, r, http.StatusCreated)
	}
	want := map[digest.Digest]string{
		orasArtifact.Desc.Digest: typeA,
		ociArtifact.Desc.Digest:  typeB,
	}
	for i, typ := range []string{typeA, typeA, typeB} {
		d := attach(t, repo, subject.Desc(), typ, fmt.Sprintf("image-manifest artifact %d", i), nil)
		want[d.Digest] = typ
	}

	// The manifest endpoint answers with the stored bytes.
	for _, b := range []apitest.Blob{subject.Manifest, orasArtifact, ociArtifact} {
		path := "/oras/artifacts/v1/" + name + "/manifests/" + b.Desc.Digest.String()
		r := srv.Do(t, http.MethodGet, path, nil)
		apitest.WantStatus(t, "GET "+path, r, http.StatusOK)
		if !bytes.Equal(r.Body, b.Data) {
			t.Errorf("GET %s: body differs from the pushed manifest", path)
		}
		apitest.WantHeader(t, "GET "+path, r, "Content-Type", b.Desc.MediaType)
		apitest.WantHeader(t, "GET "+path, r, "Docker-Content-Digest", b.Desc.Digest.String())
	}
	unknown := "/oras/artifacts/v1/" + name + "/manifests/" + digest.FromString("unknown").String()
	apitest.WantError(t, "GET "+unknown, srv.Do(t, http.MethodGet, unknown, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")

	base := "/oras/artifacts/v1/" + name + "/manifests/" + subject.Desc().Digest.String() + "/referrers"
	for _, tc := range []struct {
		name, query  string
		artifactType string
		pages        int
	}{
		{"all", "", "", 1},
		{"all n=2", "n=2", "", 3},
		{"type A", "artifactType=" + url.QueryEscape(typeA), typeA, 1},
		{"type A n=2", "n=2&artifactType=" + url.QueryEscape(typeA), typeA, 2},
		{"type B n=1", "n=1&artifactType=" + url.QueryEscape(typeB), typeB, 2},
		{"no such type", "artifactType=application%2Fvnd.example.none", "application/vnd.example.none", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := base
			if tc.query != "" {
				target += "?" + tc.query
			}
			pages := srv.Pages(t, target, 20)
			seen := map[digest.Digest]int{}
			for i, p := range pages {
				var body struct {
					References []ocispec.Descriptor `json:"references"`
				}
				apitest.Decode(t, fmt.Sprintf("page %d", i), p.Body, &body)
				if body.References == nil {
					t.Errorf("page %d has no references list: %s", i, p.Body)
				}
				for _, d := range body.References {
					seen[d.Digest]++
					if d.ArtifactType != want[d.Digest] {
						t.Errorf("%s: artifactType %q, want %q", d.Digest, d.ArtifactType, want[d.Digest])
					}
				}
			}
			var wantDigests []digest.Digest
			for d, typ := range want {
				if tc.artifactType == "" || typ == tc.artifactType {
					wantDigests = append(wantDigests, d)
				}
			}
			slices.Sort(wantDigests)
			var got []digest.Digest
			for d, n := range seen {
				got = append(got, d)
				if n != 1 {
					t.Errorf("%s listed %d times", d, n)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, wantDigests) {
				t.Errorf("referrers %v, want %v", got, wantDigests)
			}
			if len(pages) != tc.pages {
				t.Errorf("%d pages, want %d", len(pages), tc.pages)
			}
		})
	}
}

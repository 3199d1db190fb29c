package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
	"github.com/graft-registry/graft/internal/manifest"
)

func TestIndexes(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)

	for _, tc := range []struct {
		name, repo string
		indexType  string
		build      func(testing.TB, ocispec.Platform, ...string) apitest.Image
	}{
		{"oci", "multi/oci", ocispec.MediaTypeImageIndex, apitest.NewImage},
		{"docker", "multi/docker", manifest.MediaTypeDockerManifestList, apitest.NewDockerImage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			amd := tc.build(t, linuxAMD64, tc.name+" amd64 layer")
			arm := tc.build(t, linuxARM64, tc.name+" arm64 layer")
			idx := apitest.NewIndex(t, tc.indexType, []ocispec.Descriptor{
				apitest.WithPlatform(amd.Desc(), linuxAMD64), apitest.WithPlatform(arm.Desc(), linuxARM64),
			}, nil)
			// Indented, with a final newline: what is stored and served must be
			// these bytes, not a re-encoding of them.
			idx = indented(t, idx)

			mem := memory.New()
			push(t, mem, amd.Blobs()...)
			push(t, mem, arm.Blobs()...)
			push(t, mem, amd.Manifest, arm.Manifest, idx)
			if err := mem.Tag(t.Context(), idx.Desc, "latest"); err != nil {
				t.Fatal(err)
			}
			repo := repository(t, srv, tc.repo)
			if _, err := oras.Copy(t.Context(), mem, "latest", repo, "latest", oras.DefaultCopyOptions); err != nil {
				t.Fatalf("push: %v", err)
			}

			for _, want := range []apitest.Blob{idx, amd.Manifest, arm.Manifest} {
				refs := []string{want.Desc.Digest.String()}
				if want.Desc.Digest == idx.Desc.Digest {
					refs = append(refs, "latest")
				}
				for _, ref := range refs {
					// Whatever the client accepts, the stored bytes go out with the
					// media type they were pushed with.
					for _, accept := range []string{want.Desc.MediaType, ocispec.MediaTypeImageManifest + ", " + ocispec.MediaTypeImageIndex} {
						path := "/v2/" + tc.repo + "/manifests/" + ref
						r := srv.Do(t, http.MethodGet, path, nil, "Accept", accept)
						apitest.WantStatus(t, "GET "+path, r, http.StatusOK)
						if !bytes.Equal(r.Body, want.Data) {
							t.Errorf("GET %s (Accept %s): body differs from the pushed manifest", path, accept)
						}
						apitest.WantHeader(t, "GET "+path, r, "Content-Type", want.Desc.MediaType)
						apitest.WantHeader(t, "GET "+path, r, "Docker-Content-Digest", want.Desc.Digest.String())
					}
				}
			}

			// oras-go pulls the whole graph back.
			pulled := memory.New()
			if _, err := oras.Copy(t.Context(), repo, "latest", pulled, "latest", oras.DefaultCopyOptions); err != nil {
				t.Fatalf("pull: %v", err)
			}
			for _, b := range append(append(amd.Blobs(), arm.Blobs()...), amd.Manifest, arm.Manifest, idx) {
				if !bytes.Equal(fetchAll(t, pulled, b.Desc), b.Data) {
					t.Errorf("pulled %s differs from what was pushed", b.Desc.Digest)
				}
			}
		})
	}
}

func TestManifestBlobUnknown(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	present := apitest.NewImage(t, linuxAMD64, "present layer")
	copyImage(t, repository(t, srv, "mine"), present, "v1")

	// A blob that exists, but in another repository only.
	elsewhere := apitest.NewImage(t, linuxAMD64, "a layer of another repository")
	copyImage(t, repository(t, srv, "theirs"), elsewhere, "v1")
	// A manifest that exists, but in another repository only.
	foreignChild := apitest.NewImage(t, linuxARM64, "a layer of a foreign platform image")
	copyImage(t, repository(t, srv, "theirs"), foreignChild, "")

	unknownChild := apitest.NewImage(t, linuxARM64, "never pushed")

	for _, tc := range []struct {
		name, mediaType string
		body            []byte
	}{
		{"index with an unknown child", ocispec.MediaTypeImageIndex, apitest.NewIndex(t, ocispec.MediaTypeImageIndex,
			[]ocispec.Descriptor{apitest.WithPlatform(present.Desc(), linuxAMD64), apitest.WithPlatform(unknownChild.Desc(), linuxARM64)}, nil).Data},
		{"manifest list with an unknown child", manifest.MediaTypeDockerManifestList, apitest.NewIndex(t, manifest.MediaTypeDockerManifestList,
			[]ocispec.Descriptor{apitest.WithPlatform(unknownChild.Desc(), linuxARM64)}, nil).Data},
		{"index with a child of another repository", ocispec.MediaTypeImageIndex, apitest.NewIndex(t, ocispec.MediaTypeImageIndex,
			[]ocispec.Descriptor{apitest.WithPlatform(present.Desc(), linuxAMD64), apitest.WithPlatform(foreignChild.Desc(), linuxARM64)}, nil).Data},
		{"image with a config of another repository", ocispec.MediaTypeImageManifest,
			apitest.ImageManifest(elsewhere.Config.Desc, []ocispec.Descriptor{present.Layers[0].Desc}, "", nil)},
		{"image with a layer of another repository", ocispec.MediaTypeImageManifest,
			apitest.ImageManifest(present.Config.Desc, []ocispec.Descriptor{present.Layers[0].Desc, elsewhere.Layers[0].Desc}, "", nil)},
		{"image with a layer nowhere", ocispec.MediaTypeImageManifest,
			apitest.ImageManifest(present.Config.Desc, []ocispec.Descriptor{unknownChild.Layers[0].Desc}, "", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := digest.FromBytes(tc.body)
			for _, ref := range []string{"broken", d.String()} {
				r := srv.PutManifest(t, "mine", ref, tc.mediaType, tc.body)
				apitest.WantError(t, "PUT "+ref, r, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
			}
			if s := manifestStatus(t, srv, "mine", d.String()); s != http.StatusNotFound {
				t.Errorf("the refused manifest answers GET with %d, want 404", s)
			}
			if s := manifestStatus(t, srv, "mine", "broken"); s != http.StatusNotFound {
				t.Errorf("the tag of the refused manifest answers GET with %d, want 404", s)
			}
		})
	}
}

// indented is b's JSON indented, with a final newline.
func indented(t *testing.T, b apitest.Blob) apitest.Blob {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b.Data, "", "   "); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n")
	return apitest.NewBlob(b.Desc.MediaType, buf.Bytes())
}

package e2e

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

const maxManifest = 4 << 20 // the spec's suggested limit, which graft enforces

// paddedManifest is a valid image manifest of exactly size bytes.
func paddedManifest(t *testing.T, im apitest.Image, size int) []byte {
	t.Helper()
	build := func(pad int) []byte {
		return apitest.JSON(t, ocispec.Manifest{
			Versioned:   specs.Versioned{SchemaVersion: 2},
			MediaType:   ocispec.MediaTypeImageManifest,
			Config:      im.Config.Desc,
			Layers:      []ocispec.Descriptor{im.Layers[0].Desc},
			Annotations: map[string]string{"org.example.padding": strings.Repeat("p", pad)},
		})
	}
	b := build(size - len(build(0)))
	if len(b) != size {
		t.Fatalf("padded manifest is %d bytes, want %d", len(b), size)
	}
	return b
}

func TestManifestSizeLimit(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	im := apitest.NewImage(t, linuxAMD64, "a layer under a large manifest")
	repo := repository(t, srv, "big")
	push(t, repo, im.Blobs()...)

	// The client waits for 100 Continue before it sends a body, so a registry that
	// refuses on the headers alone answers without reading 4 MiB; the long timeout
	// keeps a loaded machine from sending the body anyway.
	tr := srv.HTTP.Transport.(*http.Transport).Clone()
	tr.ExpectContinueTimeout = time.Minute
	client := &apitest.Client{URL: srv.URL, HTTP: &http.Client{Transport: tr}}

	put := func(t *testing.T, ref string, body []byte, chunked bool) *apitest.Response {
		t.Helper()
		header := []string{"Content-Type", ocispec.MediaTypeImageManifest, "Expect", "100-continue"}
		if chunked {
			return client.DoStream(t, http.MethodPut, "/v2/big/manifests/"+ref, bytes.NewReader(body), header...)
		}
		return client.Do(t, http.MethodPut, "/v2/big/manifests/"+ref, body, header...)
	}

	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"exactly 4 MiB", maxManifest, false, http.StatusCreated},
		{"exactly 4 MiB chunked", maxManifest, true, http.StatusCreated},
		{"one byte over", maxManifest + 1, false, http.StatusRequestEntityTooLarge},
		{"one byte over chunked", maxManifest + 1, true, http.StatusRequestEntityTooLarge},
		{"5 MiB", 5 << 20, false, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := paddedManifest(t, im, tc.size)
			if tc.chunked {
				// another manifest than the unchunked case of the same size
				body[len(body)-4] = 'q'
			}
			d := digest.FromBytes(body)
			for _, ref := range []string{d.String(), "tag"} {
				r := put(t, ref, body, tc.chunked)
				if tc.status == http.StatusCreated {
					apitest.WantStatus(t, "PUT "+ref, r, tc.status)
					continue
				}
				apitest.WantError(t, "PUT "+ref, r, tc.status, "MANIFEST_INVALID")
			}
			get := srv.Do(t, http.MethodGet, "/v2/big/manifests/"+d.String(), nil)
			if tc.status == http.StatusCreated {
				apitest.WantStatus(t, "GET", get, http.StatusOK)
				if !bytes.Equal(get.Body, body) {
					t.Error("GET: body differs from the pushed manifest")
				}
			} else {
				apitest.WantError(t, "GET the refused manifest", get, http.StatusNotFound, "MANIFEST_UNKNOWN")
			}
		})
	}
}

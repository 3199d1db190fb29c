package e2e

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

func TestPushPullImage(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	repo := repository(t, srv, "library/app")
	im := apitest.NewImage(t, linuxAMD64, "first layer", "second layer, a little longer")
	copyImage(t, repo, im, "v1")

	// Pull into an empty store: every node of the graph comes back byte for byte.
	pulled := memory.New()
	desc, err := oras.Copy(t.Context(), repo, "v1", pulled, "v1", oras.DefaultCopyOptions)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if desc.Digest != im.Desc().Digest || desc.MediaType != ocispec.MediaTypeImageManifest || desc.Size != im.Desc().Size {
		t.Errorf("v1 resolves to %+v, want %+v", desc, im.Desc())
	}
	for _, b := range append(im.Blobs(), im.Manifest) {
		if got := fetchAll(t, pulled, b.Desc); !bytes.Equal(got, b.Data) {
			t.Errorf("pulled %s differs from what was pushed", b.Desc.Digest)
		}
	}

	// By tag and by digest, through oras-go.
	for _, ref := range []string{"v1", im.Desc().Digest.String()} {
		d, rc, err := repo.FetchReference(t.Context(), ref)
		if err != nil {
			t.Fatalf("fetch %s: %v", ref, err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(rc)
		rc.Close()
		if d.Digest != im.Desc().Digest || !bytes.Equal(buf.Bytes(), im.Manifest.Data) {
			t.Errorf("fetch %s: got %s (%d bytes), want %s", ref, d.Digest, buf.Len(), im.Desc().Digest)
		}
	}

	// The headers clients rely on, on GET and HEAD.
	for _, ref := range []string{"v1", im.Desc().Digest.String()} {
		path := "/v2/library/app/manifests/" + ref
		get := srv.Do(t, http.MethodGet, path, nil, "Accept", ocispec.MediaTypeImageManifest)
		apitest.WantStatus(t, "GET "+path, get, http.StatusOK)
		if !bytes.Equal(get.Body, im.Manifest.Data) {
			t.Errorf("GET %s: body differs from the pushed manifest", path)
		}
		head := srv.Do(t, http.MethodHead, path, nil, "Accept", ocispec.MediaTypeImageManifest)
		apitest.WantStatus(t, "HEAD "+path, head, http.StatusOK)
		if len(head.Body) != 0 {
			t.Errorf("HEAD %s: answered with a body of %d bytes", path, len(head.Body))
		}
		for _, r := range []*apitest.Response{get, head} {
			apitest.WantHeader(t, path, r, "Docker-Content-Digest", im.Desc().Digest.String())
			apitest.WantHeader(t, path, r, "Content-Type", ocispec.MediaTypeImageManifest)
			apitest.WantHeader(t, path, r, "Content-Length", strconv.Itoa(len(im.Manifest.Data)))
		}
	}
	for _, b := range im.Blobs() {
		path := "/v2/library/app/blobs/" + b.Desc.Digest.String()
		get := srv.Do(t, http.MethodGet, path, nil)
		apitest.WantStatus(t, "GET "+path, get, http.StatusOK)
		if !bytes.Equal(get.Body, b.Data) {
			t.Errorf("GET %s: body differs from the pushed blob", path)
		}
		apitest.WantHeader(t, "GET "+path, get, "Docker-Content-Digest", b.Desc.Digest.String())
		head := srv.Do(t, http.MethodHead, path, nil)
		apitest.WantStatus(t, "HEAD "+path, head, http.StatusOK)
		apitest.WantHeader(t, "HEAD "+path, head, "Content-Length", strconv.Itoa(len(b.Data)))
		apitest.WantHeader(t, "HEAD "+path, head, "Docker-Content-Digest", b.Desc.Digest.String())
		if len(head.Body) != 0 {
			t.Errorf("HEAD %s: answered with a body", path)
		}
	}

	// Another image under the same tag moves the tag; the first stays, by digest.
	newer := apitest.NewImage(t, linuxAMD64, "first layer", "a newer second layer")
	copyImage(t, repo, newer, "v1")
	if d, err := repo.Resolve(t.Context(), "v1"); err != nil || d.Digest != newer.Desc().Digest {
		t.Errorf("v1 resolves to %v (%v), want %s", d.Digest, err, newer.Desc().Digest)
	}
	if s := manifestStatus(t, srv, "library/app", im.Desc().Digest.String()); s != http.StatusOK {
		t.Errorf("the image the tag left answers %d", s)
	}

	// What is not there.
	missing := apitest.NewImage(t, linuxAMD64, "never pushed")
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v2/library/app/manifests/v2", http.StatusNotFound},
		{http.MethodHead, "/v2/library/app/manifests/v2", http.StatusNotFound},
		{http.MethodGet, "/v2/library/app/manifests/" + missing.Desc().Digest.String(), http.StatusNotFound},
		{http.MethodHead, "/v2/library/app/manifests/" + missing.Desc().Digest.String(), http.StatusNotFound},
		{http.MethodHead, "/v2/library/app/blobs/" + missing.Config.Desc.Digest.String(), http.StatusNotFound},
	} {
		r := srv.Do(t, tc.method, tc.path, nil)
		if r.Status != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, r.Status, tc.status)
		}
		if tc.method == http.MethodGet {
			apitest.WantError(t, tc.method+" "+tc.path, r, tc.status, "MANIFEST_UNKNOWN")
		}
	}
	r := srv.Do(t, http.MethodGet, "/v2/library/app/blobs/"+missing.Config.Desc.Digest.String(), nil)
	apitest.WantError(t, "GET unknown blob", r, http.StatusNotFound, "BLOB_UNKNOWN")
}

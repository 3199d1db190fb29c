package server_test

import (
	"net/http"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	kinds "github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/registrytest"
)

// cosignSignature is the manifest `cosign sign` pushes in its default mode: a
// simple-signing layer, no subject.
func cosignSignature(t *testing.T, srv *registrytest.Server, repo, payload string) apitest.Blob {
	t.Helper()
	config := apitest.NewBlob(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"","os":""}`))
	layer := apitest.NewBlob(kinds.MediaTypeCosignSimpleSigning, []byte(payload))
	srv.PushBlobs(t, repo, []apitest.Blob{config, layer})
	return apitest.NewBlob(ocispec.MediaTypeImageManifest, apitest.ImageManifest(config.Desc, []ocispec.Descriptor{layer.Desc}, "", nil))
}

// TestTagSchemaMetadata: the metadata API says what a tag-schema signature is and
// whose, filters on the edge and the kind, and refuses filters it does not know.
func TestTagSchemaMetadata(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "tagschema/meta"
		im := apitest.NewImage(t, linuxAMD64, "signed layer")
		srv.PushImage(t, repo, "v1", im)
		sig := cosignSignature(t, srv, repo, `{"critical":{"image":{"docker-manifest-digest":"`+im.Desc().Digest.String()+`"}}}`)
		srv.PushManifest(t, repo, "sha256-"+im.Desc().Digest.Encoded()+".sig", sig)

		type info struct {
			Digest    string           `json:"digest"`
			Kind      string           `json:"kind"`
			Subject   string           `json:"subject"`
			Edge      string           `json:"edge"`
			Artifacts map[string]int64 `json:"artifacts"`
			Signed    bool             `json:"signed"`
		}
		var got info
		apitest.Decode(t, "signature", srv.Want(t, http.StatusOK, http.MethodGet,
			"/graft/v1/"+repo+"/_manifests/"+sig.Desc.Digest.String(), nil).Body, &got)
		if got.Kind != "signature" || got.Subject != im.Desc().Digest.String() || got.Edge != "tag" {
			t.Errorf("the signature: %+v; want a signature of %s by tag", got, im.Desc().Digest)
		}
		got = info{}
		apitest.Decode(t, "image", srv.Want(t, http.StatusOK, http.MethodGet, "/graft/v1/"+repo+"/_manifests/v1", nil).Body, &got)
		if got.Kind != "image" || !got.Signed || got.Artifacts["signature"] != 1 || got.Edge != "" {
			t.Errorf("the image: %+v; want an image, signed once", got)
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"edge=tag", []string{sig.Desc.Digest.String()}},
			{"kind=signature", []string{sig.Desc.Digest.String()}},
			{"kind=image", []string{im.Desc().Digest.String()}},
			{"edge=subject", nil},
			{"kind=sbom", nil},
		} {
			var list struct {
				Manifests []info `json:"manifests"`
			}
			apitest.Decode(t, tc.query, srv.Want(t, http.StatusOK, http.MethodGet, "/graft/v1/"+repo+"/_manifests?"+tc.query, nil).Body, &list)
			var digests []string
			for _, m := range list.Manifests {
				digests = append(digests, m.Digest)
			}
			if len(digests) != len(tc.want) || len(digests) > 0 && digests[0] != tc.want[0] {
				t.Errorf("?%s lists %v, want %v", tc.query, digests, tc.want)
			}
		}
		for _, q := range []string{"kind=thing", "edge=both", "edge=subject&hasSubject=false"} {
			apitest.WantError(t, q, srv.Do(t, http.MethodGet, "/graft/v1/"+repo+"/_manifests?"+q, nil), http.StatusBadRequest, "UNSUPPORTED")
		}
	})
}

// TestConditionalPush: a manifest push under a tag takes If-Match (the ETag a GET
// answers) and If-None-Match: *, and answers 412 PRECONDITION_FAILED when the tag names
// something else, moving nothing.
func TestConditionalPush(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "tagschema/cas"
		a := apitest.NewImage(t, linuxAMD64, "a")
		b := apitest.NewImage(t, linuxAMD64, "b")
		srv.PushBlobs(t, repo, append(a.Blobs(), b.Blobs()...))
		put := func(im apitest.Image, headers ...string) *apitest.Response {
			return srv.PutManifest(t, repo, "v1", ocispec.MediaTypeImageManifest, im.Manifest.Data, headers...)
		}
		etag := func() string {
			return srv.Want(t, http.StatusOK, http.MethodHead, "/v2/"+repo+"/manifests/v1", nil).Header.Get("ETag")
		}
		apitest.WantStatus(t, "create", put(a, "If-None-Match", "*"), http.StatusCreated)
		apitest.WantError(t, "create again", put(b, "If-None-Match", "*"), http.StatusPreconditionFailed, "PRECONDITION_FAILED")
		first := etag()
		if first != `"`+a.Desc().Digest.String()+`"` {
			t.Fatalf("ETag %s, want a's digest", first)
		}
		apitest.WantError(t, "stale If-Match", put(b, "If-Match", `"`+b.Desc().Digest.String()+`"`), http.StatusPreconditionFailed, "PRECONDITION_FAILED")
		if etag() != first {
			t.Fatal("a refused conditional push moved the tag")
		}
		apitest.WantStatus(t, "If-Match", put(b, "If-Match", first), http.StatusCreated)
		if etag() != `"`+b.Desc().Digest.String()+`"` {
			t.Error("the conditional push did not move the tag")
		}
		apitest.WantError(t, "bad If-Match", put(a, "If-Match", "yesterday"), http.StatusBadRequest, "UNSUPPORTED")
		r := srv.PutManifest(t, repo, a.Desc().Digest.String(), ocispec.MediaTypeImageManifest, a.Manifest.Data, "If-Match", first)
		apitest.WantError(t, "If-Match on a push by digest", r, http.StatusPreconditionFailed, "PRECONDITION_FAILED")
	})
}

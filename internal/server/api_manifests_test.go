package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/registrytest"
)

// edited is the JSON of im's manifest changed by edit.
func edited(t *testing.T, im apitest.Image, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	apitest.Decode(t, "manifest", im.Manifest.Data, &m)
	edit(m)
	return apitest.JSON(t, m)
}

func layer0(m map[string]any) map[string]any { return m["layers"].([]any)[0].(map[string]any) }

func TestManifestPush(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "man/app"
		im := apitest.NewImage(t, linuxAMD64, "a layer")
		srv.PushBlobs(t, repo, im.Blobs())
		d := im.Desc().Digest
		put := func(ref string) string { return "/v2/" + repo + "/manifests/" + ref }
		created := func(tags ...string) map[string]string {
			h := map[string]string{"Location": put(d.String()), "Docker-Content-Digest": d.String(),
				"Content-Length": "0", "OCI-Subject": "", "OCI-Tag": ""}
			if len(tags) > 0 {
				h["OCI-Tag"] = tags[0]
			}
			return h
		}
		mt := []string{"Content-Type", ocispec.MediaTypeImageManifest}
		run(t, srv, []call{
			{name: "by tag", method: http.MethodPut, target: put("v1"), body: im.Manifest.Data, header: mt,
				status: http.StatusCreated, headers: created(), answer: []byte{}},
			{name: "by digest", method: http.MethodPut, target: put(d.String()), body: im.Manifest.Data, header: mt,
				status: http.StatusCreated, headers: created()},
			{name: "again under its tag", method: http.MethodPut, target: put("v1"), body: im.Manifest.Data, header: mt,
				status: http.StatusCreated, headers: created()},
		})
		wantManifest(t, srv, repo, "v1", im.Manifest)
		wantManifest(t, srv, repo, d.String(), im.Manifest)

		// ?tag= tags it too, and the answer names every tag the manifest now has
		// from the request.
		for _, tc := range []struct {
			ref   string
			query string
			tags  []string
		}{
			{d.String(), "?tag=a&tag=b", []string{"a", "b"}},
			{"c", "?tag=d", []string{"c", "d"}},
		} {
			r := srv.Want(t, http.StatusCreated, http.MethodPut, put(tc.ref)+tc.query, im.Manifest.Data, mt...)
			if got := r.Header.Values("OCI-Tag"); !slices.Equal(got, tc.tags) {
				t.Errorf("PUT %s%s: OCI-Tag %q, want %q", tc.ref, tc.query, got, tc.tags)
			}
		}
		if got := srv.Tags(t, repo); !slices.Equal(got, []string{"a", "b", "c", "d", "v1"}) {
			t.Errorf("tags %q", got)
		}

		// If-None-Match with the manifest's ETag: it has not changed.
		for _, ref := range []string{"v1", d.String()} {
			call{method: http.MethodGet, target: put(ref), header: []string{"If-None-Match", `"` + d.String() + `"`},
				status: http.StatusNotModified, answer: []byte{},
				headers: map[string]string{"Etag": `"` + d.String() + `"`, "Docker-Content-Digest": d.String()}}.check(t, srv)
		}
		call{method: http.MethodGet, target: put("v1"), header: []string{"If-None-Match", `"sha256:other"`},
			status: http.StatusOK, answer: im.Manifest.Data}.check(t, srv)

		// Another manifest under the tag moves it; the first stays, by digest.
		newer := apitest.NewImage(t, linuxAMD64, "a newer layer")
		srv.PushImage(t, repo, "v1", newer)
		wantManifest(t, srv, repo, "v1", newer.Manifest)
		wantManifest(t, srv, repo, d.String(), im.Manifest)

		// A manifest with a subject is answered with OCI-Subject, whether or not the
		// subject is there.
		for _, subject := range []ocispec.Descriptor{im.Desc(), apitest.NewImage(t, linuxARM64, "never pushed").Desc()} {
			ref := apitest.NewReferrer(t, subject, linuxAMD64, "a referrer's layer of "+subject.Digest.String())
			srv.PushBlobs(t, repo, ref.Blobs())
			call{method: http.MethodPut, target: put(ref.Desc().Digest.String()), body: ref.Manifest.Data, header: mt,
				status: http.StatusCreated, headers: map[string]string{"OCI-Subject": subject.Digest.String()}}.check(t, srv)
		}
	})
}

func TestManifestPull(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "man/pull"
		im := apitest.NewImage(t, linuxAMD64, "a layer")
		srv.PushImage(t, repo, "v1", im)
		absent := digest.FromString("never pushed").String()
		get := func(name, method, ref string, status int, code, message string) call {
			c := call{name: name, method: method, target: "/v2/" + repo + "/manifests/" + ref, status: status, code: code, message: message}
			if method == http.MethodHead {
				c.answer = []byte{}
			}
			return c
		}
		run(t, srv, []call{
			get("unknown tag", http.MethodGet, "v2", http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest v2 is not in the repository"),
			get("unknown tag, HEAD", http.MethodHead, "v2", http.StatusNotFound, "MANIFEST_UNKNOWN", ""),
			get("unknown digest", http.MethodGet, absent, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest "+absent+" is not in the repository"),
			get("unknown digest, HEAD", http.MethodHead, absent, http.StatusNotFound, "MANIFEST_UNKNOWN", ""),
			get("invalid tag", http.MethodGet, "-v1", http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest -v1 is not in the repository"),
			get("malformed digest", http.MethodGet, "sha256:abc", http.StatusBadRequest, "DIGEST_INVALID", `invalid digest "sha256:abc"`),
			get("unknown algorithm", http.MethodGet, "md5:d41d8cd98f00b204e9800998ecf8427e", http.StatusBadRequest, "DIGEST_INVALID", ""),
			get("upper-case hex", http.MethodGet, strings.ToUpper(im.Desc().Digest.String()), http.StatusBadRequest, "DIGEST_INVALID", ""),
			get("malformed digest, HEAD", http.MethodHead, "sha256:abc", http.StatusBadRequest, "DIGEST_INVALID", ""),
			{name: "invalid name", method: http.MethodGet, target: "/v2/Man/pull/manifests/v1", status: http.StatusBadRequest,
				code: "NAME_INVALID", message: "invalid repository name"},
			{name: "unknown repository", method: http.MethodGet, target: "/v2/man/nothing/manifests/v1", status: http.StatusNotFound,
				code: "MANIFEST_UNKNOWN"},
		})
		// A long reference is echoed in part only.
		long := strings.Repeat("t", 129)
		get("long invalid tag", http.MethodGet, long, http.StatusNotFound, "MANIFEST_UNKNOWN",
			"manifest "+echoed(long)+" is not in the repository").check(t, srv)
	})
}

// TestManifestTypes: every manifest type is stored and served byte for byte, with the
// media type it was pushed as, whatever the Accept header asks.
func TestManifestTypes(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "man/types"
		amd := apitest.NewImage(t, linuxAMD64, "amd64 layer")
		arm := apitest.NewImage(t, linuxARM64, "arm64 layer")
		damd := apitest.NewDockerImage(t, linuxAMD64, "docker amd64 layer")
		darm := apitest.NewDockerImage(t, linuxARM64, "docker arm64 layer")
		for _, im := range []apitest.Image{amd, arm, damd, darm} {
			srv.PushImage(t, repo, "", im)
		}
		payload := apitest.NewBlob("application/vnd.example.payload", []byte("artifact payload"))
		srv.PushBlobs(t, repo, []apitest.Blob{payload})
		index := indented(t, apitest.NewIndex(t, ocispec.MediaTypeImageIndex,
			[]ocispec.Descriptor{apitest.WithPlatform(amd.Desc(), linuxAMD64), apitest.WithPlatform(arm.Desc(), linuxARM64)}, nil))
		list := apitest.NewIndex(t, manifest.MediaTypeDockerManifestList,
			[]ocispec.Descriptor{apitest.WithPlatform(damd.Desc(), linuxAMD64), apitest.WithPlatform(darm.Desc(), linuxARM64)}, nil)
		artifacts := []apitest.Blob{
			apitest.ManifestBlob(t, manifest.MediaTypeArtifact, map[string]any{
				"mediaType": manifest.MediaTypeArtifact, "artifactType": "application/vnd.example.a",
				"blobs": []ocispec.Descriptor{payload.Desc}, "subject": amd.Desc(),
			}),
			apitest.ManifestBlob(t, manifest.MediaTypeORASArtifact, map[string]any{
				"mediaType": manifest.MediaTypeORASArtifact, "artifactType": "application/vnd.example.b",
				"blobs": []ocispec.Descriptor{payload.Desc}, "subject": amd.Desc(),
			}),
		}
		for _, m := range append([]apitest.Blob{index, list}, artifacts...) {
			srv.PushManifest(t, repo, "", m)
		}
		for _, m := range append([]apitest.Blob{amd.Manifest, damd.Manifest, index, list}, artifacts...) {
			wantManifest(t, srv, repo, m.Desc.Digest.String(), m)
			// An Accept of another type changes nothing.
			call{method: http.MethodGet, target: "/v2/" + repo + "/manifests/" + m.Desc.Digest.String(),
				header: []string{"Accept", ocispec.MediaTypeImageManifest}, status: http.StatusOK, answer: m.Data,
				headers: map[string]string{"Content-Type": m.Desc.MediaType}}.check(t, srv)
		}

		// The media type is the Content-Type, or the body's mediaType when the
		// Content-Type is generic or missing, or what the body's fields say.
		plain := map[string]any{"schemaVersion": 2, "config": amd.Config.Desc, "layers": []ocispec.Descriptor{amd.Layers[0].Desc}}
		plainIndex := map[string]any{"schemaVersion": 2, "manifests": []ocispec.Descriptor{amd.Desc()}}
		for _, tc := range []struct {
			name, contentType string
			body              []byte
			want              string
		}{
			{"generic Content-Type", "application/json", damd.Manifest.Data, manifest.MediaTypeDockerManifest},
			{"octet-stream Content-Type", "application/octet-stream", list.Data, manifest.MediaTypeDockerManifestList},
			{"no Content-Type", "", index.Data, ocispec.MediaTypeImageIndex},
			{"a config and no mediaType", "", apitest.JSON(t, plain), ocispec.MediaTypeImageManifest},
			{"manifests and no mediaType", "", apitest.JSON(t, plainIndex), ocispec.MediaTypeImageIndex},
			{"Content-Type with parameters", ocispec.MediaTypeImageManifest + "; charset=utf-8", apitest.JSON(t, plain), ocispec.MediaTypeImageManifest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := digest.FromBytes(tc.body)
				srv.Want(t, http.StatusCreated, http.MethodPut, "/v2/"+repo+"/manifests/"+d.String(), tc.body, "Content-Type", tc.contentType)
				call{method: http.MethodGet, target: "/v2/" + repo + "/manifests/" + d.String(), status: http.StatusOK,
					answer: tc.body, headers: map[string]string{"Content-Type": tc.want}}.check(t, srv)
			})
		}
	})
}

// indented is b's JSON indented, with a final newline: what is stored and served must
// be these bytes, not a re-encoding of them.
func indented(t *testing.T, b apitest.Blob) apitest.Blob {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b.Data, "", "   "); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n")
	return apitest.NewBlob(b.Desc.MediaType, buf.Bytes())
}

// TestManifestValidation pushes what is not a valid manifest, or not the manifest its
// reference names, or names what the repository lacks: each is refused with the
// spec's code and nothing is stored.
func TestManifestValidation(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "man/valid"
		im := apitest.NewImage(t, linuxAMD64, "a layer")
		srv.PushImage(t, repo, "latest", im)
		// In another repository only.
		theirs := apitest.NewImage(t, linuxARM64, "a layer of another repository")
		srv.PushImage(t, "man/theirs", "", theirs)
		valid := edited(t, im, func(m map[string]any) { m["annotations"] = map[string]string{"v": "2"} })
		missing := apitest.NewBlob(ocispec.MediaTypeImageLayer, []byte("never pushed"))
		mt := ocispec.MediaTypeImageManifest
		badDigest := func(field string) string { return field + `: digest "sha256:abc" is invalid` }
		withLayer := func(d ocispec.Descriptor) []byte {
			return edited(t, im, func(m map[string]any) { m["layers"] = append(m["layers"].([]any), d) })
		}
		index := func(children ...ocispec.Descriptor) []byte {
			return apitest.NewIndex(t, ocispec.MediaTypeImageIndex, children, nil).Data
		}
		artifact := func(mediaType string, fields map[string]any) []byte {
			m := map[string]any{"mediaType": mediaType, "blobs": []ocispec.Descriptor{im.Layers[0].Desc}}
			for k, v := range fields {
				m[k] = v
			}
			return apitest.JSON(t, m)
		}

		for _, tc := range []struct {
			name        string
			ref         string // "" for the tag "t"
			contentType string
			body        []byte
			status      int
			code        string
			message     string
			detail      string // the error's detail, as JSON
		}{
			{"not JSON", "", mt, []byte("hello, registry"), 400, "MANIFEST_INVALID", "not a JSON manifest: syntax error at byte 1", ""},
			{"empty", "", mt, []byte{}, 400, "MANIFEST_INVALID", "not a JSON manifest: malformed JSON", ""},
			{"truncated", "", mt, valid[:len(valid)/2], 400, "MANIFEST_INVALID", "not a JSON manifest: malformed JSON", ""},
			{"a JSON array", "", mt, []byte(`[]`), 400, "MANIFEST_INVALID", `not a JSON manifest: field "" has the wrong type`, ""},
			{"JSON null", "", mt, []byte(`null`), 400, "MANIFEST_INVALID", "schemaVersion must be 2", ""},
			{"a field of the wrong type", "", mt, edited(t, im, func(m map[string]any) { m["layers"] = "none" }),
				400, "MANIFEST_INVALID", `not a JSON manifest: field "layers" has the wrong type`, ""},
			{"trailing data", "", mt, append(slices.Clone(valid), valid...), 400, "MANIFEST_INVALID", "trailing data after the JSON object", ""},
			{"a stray bracket", "", mt, append(slices.Clone(valid), ']'), 400, "MANIFEST_INVALID", "trailing data after the JSON object", ""},
			{"schemaVersion 1", "", mt, edited(t, im, func(m map[string]any) { m["schemaVersion"] = 1 }), 400, "MANIFEST_INVALID", "schemaVersion must be 2", ""},
			{"no schemaVersion", "", mt, edited(t, im, func(m map[string]any) { delete(m, "schemaVersion") }), 400, "MANIFEST_INVALID", "schemaVersion must be 2", ""},
			{"Docker schema 1", "", "application/vnd.docker.distribution.manifest.v1+prettyjws",
				[]byte(`{"schemaVersion":1,"name":"man/valid","tag":"t","fsLayers":[],"history":[]}`), 400, "MANIFEST_INVALID",
				"Docker schema 1 manifests are not supported", ""},
			{"no config", "", mt, edited(t, im, func(m map[string]any) { delete(m, "config") }), 400, "MANIFEST_INVALID", "an image manifest needs a config", ""},
			{"an image with manifests", "", mt, edited(t, im, func(m map[string]any) { m["manifests"] = []any{} }),
				400, "MANIFEST_INVALID", "an image manifest has no manifests or blobs", ""},
			{"a config without mediaType", "", mt, edited(t, im, func(m map[string]any) { delete(m["config"].(map[string]any), "mediaType") }),
				400, "MANIFEST_INVALID", "config: mediaType is required", ""},
			{"a config without digest", "", mt, edited(t, im, func(m map[string]any) { m["config"].(map[string]any)["digest"] = "" }),
				400, "MANIFEST_INVALID", `config: digest "" is invalid`, ""},
			{"a layer with a malformed digest", "", mt, edited(t, im, func(m map[string]any) { layer0(m)["digest"] = "sha256:abc" }),
				400, "MANIFEST_INVALID", badDigest("layers[0]"), ""},
			{"a layer with a negative size", "", mt, edited(t, im, func(m map[string]any) { layer0(m)["size"] = -1 }),
				400, "MANIFEST_INVALID", "layers[0]: size is negative", ""},
			{"embedded data of another size", "", mt, edited(t, im, func(m map[string]any) { layer0(m)["data"] = "YWJj" }),
				400, "MANIFEST_INVALID", fmt.Sprintf("layers[0]: data is 3 bytes, size says %d", im.Layers[0].Desc.Size), ""},
			{"embedded data of another digest", "", mt, edited(t, im, func(m map[string]any) {
				layer0(m)["data"] = "YWJj"
				layer0(m)["size"] = 3
			}), 400, "MANIFEST_INVALID", "layers[0]: data does not match the digest", ""},
			{"a subject without mediaType", "", mt, edited(t, im, func(m map[string]any) {
				m["subject"] = map[string]any{"digest": im.Desc().Digest, "size": im.Desc().Size}
			}), 400, "MANIFEST_INVALID", "subject: mediaType is required", ""},
			{"an index with a config", "", ocispec.MediaTypeImageIndex, apitest.JSON(t, map[string]any{
				"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex, "manifests": []any{}, "config": im.Config.Desc,
			}), 400, "MANIFEST_INVALID", "an index has no config, layers or blobs", ""},
			{"an index with a malformed child", "", ocispec.MediaTypeImageIndex, apitest.JSON(t, map[string]any{
				"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex,
				"manifests": []any{map[string]any{"mediaType": mt, "digest": "sha256:abc", "size": 1}},
			}), 400, "MANIFEST_INVALID", badDigest("manifests[0]"), ""},
			{"an artifact manifest with a config", "", manifest.MediaTypeArtifact, artifact(manifest.MediaTypeArtifact, map[string]any{"config": im.Config.Desc}),
				400, "MANIFEST_INVALID", "an artifact manifest has no config, layers or manifests", ""},
			{"an ORAS artifact without artifactType", "", manifest.MediaTypeORASArtifact, artifact(manifest.MediaTypeORASArtifact, nil),
				400, "MANIFEST_INVALID", "an ORAS artifact manifest needs an artifactType", ""},
			{"an artifact blob with a malformed digest", "", manifest.MediaTypeArtifact, artifact(manifest.MediaTypeArtifact, map[string]any{
				"blobs": []any{map[string]any{"mediaType": "x/y", "digest": "sha256:abc", "size": 1}},
			}), 400, "MANIFEST_INVALID", badDigest("blobs[0]"), ""},

			// The media type: Content-Type and mediaType must agree.
			{"Content-Type differs from mediaType", "", ocispec.MediaTypeImageIndex, valid, 400, "MANIFEST_INVALID",
				`Content-Type "` + ocispec.MediaTypeImageIndex + `" differs from the manifest's mediaType "` + mt + `"`, ""},
			{"malformed Content-Type", "", mt + "; =;", valid, 400, "MANIFEST_INVALID", "malformed Content-Type", ""},
			{"unsupported Content-Type", "", "application/vnd.example.thing.v1+json", edited(t, im, func(m map[string]any) { delete(m, "mediaType") }),
				400, "MANIFEST_INVALID", `unsupported manifest media type "application/vnd.example.thing.v1+json"`, ""},
			{"unsupported mediaType", "", "", edited(t, im, func(m map[string]any) { m["mediaType"] = "text/plain" }),
				400, "MANIFEST_INVALID", `unsupported manifest media type "text/plain"`, ""},
			{"no media type at all", "", "", []byte(`{"schemaVersion":2}`), 400, "MANIFEST_INVALID",
				"no media type: set Content-Type or the manifest's mediaType", ""},

			// The reference: a valid tag, or the digest of the body.
			{"invalid tag", "-t", mt, valid, 400, "MANIFEST_INVALID", `invalid tag "-t"`, ""},
			{"invalid tag in ?tag=", "t?tag=with~tilde", mt, valid, 400, "MANIFEST_INVALID", `invalid tag "with~tilde"`, ""},
			{"a tag too long", strings.Repeat("t", 129), mt, valid, 400, "MANIFEST_INVALID", `invalid tag "` + echoed(strings.Repeat("t", 129)) + `"`, ""},
			{"a digest of other bytes", im.Desc().Digest.String(), mt, valid, 400, "DIGEST_INVALID",
				fmt.Sprintf("the manifest's digest is %s, not %s", digest.FromBytes(valid), im.Desc().Digest), ""},
			{"a digest of another algorithm", digest.SHA512.FromBytes(im.Manifest.Data).String(), mt, valid, 400, "DIGEST_INVALID",
				fmt.Sprintf("the manifest's digest is %s, not %s", digest.SHA512.FromBytes(valid), digest.SHA512.FromBytes(im.Manifest.Data)), ""},
			{"a malformed digest", "sha256:abc", mt, valid, 400, "DIGEST_INVALID", `invalid digest "sha256:abc"`, ""},

			// What it names must be in the repository.
			{"a missing layer", "", mt, withLayer(missing.Desc), 400, "MANIFEST_BLOB_UNKNOWN",
				"blob " + missing.Desc.Digest.String() + " is not in the repository", `["` + missing.Desc.Digest.String() + `"]`},
			{"a layer of another repository", "", mt, withLayer(theirs.Layers[0].Desc), 400, "MANIFEST_BLOB_UNKNOWN",
				"blob " + theirs.Layers[0].Desc.Digest.String() + " is not in the repository", `["` + theirs.Layers[0].Desc.Digest.String() + `"]`},
			{"a config of another repository", "", mt, edited(t, im, func(m map[string]any) { m["config"] = theirs.Config.Desc }),
				400, "MANIFEST_BLOB_UNKNOWN", "blob " + theirs.Config.Desc.Digest.String() + " is not in the repository", ""},
			{"a missing artifact blob", "", manifest.MediaTypeArtifact, artifact(manifest.MediaTypeArtifact, map[string]any{"blobs": []ocispec.Descriptor{missing.Desc}}),
				400, "MANIFEST_BLOB_UNKNOWN", "blob " + missing.Desc.Digest.String() + " is not in the repository", ""},
			{"an index with a missing child", "", ocispec.MediaTypeImageIndex, index(im.Desc(), missing.Desc), 400, "MANIFEST_BLOB_UNKNOWN",
				"manifest " + missing.Desc.Digest.String() + " is not in the repository", `["` + missing.Desc.Digest.String() + `"]`},
			{"an index with a child of another repository", "", ocispec.MediaTypeImageIndex, index(theirs.Desc()), 400, "MANIFEST_BLOB_UNKNOWN",
				"manifest " + theirs.Desc().Digest.String() + " is not in the repository", ""},
			{"an index with a blob as a child", "", ocispec.MediaTypeImageIndex, index(im.Layers[0].Desc), 400, "MANIFEST_BLOB_UNKNOWN",
				"manifest " + im.Layers[0].Desc.Digest.String() + " is not in the repository", ""},

			// And each is the size its descriptor says.
			{"a config of another size", "", mt, edited(t, im, func(m map[string]any) { m["config"].(map[string]any)["size"] = 5 }),
				400, "MANIFEST_INVALID", fmt.Sprintf("blob %s is %d bytes, not 5 as the manifest says", im.Config.Desc.Digest, im.Config.Desc.Size),
				fmt.Sprintf(`{"digest":"%s","size":5,"stored":%d}`, im.Config.Desc.Digest, im.Config.Desc.Size)},
			{"a layer of 2^62 bytes", "", mt, edited(t, im, func(m map[string]any) { layer0(m)["size"] = int64(1) << 62 }),
				400, "MANIFEST_INVALID", fmt.Sprintf("blob %s is %d bytes, not %d as the manifest says", im.Layers[0].Desc.Digest, im.Layers[0].Desc.Size, int64(1)<<62), ""},
			{"an artifact blob of another size", "", manifest.MediaTypeArtifact, artifact(manifest.MediaTypeArtifact, map[string]any{
				"blobs": []ocispec.Descriptor{{MediaType: "x/y", Digest: im.Layers[0].Desc.Digest, Size: 0}},
			}), 400, "MANIFEST_INVALID", fmt.Sprintf("blob %s is %d bytes, not 0 as the manifest says", im.Layers[0].Desc.Digest, im.Layers[0].Desc.Size), ""},
			{"an index child of size 1", "", ocispec.MediaTypeImageIndex, index(ocispec.Descriptor{MediaType: mt, Digest: im.Desc().Digest, Size: 1}),
				400, "MANIFEST_INVALID", fmt.Sprintf("manifest %s is %d bytes, not 1 as the manifest says", im.Desc().Digest, im.Desc().Size),
				fmt.Sprintf(`{"digest":"%s","size":1,"stored":%d}`, im.Desc().Digest, im.Desc().Size)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ref := tc.ref
				if ref == "" {
					ref = "t"
				}
				r := srv.Do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, tc.body, "Content-Type", tc.contentType)
				if !apitest.CheckError(t, "PUT "+clip(ref), r, tc.status, tc.code) {
					return
				}
				errs, _ := r.Errors()
				if errs[0].Message != tc.message {
					t.Errorf("message %q, want %q", errs[0].Message, tc.message)
				}
				if tc.detail != "" {
					if got := string(apitest.JSON(t, errs[0].Detail)); got != tc.detail {
						t.Errorf("detail %s, want %s", got, tc.detail)
					}
				}
				for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
					wantNoManifest(t, srv, repo, alg.FromBytes(tc.body).String())
				}
				wantNoManifest(t, srv, repo, "t")
			})
		}
		if got := srv.Tags(t, repo); !slices.Equal(got, []string{"latest"}) {
			t.Errorf("tags %q after the refused pushes, want [latest]", got)
		}
		wantManifest(t, srv, repo, "latest", im.Manifest)

		// A layer a client never pushes (non-distributable) need not be there.
		foreign := apitest.NewBlob("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", []byte("a foreign layer"))
		srv.Want(t, http.StatusCreated, http.MethodPut, "/v2/"+repo+"/manifests/foreign", withLayer(foreign.Desc), "Content-Type", mt)

		// A subject need not be there yet, so its size is not checked either.
		referrer := edited(t, im, func(m map[string]any) {
			m["subject"] = ocispec.Descriptor{MediaType: mt, Digest: im.Desc().Digest, Size: 1}
		})
		srv.Want(t, http.StatusCreated, http.MethodPut, "/v2/"+repo+"/manifests/"+digest.FromBytes(referrer).String(), referrer, "Content-Type", mt)

		// Neither is the name a registry's to take.
		call{method: http.MethodPut, target: "/v2/Man/valid/manifests/t", body: valid, header: []string{"Content-Type", mt},
			status: http.StatusBadRequest, code: "NAME_INVALID", message: "invalid repository name"}.check(t, srv)
	})
}

// TestManifestSizeLimit: a manifest of up to 4 MiB is taken, a larger one refused
// with 413, whether its length is declared or not.
func TestManifestSizeLimit(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "man/big"
		im := apitest.NewImage(t, linuxAMD64, "a layer under a large manifest")
		srv.PushBlobs(t, repo, im.Blobs())
		padded := func(size int, fill string) []byte {
			pad := func(n int) []byte {
				return edited(t, im, func(m map[string]any) { m["annotations"] = map[string]string{"pad": strings.Repeat(fill, n)} })
			}
			b := pad(size - len(pad(0)))
			if len(b) != size {
				t.Fatalf("padded manifest of %d bytes, want %d", len(b), size)
			}
			return b
		}
		for _, tc := range []struct {
			name   string
			size   int
			stream bool
		}{
			{"exactly 4 MiB", manifest.MaxSize, false},
			{"exactly 4 MiB streamed", manifest.MaxSize, true},
			{"one byte over", manifest.MaxSize + 1, false},
			{"one byte over streamed", manifest.MaxSize + 1, true},
			{"5 MiB", 5 << 20, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				fill := "p"
				if tc.stream {
					fill = "q" // another manifest than the same size declared
				}
				body := padded(tc.size, fill)
				d := digest.FromBytes(body)
				for _, ref := range []string{d.String(), "tag"} {
					c := call{method: http.MethodPut, target: "/v2/" + repo + "/manifests/" + ref, body: body, stream: tc.stream,
						header: []string{"Content-Type", ocispec.MediaTypeImageManifest}, status: http.StatusCreated}
					if tc.size > manifest.MaxSize {
						c.status, c.code, c.message = http.StatusRequestEntityTooLarge, "MANIFEST_INVALID", "manifest larger than 4194304 bytes"
					}
					c.check(t, srv)
				}
				if tc.size > manifest.MaxSize {
					wantNoManifest(t, srv, repo, d.String())
				} else {
					wantManifest(t, srv, repo, d.String(), apitest.NewBlob(ocispec.MediaTypeImageManifest, body))
				}
			})
		}
	})
}

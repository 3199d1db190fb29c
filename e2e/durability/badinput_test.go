package durability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

// maxManifest is the largest manifest the registry takes, as the spec suggests.
const maxManifest = 4 << 20

// badInputServer starts a server with one repository, "good", holding an image
// tagged "latest", and returns the api and the image's blobs and manifest.
func badInputServer(t *testing.T) (*api, image) {
	t.Helper()
	s := graftest.Start(t)
	a := newAPI(s)
	t.Cleanup(func() {
		a.checkAlive(t)
		checkNoPanic(t, s)
		checkDataDirLayout(t, s.DataDir)
		a.close()
	})
	img := image{config: imageConfig("bad input"), layer: []byte("a layer")}
	a.srv.PushBlob(t, "good", img.config)
	a.srv.PushBlob(t, "good", img.layer)
	img.manifest = img.build(nil)
	a.putManifest(t, "good", "latest", ocispec.MediaTypeImageManifest, img.manifest)
	return a, img
}

type image struct {
	config, layer, manifest []byte
}

// build returns the image's manifest, changed by edit when it is not nil.
func (img image) build(edit func(m map[string]any)) []byte {
	var m map[string]any
	json.Unmarshal(apitest.ImageManifest(apitest.NewBlob(ocispec.MediaTypeImageConfig, img.config).Desc,
		[]ocispec.Descriptor{apitest.NewBlob(ocispec.MediaTypeImageLayer, img.layer).Desc}, "", nil), &m)
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestBadBlobUploads sends uploads whose content, digest or body is wrong: each gets a
// spec error and stores nothing.
func TestBadBlobUploads(t *testing.T) {
	a, _ := badInputServer(t)
	data := []byte("the bytes of a blob that is never stored")
	d := digest.FromBytes(data)
	wrong := digest.FromBytes([]byte("other bytes"))

	t.Run("monolithic wrong digest", func(t *testing.T) {
		before := a.snapshot(t)
		r := a.srv.Do(t, http.MethodPost, "/v2/good/blobs/uploads/?digest="+wrong.String(), data)
		a.wantError(t, "monolithic upload with a wrong digest", r, http.StatusBadRequest, "DIGEST_INVALID")
		a.checkNoBlob(t, "good", wrong)
		a.checkNoBlob(t, "good", d)
		a.checkUnchanged(t, "monolithic upload with a wrong digest", before, true)
	})

	for _, last := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked wrong digest, last chunk in PUT %v", last), func(t *testing.T) {
			before := a.snapshot(t)
			loc := a.srv.StartUpload(t, "good")
			a.patch(t, loc, 0, data[:10])
			var body []byte
			hdr := []string{}
			if last {
				body = data[10:]
				hdr = []string{"Content-Range", fmt.Sprintf("10-%d", len(data)-1)}
			} else {
				a.patch(t, loc, 10, data[10:])
			}
			r := a.srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", wrong.String()), body, hdr...)
			a.wantError(t, "PUT with a wrong digest", r, http.StatusBadRequest, "DIGEST_INVALID")
			r = a.srv.Do(t, http.MethodGet, loc, nil)
			a.wantError(t, "the session after a wrong digest", r, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
			a.checkNoBlob(t, "good", wrong)
			a.checkNoBlob(t, "good", d)
			a.checkUnchanged(t, "chunked upload with a wrong digest", before, true)
		})
	}

	t.Run("PUT without digest", func(t *testing.T) {
		loc := a.srv.StartUpload(t, "good")
		a.patch(t, loc, 0, data)
		before := a.snapshot(t)
		for _, q := range []string{"", "?digest="} {
			r := a.srv.Do(t, http.MethodPut, loc+q, nil)
			a.wantError(t, "PUT "+q+" without a digest", r, http.StatusBadRequest, "DIGEST_INVALID")
			a.checkNoBlob(t, "good", d)
			a.checkUnchanged(t, "PUT without a digest", before, true)
			// The session is as it was, and can still be finished.
			if got := a.uploadStatus(t, loc); got != apitest.UploadRange(int64(len(data))) {
				t.Errorf("the session holds %q after a PUT without digest, want %q", got, apitest.UploadRange(int64(len(data))))
			}
		}
		apitest.WantStatus(t, "PUT with the digest", a.srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", d.String()), nil), http.StatusCreated)
		a.checkBlob(t, "good", data)
	})
}

// TestTruncatedBodies sends requests whose body ends before it says it does: the
// client closes its side of the connection. Nothing of such a body may be kept.
func TestTruncatedBodies(t *testing.T) {
	a, _ := badInputServer(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	head := func(method, path string, chunked bool, length int) string {
		h := method + " " + path + " HTTP/1.1\r\nHost: " + a.srv.Addr + "\r\nContent-Type: application/octet-stream"
		if chunked {
			return h + "\r\nTransfer-Encoding: chunked"
		}
		return h + "\r\nContent-Length: " + strconv.Itoa(length)
	}
	// chunkedPart is the chunked encoding of b without the last, empty chunk.
	chunkedPart := func(b []byte) io.Reader {
		return strings.NewReader(fmt.Sprintf("%x\r\n%s\r\n", len(b), b))
	}
	// noSuccess checks that whatever answer came is not a success.
	noSuccess := func(t *testing.T, what string, r *apitest.Response, err error) {
		t.Helper()
		if err == nil && r.Status < 300 {
			t.Errorf("%s: the server answered %s to a request whose body was cut short", what, r)
		}
		if err == nil {
			a.checkNoLeak(t, what, r)
		}
	}

	for _, chunked := range []bool{false, true} {
		name := "Content-Length"
		if chunked {
			name = "chunked"
		}

		t.Run("PATCH "+name, func(t *testing.T) {
			loc := a.srv.StartUpload(t, "good")
			a.patch(t, loc, 0, data[:100])
			var body io.Reader = bytes.NewReader(data[100:1100])
			if chunked {
				body = chunkedPart(data[100:1100])
			}
			r, err := rawExchange(t, a.srv.Addr, head(http.MethodPatch, loc, chunked, len(data)-100), body, true)
			noSuccess(t, "truncated PATCH", r, err)
			// The upload holds what it held before the PATCH, and goes on from there.
			if got := a.uploadStatus(t, loc); got != apitest.UploadRange(100) {
				t.Fatalf("after a PATCH cut short the upload holds %q, want %q: the cut chunk was kept", got, apitest.UploadRange(100))
			}
			a.patch(t, loc, 100, data[100:])
			apitest.WantStatus(t, "PUT", a.srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", digest.FromBytes(data).String()), nil), http.StatusCreated)
			a.checkBlob(t, "good", data)
		})

		t.Run("monolithic "+name, func(t *testing.T) {
			before := a.snapshot(t)
			// The digest of the whole, and of the part sent: neither may be stored.
			part := data[:1000]
			for _, d := range []digest.Digest{digest.FromBytes(data[:2000]), digest.FromBytes(part)} {
				var body io.Reader = bytes.NewReader(part)
				if chunked {
					body = chunkedPart(part)
				}
				path := "/v2/good/blobs/uploads/?digest=" + d.String()
				r, err := rawExchange(t, a.srv.Addr, head(http.MethodPost, path, chunked, 2000), body, true)
				noSuccess(t, "truncated monolithic upload as "+d.String(), r, err)
				a.checkNoBlob(t, "good", d)
				a.checkUnchanged(t, "truncated monolithic upload", before, true)
			}
		})
	}
}

// TestBadContentRange sends chunks whose Content-Range is malformed, contradicts the
// body or does not continue the upload: each gets 416 with the Range and Location of
// the upload as it stands, which is unchanged.
func TestBadContentRange(t *testing.T) {
	a, _ := badInputServer(t)
	data := []byte("0123456789abcdefghij")
	loc := a.srv.StartUpload(t, "good")
	a.patch(t, loc, 0, data[:10])
	for _, tc := range []struct {
		name, method, crange string
		body                 []byte
	}{
		{"malformed", http.MethodPatch, "abc", data[10:15]},
		{"no end", http.MethodPatch, "10-", data[10:15]},
		{"negative start", http.MethodPatch, "-1-3", data[10:15]},
		{"end before start", http.MethodPatch, "14-10", data[10:15]},
		{"disagrees with Content-Length", http.MethodPatch, "10-19", data[10:15]},
		{"past the end", http.MethodPatch, "12-16", data[10:15]},
		{"overlapping", http.MethodPatch, "5-9", data[5:10]},
		{"from zero again", http.MethodPatch, "0-4", data[0:5]},
		{"past the end in PUT", http.MethodPut, "12-16", data[10:15]},
		{"malformed in PUT", http.MethodPut, "x-y", data[10:15]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.snapshot(t)
			path := loc
			if tc.method == http.MethodPut {
				path = apitest.WithQuery(loc, "digest", digest.FromBytes(data).String())
			}
			r := a.srv.Do(t, tc.method, path, tc.body, "Content-Type", "application/octet-stream", "Content-Range", tc.crange)
			a.checkError(t, "Content-Range "+tc.crange, r, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
			if got := r.Header.Get("Range"); got != apitest.UploadRange(10) {
				t.Errorf("Content-Range %s: the answer has Range %q, want %q", tc.crange, got, apitest.UploadRange(10))
			}
			if got := r.Header.Get("Location"); got != loc {
				t.Errorf("Content-Range %s: the answer has Location %q, want %q", tc.crange, got, loc)
			}
			if got := a.uploadStatus(t, loc); got != apitest.UploadRange(10) {
				t.Fatalf("Content-Range %s: the upload holds %q afterwards, want %q", tc.crange, got, apitest.UploadRange(10))
			}
			a.checkUnchanged(t, "Content-Range "+tc.crange, before, true)
		})
	}
	// The upload is intact and can be finished.
	a.patch(t, loc, 10, data[10:])
	apitest.WantStatus(t, "PUT", a.srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", digest.FromBytes(data).String()), nil), http.StatusCreated)
	a.checkBlob(t, "good", data)
}

// TestMalformedDigests puts malformed digests everywhere the API takes one.
func TestMalformedDigests(t *testing.T) {
	a, img := badInputServer(t)
	hex := strings.Repeat("ab", 32)
	good := digest.FromBytes(img.manifest).String()
	loc := a.srv.StartUpload(t, "good")
	for _, bad := range []string{
		"sha256:abc",
		"sha256:" + strings.Repeat("g", 64),
		"sha256:" + strings.ToUpper(hex),
		"sha256:" + hex + "00",
		"sha256:",
		":" + hex,
		"sha512:" + hex,
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"SHA256:" + hex,
		"sha256:" + hex[:63] + "%00",
		"sha256:" + strings.Repeat("a", 5000),
	} {
		q := url.QueryEscape(bad)
		for _, req := range []struct {
			method, path string
			body         []byte
		}{
			{http.MethodGet, "/v2/good/blobs/" + bad, nil},
			{http.MethodHead, "/v2/good/blobs/" + bad, nil},
			{http.MethodDelete, "/v2/good/blobs/" + bad, nil},
			{http.MethodGet, "/v2/good/manifests/" + bad, nil},
			{http.MethodHead, "/v2/good/manifests/" + bad, nil},
			{http.MethodDelete, "/v2/good/manifests/" + bad, nil},
			{http.MethodPut, "/v2/good/manifests/" + bad, img.manifest},
			{http.MethodGet, "/v2/good/referrers/" + bad, nil},
			{http.MethodGet, "/v2/good/referrers/" + good + "?last=" + q, nil},
			{http.MethodGet, "/oras/artifacts/v1/good/manifests/" + bad, nil},
			{http.MethodGet, "/oras/artifacts/v1/good/manifests/" + bad + "/referrers", nil},
			{http.MethodPost, "/v2/good/blobs/uploads/?mount=" + q + "&from=good", nil},
			{http.MethodPost, "/v2/good/blobs/uploads/?digest=" + q, img.layer},
			{http.MethodPut, loc + "?digest=" + q, nil},
		} {
			what := req.method + " " + req.path
			before := a.snapshot(t)
			r := a.srv.Do(t, req.method, req.path, req.body, "Content-Type", ocispec.MediaTypeImageManifest)
			a.checkError(t, what, r, http.StatusBadRequest, "DIGEST_INVALID")
			a.checkUnchanged(t, what, before, true)
		}
	}
	// Nothing was deleted or overwritten on the way.
	if r := a.getManifest(t, "good", "latest"); r == nil || !bytes.Equal(r.Body, img.manifest) {
		t.Errorf("good:latest changed")
	}
	a.checkBlob(t, "good", img.layer)
	if got := a.uploadStatus(t, loc); got != "0-0" {
		t.Errorf("the upload session holds %q", got)
	}
}

// TestBadManifests pushes bodies that are not valid manifests, or not the manifest the
// reference names: each gets a spec error and nothing is stored.
func TestBadManifests(t *testing.T) {
	a, img := badInputServer(t)
	mt := ocispec.MediaTypeImageManifest
	valid := img.build(func(m map[string]any) { m["annotations"] = map[string]string{"v": "2"} })
	missing := apitest.NewBlob(ocispec.MediaTypeImageLayer, []byte("never pushed")).Desc
	for _, tc := range []struct {
		name, ref, contentType string
		body                   []byte
		code                   string
	}{
		{"not JSON", "t", mt, []byte("hello, registry"), "MANIFEST_INVALID"},
		{"empty", "t", mt, []byte{}, "MANIFEST_INVALID"},
		{"truncated JSON", "t", mt, valid[:len(valid)/2], "MANIFEST_INVALID"},
		{"JSON array", "t", mt, []byte(`[]`), "MANIFEST_INVALID"},
		{"JSON null", "t", mt, []byte(`null`), "MANIFEST_INVALID"},
		{"JSON string", "t", mt, []byte(`"manifest"`), "MANIFEST_INVALID"},
		{"trailing data", "t", mt, append(append([]byte{}, valid...), valid...), "MANIFEST_INVALID"},
		{"not a manifest", "t", mt, []byte(`{"hello":"world"}`), "MANIFEST_INVALID"},
		{"image config", "t", mt, img.config, "MANIFEST_INVALID"},
		{"schemaVersion 1", "t", mt, img.build(func(m map[string]any) { m["schemaVersion"] = 1 }), "MANIFEST_INVALID"},
		{"no config", "t", mt, img.build(func(m map[string]any) { delete(m, "config") }), "MANIFEST_INVALID"},
		{"config without digest", "t", mt, img.build(func(m map[string]any) { m["config"].(map[string]any)["digest"] = "" }), "MANIFEST_INVALID"},
		{"layer with a bad digest", "t", mt, img.build(func(m map[string]any) {
			m["layers"].([]any)[0].(map[string]any)["digest"] = "sha256:abc"
		}), "MANIFEST_INVALID"},
		{"layer with a negative size", "t", mt, img.build(func(m map[string]any) {
			m["layers"].([]any)[0].(map[string]any)["size"] = -1
		}), "MANIFEST_INVALID"},
		{"layers not a list", "t", mt, img.build(func(m map[string]any) { m["layers"] = "none" }), "MANIFEST_INVALID"},
		{"image with manifests", "t", mt, img.build(func(m map[string]any) { m["manifests"] = []any{} }), "MANIFEST_INVALID"},
		{"Docker schema 1", "t", "application/vnd.docker.distribution.manifest.v1+prettyjws",
			[]byte(`{"schemaVersion":1,"name":"good","tag":"t","fsLayers":[],"history":[]}`), "MANIFEST_INVALID"},
		{"unsupported media type", "t", "application/vnd.example.thing.v1+json",
			img.build(func(m map[string]any) { delete(m, "mediaType") }), "MANIFEST_INVALID"},
		{"unsupported mediaType field", "t", "", img.build(func(m map[string]any) { m["mediaType"] = "text/plain" }), "MANIFEST_INVALID"},
		{"Content-Type differs from mediaType", "t", ocispec.MediaTypeImageIndex, valid, "MANIFEST_INVALID"},
		{"malformed Content-Type", "t", mt + "; =;", valid, "MANIFEST_INVALID"},
		{"no media type at all", "t", "", []byte(`{"schemaVersion":2}`), "MANIFEST_INVALID"},
		{"missing blob", "t", mt, img.build(func(m map[string]any) {
			m["layers"] = append(m["layers"].([]any), missing)
		}), "MANIFEST_BLOB_UNKNOWN"},
		{"digest does not match the body", digest.FromBytes(img.manifest).String(), mt, valid, "DIGEST_INVALID"},
		{"digest of another algorithm", digest.SHA512.FromBytes(img.manifest).String(), mt, valid, "DIGEST_INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.snapshot(t)
			r := a.srv.Do(t, http.MethodPut, "/v2/good/manifests/"+tc.ref, tc.body, "Content-Type", tc.contentType)
			a.checkError(t, tc.name, r, http.StatusBadRequest, tc.code)
			checkManifestAbsent(t, a, "good", tc.body)
			if tags := a.srv.Tags(t, "good"); len(tags) != 1 || tags[0] != "latest" {
				t.Errorf("after a bad manifest the tags are %q", tags)
			}
			a.checkUnchanged(t, tc.name, before, true)
		})
	}
	if r := a.getManifest(t, "good", "latest"); r == nil || !bytes.Equal(r.Body, img.manifest) {
		t.Errorf("good:latest changed")
	}
}

// checkManifestAbsent checks that repo does not serve body as a manifest.
func checkManifestAbsent(t *testing.T, a *api, repo string, body []byte) {
	t.Helper()
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		path := "/v2/" + repo + "/manifests/" + alg.FromBytes(body).String()
		r := a.srv.Do(t, http.MethodGet, path, nil)
		a.checkError(t, "GET "+path+" after a bad push", r, http.StatusNotFound, "MANIFEST_UNKNOWN")
	}
}

// TestOversizedManifests pushes manifests over 4 MiB, declared and streamed: 413
// MANIFEST_INVALID, nothing stored. A manifest of exactly 4 MiB is taken.
func TestOversizedManifests(t *testing.T) {
	a, img := badInputServer(t)
	// padded returns the image's manifest padded with an annotation to size bytes.
	padded := func(size int) []byte {
		base := len(img.build(func(m map[string]any) { m["annotations"] = map[string]string{"pad": ""} }))
		return img.build(func(m map[string]any) {
			m["annotations"] = map[string]string{"pad": strings.Repeat("x", size-base)}
		})
	}
	big := padded(maxManifest + 1)
	if len(big) != maxManifest+1 {
		t.Fatalf("padded manifest has %d bytes", len(big))
	}

	t.Run("Content-Length", func(t *testing.T) {
		before := a.snapshot(t)
		r := a.srv.Do(t, http.MethodPut, "/v2/good/manifests/big", big, "Content-Type", ocispec.MediaTypeImageManifest)
		a.checkError(t, "PUT of a manifest over 4 MiB", r, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID")
		checkManifestAbsent(t, a, "good", big)
		a.checkUnchanged(t, "oversized manifest", before, true)
	})

	t.Run("chunked", func(t *testing.T) {
		before := a.snapshot(t)
		var body bytes.Buffer
		for off := 0; off < len(big); off += 64 << 10 {
			part := big[off:min(off+64<<10, len(big))]
			fmt.Fprintf(&body, "%x\r\n%s\r\n", len(part), part)
		}
		body.WriteString("0\r\n\r\n")
		head := "PUT /v2/good/manifests/big HTTP/1.1\r\nHost: " + a.srv.Addr +
			"\r\nContent-Type: " + ocispec.MediaTypeImageManifest + "\r\nTransfer-Encoding: chunked"
		r, err := rawExchange(t, a.srv.Addr, head, &body, false)
		if err != nil {
			t.Fatalf("PUT of a chunked manifest over 4 MiB: %v", err)
		}
		a.checkError(t, "PUT of a chunked manifest over 4 MiB", r, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID")
		checkManifestAbsent(t, a, "good", big)
		a.checkUnchanged(t, "oversized chunked manifest", before, true)
	})

	t.Run("exactly 4 MiB", func(t *testing.T) {
		m := padded(maxManifest)
		if len(m) != maxManifest {
			t.Fatalf("padded manifest has %d bytes", len(m))
		}
		d := a.putManifest(t, "good", "big", ocispec.MediaTypeImageManifest, m)
		if r := a.getManifest(t, "good", d.String()); r == nil || !bytes.Equal(r.Body, m) {
			t.Errorf("the 4 MiB manifest does not read back")
		}
	})
}

// TestInvalidNames uses repository names outside the spec's grammar, including ones
// that try to leave the repository. The answer is NAME_INVALID or a 404 with an
// error body, and nothing is created: no repository, no file outside the data
// directory's own layout.
func TestInvalidNames(t *testing.T) {
	a, img := badInputServer(t)
	for _, name := range []string{
		"Upper",
		"good/Upper",
		"-lead",
		"trail-",
		"a..b",
		"a/../good",
		"good/..",
		"a/./good",
		"a//good",
		"a/%2e%2e/good",
		"%2e%2e/good",
		"a%2f..%2fgood",
		"a%00b",
		"a%20b",
		"a%5cb",
		strings.Repeat("a", 256),
		strings.Repeat("a/", 200) + "a",
		strings.Repeat("x", 64<<10),
	} {
		label := name
		if len(label) > 40 {
			label = fmt.Sprintf("%s…(%d bytes)", name[:20], len(name))
		}
		t.Run(label, func(t *testing.T) {
			checkNameRejected(t, a, img, name)
		})
	}
	// A mount from an invalid repository mounts nothing.
	before := a.snapshot(t)
	r := a.srv.Do(t, http.MethodPost, "/v2/other/blobs/uploads/?mount="+digest.FromBytes(img.layer).String()+"&from=..%2Fgood", nil)
	apitest.WantStatus(t, "mount from an invalid name", r, http.StatusAccepted)
	a.checkNoBlob(t, "other", digest.FromBytes(img.layer))
	a.srv.Do(t, http.MethodDelete, r.Header.Get("Location"), nil)
	a.checkUnchanged(t, "mount from an invalid name", before, true)
}

// checkNameRejected sends requests to every endpoint with repository name, and checks
// that each is refused and changes nothing.
func checkNameRejected(t *testing.T, a *api, img image, name string) {
	t.Helper()
	for _, req := range []struct {
		method, path string
		body         []byte
	}{
		{http.MethodGet, "/v2/" + name + "/tags/list", nil},
		{http.MethodGet, "/v2/" + name + "/manifests/latest", nil},
		{http.MethodPut, "/v2/" + name + "/manifests/latest", img.manifest},
		{http.MethodDelete, "/v2/" + name + "/manifests/latest", nil},
		{http.MethodGet, "/v2/" + name + "/blobs/" + digest.FromBytes(img.layer).String(), nil},
		{http.MethodPost, "/v2/" + name + "/blobs/uploads/", nil},
		{http.MethodPost, "/v2/" + name + "/blobs/uploads/?digest=" + digest.FromBytes(img.layer).String(), img.layer},
		{http.MethodPost, "/v2/" + name + "/blobs/uploads/?mount=" + digest.FromBytes(img.layer).String() + "&from=good", nil},
		{http.MethodGet, "/v2/" + name + "/referrers/" + digest.FromBytes(img.manifest).String(), nil},
	} {
		what := req.method + " " + clipped(req.path)
		before := a.snapshot(t)
		r := a.srv.Do(t, req.method, req.path, req.body, "Content-Type", ocispec.MediaTypeImageManifest)
		checkRejected(t, a, what, req.method, r, "NAME_INVALID", "NAME_UNKNOWN", "UNSUPPORTED")
		a.checkUnchanged(t, what, before, true)
	}
}

func clipped(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// checkRejected checks that r refuses a request: 400 or 404 with one of codes in a
// spec error body, never a redirect, a success or a server error.
func checkRejected(t *testing.T, a *api, what, method string, r *apitest.Response, codes ...string) {
	t.Helper()
	if r.Status != http.StatusBadRequest && r.Status != http.StatusNotFound {
		t.Errorf("%s: got %s, want 400 or 404 with a spec error", what, r)
		return
	}
	if method == http.MethodHead {
		return
	}
	code := r.ErrorCode()
	for _, c := range codes {
		if code == c {
			a.checkNoLeak(t, what, r)
			return
		}
	}
	t.Errorf("%s: got %s, want one of the codes %q", what, r, codes)
}

// TestPathTricks sends paths that try to reach outside the repository or the data
// directory through the upload and blob endpoints.
func TestPathTricks(t *testing.T) {
	a, img := badInputServer(t)
	loc := a.srv.StartUpload(t, "good")
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	other := a.srv.StartUpload(t, "other")
	otherID := other[strings.LastIndexByte(other, '/')+1:]
	layer := digest.FromBytes(img.layer).String()
	for _, req := range []struct {
		method, path string
		body         []byte
		codes        []string
	}{
		{http.MethodPost, "/v2/good/blobs/uploads/../../x", nil, []string{"UNSUPPORTED", "NAME_INVALID"}},
		{http.MethodPost, "/v2/good/blobs/uploads/%2e%2e/%2e%2e/x", nil, []string{"UNSUPPORTED", "NAME_INVALID"}},
		{http.MethodGet, "/v2/good/blobs/uploads/..", nil, []string{"UNSUPPORTED", "BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodGet, "/v2/good/blobs/uploads/%2e%2e", nil, []string{"UNSUPPORTED", "BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodGet, "/v2/good/blobs/uploads/..%2f..%2fgraft.db", nil, []string{"UNSUPPORTED", "BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodPatch, "/v2/good/blobs/uploads/..%2f..%2fgraft.db", img.layer, []string{"UNSUPPORTED", "BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodPut, "/v2/good/blobs/uploads/..%2f..%2fblobs?digest=" + layer, img.layer, []string{"UNSUPPORTED", "BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodDelete, "/v2/good/blobs/uploads/%2e%2e", nil, []string{"UNSUPPORTED", "BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodDelete, "/v2/good/blobs/uploads/..%2fuploads", nil, []string{"UNSUPPORTED", "BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodGet, "/v2/good/blobs/uploads/" + id + "%2f..%2f" + otherID, nil, []string{"UNSUPPORTED", "BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodGet, "/v2/good/blobs/uploads/" + strings.ToUpper(id), nil, []string{"BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodGet, "/v2/good/blobs/uploads/" + id + "x", nil, []string{"BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodGet, "/v2/good/blobs/uploads/" + otherID, nil, []string{"BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodPatch, "/v2/good/blobs/uploads/" + otherID, img.layer, []string{"BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodPut, "/v2/good/blobs/uploads/" + otherID + "?digest=" + layer, img.layer, []string{"BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodDelete, "/v2/good/blobs/uploads/" + otherID, nil, []string{"BLOB_UPLOAD_UNKNOWN"}},
		{http.MethodGet, "/v2/good/blobs/" + layer + "%2f..", nil, []string{"UNSUPPORTED", "DIGEST_INVALID"}},
		{http.MethodGet, "/v2/good/blobs/..%2f..%2fgraft.db", nil, []string{"UNSUPPORTED", "DIGEST_INVALID"}},
		{http.MethodGet, "/v2/good/blobs/sha256:..%2f..%2f..%2fgraft.db", nil, []string{"UNSUPPORTED", "DIGEST_INVALID"}},
		{http.MethodGet, "/v2/good%2f..%2f..%2fetc/tags/list", nil, []string{"NAME_INVALID"}},
		{http.MethodGet, "/v2/good/manifests/..%2f..%2fgraft.db", nil, []string{"UNSUPPORTED", "MANIFEST_UNKNOWN"}},
		{http.MethodGet, "/v2/good/manifests/%2e%2e", nil, []string{"MANIFEST_UNKNOWN"}},
		{http.MethodGet, "/v2/../../graft.db", nil, []string{"UNSUPPORTED"}},
		{http.MethodGet, "/v2/%2e%2e/%2e%2e/graft.db", nil, []string{"UNSUPPORTED", "NAME_INVALID"}},
	} {
		what := req.method + " " + req.path
		before := a.snapshot(t)
		r := a.srv.Do(t, req.method, req.path, req.body, "Content-Type", "application/octet-stream")
		checkRejected(t, a, what, req.method, r, req.codes...)
		a.checkUnchanged(t, what, before, true)
	}
	// Both sessions are untouched.
	for _, l := range []string{loc, other} {
		if got := a.uploadStatus(t, l); got != "0-0" {
			t.Errorf("upload %s holds %q", l, got)
		}
	}
}

// TestInvalidTags uses tags outside the spec's grammar.
func TestInvalidTags(t *testing.T) {
	a, img := badInputServer(t)
	for _, tag := range []string{
		strings.Repeat("t", 129),
		"-lead",
		".lead",
		"with+plus",
		"with%20space",
		"%2e%2e",
		"t%00",
		"with~tilde",
	} {
		before := a.snapshot(t)
		what := "tag " + clipped(tag)
		r := a.srv.Do(t, http.MethodPut, "/v2/good/manifests/"+tag, img.manifest, "Content-Type", ocispec.MediaTypeImageManifest)
		a.checkError(t, "PUT "+what, r, http.StatusBadRequest, "MANIFEST_INVALID")
		r = a.srv.Do(t, http.MethodPut, "/v2/good/manifests/"+digest.FromBytes(img.manifest).String()+"?tag="+tag,
			img.manifest, "Content-Type", ocispec.MediaTypeImageManifest)
		a.checkError(t, "PUT ?tag= "+what, r, http.StatusBadRequest, "MANIFEST_INVALID")
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodDelete} {
			r = a.srv.Do(t, method, "/v2/good/manifests/"+tag, nil)
			a.checkError(t, method+" "+what, r, http.StatusNotFound, "MANIFEST_UNKNOWN")
		}
		if tags := a.srv.Tags(t, "good"); len(tags) != 1 || tags[0] != "latest" {
			t.Errorf("after %s the tags are %q", what, tags)
		}
		a.checkUnchanged(t, what, before, true)
	}
	// The longest valid tag works.
	long := strings.Repeat("t", 128)
	a.putManifest(t, "good", long, ocispec.MediaTypeImageManifest, img.manifest)
	if r := a.getManifest(t, "good", long); r == nil || !bytes.Equal(r.Body, img.manifest) {
		t.Errorf("a 128-character tag does not resolve")
	}
}

// TestPaginationNumbers sends absurd and invalid n to every listing.
func TestPaginationNumbers(t *testing.T) {
	a, img := badInputServer(t)
	subject := digest.FromBytes(img.manifest)
	empty := ocispec.DescriptorEmptyJSON
	a.srv.PushBlob(t, "good", empty.Data)
	sig := apitest.ImageManifest(empty, []ocispec.Descriptor{apitest.NewBlob(ocispec.MediaTypeImageLayer, img.layer).Desc}, sigType,
		&ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject, Size: int64(len(img.manifest))})
	sigDigest := a.putManifest(t, "good", digest.FromBytes(sig).String(), ocispec.MediaTypeImageManifest, sig)

	for _, ep := range []struct {
		name, path string
		// found reports whether a page lists what the listing holds.
		found func(body []byte) bool
	}{
		{"catalog", "/v2/_catalog", func(b []byte) bool { return bytes.Contains(b, []byte(`"good"`)) }},
		{"tags", "/v2/good/tags/list", func(b []byte) bool { return bytes.Contains(b, []byte(`"latest"`)) }},
		{"referrers", "/v2/good/referrers/" + subject.String(), func(b []byte) bool { return bytes.Contains(b, []byte(sigDigest)) }},
		{"ORAS referrers", "/oras/artifacts/v1/good/manifests/" + subject.String() + "/referrers",
			func(b []byte) bool { return bytes.Contains(b, []byte(sigDigest)) }},
	} {
		t.Run(ep.name, func(t *testing.T) {
			for _, n := range []string{"-1", "abc", "1.5", "0x10", "1e3", "%2B1%2B", "-99999999999999999999"} {
				r := a.srv.Do(t, http.MethodGet, ep.path+"?n="+n, nil)
				a.checkError(t, ep.name+" n="+n, r, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
			}
			for _, n := range []string{"99999999999999999999", "9223372036854775807", "100000"} {
				r := a.srv.Do(t, http.MethodGet, ep.path+"?n="+n, nil)
				if r.Status != http.StatusOK || !ep.found(r.Body) {
					t.Errorf("%s n=%s: got %s, want 200 and the listing", ep.name, n, r)
				}
			}
		})
	}
}

// TestUnknownEndpoints sends requests to paths and with methods the API does not have.
func TestUnknownEndpoints(t *testing.T) {
	a, img := badInputServer(t)
	layer := digest.FromBytes(img.layer).String()
	for _, req := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/v2/good", http.StatusNotFound},
		{http.MethodGet, "/v2/good/nope/latest", http.StatusNotFound},
		{http.MethodGet, "/v2/good/manifests/", http.StatusNotFound},
		{http.MethodGet, "/v2/good/blobs/", http.StatusNotFound},
		{http.MethodGet, "/v3/good/tags/list", http.StatusNotFound},
		{http.MethodGet, "/oras/artifacts/v1/good/nope", http.StatusNotFound},
		{http.MethodPatch, "/v2/good/manifests/latest", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v2/good/manifests/latest", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v2/_catalog", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v2/", http.StatusMethodNotAllowed},
		{http.MethodPut, "/v2/good/blobs/" + layer, http.StatusMethodNotAllowed},
		{http.MethodPost, "/v2/good/blobs/" + layer, http.StatusMethodNotAllowed},
		{http.MethodPost, "/v2/good/tags/list", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v2/good/tags/list", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v2/good/blobs/uploads/", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v2/good/referrers/" + layer, http.StatusMethodNotAllowed},
		{"BREW", "/v2/", http.StatusMethodNotAllowed},
		{"BREW", "/v2/good/manifests/latest", http.StatusMethodNotAllowed},
	} {
		what := req.method + " " + req.path
		before := a.snapshot(t)
		r := a.srv.Do(t, req.method, req.path, []byte("{}"))
		if r.Status != req.status {
			t.Errorf("%s: got %s, want %d", what, r, req.status)
		} else if r.ErrorCode() == "" {
			t.Errorf("%s: no spec error body: %s", what, r)
		}
		a.checkNoLeak(t, what, r)
		a.checkUnchanged(t, what, before, true)
	}
	if r := a.getManifest(t, "good", "latest"); r == nil || !bytes.Equal(r.Body, img.manifest) {
		t.Errorf("good:latest changed")
	}
}

package server_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/registrytest"
)

// The protocol tests: every rule the registry enforces, asked over HTTP of the real
// server, registry and stores in process, once on each metadata store (SQLite and
// PostgreSQL), as distribution's registry/handlers/api_test.go asks its handlers.
// Each area has a file of its own: api_uploads_test.go, api_manifests_test.go, ...
// What needs a process (a kill, a restart, the real clients, replicas) is in e2e/.

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// call is a request of a protocol table and the answer it must get: its status, the
// one error of its body (code, and message when the test pins it), the headers named
// (exactly; "" for absent) and, when set, its body byte for byte.
type call struct {
	name   string
	method string
	target string
	body   []byte
	header []string // of the request: key, value pairs
	stream bool     // send the body chunked, of unknown length

	status  int
	code    string
	message string
	headers map[string]string
	answer  []byte
}

// check sends c and reports every way the answer differs from what c wants.
func (c call) check(t *testing.T, srv *registrytest.Server) *apitest.Response {
	t.Helper()
	var r *apitest.Response
	if c.stream {
		r = srv.DoStream(t, c.method, c.target, bytes.NewReader(c.body), c.header...)
	} else {
		r = srv.Do(t, c.method, c.target, c.body, c.header...)
	}
	what := c.method + " " + clip(c.target)
	if c.code != "" {
		if apitest.CheckError(t, what, r, c.status, c.code) && c.message != "" && c.method != http.MethodHead {
			if errs, _ := r.Errors(); errs[0].Message != c.message {
				t.Errorf("%s: message %q, want %q", what, errs[0].Message, c.message)
			}
		}
	} else if r.Status != c.status {
		t.Errorf("%s: got %v, want status %d", what, r, c.status)
	}
	for k, v := range c.headers {
		apitest.WantHeader(t, what, r, k, v)
	}
	if c.answer != nil && !bytes.Equal(r.Body, c.answer) {
		t.Errorf("%s: body %s, want %s", what, clip(string(r.Body)), clip(string(c.answer)))
	}
	return r
}

// run checks each call in turn, as a subtest named after it.
func run(t *testing.T, srv *registrytest.Server, calls []call) {
	t.Helper()
	for _, c := range calls {
		name := c.name
		if name == "" {
			name = c.method + " " + clip(c.target)
		}
		t.Run(name, func(t *testing.T) { c.check(t, srv) })
	}
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// echoed is what an error message repeats of a client's input: 100 bytes at most.
func echoed(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// errorBody is the spec's error body of one error, as the registry writes it.
func errorBody(code, message string) []byte {
	return []byte(`{"errors":[{"code":"` + code + `","message":"` + message + `"}]}`)
}

// wantBlob checks that repo serves data as a blob, to GET and HEAD.
func wantBlob(t *testing.T, srv *registrytest.Server, repo string, data []byte) {
	t.Helper()
	d := digest.FromBytes(data)
	path := "/v2/" + repo + "/blobs/" + d.String()
	headers := map[string]string{
		"Content-Type":          "application/octet-stream",
		"Content-Length":        itoa(len(data)),
		"Docker-Content-Digest": d.String(),
		"Etag":                  `"` + d.String() + `"`,
		"Accept-Ranges":         "bytes",
	}
	get := call{method: http.MethodGet, target: path, status: http.StatusOK, headers: headers, answer: data}
	get.headers["Cache-Control"] = "max-age=31536000"
	get.check(t, srv)
	delete(headers, "Cache-Control")
	call{method: http.MethodHead, target: path, status: http.StatusOK, headers: headers, answer: []byte{}}.check(t, srv)
}

// wantNoBlob checks that repo does not serve blob d.
func wantNoBlob(t *testing.T, srv *registrytest.Server, repo string, d digest.Digest) {
	t.Helper()
	path := "/v2/" + repo + "/blobs/" + d.String()
	call{method: http.MethodGet, target: path, status: http.StatusNotFound, code: "BLOB_UNKNOWN",
		message: "blob " + echoed(d.String()) + " is not in the repository"}.check(t, srv)
	call{method: http.MethodHead, target: path, status: http.StatusNotFound, code: "BLOB_UNKNOWN", answer: []byte{}}.check(t, srv)
}

// wantManifest checks that repo serves m as ref, to GET and HEAD, byte for byte.
func wantManifest(t *testing.T, srv *registrytest.Server, repo, ref string, m apitest.Blob) {
	t.Helper()
	headers := map[string]string{
		"Content-Type":          m.Desc.MediaType,
		"Content-Length":        itoa(len(m.Data)),
		"Docker-Content-Digest": m.Desc.Digest.String(),
		"Etag":                  `"` + m.Desc.Digest.String() + `"`,
	}
	path := "/v2/" + repo + "/manifests/" + ref
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		want := m.Data
		if method == http.MethodHead {
			want = []byte{}
		}
		call{method: method, target: path, header: []string{"Accept", apitest.AcceptManifests},
			status: http.StatusOK, headers: headers, answer: want}.check(t, srv)
	}
}

// wantNoManifest checks that repo does not serve ref.
func wantNoManifest(t *testing.T, srv *registrytest.Server, repo, ref string) {
	t.Helper()
	call{method: http.MethodGet, target: "/v2/" + repo + "/manifests/" + ref, status: http.StatusNotFound,
		code: "MANIFEST_UNKNOWN", message: "manifest " + echoed(ref) + " is not in the repository"}.check(t, srv)
}

// wantReferrers checks that the referrers of subject in repo are exactly want.
func wantReferrers(t *testing.T, srv *registrytest.Server, repo string, subject digest.Digest, want ...ocispec.Descriptor) {
	t.Helper()
	got := apitest.Digests(srv.Referrers(t, repo, subject))
	if w := apitest.Digests(want); !slices.Equal(got, w) {
		t.Errorf("referrers of %s in %s: %v, want %v", subject, repo, got, w)
	}
}

// artifact is an image-spec v1.1 artifact of artifactType with one layer of payload
// and subject (if any), its blobs pushed to repo; its manifest is not pushed.
func artifact(t *testing.T, srv *registrytest.Server, repo, artifactType, payload string, subject *ocispec.Descriptor, annotations map[string]string) apitest.Blob {
	t.Helper()
	layer := apitest.NewBlob("application/vnd.example.payload", []byte(payload))
	srv.PushBlobs(t, repo, []apitest.Blob{apitest.NewBlob(ocispec.MediaTypeEmptyJSON, ocispec.DescriptorEmptyJSON.Data), layer})
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       []ocispec.Descriptor{layer.Desc},
		Subject:      subject,
		Annotations:  annotations,
	}
	m.SchemaVersion = 2
	return apitest.ManifestBlob(t, ocispec.MediaTypeImageManifest, m)
}

// attach pushes an artifact (see artifact) by digest and returns its descriptor, as the
// referrers API lists it.
func attach(t *testing.T, srv *registrytest.Server, repo, artifactType, payload string, subject ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	a := artifact(t, srv, repo, artifactType, payload, &subject, nil)
	srv.PushManifest(t, repo, "", a)
	d := a.Desc
	d.ArtifactType = artifactType
	return d
}

func itoa(n int) string {
	var b []byte
	if n == 0 {
		return "0"
	}
	for ; n > 0; n /= 10 {
		b = append(b, byte('0'+n%10))
	}
	slices.Reverse(b)
	return string(b)
}

// repeat is s repeated to n bytes.
func repeat(s string, n int) []byte {
	return []byte(strings.Repeat(s, n/len(s)+1)[:n])
}

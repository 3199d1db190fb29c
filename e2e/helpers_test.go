// Package e2e drives a real `graft serve` over HTTP: with oras-go, the client library
// the registry's users push and pull with, and with raw requests where a client would
// hide the status codes, headers and bodies the distribution spec prescribes.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/graft-registry/graft/internal/graftest"
)

// Media types no spec package defines.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeOCIArtifact        = "application/vnd.oci.artifact.manifest.v1+json"
	mediaTypeORASArtifact       = "application/vnd.cncf.oras.artifact.manifest.v1+json"

	cascadeHeader = "Graft-Cascade-Deleted"
)

// httpClient is shared by every test: no retries (a client that retries would hide a
// failing answer) and enough idle connections for the concurrent pushes.
var httpClient = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}()

// repository is an oras-go client of repository name on srv.
func repository(t *testing.T, srv *graftest.Server, name string) *remote.Repository {
	t.Helper()
	repo, err := remote.NewRepository(srv.Addr + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	repo.Client = httpClient
	return repo
}

// registryClient is an oras-go client of srv.
func registryClient(t *testing.T, srv *graftest.Server) *remote.Registry {
	t.Helper()
	reg, err := remote.NewRegistry(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	reg.PlainHTTP = true
	reg.Client = httpClient
	return reg
}

// response is an answer read in full.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request to srv; target is a path (with its query) or a URL, headers are
// key, value pairs.
func do(t *testing.T, srv *graftest.Server, method, target string, body []byte, headers ...string) *response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, resolve(t, srv, target), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	setHeaders(t, req, headers)
	return send(t, httpClient, req)
}

// doReader is do with a body of unknown length: it goes out chunked.
func doReader(t *testing.T, srv *graftest.Server, method, target string, body io.Reader, headers ...string) *response {
	t.Helper()
	if body != nil {
		// NewRequest takes the length of the readers it knows; hide it.
		body = struct{ io.Reader }{body}
	}
	req, err := http.NewRequestWithContext(t.Context(), method, resolve(t, srv, target), body)
	if err != nil {
		t.Fatal(err)
	}
	setHeaders(t, req, headers)
	return send(t, httpClient, req)
}

func setHeaders(t *testing.T, req *http.Request, kv []string) {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatalf("odd number of header arguments: %q", kv)
	}
	for i := 0; i < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
}

func send(t *testing.T, c *http.Client, req *http.Request) *response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", req.Method, req.URL, err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// resolve makes target, a path or a URL as a Location or Link header gives it, a URL
// of srv.
func resolve(t *testing.T, srv *graftest.Server, target string) string {
	t.Helper()
	base, err := url.Parse(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	u, err := base.Parse(target)
	if err != nil {
		t.Fatalf("resolving %q: %v", target, err)
	}
	return u.String()
}

// wantStatus fails the test unless r has status.
func wantStatus(t *testing.T, what string, r *response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d; body: %s", what, r.Status, status, clip(r.Body))
	}
}

// wantError fails the test unless r is an error answer with status whose body
// carries code.
func wantError(t *testing.T, what string, r *response, status int, code string) {
	t.Helper()
	wantStatus(t, what, r, status)
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("%s: error body is not JSON: %v: %s", what, err, clip(r.Body))
	}
	for _, e := range body.Errors {
		if e.Code == code {
			return
		}
	}
	t.Fatalf("%s: error body %s does not carry code %s", what, clip(r.Body), code)
}

func wantHeader(t *testing.T, what string, r *response, key, want string) {
	t.Helper()
	if got := r.Header.Get(key); got != want {
		t.Errorf("%s: %s is %q, want %q", what, key, got, want)
	}
}

func clip(b []byte) string {
	if len(b) > 512 {
		return string(b[:512]) + "…"
	}
	return string(b)
}

var linkRe = regexp.MustCompile(`^<([^>]+)>;\s*rel="?next"?$`)

// nextLink returns the target of r's Link rel="next" header, or "".
func nextLink(t *testing.T, r *response) string {
	t.Helper()
	link := r.Header.Get("Link")
	if link == "" {
		return ""
	}
	m := linkRe.FindStringSubmatch(link)
	if m == nil {
		t.Fatalf("malformed Link header %q", link)
	}
	return m[1]
}

// walkPages GETs target and every page its Link headers lead to, and returns the
// answers in order. A registry whose links never end fails the test after maxPages.
func walkPages(t *testing.T, srv *graftest.Server, target string, maxPages int) []*response {
	t.Helper()
	var pages []*response
	for target != "" {
		if len(pages) == maxPages {
			t.Fatalf("more than %d pages; the last link was %s", maxPages, target)
		}
		r := do(t, srv, http.MethodGet, target, nil)
		wantStatus(t, "GET "+target, r, http.StatusOK)
		pages = append(pages, r)
		target = nextLink(t, r)
	}
	return pages
}

// decode decodes JSON body into v.
func decode(t *testing.T, what string, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, clip(body))
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// blob is content with its descriptor.
type blob struct {
	Desc ocispec.Descriptor
	Data []byte
}

func newBlob(mediaType string, data []byte) blob {
	return blob{Desc: content.NewDescriptorFromBytes(mediaType, data), Data: data}
}

// manifestBlob is a manifest of mediaType with content v.
func manifestBlob(t *testing.T, mediaType string, v any) blob {
	t.Helper()
	return newBlob(mediaType, mustJSON(t, v))
}

// image is an image manifest with its config and layers.
type image struct {
	Manifest blob
	Config   blob
	Layers   []blob
}

// Blobs are the image's config and layers.
func (im image) Blobs() []blob { return append([]blob{im.Config}, im.Layers...) }

// Desc is the descriptor of the image's manifest.
func (im image) Desc() ocispec.Descriptor { return im.Manifest.Desc }

// newImage builds an OCI image for platform with the given layer contents.
func newImage(t *testing.T, platform ocispec.Platform, layers ...string) image {
	t.Helper()
	return buildImage(t, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig,
		ocispec.MediaTypeImageLayerGzip, platform, layers...)
}

// newDockerImage builds a Docker schema 2 image for platform.
func newDockerImage(t *testing.T, platform ocispec.Platform, layers ...string) image {
	t.Helper()
	return buildImage(t, mediaTypeDockerManifest, mediaTypeDockerConfig, mediaTypeDockerLayer, platform, layers...)
}

func buildImage(t *testing.T, manifestType, configType, layerType string, platform ocispec.Platform, layers ...string) image {
	t.Helper()
	var im image
	diffIDs := []digest.Digest{}
	for _, l := range layers {
		b := newBlob(layerType, []byte(l))
		im.Layers = append(im.Layers, b)
		diffIDs = append(diffIDs, b.Desc.Digest)
	}
	im.Config = newBlob(configType, mustJSON(t, ocispec.Image{
		Platform: platform,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}))
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestType,
		Config:    im.Config.Desc,
		Layers:    []ocispec.Descriptor{},
	}
	for _, l := range im.Layers {
		m.Layers = append(m.Layers, l.Desc)
	}
	im.Manifest = manifestBlob(t, manifestType, m)
	return im
}

// newIndex builds an index of mediaType listing children, each with its platform.
func newIndex(t *testing.T, mediaType string, children map[*ocispec.Platform]ocispec.Descriptor, annotations map[string]string) blob {
	t.Helper()
	idx := ocispec.Index{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   mediaType,
		Manifests:   []ocispec.Descriptor{},
		Annotations: annotations,
	}
	for p, d := range children {
		d.Platform = p
		idx.Manifests = append(idx.Manifests, d)
	}
	// map order is random: sort so that an index's digest is stable within a test
	slices.SortFunc(idx.Manifests, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return manifestBlob(t, mediaType, idx)
}

// push pushes blobs to dst in order, skipping those it has.
func push(t *testing.T, dst content.Storage, blobs ...blob) {
	t.Helper()
	for _, b := range blobs {
		ok, err := dst.Exists(t.Context(), b.Desc)
		if err != nil {
			t.Fatalf("exists %s: %v", b.Desc.Digest, err)
		}
		if ok {
			continue
		}
		if err := dst.Push(t.Context(), b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatalf("push %s %s: %v", b.Desc.MediaType, b.Desc.Digest, err)
		}
	}
}

// pushImage pushes im to repo with oras.Copy from memory, tagged tag unless it is "".
func pushImage(t *testing.T, repo *remote.Repository, im image, tag string) {
	t.Helper()
	mem := memory.New()
	push(t, mem, im.Blobs()...)
	push(t, mem, im.Manifest)
	if tag == "" {
		if err := oras.CopyGraph(t.Context(), mem, repo, im.Desc(), oras.DefaultCopyGraphOptions); err != nil {
			t.Fatalf("pushing image %s: %v", im.Desc().Digest, err)
		}
		return
	}
	if err := mem.Tag(t.Context(), im.Desc(), tag); err != nil {
		t.Fatal(err)
	}
	if _, err := oras.Copy(t.Context(), mem, tag, repo, tag, oras.DefaultCopyOptions); err != nil {
		t.Fatalf("pushing image as %s: %v", tag, err)
	}
}

// attach pushes an artifact of artifactType with subject to repo, packed with
// oras.PackManifest as image-spec v1.1 describes, with one layer holding payload.
func attach(t *testing.T, repo *remote.Repository, subject ocispec.Descriptor, artifactType, payload string, annotations map[string]string) ocispec.Descriptor {
	t.Helper()
	layer := newBlob("application/vnd.example.payload", []byte(payload))
	push(t, repo, layer)
	desc, err := oras.PackManifest(t.Context(), repo, oras.PackManifestVersion1_1, artifactType, oras.PackManifestOptions{
		Subject:             &subject,
		Layers:              []ocispec.Descriptor{layer.Desc},
		ManifestAnnotations: annotations,
	})
	if err != nil {
		t.Fatalf("attaching %s to %s: %v", artifactType, subject.Digest, err)
	}
	return desc
}

// fetchAll reads desc from src.
func fetchAll(t *testing.T, src content.Fetcher, desc ocispec.Descriptor) []byte {
	t.Helper()
	b, err := content.FetchAll(t.Context(), src, desc)
	if err != nil {
		t.Fatalf("fetching %s: %v", desc.Digest, err)
	}
	return b
}

// referrers GETs the referrers of subject in repo (with query, if any) and returns
// the index.
func referrers(t *testing.T, srv *graftest.Server, repo string, subject digest.Digest, query string) (ocispec.Index, *response) {
	t.Helper()
	target := "/v2/" + repo + "/referrers/" + subject.String()
	if query != "" {
		target += "?" + query
	}
	r := do(t, srv, http.MethodGet, target, nil)
	wantStatus(t, "GET "+target, r, http.StatusOK)
	wantHeader(t, "GET "+target, r, "Content-Type", ocispec.MediaTypeImageIndex)
	var idx ocispec.Index
	decode(t, "GET "+target, r.Body, &idx)
	return idx, r
}

// digests returns the digests of descs, sorted.
func digests(descs []ocispec.Descriptor) []digest.Digest {
	out := make([]digest.Digest, len(descs))
	for i, d := range descs {
		out[i] = d.Digest
	}
	slices.Sort(out)
	return out
}

func sortedDigests(ds ...digest.Digest) []digest.Digest {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

// manifestStatus GETs manifest ref of repo and returns the status.
func manifestStatus(t *testing.T, srv *graftest.Server, repo, ref string) int {
	t.Helper()
	return do(t, srv, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil,
		"Accept", strings.Join(manifestTypes, ", ")).Status
}

var manifestTypes = []string{
	ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
	mediaTypeDockerManifest, mediaTypeDockerManifestList,
	mediaTypeOCIArtifact, mediaTypeORASArtifact,
}

// putManifest PUTs body as manifest ref of repo with Content-Type mediaType.
func putManifest(t *testing.T, srv *graftest.Server, repo, ref, mediaType string, body []byte) *response {
	t.Helper()
	return do(t, srv, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, body, "Content-Type", mediaType)
}

// uploadBlob stores data in repo with a monolithic upload.
func uploadBlob(t *testing.T, srv *graftest.Server, repo string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	r := do(t, srv, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data,
		"Content-Type", "application/octet-stream")
	wantStatus(t, "monolithic upload of "+d.String(), r, http.StatusCreated)
	return d
}

// countFiles counts the regular files under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and fails the test with
// the first error.
func parallel(t *testing.T, n, workers int, fn func(ctx context.Context, i int) error) {
	t.Helper()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("item %d: %w", i, err)
						cancel()
					}
					mu.Unlock()
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// imageManifest is the JSON of an OCI image manifest with config and layers.
func imageManifest(t *testing.T, config ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
	t.Helper()
	return mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    layers,
	})
}

// logged counts the requests of method on path that srv has logged: the registry logs
// each request once its handler returned.
func logged(srv *graftest.Server, method, path string) int {
	n := 0
	for line := range strings.Lines(srv.Log()) {
		var rec struct{ Msg, Method, Path string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" && rec.Method == method && rec.Path == path {
			n++
		}
	}
	return n
}

// waitLogged waits until srv has logged n requests of method on path.
func waitLogged(t *testing.T, srv *graftest.Server, method, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for logged(srv, method, path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the registry did not log %d requests %s %s within 60s", n, method, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

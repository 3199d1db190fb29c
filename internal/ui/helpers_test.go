package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/blobstore/fs"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
	"github.com/graft-registry/graft/internal/registry"
	"github.com/graft-registry/graft/internal/server"
)

// fixture is the web view of a registry on real stores in a temp dir, served with the
// API on a loopback port, and content pushed through the registry service.
type fixture struct {
	t    testing.TB
	ctx  context.Context
	reg  *registry.Registry
	meta metastore.Store
	ui   *Handler
	srv  *httptest.Server
}

// newFixture starts the view of a fresh registry; withAuth, when set, makes the
// authenticator it runs with (nil: access control off).
func newFixture(t testing.TB, withAuth func(metastore.Store) *auth.Authenticator) *fixture {
	t.Helper()
	dir := t.TempDir()
	blobs, err := fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := sqlite.Open(context.Background(), filepath.Join(dir, "graft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close(); blobs.Close() })
	reg := registry.New(blobs, meta, registry.Options{Cascade: true})
	f := &fixture{t: t, ctx: context.Background(), reg: reg, meta: meta}
	var authn *auth.Authenticator
	if withAuth != nil {
		authn = withAuth(meta)
	}
	f.ui = New(reg, Options{Auth: authn})
	f.srv = httptest.NewServer(Mount(server.New(reg, server.Options{Auth: authn}), f.ui))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) blob(repo, mediaType string, content []byte) ocispec.Descriptor {
	f.t.Helper()
	d := digest.FromBytes(content)
	if _, err := f.reg.PutBlob(f.ctx, repo, d.String(), registry.Chunk{Body: bytes.NewReader(content), Start: -1, Length: int64(len(content))}); err != nil {
		f.t.Fatalf("PutBlob(%s): %v", repo, err)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(content))}
}

// push is a manifest to push.
type push struct {
	repo, tag    string
	artifactType string
	subject      *ocispec.Descriptor
	annotations  map[string]string
	// config is the image config's JSON; "" makes the empty config of an artifact.
	config string
	// layers are the layers' contents, with their titles when files is set.
	layers []string
	files  bool
}

func (f *fixture) image(p push) ocispec.Descriptor {
	f.t.Helper()
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: p.artifactType,
		Subject: p.subject, Annotations: p.annotations}
	m.SchemaVersion = 2
	if p.config != "" {
		m.Config = f.blob(p.repo, ocispec.MediaTypeImageConfig, []byte(p.config))
	} else {
		m.Config = f.blob(p.repo, ocispec.MediaTypeEmptyJSON, []byte("{}"))
	}
	for i, l := range p.layers {
		mt := ocispec.MediaTypeImageLayerGzip
		if p.files {
			mt = "application/octet-stream"
		}
		d := f.blob(p.repo, mt, []byte(l))
		if p.files {
			d.Annotations = map[string]string{ocispec.AnnotationTitle: fmt.Sprintf("file-%d.txt", i)}
		}
		m.Layers = append(m.Layers, d)
	}
	return f.put(p.repo, p.tag, ocispec.MediaTypeImageManifest, m)
}

// platformImage pushes a small image of os/arch.
func (f *fixture) platformImage(repo, os, arch string) ocispec.Descriptor {
	f.t.Helper()
	config := fmt.Sprintf(`{"architecture":%q,"os":%q,"config":{"Entrypoint":["/app"],"Env":["PATH=/usr/bin"],"Labels":{"org.example":"yes"}},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"COPY app /app"}]}`, arch, os)
	d := f.image(push{repo: repo, config: config, layers: []string{"layer of " + os + "/" + arch}})
	d.Platform = &ocispec.Platform{OS: os, Architecture: arch}
	return d
}

func (f *fixture) index(repo, tag string, children ...ocispec.Descriptor) ocispec.Descriptor {
	f.t.Helper()
	v := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: children}
	v.SchemaVersion = 2
	return f.put(repo, tag, ocispec.MediaTypeImageIndex, v)
}

func (f *fixture) put(repo, tag, mediaType string, v any) ocispec.Descriptor {
	f.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	d := digest.FromBytes(b)
	ref := tag
	if ref == "" {
		ref = d.String()
	}
	if _, err := f.reg.PutManifest(f.ctx, repo, ref, mediaType, b, nil); err != nil {
		f.t.Fatalf("PutManifest(%s:%s): %v", repo, ref, err)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// browser is an HTTP client with cookies that follows no redirect, as a test of the
// view needs to see them.
type browser struct {
	t testing.TB
	c *http.Client
	f *fixture
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: f.t, f: f, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values) answer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.f.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(out)}
}

func (b *browser) get(path string) answer {
	b.t.Helper()
	return b.do(http.MethodGet, path, nil)
}

// page GETs path and fails the test unless it answers 200.
func (b *browser) page(path string) string {
	b.t.Helper()
	a := b.get(path)
	if a.status != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", path, a.status, a.body)
	}
	return a.body
}

// post posts form with the CSRF token of the browser's cookie.
func (b *browser) post(path string, form url.Values) answer {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", b.csrf())
	}
	return b.do(http.MethodPost, path, form)
}

func (b *browser) csrf() string {
	b.t.Helper()
	u, _ := url.Parse(b.f.srv.URL + Prefix)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == csrfCookie {
			return c.Value
		}
	}
	b.get(Prefix) // any page sets it
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == csrfCookie {
			return c.Value
		}
	}
	b.t.Fatal("no CSRF cookie")
	return ""
}

var (
	nodeRE = regexp.MustCompile(`data-node="(\d+)"`)
	edgeRE = regexp.MustCompile(`<path class="(edge-[a-z]+)" d="[^"]*" data-from="(\d+)" data-to="(\d+)"`)
)

// pictureOf returns the nodes' labels and the edges of a page's picture.
func pictureOf(page string) (labels []string, edges []string) {
	for _, m := range regexp.MustCompile(`class="node[^"]*" (?:role="img" )?aria-label="([^"]*)" data-node`).FindAllStringSubmatch(page, -1) {
		labels = append(labels, m[1])
	}
	for _, m := range edgeRE.FindAllStringSubmatch(page, -1) {
		edges = append(edges, m[1]+" "+m[2]+"→"+m[3])
	}
	return labels, edges
}

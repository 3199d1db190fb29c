package ui

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const hostile = `<img src=x onerror=alert(1)>`

// graphFixture pushes demo/app: an index of two platform images, an SBOM of the index,
// a signature of the SBOM, a cosign tag-schema signature of the amd64 image, and an
// artifact with files, tagged v1; and other/thing.
type graphFixture struct {
	*fixture
	index, amd64, arm64, sbom, sig, tagSig, files ocispec.Descriptor
}

func newGraphFixture(t *testing.T) *graphFixture {
	f := &graphFixture{fixture: newFixture(t, nil)}
	const repo = "demo/app"
	f.amd64 = f.platformImage(repo, "linux", "amd64")
	f.arm64 = f.platformImage(repo, "linux", "arm64")
	f.index = f.fixture.index(repo, "v1", f.amd64, f.arm64)
	f.sbom = f.image(push{repo: repo, artifactType: "application/spdx+json", subject: &f.index,
		annotations: map[string]string{"org.example.note": hostile}, layers: []string{`{"spdxVersion":"SPDX-2.3"}`}})
	f.sig = f.image(push{repo: repo, artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json", subject: &f.sbom,
		layers: []string{"signature of the sbom"}})
	// cosign's default: no subject, a tag that names the signed digest
	f.tagSig = f.put(repo, "sha256-"+f.amd64.Digest.Encoded()+".sig", ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: f.blob(repo, ocispec.MediaTypeImageConfig, []byte(`{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}`)),
		Layers: []ocispec.Descriptor{f.blob(repo, "application/vnd.dev.cosign.simplesigning.v1+json", []byte(`{"critical":{}}`))},
	})
	f.files = f.image(push{repo: repo, tag: "files", artifactType: "application/vnd.example.files", layers: []string{"one", "two"}, files: true})
	f.image(push{repo: "other/thing", tag: "latest", config: `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`, layers: []string{"x"}})
	return f
}

func TestRedirectsToTheView(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	for _, p := range []string{"/", "/ui"} {
		a := b.get(p)
		if a.status != http.StatusFound || a.header.Get("Location") != Prefix {
			t.Errorf("GET %s: %d to %q, want 302 to %s", p, a.status, a.header.Get("Location"), Prefix)
		}
	}
	// the API is where it was
	if a := b.get("/v2/"); a.status != http.StatusOK || !strings.Contains(a.header.Get("Content-Type"), "json") {
		t.Errorf("GET /v2/: %d %s", a.status, a.body)
	}
}

func TestRepositories(t *testing.T) {
	f := newGraphFixture(t)
	b := f.browser()
	page := b.page(Prefix)
	for _, want := range []string{`href="/ui/demo/app"`, `href="/ui/other/thing"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the list of repositories has no %s", want)
		}
	}
	page = b.page(Prefix + "?q=dem")
	if !strings.Contains(page, `href="/ui/demo/app"`) || strings.Contains(page, `href="/ui/other/thing"`) {
		t.Errorf("filtered by dem:\n%s", page)
	}
	if page := b.page(Prefix + "?q=" + url.QueryEscape("<b>")); !strings.Contains(page, "No repositories") || strings.Contains(page, "<b>") {
		t.Errorf("filtered by <b>:\n%s", page)
	}
}

func TestPrefixStart(t *testing.T) {
	names := []string{"a", "dem", "demn", "demo", "demo/app", "demo-x", "demp", "dem\x7e"}
	slices.Sort(names)
	for _, prefix := range []string{"demo", "dem", "a", "demo/"} {
		start := prefixStart(prefix)
		for _, n := range names {
			if strings.HasPrefix(n, prefix) != (n > start && strings.HasPrefix(n, prefix)) || strings.HasPrefix(n, prefix) && n <= start {
				t.Errorf("prefix %q: %q sorts before the start %q", prefix, n, start)
			}
		}
	}
}

func TestRepositoryPage(t *testing.T) {
	f := newGraphFixture(t)
	b := f.browser()
	page := b.page(Prefix + "demo/app")
	for _, want := range []string{`href="/ui/demo/app:v1"`, `href="/ui/demo/app:files"`, "kind-index", "kind-artifact"} {
		if !strings.Contains(page, want) {
			t.Errorf("the tagged manifests have no %s", want)
		}
	}
	if strings.Contains(page, f.sbom.Digest.String()) {
		t.Error("the untagged SBOM is among the tagged manifests")
	}
	page = b.page(Prefix + "demo/app?tab=untagged")
	for _, d := range []digest.Digest{f.sbom.Digest, f.sig.Digest, f.amd64.Digest} {
		if !strings.Contains(page, d.String()) {
			t.Errorf("the untagged manifests have no %s", d)
		}
	}
	page = b.page(Prefix + "demo/app?tab=untagged&kind=sbom")
	if !strings.Contains(page, f.sbom.Digest.String()) || strings.Contains(page, f.sig.Digest.String()) || strings.Contains(page, f.amd64.Digest.String()) {
		t.Errorf("untagged SBOMs:\n%s", page)
	}
	page = b.page(Prefix + "demo/app?tab=tagged&kind=signature")
	if !strings.Contains(page, f.tagSig.Digest.String()) || strings.Contains(page, f.index.Digest.String()) {
		t.Errorf("tagged signatures:\n%s", page)
	}
	if !strings.Contains(page, `<div>attached to <a class="mono" href="/ui/demo/app@`+f.amd64.Digest.String()+`">`) {
		t.Errorf("the tag-schema signature does not say what it is attached to:\n%s", page)
	}
	if a := b.get(Prefix + "no/such"); a.status != http.StatusNotFound {
		t.Errorf("a repository that does not exist: %d", a.status)
	}
}

func TestManifestPage(t *testing.T) {
	f := newGraphFixture(t)
	b := f.browser()
	a := b.get(Prefix + "demo/app:v1")
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
	labels, edges := pictureOf(a.body)
	for i := range labels {
		labels[i] = html.UnescapeString(labels[i])
	}
	want := map[string]string{ // a node of each manifest, by what its label starts with
		"index":               f.index.Digest.String(),
		"image · linux/amd64": f.amd64.Digest.String(),
		"image · linux/arm64": f.arm64.Digest.String(),
		"SBOM":                f.sbom.Digest.String(),
		"signature, application/vnd.dev.cosign.artifact.sig":  f.sig.Digest.String(),
		"signature, application/vnd.dev.cosign.simplesigning": f.tagSig.Digest.String(),
	}
	for head, d := range want {
		if !slices.ContainsFunc(labels, func(l string) bool { return strings.HasPrefix(l, head) && strings.Contains(l, d) }) {
			t.Errorf("no node %q of %s among %q", head, d, labels)
		}
	}
	if len(labels) != len(want) {
		t.Errorf("%d nodes, want %d: %q", len(labels), len(want), labels)
	}
	slices.Sort(edges)
	wantEdges := []string{"edge-child 0→1", "edge-child 0→2", "edge-subject 0→3", "edge-subject 3→5", "edge-tag 1→4"}
	if !slices.Equal(edges, wantEdges) {
		t.Errorf("edges %q, want %q", edges, wantEdges)
	}
	// links to each node's page
	for _, d := range []digest.Digest{f.sbom.Digest, f.sig.Digest, f.amd64.Digest} {
		if !strings.Contains(a.body, `href="/ui/demo/app@`+d.String()+`"`) {
			t.Errorf("no link to %s", d)
		}
	}
	for _, want := range []string{"docker pull", "oras pull --plain-http", "graft pull --plain-http", "linux/amd64"} {
		if !strings.Contains(a.body, want) {
			t.Errorf("the page has no %q", want)
		}
	}

	// an image: config and layers
	page := b.page(Prefix + "demo/app@" + f.amd64.Digest.String())
	for _, want := range []string{"/app", "PATH=/usr/bin", "org.example", "COPY app /app", "Layers"} {
		if !strings.Contains(page, want) {
			t.Errorf("the image's page has no %q", want)
		}
	}
	// the hostile annotation is text
	page = b.page(Prefix + "demo/app@" + f.sbom.Digest.String())
	if strings.Contains(page, hostile) || !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("the annotation is not escaped:\n%s", page)
	}
}

func TestFiles(t *testing.T) {
	f := newGraphFixture(t)
	b := f.browser()
	page := b.page(Prefix + "demo/app:files")
	link := "/ui/_blob/demo/app@" + digest.FromString("one").String() + "?name=file-0.txt"
	if !strings.Contains(page, `href="`+link+`"`) {
		t.Fatalf("no download link %s:\n%s", link, page)
	}
	a := b.get(link)
	if a.status != http.StatusOK || a.body != "one" || a.header.Get("Content-Disposition") != `attachment; filename=file-0.txt` ||
		a.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("download: %d %q %v", a.status, a.body, a.header)
	}
	if a := b.get("/ui/_blob/demo/app@" + digest.FromString("nothing").String()); a.status != http.StatusNotFound {
		t.Errorf("download of a blob that is not there: %d", a.status)
	}
	for name, want := range map[string]string{"../../etc/passwd": "passwd", "a\nb": "ab", "": "x", "..": "x", `c:\x\y.txt`: "y.txt"} {
		if got := fileName(name, "sha256:x"); got != want {
			t.Errorf("fileName(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestGraphGroups: many referrers of one type under one manifest are drawn as one
// group that links to their list, as are those that do not fit one by one; a picture
// stops at its node limit and says so.
func TestGraphGroups(t *testing.T) {
	f := newFixture(t, nil)
	const repo = "fan/out"
	root := f.image(push{repo: repo, tag: "v1", config: `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`, layers: []string{"l"}})
	var sigs []ocispec.Descriptor
	for i := range 12 {
		sigs = append(sigs, f.image(push{repo: repo, artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json", subject: &root, layers: []string{fmt.Sprint("sig ", i)}}))
	}
	sbom := f.image(push{repo: repo, artifactType: "application/spdx+json", subject: &root, layers: []string{"sbom"}})
	b := f.browser()
	labels, edges := pictureOf(b.page(Prefix + repo + ":v1"))
	if len(labels) != 3 || !strings.HasPrefix(labels[1], "12 × signatures") && !strings.HasPrefix(labels[2], "12 × signatures") {
		t.Errorf("nodes %q, want the image, a group of 12 signatures and the SBOM", labels)
	}
	if len(edges) != 2 {
		t.Errorf("edges %q", edges)
	}
	page := b.page(Prefix + repo + "@" + root.Digest.String() + "?referrers=" + url.QueryEscape("application/vnd.dev.cosign.artifact.sig.v1+json"))
	for _, s := range sigs {
		if !strings.Contains(page, s.Digest.String()) {
			t.Errorf("the group's list has no %s", s.Digest)
		}
	}
	if strings.Contains(page, sbom.Digest.String()) {
		t.Error("the list of signatures has the SBOM")
	}

	m, err := f.ui.load(f.ctx, repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	// 12 signatures do not fit in 3 nodes one by one, so they are grouped; then the
	// SBOM finds no room
	g, err := f.ui.buildGraph(f.ctx, repo, m, graphLimits{Nodes: 2, Group: 20, Referrers: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Nodes) != 2 || g.Nodes[1].Count != 12 || !g.Cut {
		t.Errorf("a picture of at most 2 nodes has %d, cut %v", len(g.Nodes), g.Cut)
	}
}

package uie2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

const hostile = `<img src=x onerror=alert(1)>`

// demo is what TestBrowse pushes to demo/app: an index of two images (oras-go), an
// SBOM of the index with a hostile annotation (oras attach), a signature of the SBOM
// (cosign, OCI 1.1 referrers) and a signature of the amd64 image (cosign's default:
// a sha256-<hex>.sig tag).
type demo struct {
	index, amd64, arm64, sbom, sbomSig, amd64Sig digest.Digest
}

func pushDemo(t *testing.T, srv *graftest.Server) demo {
	t.Helper()
	r := repository(t, srv.Addr, "demo/app", "", "")
	amd64 := pushImage(t, r, "linux", "amd64", "")
	arm64 := pushImage(t, r, "linux", "arm64", "")
	index := pushIndex(t, r, "v1", amd64, arm64)
	d := demo{index: index.Digest, amd64: amd64.Digest, arm64: arm64.Digest}

	home, work := clienttest.NewHome(t), t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "sbom.spdx.json"), []byte(`{"spdxVersion":"SPDX-2.3","name":"app"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := client(t, home, work, nil, "oras", "attach", "--plain-http", "--artifact-type", "application/spdx+json",
		"--annotation", "org.example.note="+hostile, "--format", "go-template", "--template", "{{.digest}}",
		srv.Addr+"/demo/app:v1", "sbom.spdx.json:application/spdx+json")
	d.sbom = digest.Digest(strings.TrimSpace(out))
	if d.sbom.Validate() != nil {
		t.Fatalf("oras attach printed %q, not a digest", out)
	}

	env := []string{"COSIGN_PASSWORD=", "COSIGN_EXPERIMENTAL=1", "TUF_MIRROR=http://127.0.0.1:1"}
	client(t, home, work, env, "cosign", "generate-key-pair")
	client(t, home, work, env, "cosign", "sign", "-y", "--key", "cosign.key", "--tlog-upload=false",
		"--registry-referrers-mode=oci-1-1", "--allow-insecure-registry", srv.Addr+"/demo/app@"+d.sbom.String())
	client(t, home, work, env, "cosign", "sign", "-y", "--key", "cosign.key", "--tlog-upload=false",
		"--allow-insecure-registry", srv.Addr+"/demo/app@"+d.amd64.String())

	sbom, err := r.Resolve(t.Context(), d.sbom.String())
	if err != nil {
		t.Fatal(err)
	}
	var refs []ocispec.Descriptor
	err = r.Referrers(t.Context(), sbom, "", func(page []ocispec.Descriptor) error {
		refs = append(refs, page...)
		return nil
	})
	if err != nil || len(refs) != 1 {
		t.Fatalf("the SBOM has %d referrers after cosign sign, want 1: %v", len(refs), err)
	}
	d.sbomSig = refs[0].Digest
	sig, err := r.Resolve(t.Context(), "sha256-"+d.amd64.Encoded()+".sig")
	if err != nil {
		t.Fatalf("cosign's default mode left no sha256-….sig tag: %v", err)
	}
	d.amd64Sig = sig.Digest
	return d
}

// nodeHref is the selector of the picture's node that links to manifest d.
func nodeHref(d digest.Digest) string {
	return `a.node[href$="@` + d.String() + `"]`
}

// TestBrowse: the pages of a registry without access control, in a browser: the list
// of repositories, a repository, the picture of a graph with a node for each manifest
// and an edge for each link, a click through to a signature, the hostile annotation
// as text, the keyboard, both themes, a phone's width, and a delete with its preview.
func TestBrowse(t *testing.T) {
	srv := graftest.Start(t)
	d := pushDemo(t, srv)
	tb := newTab(t)

	// a browser asking for / lands on the list of repositories
	tb.open(srv.URL + "/")
	if loc := tb.location(); loc != srv.URL+"/ui/" {
		t.Errorf("/ led to %s", loc)
	}
	if got := tb.text("table.list tbody"); !strings.Contains(got, "demo/app") {
		t.Errorf("the list of repositories: %q", got)
	}
	tb.screenshot("repositories")

	tb.click(`a[href="/ui/demo/app"]`)
	if got := tb.text("table.list tbody"); !strings.Contains(got, "v1") || !strings.Contains(got, "index") {
		t.Errorf("the tagged manifests of demo/app: %q", got)
	}
	tb.screenshot("repository")
	tb.do(chromedp.Navigate(srv.URL + "/ui/demo/app?tab=untagged"))
	for _, x := range []digest.Digest{d.amd64, d.sbom, d.sbomSig} {
		if n := eval[int](tb, `document.querySelectorAll('a[href$="@`+x.String()+`"]').length`); n == 0 {
			t.Errorf("the untagged manifests have no %s", x)
		}
	}
	tb.screenshot("repository-untagged")

	// the picture: a node for each manifest, an edge for each link
	tb.click(`nav.tabs a[href*="tab=tagged"]`)
	tb.click(`a[href="/ui/demo/app:v1"]`)
	nodes := eval[[]string](tb, `[...document.querySelectorAll('.nodes [data-node]')].map(n => n.getAttribute('href') || '')`)
	for _, x := range []digest.Digest{d.index, d.amd64, d.arm64, d.sbom, d.sbomSig, d.amd64Sig} {
		if !slices.ContainsFunc(nodes, func(h string) bool { return strings.HasSuffix(h, "@"+x.String()) }) {
			t.Errorf("the picture has no node of %s: %q", x, nodes)
		}
	}
	if len(nodes) != 6 {
		t.Errorf("the picture has %d nodes, want 6: %q", len(nodes), nodes)
	}
	edges := eval[[]string](tb, `[...document.querySelectorAll('.edges path')].map(p => {
		const at = i => document.querySelector('[data-node="' + i + '"]').getAttribute('href').split('@')[1];
		return p.getAttribute('class') + ' ' + at(p.dataset.from) + ' ' + at(p.dataset.to);
	})`)
	want := []string{
		"edge-child " + d.index.String() + " " + d.amd64.String(),
		"edge-child " + d.index.String() + " " + d.arm64.String(),
		"edge-subject " + d.index.String() + " " + d.sbom.String(),
		"edge-subject " + d.sbom.String() + " " + d.sbomSig.String(),
		"edge-tag " + d.amd64.String() + " " + d.amd64Sig.String(),
	}
	slices.Sort(edges)
	slices.Sort(want)
	if !slices.Equal(edges, want) {
		t.Errorf("edges:\n%s\nwant:\n%s", strings.Join(edges, "\n"), strings.Join(want, "\n"))
	}
	if dash := eval[string](tb, `getComputedStyle(document.querySelector('.edges .edge-tag')).strokeDasharray`); dash == "none" || dash == "" {
		t.Errorf("the tag-schema edge is not dashed: %q", dash)
	}
	// nothing is drawn over anything else
	overlaps := eval[int](tb, `(() => {
		const r = [...document.querySelectorAll('.nodes .box')].map(b => b.getBoundingClientRect());
		let n = 0;
		for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++)
			if (r[i].left < r[j].right && r[j].left < r[i].right && r[i].top < r[j].bottom && r[j].top < r[i].bottom) n++;
		return n;
	})()`)
	if overlaps != 0 {
		t.Errorf("%d pairs of nodes overlap", overlaps)
	}
	for _, want := range []string{"docker pull " + srv.Addr + "/demo/app:v1", "oras pull --plain-http " + srv.Addr + "/demo/app:v1"} {
		if got := tb.text("aside"); !strings.Contains(got, want) {
			t.Errorf("the pull commands have no %q: %q", want, got)
		}
	}
	tb.screenshot("graph")
	tb.theme(true)
	tb.screenshot("graph-dark")
	if bg := eval[string](tb, `getComputedStyle(document.body).backgroundColor`); bg == "rgb(246, 247, 249)" {
		t.Errorf("the dark theme keeps the light background %s", bg)
	}
	tb.theme(false)

	// click through to the SBOM, and from it to its signature
	tb.click(nodeHref(d.sbom))
	if h := tb.text("h1"); !strings.Contains(h, "SBOM") {
		t.Errorf("the SBOM's page is headed %q", h)
	}
	// the hostile annotation is text on the page, and ran nothing
	if got := tb.text("table.kv"); !strings.Contains(got, hostile) {
		t.Errorf("the annotation is not shown as text: %q", got)
	}
	if n := eval[int](tb, `document.querySelectorAll('main img').length`); n != 0 {
		t.Errorf("the annotation made %d img elements", n)
	}
	tb.screenshot("sbom")
	tb.click(nodeHref(d.sbomSig))
	if h := tb.text("h1"); !strings.Contains(h, "signature") {
		t.Errorf("the signature's page is headed %q", h)
	}
	if loc := tb.location(); !strings.HasSuffix(loc, "/ui/demo/app@"+d.sbomSig.String()) {
		t.Errorf("the signature's node led to %s", loc)
	}
	tb.screenshot("signature")

	// by keyboard: tab to the first node of the picture, enter opens it
	tb.open(srv.URL + "/ui/demo/app:v1")
	reached := false
	for range 40 {
		tb.do(chromedp.KeyEvent(kb.Tab))
		if eval[bool](tb, `!!document.activeElement.closest('a.node')`) {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatal("tabbing never reached a node of the picture")
	}
	outline := eval[string](tb, `getComputedStyle(document.activeElement.querySelector('.box')).strokeWidth`)
	if outline != "3.5px" {
		t.Errorf("a focused node's box has a stroke of %q, want the focus ring's 3.5px", outline)
	}
	tb.screenshot("graph-focus")
	target := eval[string](tb, `document.activeElement.getAttribute('href')`)
	tb.do(chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("main")))
	run(tb, chromedp.Poll[bool](`location.pathname === `+jsString(target), chromedp.WithPollingTimeout(30*time.Second)))
	if loc := tb.location(); !strings.HasSuffix(loc, target) {
		t.Errorf("enter on the node of %s led to %s", target, loc)
	}

	// a phone
	tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	tb.open(srv.URL + "/ui/demo/app:v1")
	if w := eval[int](tb, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 pixels the page is %d wide: it scrolls sideways", w)
	}
	tb.screenshot("graph-phone")
	tb.open(srv.URL + "/ui/")
	tb.screenshot("repositories-phone")
	tb.open(srv.URL + "/ui/demo/app")
	if w := eval[int](tb, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 pixels the repository page is %d wide", w)
	}
	tb.screenshot("repository-phone")
	tb.do(chromedp.EmulateViewport(1280, 900))

	// delete the SBOM: the preview lists it and its signature, the delete removes both
	tb.open(srv.URL + "/ui/demo/app@" + d.sbom.String())
	tb.click(`a.button.danger`)
	preview := tb.text("main")
	for _, x := range []digest.Digest{d.sbom, d.sbomSig} {
		if !strings.Contains(preview, x.String()[:19]) {
			t.Errorf("the preview does not list %s: %q", x, preview)
		}
	}
	if strings.Contains(preview, d.index.String()[:19]) {
		t.Errorf("the preview lists the index: %q", preview)
	}
	tb.screenshot("delete-preview")
	tb.click(`form.confirm button.danger`)
	if got := tb.text(".notice"); !strings.Contains(got, "Deleted 2 manifests") {
		t.Errorf("after the delete: %q", got)
	}
	tb.screenshot("deleted")
	r := repository(t, srv.Addr, "demo/app", "", "")
	for _, x := range []digest.Digest{d.sbom, d.sbomSig} {
		if exists(t, r, x) {
			t.Errorf("%s is still there after the delete", x)
		}
	}
	for _, x := range []digest.Digest{d.index, d.amd64, d.arm64, d.amd64Sig} {
		if !exists(t, r, x) {
			t.Errorf("%s, outside the deleted graph, is gone", x)
		}
	}
	if n := tb.dialogCount(); n != 0 {
		t.Errorf("the pages opened %d dialogs", n)
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

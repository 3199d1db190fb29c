package ui

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/registry"
)

func (f *fixture) exists(repo string, d digest.Digest) bool {
	f.t.Helper()
	_, err := f.reg.ManifestInfo(f.ctx, repo, d.String())
	if err != nil && !notFound(err) {
		f.t.Fatal(err)
	}
	return err == nil
}

// TestDelete: the preview lists what the cascade removes; the delete needs the form's
// CSRF token and a page of this origin, and removes exactly that.
func TestDelete(t *testing.T) {
	f := newGraphFixture(t)
	b := f.browser()
	sbomPage := Prefix + "demo/app@" + f.sbom.Digest.String()
	if page := b.page(sbomPage); !strings.Contains(page, `href="`+sbomPage+`?delete"`) {
		t.Fatalf("the SBOM's page offers no delete:\n%s", page)
	}
	preview := b.page(sbomPage + "?delete")
	for _, d := range []digest.Digest{f.sbom.Digest, f.sig.Digest} {
		if !strings.Contains(preview, `href="/ui/demo/app@`+d.String()+`"`) {
			t.Errorf("the preview does not list %s", d)
		}
	}
	if strings.Contains(preview, f.index.Digest.String()) || !strings.Contains(preview, "Delete 2 manifests") {
		t.Errorf("the preview:\n%s", preview)
	}

	refused := map[string]func() answer{
		"no token": func() answer {
			return b.do(http.MethodPost, sbomPage, url.Values{"action": {"delete"}})
		},
		"a wrong token": func() answer {
			return b.post(sbomPage, url.Values{"action": {"delete"}, "csrf": {strings.Repeat("x", csrfLength)}})
		},
		"another site": func() answer {
			form := url.Values{"action": {"delete"}, "csrf": {b.csrf()}}
			req, _ := http.NewRequest(http.MethodPost, f.srv.URL+sbomPage, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			req.Header.Set("Origin", "https://evil.example")
			resp, err := b.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return answer{status: resp.StatusCode}
		},
	}
	for name, post := range refused {
		if a := post(); a.status != http.StatusForbidden {
			t.Errorf("a delete with %s: %d, want 403", name, a.status)
		}
		if !f.exists("demo/app", f.sbom.Digest) {
			t.Fatalf("a delete with %s deleted", name)
		}
	}

	a := b.post(sbomPage, url.Values{"action": {"delete"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/demo/app?deleted=2&kept=0" {
		t.Fatalf("delete: %d to %q\n%s", a.status, a.header.Get("Location"), a.body)
	}
	if page := b.page(a.header.Get("Location")); !strings.Contains(page, "Deleted 2 manifests.") {
		t.Errorf("the page after the delete:\n%s", page)
	}
	for _, d := range []digest.Digest{f.sbom.Digest, f.sig.Digest} {
		if f.exists("demo/app", d) {
			t.Errorf("%s is still there", d)
		}
	}
	for _, d := range []digest.Digest{f.index.Digest, f.amd64.Digest, f.arm64.Digest, f.tagSig.Digest} {
		if !f.exists("demo/app", d) {
			t.Errorf("%s, outside the graph, is gone", d)
		}
	}
	if a := b.post(Prefix+"demo/app:v1", url.Values{"action": {"delete"}}); a.status != http.StatusBadRequest {
		t.Errorf("a delete by tag: %d, want 400", a.status)
	}
	if a := b.post(Prefix+"demo/app:v1", url.Values{"action": {"explode"}}); a.status != http.StatusBadRequest {
		t.Errorf("an unknown action: %d, want 400", a.status)
	}
	if a := b.get(Prefix + "demo/app@" + f.sbom.Digest.String() + "?delete"); a.status != http.StatusNotFound {
		t.Errorf("the preview of a deleted manifest: %d", a.status)
	}
}

// TestLocks: lock and unlock a manifest and a repository; a locked manifest cannot be
// deleted, and the view says why.
func TestLocks(t *testing.T) {
	f := newGraphFixture(t)
	b := f.browser()
	indexPage := Prefix + "demo/app@" + f.index.Digest.String()
	a := b.post(indexPage, url.Values{"action": {"lock"}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("lock: %d %s", a.status, a.body)
	}
	info, _ := f.reg.ManifestInfo(f.ctx, "demo/app", "v1")
	if info.Attributes.WriteEnabled || info.Attributes.DeleteEnabled || !info.Attributes.ReadEnabled {
		t.Errorf("after lock: %+v", info.Attributes)
	}
	page := b.page(a.header.Get("Location"))
	if !strings.Contains(page, `value="unlock"`) || !strings.Contains(page, "locked against writes, deletes") {
		t.Errorf("the page of a locked manifest:\n%s", page)
	}
	if a := b.get(indexPage + "?delete"); a.status != http.StatusForbidden || !strings.Contains(a.body, "locked against deletes") {
		t.Errorf("the delete preview of a locked manifest: %d\n%s", a.status, a.body)
	}
	if a := b.post(indexPage, url.Values{"action": {"delete"}}); a.status != http.StatusForbidden || !f.exists("demo/app", f.index.Digest) {
		t.Errorf("delete of a locked manifest: %d", a.status)
	}
	b.post(indexPage, url.Values{"action": {"unlock"}})
	if info, _ := f.reg.ManifestInfo(f.ctx, "demo/app", "v1"); !info.Attributes.WriteEnabled || !info.Attributes.DeleteEnabled {
		t.Errorf("after unlock: %+v", info.Attributes)
	}

	if a := b.post(Prefix+"demo/app", url.Values{"action": {"lock"}}); a.status != http.StatusSeeOther {
		t.Fatalf("repository lock: %d %s", a.status, a.body)
	}
	if rp, _ := f.reg.Repository(f.ctx, "demo/app"); rp.Attributes.DeleteEnabled || rp.Attributes.WriteEnabled {
		t.Errorf("after the repository's lock: %+v", rp.Attributes)
	}
	if page := b.page(Prefix + "demo/app"); !strings.Contains(page, "Unlock repository") {
		t.Errorf("the page of a locked repository:\n%s", page)
	}
	if a := b.post(Prefix+"demo/app", url.Values{"action": {"unlock"}}); a.status != http.StatusSeeOther {
		t.Fatalf("repository unlock: %d", a.status)
	}
	if rp, _ := f.reg.Repository(f.ctx, "demo/app"); !rp.Attributes.DeleteEnabled || !rp.Attributes.WriteEnabled {
		t.Errorf("after the repository's unlock: %+v", rp.Attributes)
	}

	// a manifest locked for reads shows what its metadata says, and what hangs under it
	no := false
	if _, err := f.reg.UpdateManifest(f.ctx, "demo/app", f.sbom.Digest.String(), registry.AttributesPatch{ReadEnabled: &no}); err != nil {
		t.Fatal(err)
	}
	page = b.page(Prefix + "demo/app@" + f.sbom.Digest.String())
	labels, _ := pictureOf(page)
	if !strings.Contains(page, "locked for reads: its content is not shown") || len(labels) != 2 || !strings.HasPrefix(labels[0], "SBOM") {
		t.Errorf("the page of a manifest locked for reads: nodes %q\n%s", labels, page)
	}
}

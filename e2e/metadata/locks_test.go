package metadata

import (
	"bytes"
	"net/http"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
)

var linux = ocispec.Platform{OS: "linux", Architecture: "amd64"}

func manifestPath(repo, ref string) string { return "/v2/" + repo + "/manifests/" + ref }

func blobPath(repo string, d digest.Digest) string { return "/v2/" + repo + "/blobs/" + d.String() }

// pull GETs manifest ref of repo and checks that it is m, byte for byte.
func (r *repo) pull(m *pushed, ref string) {
	r.c.t.Helper()
	resp := r.c.want(http.StatusOK, http.MethodGet, manifestPath(r.name, ref), nil, "Accept", m.MediaType)
	if !bytes.Equal(resp.Body, m.Body) || resp.Header.Get("Docker-Content-Digest") != m.Digest.String() {
		r.c.t.Errorf("GET %s: %s is not %s", ref, resp.Header.Get("Docker-Content-Digest"), m.Digest)
	}
	r.c.want(http.StatusOK, http.MethodHead, manifestPath(r.name, ref), nil, "Accept", m.MediaType)
}

// pullBlob GETs blob d of repo and checks its content.
func (r *repo) pullBlob(d digest.Digest) {
	r.c.t.Helper()
	resp := r.c.want(http.StatusOK, http.MethodGet, blobPath(r.name, d), nil)
	if digest.FromBytes(resp.Body) != d {
		r.c.t.Errorf("GET blob %s: the content does not match", d)
	}
	r.c.want(http.StatusOK, http.MethodHead, blobPath(r.name, d), nil)
}

// deniedPull checks that ref of repo may be neither fetched nor HEADed.
func (r *repo) deniedPull(ref string) {
	r.c.t.Helper()
	r.c.denied(http.MethodGet, manifestPath(r.name, ref), nil, "Accept", ocispec.MediaTypeImageManifest)
	r.c.denied(http.MethodHead, manifestPath(r.name, ref), nil, "Accept", ocispec.MediaTypeImageManifest)
}

func TestRepositoryLocks(t *testing.T) {
	t.Parallel()
	c := start(t)

	t.Run("writeEnabled", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/repo-write")
		a := r.image(linux, "layer of a")
		r.tag(a, "v1")
		b := r.build(linux, "layer of b") // its blobs are in, its manifest is not
		extra := r.pushBlob([]byte("a blob no manifest names"))
		src := c.repo("locks/repo-write-source")
		mountable := src.pushBlob([]byte("a blob to mount"))
		session := c.srv.StartUpload(t, r.name)
		newBlob := []byte("a blob pushed while the repository is locked")
		newDigest := digest.FromBytes(newBlob)

		r.patchRepository(`{"writeEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: false, ReadEnabled: true, ListEnabled: true})

		c.denied(http.MethodPost, "/v2/"+r.name+"/blobs/uploads/?digest="+newDigest.String(), newBlob)
		c.denied(http.MethodPost, "/v2/"+r.name+"/blobs/uploads/", nil)
		c.denied(http.MethodPost, "/v2/"+r.name+"/blobs/uploads/?mount="+mountable.String()+"&from="+src.name, nil)
		c.denied(http.MethodPut, apitest.WithQuery(session, "digest", newDigest.String()), newBlob)
		apitest.CheckError(t, "HEAD a blob refused", c.do(http.MethodHead, blobPath(r.name, newDigest), nil), http.StatusNotFound, "")
		apitest.CheckError(t, "HEAD a mount refused", c.do(http.MethodHead, blobPath(r.name, mountable), nil), http.StatusNotFound, "")
		c.denied(http.MethodPut, manifestPath(r.name, b.Digest.String()), b.Body, "Content-Type", b.MediaType)
		c.denied(http.MethodPut, manifestPath(r.name, "v2"), b.Body, "Content-Type", b.MediaType)
		c.denied(http.MethodPut, manifestPath(r.name, "v1"), b.Body, "Content-Type", b.MediaType)
		c.denied(http.MethodPut, manifestPath(r.name, "v1"), a.Body, "Content-Type", a.MediaType)
		c.denied(http.MethodDelete, manifestPath(r.name, "v1"), nil)
		c.denied(http.MethodDelete, manifestPath(r.name, a.Digest.String()), nil)
		c.denied(http.MethodDelete, blobPath(r.name, extra), nil)

		// Reads go on.
		r.pull(a, "v1")
		r.pull(a, a.Digest.String())
		r.pullBlob(extra)
		if tags := c.srv.Tags(c.t, r.name); !slices.Equal(tags, []string{"v1"}) {
			t.Errorf("tags %q, want [v1]", tags)
		}
		r.check("while write-locked")

		r.patchRepository(`{"writeEnabled": true}`, allEnabled)
		r.pushBlob(newBlob)
		loc := c.srv.StartUpload(t, r.name)
		again := []byte("a blob pushed in a session")
		c.want(http.StatusCreated, http.MethodPut, apitest.WithQuery(loc, "digest", digest.FromBytes(again).String()), again)
		r.blobs[digest.FromBytes(again)] = int64(len(again))
		c.want(http.StatusCreated, http.MethodPost, "/v2/"+r.name+"/blobs/uploads/?mount="+mountable.String()+"&from="+src.name, nil)
		r.blobs[mountable] = src.blobs[mountable]
		r.putManifest(b, "")
		r.tag(b, "v2")
		r.tag(b, "v1")
		r.deleteTag("v2")
		r.deleteManifest(a, nil, nil)
		r.deleteBlob(extra)
		r.check("after the lock was lifted")
	})

	t.Run("deleteEnabled", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/repo-delete")
		a := r.image(linux, "layer of a")
		r.tag(a, "v1")
		extra := r.pushBlob([]byte("a blob no manifest names"))

		r.patchRepository(`{"deleteEnabled": false}`, attributes{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true})
		c.denied(http.MethodDelete, manifestPath(r.name, "v1"), nil)
		c.denied(http.MethodDelete, manifestPath(r.name, a.Digest.String()), nil)
		c.denied(http.MethodDelete, blobPath(r.name, extra), nil)
		r.check("after the refused deletes")

		// Pushes and tag moves go on.
		r.pushBlob([]byte("another blob"))
		b := r.image(linux, "layer of b")
		r.tag(b, "v2")
		r.tag(b, "v1")
		r.tag(a, "v1")
		r.pull(a, "v1")
		r.check("after pushes and tag moves")

		r.patchRepository(`{"deleteEnabled": true}`, allEnabled)
		r.deleteTag("v1")
		r.deleteManifest(a, nil, nil)
		r.deleteBlob(extra)
		r.check("after the lock was lifted")
	})

	t.Run("readEnabled", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/repo-read")
		a := r.image(linux, "layer of the read-locked a")
		r.tag(a, "v1")
		layer := digest.FromString("layer of the read-locked a")
		dst := c.repo("locks/repo-read-destination")
		dst.pushBlob([]byte("the destination exists"))

		r.patchRepository(`{"readEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: false, ListEnabled: true})
		r.deniedPull("v1")
		r.deniedPull(a.Digest.String())
		c.denied(http.MethodGet, blobPath(r.name, layer), nil)
		c.denied(http.MethodHead, blobPath(r.name, layer), nil)
		c.denied(http.MethodGet, blobPath(r.name, a.Digest), nil) // a manifest through the blob endpoint
		c.denied(http.MethodGet, "/oras/artifacts/v1/"+r.name+"/manifests/"+a.Digest.String(), nil)
		// A mount would copy what may not be read: the registry opens a session instead.
		for _, from := range []string{"&from=" + r.name, ""} {
			c.want(http.StatusAccepted, http.MethodPost, "/v2/"+dst.name+"/blobs/uploads/?mount="+layer.String()+from, nil)
			apitest.CheckError(t, "HEAD an unmounted blob", c.do(http.MethodHead, blobPath(dst.name, layer), nil), http.StatusNotFound, "")
		}

		// Its metadata stays readable, and pushes go on.
		r.check("while read-locked")
		b := r.image(linux, "layer of b")
		r.tag(b, "v2")
		r.check("after a push")

		r.patchRepository(`{"readEnabled": true}`, allEnabled)
		r.pull(a, "v1")
		r.pull(b, "v2")
		r.pullBlob(layer)
		c.want(http.StatusCreated, http.MethodPost, "/v2/"+dst.name+"/blobs/uploads/?mount="+layer.String()+"&from="+r.name, nil)
	})

	t.Run("listEnabled", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/repo-list")
		a := r.image(linux, "layer of a")
		r.tag(a, "v1")
		other := c.repo("locks/repo-list-other")
		other.image(linux, "layer")
		if cat := c.srv.Catalog(c.t); !slices.Contains(cat, r.name) || !slices.Contains(cat, other.name) {
			t.Fatalf("catalog %q lacks %s or %s", cat, r.name, other.name)
		}

		r.patchRepository(`{"listEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: true, ListEnabled: false})
		if cat := c.srv.Catalog(c.t); slices.Contains(cat, r.name) || !slices.Contains(cat, other.name) {
			t.Errorf("catalog %q: want %s hidden and %s listed", cat, r.name, other.name)
		}
		// Hidden is not locked: it is still pulled, pushed and described.
		r.pull(a, "v1")
		r.tag(r.image(linux, "layer of b"), "v2")
		found := false
		for _, rp := range c.repositories(1000) {
			if rp.Name == r.name {
				found = true
				if rp.ChangeableAttributes != r.repoAttrs {
					t.Errorf("/_repositories shows %s with %+v", r.name, rp.ChangeableAttributes)
				}
			}
		}
		if !found {
			t.Errorf("/_repositories does not list the hidden %s", r.name)
		}
		r.check("while hidden")

		r.patchRepository(`{"listEnabled": true}`, allEnabled)
		if cat := c.srv.Catalog(c.t); !slices.Contains(cat, r.name) {
			t.Errorf("catalog %q lacks %s once listed again", cat, r.name)
		}
	})

	t.Run("several at once", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/repo-several")
		r.tag(r.image(linux, "layer"), "v1")
		r.patchRepository(`{"deleteEnabled": false, "listEnabled": false}`,
			attributes{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: false})
		// An attribute left out keeps its value.
		r.patchRepository(`{"readEnabled": false}`, attributes{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: false, ListEnabled: false})
		r.patchRepository(`{}`, attributes{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: false, ListEnabled: false})
		r.patchRepository(`{"deleteEnabled": true, "writeEnabled": true, "readEnabled": true, "listEnabled": true}`, allEnabled)
		r.check("after the PATCHes")
	})
}

func TestManifestLocks(t *testing.T) {
	t.Parallel()
	c := start(t)

	t.Run("writeEnabled", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/manifest-write")
		a := r.image(linux, "layer of a")
		r.tag(a, "v1")
		b := r.image(linux, "layer of b")
		r.tag(b, "other")
		u := r.image(linux, "layer of an untagged image")

		// PATCH by tag locks the manifest the tag names.
		r.patchManifest(a, "v1", `{"writeEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: false, ReadEnabled: true, ListEnabled: true})
		c.denied(http.MethodPut, manifestPath(r.name, "v1"), b.Body, "Content-Type", b.MediaType)
		c.denied(http.MethodDelete, manifestPath(r.name, "v1"), nil)
		c.denied(http.MethodDelete, manifestPath(r.name, a.Digest.String()), nil)
		r.check("after the refused writes")

		// A locked manifest is still pulled and gets referrers; the others are not
		// locked.
		r.pull(a, "v1")
		sig := r.artifact(typeSignature, a, "signature of a")
		if got := apitest.Digests(c.srv.Referrers(c.t, r.name, a.Digest)); !slices.Equal(got, []digest.Digest{sig.Digest}) {
			t.Errorf("referrers of a: %v, want the signature", got)
		}
		r.tag(u, "other")
		r.deleteTag("other")
		r.deleteManifest(b, nil, nil)
		r.check("after writes to the other manifests")

		r.patchManifest(a, "", `{"writeEnabled": true}`, allEnabled)
		r.tag(u, "v1")
		r.deleteManifest(a, []*pushed{sig}, nil)
		r.check("after the lock was lifted")
	})

	t.Run("deleteEnabled", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/manifest-delete")
		a := r.image(linux, "layer of a")
		r.tag(a, "v1")
		b := r.image(linux, "layer of b")

		r.patchManifest(a, "", `{"deleteEnabled": false}`, attributes{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true})
		c.denied(http.MethodDelete, manifestPath(r.name, a.Digest.String()), nil)
		r.check("after the refused delete")

		// Pushes and tag moves go on.
		r.tag(a, "v2")
		r.tag(b, "v1")
		r.tag(a, "v1")
		sig := r.artifact(typeSignature, a, "signature of a")
		r.pull(a, "v2")
		r.check("after pushes and tag moves")

		r.patchManifest(a, "", `{"deleteEnabled": true}`, allEnabled)
		r.deleteManifest(a, []*pushed{sig}, nil)
		r.check("after the lock was lifted")
	})

	// Deleting a tag deletes something that names the manifest, as a repository's
	// deleteEnabled=false refuses it: a manifest's must refuse it too, or the
	// manifest it protects loses its tags and with them what keeps it.
	t.Run("deleteEnabled refuses tag deletes", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/manifest-delete-tag")
		a := r.image(linux, "layer of a")
		r.tag(a, "v1")
		r.patchManifest(a, "", `{"deleteEnabled": false}`, attributes{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true})
		c.denied(http.MethodDelete, manifestPath(r.name, "v1"), nil)
		if tags := c.manifest(r.name, a.Digest.String()).Tags; !slices.Equal(tags, []string{"v1"}) {
			t.Errorf("a has tags %q after a refused tag delete, want [v1]", tags)
		}
	})

	t.Run("readEnabled", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/manifest-read")
		a := r.image(linux, "layer of a")
		r.tag(a, "v1")
		b := r.image(linux, "layer of b")
		r.tag(b, "v2")

		r.patchManifest(a, "", `{"readEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: false, ListEnabled: true})
		r.deniedPull("v1")
		r.deniedPull(a.Digest.String())
		c.denied(http.MethodGet, "/oras/artifacts/v1/"+r.name+"/manifests/"+a.Digest.String(), nil)

		// Others are pulled; the locked one is still described, listed and attached to.
		r.pull(b, "v2")
		r.pullBlob(digest.FromString("layer of a"))
		sig := r.artifact(typeSignature, a, "signature of a")
		if got := apitest.Digests(c.srv.Referrers(c.t, r.name, a.Digest)); !slices.Equal(got, []digest.Digest{sig.Digest}) {
			t.Errorf("referrers of a: %v, want the signature", got)
		}
		if tags := c.srv.Tags(c.t, r.name); !slices.Equal(tags, []string{"v1", "v2"}) {
			t.Errorf("tags %q, want [v1 v2]", tags)
		}
		r.check("while a is read-locked")

		r.patchManifest(a, "v1", `{"readEnabled": true}`, allEnabled)
		r.pull(a, "v1")
		r.pull(a, a.Digest.String())
	})

	// The blob endpoint serves a manifest by digest too; a read lock must hold there
	// as well, or the lock is bypassed with one different path.
	t.Run("readEnabled covers the blob endpoint", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/manifest-read-blob")
		a := r.image(linux, "layer of a")
		c.want(http.StatusOK, http.MethodGet, blobPath(r.name, a.Digest), nil)
		r.patchManifest(a, "", `{"readEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: false, ListEnabled: true})
		r.deniedPull(a.Digest.String())
		c.denied(http.MethodGet, blobPath(r.name, a.Digest), nil)
		c.denied(http.MethodHead, blobPath(r.name, a.Digest), nil)
	})

	t.Run("listEnabled", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r := c.repo("locks/manifest-list")
		a := r.image(linux, "layer of a")
		r.tag(a, "v1")
		r.tag(a, "v1.1")
		b := r.image(linux, "layer of b")
		r.tag(b, "v2")

		r.patchManifest(a, "v1.1", `{"listEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: true, ListEnabled: false})
		if tags := c.srv.Tags(c.t, r.name); !slices.Equal(tags, []string{"v2"}) {
			t.Errorf("tags %q, want [v2]: a's tags hidden", tags)
		}
		if resp := c.want(http.StatusOK, http.MethodGet, "/v2/"+r.name+"/tags/list?n=1", nil); apitest.NextLink(t, resp) != "" {
			t.Errorf("a page of 1 tag of 1 listed has a Link: %q", resp.Header.Get("Link"))
		}
		r.pull(a, "v1")
		r.pull(a, "v1.1")
		if !slices.Contains(c.srv.Catalog(c.t), r.name) {
			t.Errorf("catalog lacks %s", r.name)
		}
		r.check("while a is hidden") // the metadata API still shows a and its tags

		// A tag moved to a hidden manifest is hidden with it.
		r.tag(a, "v2")
		if tags := c.srv.Tags(c.t, r.name); len(tags) != 0 {
			t.Errorf("tags %q, want none", tags)
		}
		r.tag(b, "v2")

		r.patchManifest(a, "", `{"listEnabled": true}`, allEnabled)
		if tags := c.srv.Tags(c.t, r.name); !slices.Equal(tags, []string{"v1", "v1.1", "v2"}) {
			t.Errorf("tags %q, want [v1 v1.1 v2]", tags)
		}
	})
}

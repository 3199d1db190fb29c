package server_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/registry"
	"github.com/graft-registry/graft/internal/registrytest"
)

// Locks are the changeable attributes of repositories and manifests, set with PATCH of
// the metadata API: what each refuses is answered 403 DENIED; what it does not refuse
// goes on.

// lockSetup is a repository of a lock test: an image a tagged v1, an image b whose
// blobs are in and whose manifest is not, a blob no manifest names, an upload session,
// and a blob to mount from another repository.
type lockSetup struct {
	r             *metaRepo
	a             *manifestInfo
	b             apitest.Image
	extra         apitest.Blob
	session       string
	mountable     digest.Digest
	mountFrom     string
	fresh         apitest.Blob // a blob not pushed yet
	layerOfA      digest.Digest
	manifestPath  func(ref string) string
	blobPath      func(d digest.Digest) string
	contentType   []string
	freshFinished string // the session finished with fresh
}

func setupLocks(t *testing.T, srv *registrytest.Server, name string) *lockSetup {
	t.Helper()
	s := &lockSetup{r: newMetaRepo(t, srv, name)}
	s.a = s.r.image(linuxAMD64, "layer of a in "+name)
	s.layerOfA = digest.FromString("layer of a in " + name)
	s.r.tag(s.a, "v1")
	s.b = apitest.NewImage(t, linuxAMD64, "layer of b in "+name)
	s.r.pushBlobs(s.b.Blobs()...)
	s.extra = apitest.NewBlob(octets, []byte("a blob no manifest names in "+name))
	s.r.pushBlobs(s.extra)
	s.session = srv.StartUpload(t, name)
	s.mountFrom = name + "-source"
	s.mountable = srv.PushBlob(t, s.mountFrom, []byte("a blob to mount into "+name))
	s.fresh = apitest.NewBlob(octets, []byte("a blob pushed while "+name+" is locked"))
	s.manifestPath = func(ref string) string { return "/v2/" + name + "/manifests/" + ref }
	s.blobPath = func(d digest.Digest) string { return "/v2/" + name + "/blobs/" + d.String() }
	s.contentType = []string{"Content-Type", ocispec.MediaTypeImageManifest}
	s.freshFinished = apitest.WithQuery(s.session, "digest", s.fresh.Desc.Digest.String())
	return s
}

// pushedFresh records the fresh blob and the mounted one, pushed by a test.
func (s *lockSetup) pushedFresh() {
	s.r.blobs[s.fresh.Desc.Digest] = s.fresh.Desc.Size
	s.r.blobs[s.mountable] = int64(len("a blob to mount into " + s.r.name))
}

// pushedB records b's manifest, pushed by a test, tagged tag unless it is "".
func (s *lockSetup) pushedB(tag string) {
	s.r.record(s.b.Manifest, imageInfo(s.b, linuxAMD64))
	if tag != "" {
		s.r.tags[tag] = s.b.Desc().Digest
	}
}

// patch sets attributes of the repository (path "") or of its manifest ref with body
// and checks the answer against the model, which it updates.
func (s *lockSetup) patch(t *testing.T, srv *registrytest.Server, ref, body string, want attrs) {
	t.Helper()
	if ref == "" {
		s.r.attrs = want
		r := srv.Want(t, http.StatusOK, http.MethodPatch, "/graft/v1/"+s.r.name, []byte(body), "Content-Type", "application/json")
		wantJSON(t, "PATCH "+s.r.name+" "+body, r.Body, s.r.wantRepo())
		return
	}
	r := srv.Want(t, http.StatusOK, http.MethodPatch, "/graft/v1/"+s.r.name+"/_manifests/"+ref, []byte(body), "Content-Type", "application/json")
	var m *manifestInfo
	if d, ok := s.r.tags[ref]; ok {
		m = s.r.manifests[d]
	} else {
		m = s.r.manifests[digest.Digest(ref)]
	}
	m.ChangeableAttributes = want
	wantJSON(t, "PATCH "+ref+" "+body, r.Body, s.r.want(m))
}

// denied is a call a lock refuses with message.
func denied(method, target string, body []byte, header []string, message string) call {
	c := call{name: method + " " + target, method: method, target: target, body: body, header: header,
		status: http.StatusForbidden, code: "DENIED", message: message}
	if method == http.MethodHead {
		c.answer = []byte{}
	}
	return c
}

func allowed(method, target string, body []byte, header []string, status int) call {
	return call{name: method + " " + target, method: method, target: target, body: body, header: header, status: status}
}

func TestRepositoryLocks(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		t.Run("writeEnabled", func(t *testing.T) {
			s := setupLocks(t, srv, "locks/repo-write")
			s.patch(t, srv, "", `{"writeEnabled": false}`, attrs{DeleteEnabled: true, WriteEnabled: false, ReadEnabled: true, ListEnabled: true})
			const writes, deletes = "repository locks/repo-write is locked for writes", "repository locks/repo-write is locked against deletes"
			name := s.r.name
			run(t, srv, []call{
				denied(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+s.fresh.Desc.Digest.String(), s.fresh.Data, nil, writes),
				denied(http.MethodPost, "/v2/"+name+"/blobs/uploads/", nil, nil, writes),
				denied(http.MethodPost, "/v2/"+name+"/blobs/uploads/?mount="+s.mountable.String()+"&from="+s.mountFrom, nil, nil, writes),
				denied(http.MethodPatch, s.session, s.fresh.Data, nil, writes),
				denied(http.MethodPut, s.freshFinished, s.fresh.Data, nil, writes),
				denied(http.MethodPut, s.manifestPath(s.b.Desc().Digest.String()), s.b.Manifest.Data, s.contentType, writes),
				denied(http.MethodPut, s.manifestPath("v2"), s.b.Manifest.Data, s.contentType, writes),
				denied(http.MethodPut, s.manifestPath("v1"), s.b.Manifest.Data, s.contentType, writes),
				denied(http.MethodPut, s.manifestPath("v1"), s.r.content(s.a), s.contentType, writes),
				denied(http.MethodDelete, s.manifestPath("v1"), nil, nil, deletes),
				denied(http.MethodDelete, s.manifestPath(s.a.Digest.String()), nil, nil, deletes),
				denied(http.MethodDelete, s.blobPath(s.extra.Desc.Digest), nil, nil, deletes),
				// Reads go on, and so do status and cancel of a session: they write nothing.
				allowed(http.MethodGet, s.manifestPath("v1"), nil, nil, http.StatusOK),
				allowed(http.MethodGet, s.blobPath(s.extra.Desc.Digest), nil, nil, http.StatusOK),
				allowed(http.MethodGet, "/v2/"+name+"/tags/list", nil, nil, http.StatusOK),
				allowed(http.MethodGet, s.session, nil, nil, http.StatusNoContent),
			})
			wantNoBlob(t, srv, name, s.fresh.Desc.Digest)
			wantNoBlob(t, srv, name, s.mountable)
			wantNoManifest(t, srv, name, s.b.Desc().Digest.String())
			s.r.check("while write-locked")

			s.patch(t, srv, "", `{"writeEnabled": true}`, allEnabled)
			srv.Want(t, http.StatusCreated, http.MethodPut, s.freshFinished, s.fresh.Data)
			srv.Want(t, http.StatusCreated, http.MethodPost, "/v2/"+name+"/blobs/uploads/?mount="+s.mountable.String()+"&from="+s.mountFrom, nil)
			srv.Want(t, http.StatusCreated, http.MethodPut, s.manifestPath("v1"), s.b.Manifest.Data, s.contentType...)
			srv.Want(t, http.StatusAccepted, http.MethodDelete, s.manifestPath(s.a.Digest.String()), nil)
		})

		t.Run("deleteEnabled", func(t *testing.T) {
			s := setupLocks(t, srv, "locks/repo-delete")
			s.patch(t, srv, "", `{"deleteEnabled": false}`, attrs{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true})
			const deletes = "repository locks/repo-delete is locked against deletes"
			run(t, srv, []call{
				denied(http.MethodDelete, s.manifestPath("v1"), nil, nil, deletes),
				denied(http.MethodDelete, s.manifestPath(s.a.Digest.String()), nil, nil, deletes),
				denied(http.MethodDelete, s.blobPath(s.extra.Desc.Digest), nil, nil, deletes),
			})
			s.r.check("after the refused deletes")
			// Pushes and tag moves go on.
			run(t, srv, []call{
				allowed(http.MethodPut, s.freshFinished, s.fresh.Data, nil, http.StatusCreated),
				allowed(http.MethodPost, "/v2/"+s.r.name+"/blobs/uploads/?mount="+s.mountable.String()+"&from="+s.mountFrom, nil, nil, http.StatusCreated),
				allowed(http.MethodPut, s.manifestPath("v1"), s.b.Manifest.Data, s.contentType, http.StatusCreated),
				allowed(http.MethodPut, s.manifestPath("v1"), s.r.content(s.a), s.contentType, http.StatusCreated),
			})
			s.pushedFresh()
			s.pushedB("")
			s.patch(t, srv, "", `{"deleteEnabled": true}`, allEnabled)
			srv.Want(t, http.StatusAccepted, http.MethodDelete, s.manifestPath("v1"), nil)
			srv.Want(t, http.StatusAccepted, http.MethodDelete, s.blobPath(s.extra.Desc.Digest), nil)
		})

		t.Run("readEnabled", func(t *testing.T) {
			s := setupLocks(t, srv, "locks/repo-read")
			srv.PushBlob(t, "locks/repo-read-destination", []byte("the destination exists"))
			s.patch(t, srv, "", `{"readEnabled": false}`, attrs{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: false, ListEnabled: true})
			const reads = "repository locks/repo-read is locked for reads"
			name := s.r.name
			calls := []call{
				denied(http.MethodGet, s.manifestPath("v1"), nil, nil, reads),
				denied(http.MethodHead, s.manifestPath("v1"), nil, nil, reads),
				denied(http.MethodGet, s.manifestPath(s.a.Digest.String()), nil, nil, reads),
				denied(http.MethodGet, s.blobPath(s.layerOfA), nil, nil, reads),
				denied(http.MethodHead, s.blobPath(s.layerOfA), nil, nil, reads),
				denied(http.MethodGet, s.blobPath(s.a.Digest), nil, nil, reads), // a manifest through the blob endpoint
				denied(http.MethodGet, "/oras/artifacts/v1/"+name+"/manifests/"+s.a.Digest.String(), nil, nil, reads),
				// Its metadata, tags and referrers stay readable, and pushes go on.
				allowed(http.MethodGet, "/v2/"+name+"/tags/list", nil, nil, http.StatusOK),
				allowed(http.MethodGet, "/v2/"+name+"/referrers/"+s.a.Digest.String(), nil, nil, http.StatusOK),
				allowed(http.MethodGet, "/graft/v1/"+name+"/_manifests/v1", nil, nil, http.StatusOK),
				allowed(http.MethodPut, s.manifestPath("v2"), s.b.Manifest.Data, s.contentType, http.StatusCreated),
			}
			// A mount would copy what may not be read: the registry opens a session
			// instead.
			for _, from := range []string{"&from=" + name, ""} {
				calls = append(calls, allowed(http.MethodPost, "/v2/locks/repo-read-destination/blobs/uploads/?mount="+s.layerOfA.String()+from,
					nil, nil, http.StatusAccepted))
			}
			run(t, srv, calls)
			s.pushedB("v2")
			wantNoBlob(t, srv, "locks/repo-read-destination", s.layerOfA)

			s.patch(t, srv, "", `{"readEnabled": true}`, allEnabled)
			srv.Want(t, http.StatusOK, http.MethodGet, s.manifestPath("v1"), nil)
			srv.Want(t, http.StatusOK, http.MethodGet, s.blobPath(s.layerOfA), nil)
		})

		t.Run("listEnabled", func(t *testing.T) {
			s := setupLocks(t, srv, "locks/repo-list")
			if cat := srv.Catalog(t); !slices.Contains(cat, s.r.name) {
				t.Fatalf("catalog %q lacks %s", cat, s.r.name)
			}
			s.patch(t, srv, "", `{"listEnabled": false}`, attrs{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: true, ListEnabled: false})
			if cat := srv.Catalog(t); slices.Contains(cat, s.r.name) || !slices.Contains(cat, s.mountFrom) {
				t.Errorf("catalog %q: want %s hidden and %s listed", cat, s.r.name, s.mountFrom)
			}
			// Hidden is not locked: it is pulled, pushed and described.
			run(t, srv, []call{
				allowed(http.MethodGet, s.manifestPath("v1"), nil, nil, http.StatusOK),
				allowed(http.MethodPut, s.manifestPath("v2"), s.b.Manifest.Data, s.contentType, http.StatusCreated),
				allowed(http.MethodGet, "/graft/v1/"+s.r.name, nil, nil, http.StatusOK),
			})
			s.pushedB("v2")
			r := srv.Want(t, http.StatusOK, http.MethodGet, "/graft/v1/_repositories?last=locks/repo-lisa&n=1", nil)
			var page struct {
				Repositories []repoInfo `json:"repositories"`
			}
			apitest.Decode(t, "_repositories", r.Body, &page)
			if len(page.Repositories) != 1 || page.Repositories[0].Name != s.r.name || page.Repositories[0].ChangeableAttributes != s.r.attrs {
				t.Errorf("/_repositories lists %s as %s", s.r.name, r.Body)
			}
			s.patch(t, srv, "", `{"listEnabled": true}`, allEnabled)
			if cat := srv.Catalog(t); !slices.Contains(cat, s.r.name) {
				t.Errorf("catalog %q lacks %s once listed again", cat, s.r.name)
			}
		})

		t.Run("several at once", func(t *testing.T) {
			s := setupLocks(t, srv, "locks/repo-several")
			s.patch(t, srv, "", `{"deleteEnabled": false, "listEnabled": false}`, attrs{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: false})
			// An attribute left out keeps its value.
			s.patch(t, srv, "", `{"readEnabled": false}`, attrs{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: false, ListEnabled: false})
			s.patch(t, srv, "", `{}`, attrs{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: false, ListEnabled: false})
			s.patch(t, srv, "", `{"deleteEnabled": true, "writeEnabled": true, "readEnabled": true, "listEnabled": true}`, allEnabled)
			s.r.check("after the PATCHes")
		})
	})
}

func TestManifestLocks(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		t.Run("writeEnabled", func(t *testing.T) {
			s := setupLocks(t, srv, "locks/manifest-write")
			other := s.r.image(linuxAMD64, "layer of another image")
			s.r.tag(other, "other")
			// PATCH by tag locks the manifest the tag names.
			s.patch(t, srv, "v1", `{"writeEnabled": false}`, attrs{DeleteEnabled: true, WriteEnabled: false, ReadEnabled: true, ListEnabled: true})
			a := s.a.Digest.String()
			run(t, srv, []call{
				denied(http.MethodPut, s.manifestPath("v1"), s.r.content(other), s.contentType, "tag v1 names manifest "+a+", which is locked for writes"),
				denied(http.MethodPut, s.manifestPath(other.Digest.String())+"?tag=v1", s.r.content(other), s.contentType,
					"tag v1 names manifest "+a+", which is locked for writes"),
				denied(http.MethodDelete, s.manifestPath("v1"), nil, nil, "tag v1 names manifest "+a+", which is locked against deletes"),
				denied(http.MethodDelete, s.manifestPath(a), nil, nil, "manifest "+a+" is locked against deletes"),
				// It is still pulled, tagged anew and referred to; the others are not locked.
				allowed(http.MethodGet, s.manifestPath("v1"), nil, nil, http.StatusOK),
				allowed(http.MethodPut, s.manifestPath("v1.1"), s.r.content(s.a), s.contentType, http.StatusCreated),
				allowed(http.MethodPut, s.manifestPath("other"), s.r.content(s.a), s.contentType, http.StatusCreated),
				allowed(http.MethodDelete, s.manifestPath(other.Digest.String()), nil, nil, http.StatusAccepted),
			})
			s.r.tags["v1.1"], s.r.tags["other"] = s.a.Digest, s.a.Digest
			s.r.deleted(other)
			sig := s.r.artifact(typeSignature, s.a, "signature of a")
			wantReferrers(t, srv, s.r.name, s.a.Digest, ocispec.Descriptor{Digest: sig.Digest})
			s.r.check("while a is write-locked")

			s.patch(t, srv, a, `{"writeEnabled": true}`, allEnabled)
			wantDeleted(t, srv, s.r.name, s.a.desc(), []ocispec.Descriptor{sig.desc()}, nil)
		})

		t.Run("deleteEnabled", func(t *testing.T) {
			s := setupLocks(t, srv, "locks/manifest-delete")
			s.patch(t, srv, s.a.Digest.String(), `{"deleteEnabled": false}`, attrs{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true})
			a := s.a.Digest.String()
			run(t, srv, []call{
				denied(http.MethodDelete, s.manifestPath(a), nil, nil, "manifest "+a+" is locked against deletes"),
				// A tag delete takes what keeps the manifest: refused too.
				denied(http.MethodDelete, s.manifestPath("v1"), nil, nil, "tag v1 names manifest "+a+", which is locked against deletes"),
				// Pushes and tag moves go on.
				allowed(http.MethodPut, s.manifestPath("v1"), s.b.Manifest.Data, s.contentType, http.StatusCreated),
				allowed(http.MethodPut, s.manifestPath("v1"), s.r.content(s.a), s.contentType, http.StatusCreated),
			})
			s.pushedB("")
			s.r.check("after the refused deletes")
			s.patch(t, srv, a, `{"deleteEnabled": true}`, allEnabled)
			srv.Want(t, http.StatusAccepted, http.MethodDelete, s.manifestPath(a), nil)
		})

		t.Run("readEnabled", func(t *testing.T) {
			s := setupLocks(t, srv, "locks/manifest-read")
			b := s.r.image(linuxAMD64, "layer of b")
			s.r.tag(b, "v2")
			s.patch(t, srv, "v1", `{"readEnabled": false}`, attrs{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: false, ListEnabled: true})
			reads := "manifest " + s.a.Digest.String() + " is locked for reads"
			run(t, srv, []call{
				denied(http.MethodGet, s.manifestPath("v1"), nil, nil, reads),
				denied(http.MethodHead, s.manifestPath("v1"), nil, nil, reads),
				denied(http.MethodGet, s.manifestPath(s.a.Digest.String()), nil, nil, reads),
				denied(http.MethodHead, s.manifestPath(s.a.Digest.String()), nil, nil, reads),
				// The blob endpoint serves a manifest too: the lock holds there as well.
				denied(http.MethodGet, s.blobPath(s.a.Digest), nil, nil, reads),
				denied(http.MethodHead, s.blobPath(s.a.Digest), nil, nil, reads),
				denied(http.MethodGet, "/oras/artifacts/v1/"+s.r.name+"/manifests/"+s.a.Digest.String(), nil, nil, reads),
				// Others are pulled, its blobs too; it is described and listed.
				allowed(http.MethodGet, s.manifestPath("v2"), nil, nil, http.StatusOK),
				allowed(http.MethodGet, s.blobPath(s.layerOfA), nil, nil, http.StatusOK),
				allowed(http.MethodGet, "/graft/v1/"+s.r.name+"/_manifests/v1", nil, nil, http.StatusOK),
			})
			if tags := srv.Tags(t, s.r.name); !slices.Equal(tags, []string{"v1", "v2"}) {
				t.Errorf("tags %q, want [v1 v2]", tags)
			}
			s.patch(t, srv, "v1", `{"readEnabled": true}`, allEnabled)
			srv.Want(t, http.StatusOK, http.MethodGet, s.manifestPath("v1"), nil)
		})

		t.Run("listEnabled", func(t *testing.T) {
			s := setupLocks(t, srv, "locks/manifest-list")
			s.r.tag(s.a, "v1.1")
			b := s.r.image(linuxAMD64, "layer of b")
			s.r.tag(b, "v2")
			s.patch(t, srv, "v1.1", `{"listEnabled": false}`, attrs{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: true, ListEnabled: false})
			run(t, srv, []call{
				{name: "tags", method: http.MethodGet, target: "/v2/" + s.r.name + "/tags/list", status: http.StatusOK,
					answer: []byte(`{"name":"` + s.r.name + `","tags":["v2"]}`)},
				// A page of one of the one tag listed has no next.
				{name: "a page", method: http.MethodGet, target: "/v2/" + s.r.name + "/tags/list?n=1", status: http.StatusOK,
					answer: []byte(`{"name":"` + s.r.name + `","tags":["v2"]}`), headers: map[string]string{"Link": ""}},
				// Hidden tags still resolve.
				allowed(http.MethodGet, s.manifestPath("v1"), nil, nil, http.StatusOK),
				allowed(http.MethodGet, s.manifestPath("v1.1"), nil, nil, http.StatusOK),
			})
			s.r.check("while a is hidden") // the metadata API still shows a and its tags
			// A tag moved to a hidden manifest is hidden with it.
			s.r.tag(s.a, "v2")
			if tags := srv.Tags(t, s.r.name); len(tags) != 0 {
				t.Errorf("tags %q, want none", tags)
			}
			s.r.tag(b, "v2")
			s.patch(t, srv, s.a.Digest.String(), `{"listEnabled": true}`, allEnabled)
			if tags := srv.Tags(t, s.r.name); !slices.Equal(tags, []string{"v1", "v1.1", "v2"}) {
				t.Errorf("tags %q, want [v1 v1.1 v2]", tags)
			}
		})
	})
}

// Each lock that refuses a delete, and the attributes it leaves.
var deleteLocks = []struct {
	name   string
	repo   string // a suffix of repository names
	lock   string
	locked attrs
}{
	{"deleteEnabled", "delete", `{"deleteEnabled": false}`, attrs{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true}},
	{"writeEnabled", "write", `{"writeEnabled": false}`, attrs{DeleteEnabled: true, WriteEnabled: false, ReadEnabled: true, ListEnabled: true}},
}

// TestCascadeStopsAtLocks: a cascade never deletes a manifest whose delete is refused;
// it keeps it and what hangs under it, deletes the rest, and says what it kept.
func TestCascadeStopsAtLocks(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		for _, lock := range deleteLocks {
			t.Run("a referrer locked by "+lock.name, func(t *testing.T) {
				s := setupLocks(t, srv, "cascade/referrers-"+lock.repo)
				r := s.r
				sig := r.artifact(typeSignature, s.a, "signature of the image")
				sbom := r.artifact(typeSBOM, s.a, "sbom of the image")
				sbomSig := r.artifact(typeSignature, sbom, "signature of the sbom")
				s.patch(t, srv, sbom.Digest.String(), lock.lock, lock.locked)
				denied(http.MethodDelete, s.manifestPath(sbom.Digest.String()), nil, nil, "manifest "+sbom.Digest.String()+" is locked against deletes").check(t, srv)

				wantDeleted(t, srv, r.name, s.a.desc(), []ocispec.Descriptor{sig.desc()}, []ocispec.Descriptor{sbom.desc()})
				r.deleted(s.a, sig)
				r.check("after deleting the image")
				wantNoManifest(t, srv, r.name, "v1")
				// The kept sbom still names the deleted image as its subject.
				wantReferrers(t, srv, r.name, s.a.Digest, sbom.desc())
				wantReferrers(t, srv, r.name, sbom.Digest, sbomSig.desc())

				s.patch(t, srv, sbom.Digest.String(), `{"deleteEnabled": true, "writeEnabled": true}`, allEnabled)
				wantDeleted(t, srv, r.name, sbom.desc(), []ocispec.Descriptor{sbomSig.desc()}, nil)
			})

			t.Run("a child locked by "+lock.name, func(t *testing.T) {
				r := newMetaRepo(t, srv, "cascade/index-"+lock.repo)
				amd64 := r.image(linuxAMD64, "amd64 layer")
				arm64 := r.image(linuxARM64, "arm64 layer")
				idx := r.index(amd64, arm64)
				r.tag(idx, "multi")
				idxSig := r.artifact(typeSignature, idx, "signature of the index")
				childSig := r.artifact(typeSignature, amd64, "signature of the amd64 image")
				s := &lockSetup{r: r}
				s.patch(t, srv, amd64.Digest.String(), lock.lock, lock.locked)
				wantDeleted(t, srv, r.name, idx.desc(), []ocispec.Descriptor{arm64.desc(), idxSig.desc()}, []ocispec.Descriptor{amd64.desc()})
				r.deleted(idx, arm64, idxSig)
				r.check("after deleting the index")
				wantManifests(t, srv, r.name, true, amd64.desc(), childSig.desc())
			})
		}

		// However deep the graph reaches a locked manifest, it keeps itself and
		// what hangs under it.
		r := newMetaRepo(t, srv, "cascade/deep")
		img := r.image(linuxAMD64, "layer of the image")
		att := r.artifact(typeSBOM, img, "attestation")
		attSig := r.artifact(typeSignature, att, "signature of the attestation")
		attSigSig := r.artifact(typeSignature, attSig, "countersignature")
		other := r.artifact(typeSignature, img, "another signature")
		otherSig := r.artifact(typeSignature, other, "signature of the other signature")
		(&lockSetup{r: r}).patch(t, srv, attSig.Digest.String(), `{"deleteEnabled": false}`,
			attrs{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true})
		wantDeleted(t, srv, r.name, img.desc(), []ocispec.Descriptor{att.desc(), other.desc(), otherSig.desc()}, []ocispec.Descriptor{attSig.desc()})
		r.deleted(img, att, other, otherSig)
		r.check("after deleting the image")
		wantManifests(t, srv, r.name, true, attSigSig.desc())
		wantReferrers(t, srv, r.name, att.Digest, attSig.desc())
	})
}

// TestLockProtectsBlobs: a lock protects what it locks. A blob that a manifest locked
// against deletes names, or any manifest of a repository so locked, is not deleted
// through that repository (DENIED, naming the manifest), and garbage collection leaves
// it: the locked image still pulls whole. A blob no locked manifest names is deleted as
// before.
func TestLockProtectsBlobs(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		for _, lock := range deleteLocks {
			t.Run("a manifest locked by "+lock.name, func(t *testing.T) {
				s := setupLocks(t, srv, "blob-locks/manifest-"+lock.repo)
				a := s.a.Digest.String()
				s.patch(t, srv, a, lock.lock, lock.locked)
				config := srv.Want(t, http.StatusOK, http.MethodGet, s.manifestPath(a), nil)
				var m ocispec.Manifest
				apitest.Decode(t, "manifest", config.Body, &m)
				// The repository's other image shares no blob with a: its blobs go.
				unlocked := s.b.Layers[0].Desc.Digest
				run(t, srv, []call{
					denied(http.MethodDelete, s.blobPath(s.layerOfA), nil, nil,
						"blob "+s.layerOfA.String()+" is named by manifest "+a+", which is locked against deletes"),
					denied(http.MethodDelete, s.blobPath(m.Config.Digest), nil, nil,
						"blob "+m.Config.Digest.String()+" is named by manifest "+a+", which is locked against deletes"),
					allowed(http.MethodDelete, s.blobPath(s.extra.Desc.Digest), nil, nil, http.StatusAccepted),
					allowed(http.MethodDelete, s.blobPath(unlocked), nil, nil, http.StatusAccepted),
				})
				wantNoBlob(t, srv, s.r.name, unlocked)
				collect(t, srv)
				wantPulls(t, srv, s.r.name, a)

				// Unlocked, the blob is the repository's to delete again.
				s.patch(t, srv, a, `{"deleteEnabled": true, "writeEnabled": true}`, allEnabled)
				srv.Want(t, http.StatusAccepted, http.MethodDelete, s.blobPath(s.layerOfA), nil)
			})

			t.Run("a repository locked by "+lock.name, func(t *testing.T) {
				s := setupLocks(t, srv, "blob-locks/repo-"+lock.repo)
				untagged := s.r.image(linuxAMD64, "layer of an untagged image")
				s.patch(t, srv, "", lock.lock, lock.locked)
				run(t, srv, []call{
					denied(http.MethodDelete, s.blobPath(s.layerOfA), nil, nil, "repository "+s.r.name+" is locked against deletes"),
				})
				collect(t, srv)
				wantPulls(t, srv, s.r.name, s.a.Digest.String())
				wantPulls(t, srv, s.r.name, untagged.Digest.String())
			})
		}
	})
}

// collect runs a garbage collection with no grace period: whatever nothing keeps goes.
func collect(t *testing.T, srv *registrytest.Server) {
	t.Helper()
	if _, err := srv.Registry.GC(t.Context(), registry.GCOptions{}); err != nil {
		t.Fatalf("GC: %v", err)
	}
}

// wantPulls checks that manifest ref of repo pulls whole: the manifest and every blob
// it names, each matching its digest.
func wantPulls(t *testing.T, srv *registrytest.Server, repo, ref string) {
	t.Helper()
	r := srv.Want(t, http.StatusOK, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil)
	var m ocispec.Manifest
	apitest.Decode(t, "manifest "+ref, r.Body, &m)
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		b := srv.Want(t, http.StatusOK, http.MethodGet, "/v2/"+repo+"/blobs/"+d.Digest.String(), nil)
		if digest.FromBytes(b.Body) != d.Digest {
			t.Errorf("blob %s of %s@%s reads as %s", d.Digest, repo, ref, digest.FromBytes(b.Body))
		}
	}
}

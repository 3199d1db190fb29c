// Package metadata drives the manifest metadata API (/graft/v1/) and the locks it sets
// on a real `graft serve`, with raw HTTP requests so that every status, header and body
// the tests rely on is visible in the test itself.
//
// Most tests keep a model of what a repository should hold (its blobs, manifests and
// tags, built from the bytes the test pushed) and compare the server's metadata with
// the model after every change.
package metadata

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

const (
	cascadeDeletedHeader = "Graft-Cascade-Deleted"
	cascadeLockedHeader  = "Graft-Cascade-Locked"

	// artifact types of the artifacts the tests attach
	typeSignature = "application/vnd.example.signature.v1"
	typeSBOM      = "application/vnd.example.sbom.v1"
	// the config media type of an artifact that has no artifactType of its own
	typeSBOMConfig = "application/vnd.example.sbom.config.v1+json"
)

// client sends requests to one server on behalf of one test.
type client struct {
	t   *testing.T
	srv *graftest.Server
}

func start(t *testing.T, args ...string) *client {
	t.Helper()
	return &client{t: t, srv: graftest.Start(t, args...)}
}

// do sends a request; see apitest.Client.Do.
func (c *client) do(method, target string, body []byte, headers ...string) *apitest.Response {
	c.t.Helper()
	return c.srv.Do(c.t, method, target, body, headers...)
}

// want sends a request and fails the test unless it is answered with status.
func (c *client) want(status int, method, target string, body []byte, headers ...string) *apitest.Response {
	c.t.Helper()
	return c.srv.Want(c.t, status, method, target, body, headers...)
}

// denied sends a request that a lock must refuse.
func (c *client) denied(method, target string, body []byte, headers ...string) {
	c.t.Helper()
	apitest.CheckError(c.t, method+" "+target, c.do(method, target, body, headers...), http.StatusForbidden, "DENIED")
}

// The metadata API's answers.

type attributes struct {
	DeleteEnabled bool `json:"deleteEnabled"`
	WriteEnabled  bool `json:"writeEnabled"`
	ReadEnabled   bool `json:"readEnabled"`
	ListEnabled   bool `json:"listEnabled"`
}

var allEnabled = attributes{true, true, true, true}

type repositoryInfo struct {
	Name                 string     `json:"name"`
	ManifestCount        int64      `json:"manifestCount"`
	TagCount             int64      `json:"tagCount"`
	Size                 int64      `json:"size"`
	CreatedTime          time.Time  `json:"createdTime"`
	LastUpdateTime       time.Time  `json:"lastUpdateTime"`
	ChangeableAttributes attributes `json:"changeableAttributes"`
}

type platformInfo struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
}

type manifestInfo struct {
	Digest               digest.Digest `json:"digest"`
	MediaType            string        `json:"mediaType"`
	ConfigMediaType      string        `json:"configMediaType"`
	ArtifactType         string        `json:"artifactType"`
	Size                 int64         `json:"size"`
	TotalSize            int64         `json:"totalSize"`
	Platform             *platformInfo `json:"platform"`
	Tags                 []string      `json:"tags"`
	Subject              digest.Digest `json:"subject"`
	CreatedTime          time.Time     `json:"createdTime"`
	LastUpdateTime       time.Time     `json:"lastUpdateTime"`
	ChangeableAttributes attributes    `json:"changeableAttributes"`
}

// untimed is m without its times, which a model cannot predict.
func (m manifestInfo) untimed() manifestInfo {
	m.CreatedTime, m.LastUpdateTime = time.Time{}, time.Time{}
	return m
}

type manifestList struct {
	Repository string         `json:"repository"`
	Manifests  []manifestInfo `json:"manifests"`
}

func (c *client) repository(name string) repositoryInfo {
	c.t.Helper()
	var rp repositoryInfo
	apitest.Decode(c.t, "repository "+name, c.want(http.StatusOK, http.MethodGet, "/graft/v1/"+name, nil).Body, &rp)
	return rp
}

func (c *client) manifest(repo, ref string) manifestInfo {
	c.t.Helper()
	var m manifestInfo
	apitest.Decode(c.t, "manifest "+ref, c.want(http.StatusOK, http.MethodGet, "/graft/v1/"+repo+"/_manifests/"+ref, nil).Body, &m)
	return m
}

// manifests walks every page of the manifest listing of repo with query and returns
// the manifests in the order served, and the number of pages.
func (c *client) manifests(repo string, query url.Values) ([]manifestInfo, int) {
	c.t.Helper()
	target := "/graft/v1/" + repo + "/_manifests"
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var all []manifestInfo
	pages := 0
	for target != "" {
		if pages++; pages > 100 {
			c.t.Fatalf("more than 100 pages; the last link was %s", target)
		}
		r := c.want(http.StatusOK, http.MethodGet, target, nil)
		var page manifestList
		apitest.Decode(c.t, target, r.Body, &page)
		if page.Repository != repo {
			c.t.Errorf("GET %s: repository %q, want %q", target, page.Repository, repo)
		}
		if page.Manifests == nil {
			c.t.Errorf("GET %s: manifests is not a list: %v", target, r)
		}
		all = append(all, page.Manifests...)
		target = apitest.NextLink(c.t, r)
	}
	return all, pages
}

// repositories walks every page of the repository listing with page size n.
func (c *client) repositories(n int) []repositoryInfo {
	c.t.Helper()
	target := fmt.Sprintf("/graft/v1/_repositories?n=%d", n)
	var all []repositoryInfo
	for pages := 0; target != ""; pages++ {
		if pages > 100 {
			c.t.Fatalf("more than 100 pages; the last link was %s", target)
		}
		r := c.want(http.StatusOK, http.MethodGet, target, nil)
		var page struct {
			Repositories []repositoryInfo `json:"repositories"`
		}
		apitest.Decode(c.t, target, r.Body, &page)
		if len(page.Repositories) > n {
			c.t.Errorf("GET %s: %d repositories on a page of %d", target, len(page.Repositories), n)
		}
		all = append(all, page.Repositories...)
		target = apitest.NextLink(c.t, r)
	}
	return all
}

// pushed is a manifest a test pushed, with the metadata the registry should show.
type pushed struct {
	Digest          digest.Digest
	MediaType       string
	Body            []byte
	ConfigMediaType string
	ArtifactType    string
	Platform        *platformInfo
	Subject         digest.Digest
	// TotalSize is the manifest's size, its blobs' and its children's total sizes.
	TotalSize int64
}

func (m *pushed) Size() int64 { return int64(len(m.Body)) }

func (m *pushed) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size()}
}

// repo is a repository of the server, and the model of what it holds.
type repo struct {
	c         *client
	name      string
	blobs     map[digest.Digest]int64
	manifests map[digest.Digest]*pushed
	tags      map[string]digest.Digest
	// attrs are the attributes of the manifests that are not all enabled.
	attrs     map[digest.Digest]attributes
	repoAttrs attributes
}

func (c *client) repo(name string) *repo {
	return &repo{c: c, name: name, blobs: map[digest.Digest]int64{},
		manifests: map[digest.Digest]*pushed{}, tags: map[string]digest.Digest{},
		attrs: map[digest.Digest]attributes{}, repoAttrs: allEnabled}
}

// pushBlob pushes data in one request (POST ?digest=).
func (r *repo) pushBlob(data []byte) digest.Digest {
	r.c.t.Helper()
	d := r.c.srv.PushBlob(r.c.t, r.name, data)
	r.blobs[d] = int64(len(data))
	return d
}

func (r *repo) blob(mediaType string, data []byte) ocispec.Descriptor {
	r.c.t.Helper()
	return ocispec.Descriptor{MediaType: mediaType, Digest: r.pushBlob(data), Size: int64(len(data))}
}

// putManifest PUTs m as ref (its digest when ref is "") and records the tag.
func (r *repo) putManifest(m *pushed, ref string) {
	r.c.t.Helper()
	if ref == "" {
		ref = m.Digest.String()
	}
	resp := r.c.want(http.StatusCreated, http.MethodPut, "/v2/"+r.name+"/manifests/"+ref, m.Body, "Content-Type", m.MediaType)
	if got := resp.Header.Get("Docker-Content-Digest"); got != m.Digest.String() {
		r.c.t.Fatalf("PUT manifest %s: Docker-Content-Digest %s, want %s", ref, got, m.Digest)
	}
	r.manifests[m.Digest] = m
	if ref != m.Digest.String() {
		r.tags[ref] = m.Digest
	}
}

// image pushes an OCI image for platform with one layer per layer content, by digest.
func (r *repo) image(p ocispec.Platform, layers ...string) *pushed {
	r.c.t.Helper()
	m := r.build(p, layers...)
	r.putManifest(m, "")
	return m
}

// build pushes the blobs of an OCI image for platform, and returns the image's
// manifest unpushed.
func (r *repo) build(p ocispec.Platform, layers ...string) *pushed {
	r.c.t.Helper()
	var (
		descs   []ocispec.Descriptor
		diffIDs []digest.Digest
	)
	for _, l := range layers {
		d := r.blob(ocispec.MediaTypeImageLayerGzip, []byte(l))
		descs = append(descs, d)
		diffIDs = append(diffIDs, d.Digest)
	}
	config := r.blob(ocispec.MediaTypeImageConfig, apitest.JSON(r.c.t, ocispec.Image{
		Platform: p,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}))
	m := r.manifest(ocispec.Manifest{Config: config, Layers: descs})
	m.Platform = &platformInfo{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
	return m
}

// artifact pushes an OCI image manifest used as an artifact, as image-spec v1.1
// packs one: artifactType set, or left out with a config of its own media type.
func (r *repo) artifact(artifactType string, subject *pushed, payload string) *pushed {
	r.c.t.Helper()
	config := r.blob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	if artifactType == "" {
		config = r.blob(typeSBOMConfig, []byte(`{"format":"example"}`))
	}
	im := ocispec.Manifest{
		ArtifactType: artifactType,
		Config:       config,
		Layers:       []ocispec.Descriptor{r.blob("application/vnd.example.payload", []byte(payload))},
	}
	if subject != nil {
		d := subject.Descriptor()
		im.Subject = &d
	}
	m := r.manifest(im)
	r.putManifest(m, "")
	return m
}

// manifest completes im and computes the metadata the registry should show for it.
func (r *repo) manifest(im ocispec.Manifest) *pushed {
	r.c.t.Helper()
	im.Versioned = specs.Versioned{SchemaVersion: 2}
	im.MediaType = ocispec.MediaTypeImageManifest
	body := apitest.JSON(r.c.t, im)
	m := &pushed{
		Digest:          digest.FromBytes(body),
		MediaType:       im.MediaType,
		Body:            body,
		ConfigMediaType: im.Config.MediaType,
		ArtifactType:    im.ArtifactType,
		TotalSize:       int64(len(body)) + im.Config.Size,
	}
	if m.ArtifactType == "" {
		m.ArtifactType = im.Config.MediaType
	}
	if im.Subject != nil {
		m.Subject = im.Subject.Digest
	}
	for _, l := range im.Layers {
		m.TotalSize += l.Size
	}
	return m
}

// index pushes an OCI index of children, each with its platform, by digest.
func (r *repo) index(children ...*pushed) *pushed {
	r.c.t.Helper()
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{},
	}
	var total int64
	for _, ch := range children {
		d := ch.Descriptor()
		if p := ch.Platform; p != nil {
			d.Platform = &ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
		}
		idx.Manifests = append(idx.Manifests, d)
		total += ch.TotalSize
	}
	body := apitest.JSON(r.c.t, idx)
	m := &pushed{Digest: digest.FromBytes(body), MediaType: idx.MediaType, Body: body}
	m.TotalSize = m.Size() + total
	r.putManifest(m, "")
	return m
}

// tag points tag at m by PUTting m under it.
func (r *repo) tag(m *pushed, tag string) {
	r.c.t.Helper()
	r.putManifest(m, tag)
}

func (r *repo) deleteTag(tag string) {
	r.c.t.Helper()
	r.c.want(http.StatusAccepted, http.MethodDelete, "/v2/"+r.name+"/manifests/"+tag, nil)
	delete(r.tags, tag)
}

// cascade is the answer of a manifest delete.
type cascade struct {
	Deleted []digest.Digest `json:"deleted"`
	Locked  []digest.Digest `json:"locked"`
}

// deleteManifest deletes m by digest and checks that exactly deleted (m first, then
// the others in any order) went and that the cascade stopped at exactly locked.
func (r *repo) deleteManifest(m *pushed, deleted []*pushed, locked []*pushed) {
	r.c.t.Helper()
	t := r.c.t
	resp := r.c.want(http.StatusAccepted, http.MethodDelete, "/v2/"+r.name+"/manifests/"+m.Digest.String(), nil)
	if got, want := resp.Header.Get(cascadeDeletedHeader), fmt.Sprint(len(deleted)); got != want {
		t.Errorf("DELETE %s: %s %q, want %q", m.Digest, cascadeDeletedHeader, got, want)
	}
	if got, want := resp.Header.Get(cascadeLockedHeader), fmt.Sprint(len(locked)); got != want {
		t.Errorf("DELETE %s: %s %q, want %q", m.Digest, cascadeLockedHeader, got, want)
	}
	var body cascade
	apitest.Decode(t, "DELETE "+m.Digest.String(), resp.Body, &body)
	if len(body.Deleted) == 0 || body.Deleted[0] != m.Digest {
		t.Errorf("DELETE %s: deleted %v, want the named manifest first", m.Digest, body.Deleted)
	}
	if got, want := apitest.Sorted(body.Deleted...), digests(append([]*pushed{m}, deleted...)); !slices.Equal(got, want) {
		t.Errorf("DELETE %s: deleted %v, want %v", m.Digest, got, want)
	}
	if body.Locked == nil {
		t.Errorf("DELETE %s: locked is not a list: %v", m.Digest, resp)
	}
	if got, want := apitest.Sorted(body.Locked...), digests(locked); !slices.Equal(got, want) {
		t.Errorf("DELETE %s: locked %v, want %v", m.Digest, got, want)
	}
	for _, x := range append([]*pushed{m}, deleted...) {
		delete(r.manifests, x.Digest)
		delete(r.attrs, x.Digest)
		for tag, d := range r.tags {
			if d == x.Digest {
				delete(r.tags, tag)
			}
		}
	}
}

func (r *repo) deleteBlob(d digest.Digest) {
	r.c.t.Helper()
	r.c.want(http.StatusAccepted, http.MethodDelete, "/v2/"+r.name+"/blobs/"+d.String(), nil)
	delete(r.blobs, d)
}

// digests returns the sorted digests of ms.
func digests(ms []*pushed) []digest.Digest {
	ds := []digest.Digest{}
	for _, m := range ms {
		ds = append(ds, m.Digest)
	}
	slices.Sort(ds)
	return ds
}

// patchManifest PATCHes the attributes of m, named by ref (its digest when ref is
// ""), with body and checks that the answer describes m with attributes want.
func (r *repo) patchManifest(m *pushed, ref, body string, want attributes) {
	r.c.t.Helper()
	if ref == "" {
		ref = m.Digest.String()
	}
	resp := r.c.want(http.StatusOK, http.MethodPatch, "/graft/v1/"+r.name+"/_manifests/"+ref, []byte(body),
		"Content-Type", "application/json")
	var got manifestInfo
	apitest.Decode(r.c.t, "PATCH "+ref, resp.Body, &got)
	if want == allEnabled {
		delete(r.attrs, m.Digest)
	} else {
		r.attrs[m.Digest] = want
	}
	if w := r.want(m); !reflect.DeepEqual(got.untimed(), w) {
		r.c.t.Errorf("PATCH %s %s answered\n %+v\nwant\n %+v", ref, body, got.untimed(), w)
	}
}

// patchRepository PATCHes the attributes of the repository with body and checks
// that the answer has attributes want.
func (r *repo) patchRepository(body string, want attributes) {
	r.c.t.Helper()
	resp := r.c.want(http.StatusOK, http.MethodPatch, "/graft/v1/"+r.name, []byte(body), "Content-Type", "application/json")
	var got repositoryInfo
	apitest.Decode(r.c.t, "PATCH "+r.name, resp.Body, &got)
	r.repoAttrs = want
	mc, tc, size := r.wantRepository()
	if got.Name != r.name || got.ChangeableAttributes != want || got.ManifestCount != mc || got.TagCount != tc || got.Size != size {
		r.c.t.Errorf("PATCH %s %s answered %+v, want attributes %+v, %d manifests, %d tags, size %d",
			r.name, body, got, want, mc, tc, size)
	}
}

func (r *repo) attributes(m *pushed) attributes {
	if a, ok := r.attrs[m.Digest]; ok {
		return a
	}
	return allEnabled
}

// want returns the metadata the model says m has, without times.
func (r *repo) want(m *pushed) manifestInfo {
	tags := []string{}
	for tag, d := range r.tags {
		if d == m.Digest {
			tags = append(tags, tag)
		}
	}
	slices.Sort(tags)
	return manifestInfo{
		Digest: m.Digest, MediaType: m.MediaType, ConfigMediaType: m.ConfigMediaType,
		ArtifactType: m.ArtifactType, Size: m.Size(), TotalSize: m.TotalSize, Platform: m.Platform,
		Tags: tags, Subject: m.Subject, ChangeableAttributes: r.attributes(m),
	}
}

// wantList returns the model's manifests that keep says to, in digest order.
func (r *repo) wantList(keep func(m *pushed, tagged bool) bool) []manifestInfo {
	out := []manifestInfo{}
	for _, d := range slices.Sorted(maps.Keys(r.manifests)) {
		m := r.manifests[d]
		w := r.want(m)
		if keep == nil || keep(m, len(w.Tags) > 0) {
			out = append(out, w)
		}
	}
	return out
}

// wantRepository returns the counters the model says the repository has.
func (r *repo) wantRepository() (manifests, tags, size int64) {
	for _, s := range r.blobs {
		size += s
	}
	for _, m := range r.manifests {
		size += m.Size()
	}
	return int64(len(r.manifests)), int64(len(r.tags)), size
}

// check compares the server's metadata of the repository with the model: its
// counters, every manifest of the listing field by field, and each manifest as
// /_manifests/<digest> shows it. It returns the repository.
func (r *repo) check(what string) repositoryInfo {
	r.c.t.Helper()
	t := r.c.t
	rp := r.c.repository(r.name)
	mc, tc, size := r.wantRepository()
	if rp.Name != r.name || rp.ManifestCount != mc || rp.TagCount != tc || rp.Size != size {
		t.Errorf("%s: repository %s has name %q, %d manifests, %d tags, size %d; want %d manifests, %d tags, size %d",
			what, r.name, rp.Name, rp.ManifestCount, rp.TagCount, rp.Size, mc, tc, size)
	}
	if rp.ChangeableAttributes != r.repoAttrs {
		t.Errorf("%s: repository %s has attributes %+v, want %+v", what, r.name, rp.ChangeableAttributes, r.repoAttrs)
	}
	if rp.CreatedTime.IsZero() || rp.LastUpdateTime.Before(rp.CreatedTime) {
		t.Errorf("%s: repository created %v, last updated %v", what, rp.CreatedTime, rp.LastUpdateTime)
	}
	got, _ := r.c.manifests(r.name, nil)
	want := r.wantList(nil)
	if len(got) != len(want) {
		t.Errorf("%s: %d manifests listed, want %d:\n got %v\nwant %v", what, len(got), len(want), got, want)
	}
	for i := range min(len(got), len(want)) {
		if g := got[i].untimed(); !equalInfo(g, want[i]) {
			t.Errorf("%s: manifest %d is\n %+v\nwant\n %+v", what, i, g, want[i])
		}
		checkTimes(t, what, got[i])
		one := r.c.manifest(r.name, want[i].Digest.String())
		if !equalInfo(one, got[i]) {
			t.Errorf("%s: /_manifests/%s is\n %+v\nthe listing has\n %+v", what, want[i].Digest, one, got[i])
		}
	}
	return rp
}

func checkTimes(t *testing.T, what string, m manifestInfo) {
	t.Helper()
	if m.CreatedTime.IsZero() || m.LastUpdateTime.Before(m.CreatedTime) {
		t.Errorf("%s: manifest %s created %v, last updated %v", what, m.Digest, m.CreatedTime, m.LastUpdateTime)
	}
}

// equalInfo reports whether a and b are the same metadata, their times included.
func equalInfo(a, b manifestInfo) bool {
	if !a.CreatedTime.Equal(b.CreatedTime) || !a.LastUpdateTime.Equal(b.LastUpdateTime) {
		return false
	}
	return reflect.DeepEqual(a.untimed(), b.untimed())
}

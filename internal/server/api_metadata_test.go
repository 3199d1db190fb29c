package server_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/registrytest"
)

// The metadata API's answers, as the tests expect them: times are checked apart (see
// wantJSON) and stand here as "T".

type attrs struct {
	DeleteEnabled bool `json:"deleteEnabled"`
	WriteEnabled  bool `json:"writeEnabled"`
	ReadEnabled   bool `json:"readEnabled"`
	ListEnabled   bool `json:"listEnabled"`
}

var allEnabled = attrs{true, true, true, true}

type repoInfo struct {
	Name                 string `json:"name"`
	ManifestCount        int64  `json:"manifestCount"`
	TagCount             int64  `json:"tagCount"`
	Size                 int64  `json:"size"`
	CreatedTime          string `json:"createdTime"`
	LastUpdateTime       string `json:"lastUpdateTime"`
	ChangeableAttributes attrs  `json:"changeableAttributes"`
}

type platformInfo struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

type manifestInfo struct {
	Digest               digest.Digest    `json:"digest"`
	MediaType            string           `json:"mediaType"`
	ConfigMediaType      string           `json:"configMediaType,omitempty"`
	ArtifactType         string           `json:"artifactType,omitempty"`
	Size                 int64            `json:"size"`
	TotalSize            int64            `json:"totalSize"`
	Platform             *platformInfo    `json:"platform,omitempty"`
	Tags                 []string         `json:"tags"`
	Kind                 string           `json:"kind"`
	Subject              digest.Digest    `json:"subject,omitempty"`
	Edge                 string           `json:"edge,omitempty"`
	Artifacts            map[string]int64 `json:"artifacts"`
	Signed               bool             `json:"signed"`
	CreatedTime          string           `json:"createdTime"`
	LastUpdateTime       string           `json:"lastUpdateTime"`
	ChangeableAttributes attrs            `json:"changeableAttributes"`
}

func (m *manifestInfo) desc() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size}
}

// wantJSON reports an error unless the JSON got holds what want encodes, once the
// times of got are checked (valid, set, and not updated before created) and replaced
// by "T".
func wantJSON(t *testing.T, what string, got []byte, want any) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: %v: %s", what, err, got)
		return
	}
	checkTimes(t, what, g)
	if err := json.Unmarshal(apitest.JSON(t, want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, apitest.JSON(t, g), apitest.JSON(t, w))
	}
}

func checkTimes(t *testing.T, what string, v any) {
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			checkTimes(t, what, x)
		}
	case map[string]any:
		if c, ok := v["createdTime"].(string); ok {
			created, err1 := time.Parse(time.RFC3339Nano, c)
			updated, err2 := time.Parse(time.RFC3339Nano, v["lastUpdateTime"].(string))
			if err1 != nil || err2 != nil || created.IsZero() || updated.Before(created) {
				t.Errorf("%s: created %v, last updated %v", what, v["createdTime"], v["lastUpdateTime"])
			}
			v["createdTime"], v["lastUpdateTime"] = "T", "T"
		}
		for _, x := range v {
			checkTimes(t, what, x)
		}
	}
}

// metaRepo is a repository of a test and the model of what the metadata API says of
// it, built from what the test pushed.
type metaRepo struct {
	t         *testing.T
	srv       *registrytest.Server
	name      string
	blobs     map[digest.Digest]int64
	manifests map[digest.Digest]*manifestInfo
	tags      map[string]digest.Digest
	attrs     attrs
}

func newMetaRepo(t *testing.T, srv *registrytest.Server, name string) *metaRepo {
	return &metaRepo{t: t, srv: srv, name: name, blobs: map[digest.Digest]int64{},
		manifests: map[digest.Digest]*manifestInfo{}, tags: map[string]digest.Digest{}, attrs: allEnabled}
}

func (r *metaRepo) pushBlobs(blobs ...apitest.Blob) {
	r.t.Helper()
	for _, b := range blobs {
		r.srv.PushBlob(r.t, r.name, b.Data)
		r.blobs[b.Desc.Digest] = b.Desc.Size
	}
}

// pushManifest pushes m by digest and records it as want says (its digest, media type
// and size filled in).
func (r *metaRepo) pushManifest(m apitest.Blob, want manifestInfo) *manifestInfo {
	r.t.Helper()
	r.srv.PushManifest(r.t, r.name, "", m)
	return r.record(m, want)
}

// record records m, pushed, as want says (see pushManifest).
func (r *metaRepo) record(m apitest.Blob, want manifestInfo) *manifestInfo {
	want.Digest, want.MediaType, want.Size = m.Desc.Digest, m.Desc.MediaType, m.Desc.Size
	want.TotalSize += m.Desc.Size
	want.CreatedTime, want.LastUpdateTime, want.ChangeableAttributes = "T", "T", allEnabled
	r.manifests[want.Digest] = &want
	return &want
}

// image pushes an OCI image for p with a layer of each content.
func (r *metaRepo) image(p ocispec.Platform, layers ...string) *manifestInfo {
	r.t.Helper()
	im := apitest.NewImage(r.t, p, layers...)
	r.pushBlobs(im.Blobs()...)
	return r.pushManifest(im.Manifest, imageInfo(im, p))
}

// imageInfo is what the metadata API says of im, of platform p, but for what
// pushManifest fills in.
func imageInfo(im apitest.Image, p ocispec.Platform) manifestInfo {
	want := manifestInfo{ConfigMediaType: ocispec.MediaTypeImageConfig, ArtifactType: ocispec.MediaTypeImageConfig,
		Platform: &platformInfo{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}, Kind: "image"}
	for _, b := range im.Blobs() {
		want.TotalSize += b.Desc.Size
	}
	return want
}

// artifact pushes an image-spec v1.1 artifact of artifactType: with an empty config,
// or, with artifactType "", a config of its own media type.
func (r *metaRepo) artifact(artifactType string, subject *manifestInfo, payload string) *manifestInfo {
	r.t.Helper()
	config := apitest.NewBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	if artifactType == "" {
		config = apitest.NewBlob(typeSBOMConfig, []byte(`{"format":"example"}`))
	}
	layer := apitest.NewBlob("application/vnd.example.payload", []byte(payload))
	r.pushBlobs(config, layer)
	var sd *ocispec.Descriptor
	// The example types name no signature, attestation or SBOM format.
	want := manifestInfo{ConfigMediaType: config.Desc.MediaType, ArtifactType: artifactType,
		TotalSize: config.Desc.Size + layer.Desc.Size, Kind: "artifact"}
	if want.ArtifactType == "" {
		want.ArtifactType = config.Desc.MediaType
	}
	if subject != nil {
		sd = ptr(subject.desc())
		want.Subject, want.Edge = subject.Digest, "subject"
	}
	m := apitest.NewBlob(ocispec.MediaTypeImageManifest, apitest.ImageManifest(config.Desc, []ocispec.Descriptor{layer.Desc}, artifactType, sd))
	return r.pushManifest(m, want)
}

// index pushes an OCI index of children.
func (r *metaRepo) index(children ...*manifestInfo) *manifestInfo {
	r.t.Helper()
	var descs []ocispec.Descriptor
	want := manifestInfo{Kind: "index"}
	for _, c := range children {
		descs = append(descs, c.desc())
		want.TotalSize += c.TotalSize
	}
	return r.pushManifest(apitest.NewIndex(r.t, ocispec.MediaTypeImageIndex, descs, nil), want)
}

// tag PUTs m under tag.
func (r *metaRepo) tag(m *manifestInfo, tag string) {
	r.t.Helper()
	r.srv.PushManifest(r.t, r.name, tag, apitest.NewBlob(m.MediaType, r.content(m)))
	r.tags[tag] = m.Digest
}

// content is the bytes of m, as the registry serves them.
func (r *metaRepo) content(m *manifestInfo) []byte {
	r.t.Helper()
	return r.srv.Want(r.t, http.StatusOK, http.MethodGet, "/v2/"+r.name+"/manifests/"+m.Digest.String(), nil).Body
}

func (r *metaRepo) deleteTag(tag string) {
	r.t.Helper()
	r.srv.Want(r.t, http.StatusAccepted, http.MethodDelete, "/v2/"+r.name+"/manifests/"+tag, nil)
	delete(r.tags, tag)
}

// deleted forgets ms, deleted by a test.
func (r *metaRepo) deleted(ms ...*manifestInfo) {
	for _, m := range ms {
		delete(r.manifests, m.Digest)
		maps.DeleteFunc(r.tags, func(_ string, d digest.Digest) bool { return d == m.Digest })
	}
}

// want is what the model says of m.
func (r *metaRepo) want(m *manifestInfo) manifestInfo {
	w := *m
	w.Tags = []string{}
	for tag, d := range r.tags {
		if d == m.Digest {
			w.Tags = append(w.Tags, tag)
		}
	}
	slices.Sort(w.Tags)
	w.Artifacts = map[string]int64{}
	for _, a := range r.manifests {
		if a.Subject == m.Digest {
			w.Artifacts[a.Kind]++
		}
	}
	w.Signed = w.Artifacts["signature"] > 0
	return w
}

// wantList is what the model says of the manifests keep keeps, in digest order.
func (r *metaRepo) wantList(keep func(m manifestInfo) bool) []manifestInfo {
	out := []manifestInfo{}
	for _, d := range slices.Sorted(maps.Keys(r.manifests)) {
		if w := r.want(r.manifests[d]); keep == nil || keep(w) {
			out = append(out, w)
		}
	}
	return out
}

// wantRepo is what the model says of the repository.
func (r *metaRepo) wantRepo() repoInfo {
	rp := repoInfo{Name: r.name, ManifestCount: int64(len(r.manifests)), TagCount: int64(len(r.tags)),
		CreatedTime: "T", LastUpdateTime: "T", ChangeableAttributes: r.attrs}
	for _, s := range r.blobs {
		rp.Size += s
	}
	for _, m := range r.manifests {
		rp.Size += m.Size
	}
	return rp
}

// check compares what the metadata API says of the repository with the model: the
// repository, the listing of its manifests, and each manifest by digest.
func (r *metaRepo) check(what string) {
	r.t.Helper()
	got := r.srv.Want(r.t, http.StatusOK, http.MethodGet, "/graft/v1/"+r.name, nil)
	wantJSON(r.t, what+": repository", got.Body, r.wantRepo())
	got = r.srv.Want(r.t, http.StatusOK, http.MethodGet, "/graft/v1/"+r.name+"/_manifests", nil)
	wantJSON(r.t, what+": manifests", got.Body, manifestList{r.name, r.wantList(nil)})
	for _, m := range r.manifests {
		got := r.srv.Want(r.t, http.StatusOK, http.MethodGet, "/graft/v1/"+r.name+"/_manifests/"+m.Digest.String(), nil)
		wantJSON(r.t, what+": manifest "+m.Digest.String(), got.Body, r.want(m))
	}
}

type manifestList struct {
	Repository string         `json:"repository"`
	Manifests  []manifestInfo `json:"manifests"`
}

const typeSBOMConfig = "application/vnd.example.sbom.config.v1+json"

// metaFixture is a repository holding one of each kind of manifest the metadata API
// describes differently.
type metaFixture struct {
	r *metaRepo
	// image is tagged twice: v1 and latest.
	image *manifestInfo
	// untagged shares its first layer with image.
	untagged *manifestInfo
	// index, tagged multi, lists amd64 and armv7.
	index, amd64, armv7 *manifestInfo
	// signature has image as subject and an artifactType.
	signature *manifestInfo
	// sbom has neither subject nor artifactType: its artifact type is its config's.
	sbom *manifestInfo
	// indexSBOM has index as subject.
	indexSBOM *manifestInfo
}

func pushMetaFixture(t *testing.T, srv *registrytest.Server, name string) *metaFixture {
	t.Helper()
	r := newMetaRepo(t, srv, name)
	f := &metaFixture{r: r}
	f.image = r.image(linuxARM64, "first layer of the image", "second layer of the image, a little longer")
	r.tag(f.image, "v1")
	r.tag(f.image, "latest")
	f.untagged = r.image(linuxAMD64, "first layer of the image", "the untagged image's own layer")
	f.amd64 = r.image(linuxAMD64, "amd64 layer")
	f.armv7 = r.image(ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "arm v7 layer")
	f.index = r.index(f.amd64, f.armv7)
	r.tag(f.index, "multi")
	f.signature = r.artifact(typeSignature, f.image, "signature of the image")
	f.sbom = r.artifact("", nil, `{"packages":[]}`)
	f.indexSBOM = r.artifact(typeSBOM, f.index, "sbom of the index")
	return f
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		f := pushMetaFixture(t, srv, "meta/content")
		r := f.r
		r.check("after the pushes")

		// A few fields spelled out, so that a mistake the model shares with the
		// server still shows.
		img := r.want(f.image)
		if img.Platform == nil || *img.Platform != (platformInfo{"linux", "arm64", "v8"}) || !slices.Equal(img.Tags, []string{"latest", "v1"}) {
			t.Fatalf("the model's image: %+v", img)
		}
		if f.index.TotalSize != f.index.Size+f.amd64.TotalSize+f.armv7.TotalSize || f.sbom.ArtifactType != typeSBOMConfig {
			t.Fatalf("the model's index or sbom: %+v, %+v", f.index, f.sbom)
		}

		// By tag and by digest, a manifest has one description; HEAD has no body.
		for _, ref := range []string{"v1", "latest", f.image.Digest.String()} {
			got := srv.Want(t, http.StatusOK, http.MethodGet, "/graft/v1/"+r.name+"/_manifests/"+ref, nil)
			apitest.WantHeader(t, ref, got, "Content-Type", "application/json")
			wantJSON(t, "manifest "+ref, got.Body, img)
		}
		call{method: http.MethodHead, target: "/graft/v1/" + r.name + "/_manifests/v1", status: http.StatusOK, answer: []byte{}}.check(t, srv)
		call{method: http.MethodHead, target: "/graft/v1/" + r.name, status: http.StatusOK, answer: []byte{}}.check(t, srv)

		// The counters follow what changes.
		r.pushBlobs(apitest.NewBlob(ocispec.MediaTypeImageLayerGzip, []byte("first layer of the image"))) // again: no more room
		r.tag(f.image, "v1")                                                                              // a tag it has: no change
		r.tag(f.untagged, "latest")                                                                       // moves latest
		r.check("after moving latest")
		r.deleteTag("latest")
		srv.Want(t, http.StatusAccepted, http.MethodDelete, "/v2/"+r.name+"/manifests/"+f.untagged.Digest.String(), nil)
		r.deleted(f.untagged)
		srv.Want(t, http.StatusAccepted, http.MethodDelete, "/v2/"+r.name+"/blobs/"+digest.FromString("the untagged image's own layer").String(), nil)
		delete(r.blobs, digest.FromString("the untagged image's own layer"))
		r.check("after the deletes")
		srv.Want(t, http.StatusAccepted, http.MethodDelete, "/v2/"+r.name+"/manifests/"+f.index.Digest.String(), nil)
		r.deleted(f.index, f.indexSBOM, f.amd64, f.armv7)
		r.check("after deleting the index and, by cascade, its sbom and children")

		// Sizes count what was stored: a descriptor that claims another size is refused,
		// and counts nothing.
		claims := newMetaRepo(t, srv, "meta/claims")
		layer := apitest.NewBlob(ocispec.MediaTypeImageLayerGzip, []byte("a layer whose descriptor lies"))
		config := apitest.NewBlob(ocispec.MediaTypeImageConfig, apitest.JSON(t, ocispec.Image{Platform: linuxAMD64}))
		claims.pushBlobs(layer, config)
		lie := layer.Desc
		lie.Size += 1000
		srv.Want(t, http.StatusBadRequest, http.MethodPut, "/v2/"+claims.name+"/manifests/lie",
			apitest.ImageManifest(config.Desc, []ocispec.Descriptor{lie}, "", nil), "Content-Type", ocispec.MediaTypeImageManifest)
		m := claims.pushManifest(apitest.NewBlob(ocispec.MediaTypeImageManifest, apitest.ImageManifest(config.Desc, []ocispec.Descriptor{layer.Desc}, "", nil)),
			manifestInfo{ConfigMediaType: ocispec.MediaTypeImageConfig, ArtifactType: ocispec.MediaTypeImageConfig, Kind: "image",
				TotalSize: config.Desc.Size + layer.Desc.Size, Platform: &platformInfo{OS: "linux", Architecture: "amd64"}})
		liar := m.desc()
		liar.Size += 1000
		srv.Want(t, http.StatusBadRequest, http.MethodPut, "/v2/"+claims.name+"/manifests/liar",
			apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{liar}, nil).Data, "Content-Type", ocispec.MediaTypeImageIndex)
		claims.pushManifest(apitest.NewIndex(t, ocispec.MediaTypeImageIndex, []ocispec.Descriptor{m.desc()}, nil), manifestInfo{TotalSize: m.TotalSize, Kind: "index"})
		claims.check("after the pushes")
	})
}

func TestMetadataFilters(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		f := pushMetaFixture(t, srv, "meta/filters")
		r := f.r
		path := "/graft/v1/" + r.name + "/_manifests"
		isImage := func(m manifestInfo) bool { return m.ArtifactType == ocispec.MediaTypeImageConfig }
		tagged := func(m manifestInfo) bool { return len(m.Tags) > 0 }
		for _, tc := range []struct {
			name  string
			query url.Values
			keep  func(m manifestInfo) bool
		}{
			{"everything", url.Values{}, nil},
			{"tagged", url.Values{"tagged": {"true"}}, tagged},
			{"untagged", url.Values{"tagged": {"false"}}, func(m manifestInfo) bool { return !tagged(m) }},
			{"with subject", url.Values{"hasSubject": {"true"}}, func(m manifestInfo) bool { return m.Subject != "" }},
			{"without subject", url.Values{"hasSubject": {"false"}}, func(m manifestInfo) bool { return m.Subject == "" }},
			{"images", url.Values{"artifactType": {ocispec.MediaTypeImageConfig}}, isImage},
			{"signatures", url.Values{"artifactType": {typeSignature}}, func(m manifestInfo) bool { return m.ArtifactType == typeSignature }},
			{"a config media type", url.Values{"artifactType": {typeSBOMConfig}}, func(m manifestInfo) bool { return m.Digest == f.sbom.Digest }},
			{"an unknown type", url.Values{"artifactType": {"application/vnd.example.none"}}, func(manifestInfo) bool { return false }},
			{"untagged without subject", url.Values{"tagged": {"false"}, "hasSubject": {"false"}},
				func(m manifestInfo) bool { return !tagged(m) && m.Subject == "" }},
			{"tagged images", url.Values{"tagged": {"true"}, "artifactType": {ocispec.MediaTypeImageConfig}},
				func(m manifestInfo) bool { return tagged(m) && isImage(m) }},
			{"untagged images", url.Values{"tagged": {"false"}, "artifactType": {ocispec.MediaTypeImageConfig}},
				func(m manifestInfo) bool { return !tagged(m) && isImage(m) }},
			{"SBOMs with subject", url.Values{"hasSubject": {"true"}, "artifactType": {typeSBOM}},
				func(m manifestInfo) bool { return m.Digest == f.indexSBOM.Digest }},
			{"tagged with subject", url.Values{"tagged": {"true"}, "hasSubject": {"true"}}, func(manifestInfo) bool { return false }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				want := r.wantList(tc.keep)
				r := srv.Want(t, http.StatusOK, http.MethodGet, path+"?"+tc.query.Encode(), nil)
				apitest.WantHeader(t, tc.name, r, "Link", "")
				wantJSON(t, tc.name, r.Body, manifestList{f.r.name, want})
				// In pages of 2, whose Links keep the filters.
				q := maps.Clone(tc.query)
				q.Set("n", "2")
				target := path + "?" + q.Encode()
				for i := 0; ; i += 2 {
					page := want[i:min(i+2, len(want))]
					link := ""
					if i+2 < len(want) {
						q.Set("last", page[len(page)-1].Digest.String())
						link = nextPage(path, q)
					}
					r := srv.Want(t, http.StatusOK, http.MethodGet, target, nil)
					apitest.WantHeader(t, "page", r, "Link", link)
					wantJSON(t, "page", r.Body, manifestList{f.r.name, page})
					if link == "" || t.Failed() {
						break
					}
					target = apitest.NextLink(t, r)
				}
			})
		}

		// last starts after a digest, whether or not it is in the repository; n=0
		// answers an empty list.
		all := r.wantList(nil)
		zero, top := "sha256:"+strings.Repeat("0", 64), "sha256:"+strings.Repeat("f", 64)
		for _, tc := range []struct {
			query string
			want  []manifestInfo
		}{
			{"last=" + all[0].Digest.String(), all[1:]},
			{"last=" + all[len(all)-1].Digest.String(), []manifestInfo{}},
			{"last=" + zero, all},
			{"last=" + top, []manifestInfo{}},
			{"n=0", []manifestInfo{}},
			{"n=0&tagged=true", []manifestInfo{}},
			{"n=99999999999999999999", all},
		} {
			got := srv.Want(t, http.StatusOK, http.MethodGet, path+"?"+tc.query, nil)
			apitest.WantHeader(t, tc.query, got, "Link", "")
			wantJSON(t, tc.query, got.Body, manifestList{r.name, tc.want})
		}
	})
}

func TestMetadataRepositories(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		var repos []*metaRepo
		for i, name := range []string{"list/c", "list/a", "list/e/deep", "list/b", "list/d"} {
			r := newMetaRepo(t, srv, name)
			for j := range i + 1 {
				r.tag(r.image(linuxAMD64, name, strconv.Itoa(j)), "t"+strconv.Itoa(j))
			}
			repos = append(repos, r)
		}
		// A repository of blobs and no manifest is a repository all the same.
		blobs := newMetaRepo(t, srv, "list/blobs-only")
		blobs.pushBlobs(apitest.NewBlob(octets, []byte("a blob")), apitest.NewBlob(octets, []byte("another blob")))
		repos = append(repos, blobs)
		slices.SortFunc(repos, func(a, b *metaRepo) int { return strings.Compare(a.name, b.name) })
		want := func(rs []*metaRepo) any {
			out := struct {
				Repositories []repoInfo `json:"repositories"`
			}{[]repoInfo{}}
			for _, r := range rs {
				out.Repositories = append(out.Repositories, r.wantRepo())
			}
			return out
		}
		const path = "/graft/v1/_repositories"
		got := srv.Want(t, http.StatusOK, http.MethodGet, path, nil)
		apitest.WantHeader(t, "GET", got, "Content-Type", "application/json")
		wantJSON(t, "GET", got.Body, want(repos))
		for _, r := range repos {
			r.check("listed")
		}
		target := path + "?n=2"
		for i := 0; ; i += 2 {
			page := repos[i:min(i+2, len(repos))]
			link := ""
			if i+2 < len(repos) {
				link = nextPage(path, url.Values{"n": {"2"}, "last": {page[len(page)-1].name}})
			}
			r := srv.Want(t, http.StatusOK, http.MethodGet, target, nil)
			apitest.WantHeader(t, "page", r, "Link", link)
			wantJSON(t, "page", r.Body, want(page))
			if link == "" || t.Failed() {
				break
			}
			target = apitest.NextLink(t, r)
		}
		run(t, srv, []call{
			{name: "n=0", method: http.MethodGet, target: path + "?n=0", status: http.StatusOK,
				answer: []byte(`{"repositories":[]}`), headers: map[string]string{"Link": ""}},
			{name: "a huge n", method: http.MethodGet, target: path + "?n=99999999999999999999", status: http.StatusOK,
				headers: map[string]string{"Link": ""}},
			{name: "after the last", method: http.MethodGet, target: path + "?last=list/e/deep", status: http.StatusOK,
				answer: []byte(`{"repositories":[]}`)},
		})
		for _, n := range badNumbers[:len(badNumbers)-1] {
			call{name: "n=" + n, method: http.MethodGet, target: path + "?n=" + n, status: http.StatusBadRequest,
				code: "PAGINATION_NUMBER_INVALID"}.check(t, srv)
		}
	})
}

// TestMetadataBadRequests asks the metadata API what it does not have, or in ways it
// does not take.
func TestMetadataBadRequests(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		r := newMetaRepo(t, srv, "meta/bad")
		img := r.image(linuxAMD64, "a layer")
		r.tag(img, "v1")
		const (
			base    = "/graft/v1/meta/bad"
			unknown = "/graft/v1/meta/unknown"
			invalid = "/graft/v1/Meta/Bad"
			patch   = `{"writeEnabled": false}`
		)
		absent := digest.FromString("never pushed").String()
		var calls []call
		for _, c := range []struct {
			name, method, target, body string
			status                     int
			code, message              string
		}{
			{"unknown repository", "GET", unknown, "", 404, "NAME_UNKNOWN", "repository meta/unknown is not known"},
			{"unknown repository, HEAD", "HEAD", unknown, "", 404, "NAME_UNKNOWN", ""},
			{"unknown repository, PATCH", "PATCH", unknown, patch, 404, "NAME_UNKNOWN", "repository meta/unknown is not known"},
			{"unknown repository, manifests", "GET", unknown + "/_manifests", "", 404, "NAME_UNKNOWN", ""},
			{"unknown repository, filtered", "GET", unknown + "/_manifests?tagged=true&n=5", "", 404, "NAME_UNKNOWN", ""},
			{"unknown repository, a manifest by tag", "GET", unknown + "/_manifests/v1", "", 404, "NAME_UNKNOWN", ""},
			{"unknown repository, a manifest by digest", "GET", unknown + "/_manifests/" + absent, "", 404, "NAME_UNKNOWN", ""},
			{"unknown repository, PATCH a manifest", "PATCH", unknown + "/_manifests/" + absent, patch, 404, "NAME_UNKNOWN", ""},

			{"invalid name", "GET", invalid, "", 400, "NAME_INVALID", "invalid repository name"},
			{"invalid name, trailing slash", "GET", base + "/", "", 400, "NAME_INVALID", ""},
			{"invalid name, PATCH", "PATCH", invalid, patch, 400, "NAME_INVALID", ""},
			{"invalid name, manifests", "GET", invalid + "/_manifests", "", 400, "NAME_INVALID", ""},
			{"invalid name, a manifest", "GET", invalid + "/_manifests/v1", "", 400, "NAME_INVALID", ""},
			{"invalid name, PATCH a manifest", "PATCH", invalid + "/_manifests/v1", patch, 400, "NAME_INVALID", ""},

			{"short digest", "GET", base + "/_manifests/sha256:abc", "", 400, "DIGEST_INVALID", `invalid digest "sha256:abc"`},
			{"unknown algorithm", "GET", base + "/_manifests/md5:d41d8cd98f00b204e9800998ecf8427e", "", 400, "DIGEST_INVALID", ""},
			{"upper-case hex", "GET", base + "/_manifests/" + strings.ToUpper(absent), "", 400, "DIGEST_INVALID", ""},
			{"short digest, PATCH", "PATCH", base + "/_manifests/sha256:abc", patch, 400, "DIGEST_INVALID", ""},
			{"short digest in last", "GET", base + "/_manifests?last=sha256:abc", "", 400, "DIGEST_INVALID", ""},
			{"a tag in last", "GET", base + "/_manifests?last=v1", "", 400, "DIGEST_INVALID", `invalid digest "v1"`},

			{"absent digest", "GET", base + "/_manifests/" + absent, "", 404, "MANIFEST_UNKNOWN", "manifest " + absent + " is not in the repository"},
			{"absent digest, HEAD", "HEAD", base + "/_manifests/" + absent, "", 404, "MANIFEST_UNKNOWN", ""},
			{"absent tag", "GET", base + "/_manifests/v2", "", 404, "MANIFEST_UNKNOWN", "manifest v2 is not in the repository"},
			{"invalid tag", "GET", base + "/_manifests/-v1", "", 404, "MANIFEST_UNKNOWN", ""},
			{"absent digest, PATCH", "PATCH", base + "/_manifests/" + absent, patch, 404, "MANIFEST_UNKNOWN", ""},
			{"absent tag, PATCH", "PATCH", base + "/_manifests/v2", patch, 404, "MANIFEST_UNKNOWN", ""},

			{"negative n", "GET", base + "/_manifests?n=-1", "", 400, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer"},
			{"n a fraction", "GET", base + "/_manifests?n=1.5", "", 400, "PAGINATION_NUMBER_INVALID", ""},
			{"tagged=maybe", "GET", base + "/_manifests?tagged=maybe", "", 400, "UNSUPPORTED", "tagged must be true or false"},
			{"hasSubject=2", "GET", base + "/_manifests?hasSubject=2", "", 400, "UNSUPPORTED", "hasSubject must be true or false"},
			{"hasSubject=yes with a good tagged", "GET", base + "/_manifests?tagged=true&hasSubject=yes", "", 400, "UNSUPPORTED",
				"hasSubject must be true or false"},
		} {
			calls = append(calls, call{name: c.name, method: c.method, target: c.target, body: []byte(c.body),
				header: []string{"Content-Type", "application/json"}, status: c.status, code: c.code, message: c.message})
		}
		run(t, srv, calls)

		// A refused PATCH changes nothing, not even the attributes it named before
		// the fault.
		const bad = "the body must be a JSON object of deleteEnabled, writeEnabled, readEnabled and listEnabled booleans"
		long := strings.Repeat("x", 100)
		for _, tc := range []struct{ body, message string }{
			{``, bad},
			{`{`, bad},
			{`not json`, bad},
			{`[{"writeEnabled": false}]`, bad},
			{`"writeEnabled"`, bad},
			{`null`, bad},
			{`{"writeEnabled": false, "bogus": true}`, `unknown attribute "bogus"`},
			{`{"WriteEnabled": false}`, `unknown attribute "WriteEnabled"`},
			{`{"` + long + `": false}`, `unknown attribute "` + long[:64] + `…"`},
			{`{"writeEnabled": "false"}`, "writeEnabled must be true or false"},
			{`{"writeEnabled": 0}`, "writeEnabled must be true or false"},
			{`{"writeEnabled": null}`, "writeEnabled must be true or false"},
			{`{"readEnabled": false, "deleteEnabled": "no"}`, "deleteEnabled must be true or false"},
			{`{"listEnabled": false} {"readEnabled": false}`, "trailing data after the JSON object"},
			{`{"writeEnabled": false}]`, "trailing data after the JSON object"},
		} {
			for _, path := range []string{base, base + "/_manifests/v1", base + "/_manifests/" + img.Digest.String()} {
				call{name: "PATCH " + path + " " + tc.body, method: http.MethodPatch, target: path, body: []byte(tc.body),
					status: http.StatusBadRequest, code: "UNSUPPORTED", message: tc.message}.check(t, srv)
			}
		}
		r.check("after the refused requests")
	})
}

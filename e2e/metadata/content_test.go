package metadata

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
)

// fixture is a repository holding one of each kind of manifest the metadata API
// describes differently.
type fixture struct {
	r *repo
	// image is tagged twice: v1 and latest.
	image *pushed
	// untagged shares its first layer with image.
	untagged *pushed
	// index, tagged multi, lists amd64 and armv7.
	index, amd64, armv7 *pushed
	// signature has image as subject and an artifactType.
	signature *pushed
	// sbom has neither subject nor artifactType: its artifact type is its config's
	// media type.
	sbom *pushed
	// indexSBOM has index as subject.
	indexSBOM *pushed
}

func pushFixture(c *client, name string) *fixture {
	c.t.Helper()
	r := c.repo(name)
	f := &fixture{r: r}
	f.image = r.image(ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
		"first layer of the image", "second layer of the image, a little longer")
	r.tag(f.image, "v1")
	r.tag(f.image, "latest")
	f.untagged = r.image(ocispec.Platform{OS: "linux", Architecture: "amd64"},
		"first layer of the image", "the untagged image's own layer")
	f.amd64 = r.image(ocispec.Platform{OS: "linux", Architecture: "amd64"}, "amd64 layer")
	f.armv7 = r.image(ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "arm v7 layer")
	f.index = r.index(f.amd64, f.armv7)
	r.tag(f.index, "multi")
	f.signature = r.artifact(typeSignature, f.image, "signature of the image")
	f.sbom = r.artifact("", nil, `{"packages":[]}`)
	f.indexSBOM = r.artifact(typeSBOM, f.index, "sbom of the index")
	return f
}

func TestManifestMetadata(t *testing.T) {
	t.Parallel()
	c := start(t)
	f := pushFixture(c, "meta/content")
	r := f.r

	// The model states every field; a few are spelled out here as well, so that a
	// mistake shared by the model and the server still shows.
	img := c.manifest(r.name, f.image.Digest.String())
	if want := []string{"latest", "v1"}; !slices.Equal(img.Tags, want) {
		t.Errorf("image tags %q, want %q", img.Tags, want)
	}
	if want := (platformInfo{"linux", "arm64", "v8"}); img.Platform == nil || *img.Platform != want {
		t.Errorf("image platform %+v, want %+v", img.Platform, want)
	}
	if img.MediaType != ocispec.MediaTypeImageManifest || img.ConfigMediaType != ocispec.MediaTypeImageConfig ||
		img.ArtifactType != ocispec.MediaTypeImageConfig || img.Subject != "" {
		t.Errorf("image: media type %q, config media type %q, artifact type %q, subject %q",
			img.MediaType, img.ConfigMediaType, img.ArtifactType, img.Subject)
	}
	if img.Size != int64(len(f.image.Body)) {
		t.Errorf("image size %d, %d bytes were pushed", img.Size, len(f.image.Body))
	}
	if img.ChangeableAttributes != allEnabled {
		t.Errorf("image attributes %+v, want all enabled", img.ChangeableAttributes)
	}
	idx := c.manifest(r.name, "multi")
	if idx.Digest != f.index.Digest {
		t.Fatalf("multi is %s, want %s", idx.Digest, f.index.Digest)
	}
	if want := f.index.Size() + f.amd64.TotalSize + f.armv7.TotalSize; idx.TotalSize != want {
		t.Errorf("index total size %d, want %d (its size and its children's total sizes)", idx.TotalSize, want)
	}
	if idx.Platform != nil || idx.ConfigMediaType != "" || idx.ArtifactType != "" {
		t.Errorf("index: platform %+v, config media type %q, artifact type %q; want none",
			idx.Platform, idx.ConfigMediaType, idx.ArtifactType)
	}
	if arm := c.manifest(r.name, f.armv7.Digest.String()); arm.Platform == nil || *arm.Platform != (platformInfo{"linux", "arm", "v7"}) {
		t.Errorf("arm v7 child platform %+v", arm.Platform)
	}
	sig := c.manifest(r.name, f.signature.Digest.String())
	if sig.ArtifactType != typeSignature || sig.ConfigMediaType != ocispec.MediaTypeEmptyJSON ||
		sig.Subject != f.image.Digest || sig.Platform != nil || len(sig.Tags) != 0 {
		t.Errorf("signature: artifact type %q, config media type %q, subject %q, platform %+v, tags %q",
			sig.ArtifactType, sig.ConfigMediaType, sig.Subject, sig.Platform, sig.Tags)
	}
	if sbom := c.manifest(r.name, f.sbom.Digest.String()); sbom.ArtifactType != typeSBOMConfig || sbom.Subject != "" {
		t.Errorf("sbom without artifactType: artifact type %q, subject %q; want %q and none",
			sbom.ArtifactType, sbom.Subject, typeSBOMConfig)
	}

	rp := r.check("after the pushes")
	if rp.ChangeableAttributes != allEnabled {
		t.Errorf("repository attributes %+v, want all enabled", rp.ChangeableAttributes)
	}
	var listed *repositoryInfo
	for _, x := range c.repositories(10) {
		if x.Name == r.name {
			listed = &x
		}
	}
	if listed == nil {
		t.Fatalf("%s is not in /graft/v1/_repositories", r.name)
	}
	if *listed != rp {
		t.Errorf("/_repositories has %+v, /graft/v1/%s has %+v", *listed, r.name, rp)
	}

	// By tag and by digest, a manifest has one description.
	if byTag := c.manifest(r.name, "v1"); !equalInfo(byTag, img) {
		t.Errorf("/_manifests/v1 is %+v, by digest %+v", byTag, img)
	}
	if h := c.want(http.StatusOK, http.MethodHead, "/graft/v1/"+r.name+"/_manifests/v1", nil); len(h.Body) != 0 {
		t.Errorf("HEAD /_manifests/v1 has a body: %s", h.Body)
	}
}

func TestRepositoryCounters(t *testing.T) {
	t.Parallel()
	c := start(t)
	f := pushFixture(c, "meta/counters")
	r := f.r
	before := r.check("after the pushes")

	// The same blob again takes no more room.
	r.pushBlob([]byte("first layer of the image"))
	r.check("after pushing a blob again")

	// The same manifest under a tag it has already changes nothing.
	r.tag(f.image, "v1")
	r.check("after pushing a manifest under its own tag")

	r.tag(f.untagged, "latest") // moves latest from image
	after := r.check("after moving latest")
	if after.LastUpdateTime.Before(before.LastUpdateTime) || !after.CreatedTime.Equal(before.CreatedTime) {
		t.Errorf("repository times went from created %v, updated %v to created %v, updated %v",
			before.CreatedTime, before.LastUpdateTime, after.CreatedTime, after.LastUpdateTime)
	}
	if m := c.manifest(r.name, f.untagged.Digest.String()); m.LastUpdateTime.Before(m.CreatedTime) {
		t.Errorf("untagged: created %v, updated %v", m.CreatedTime, m.LastUpdateTime)
	}

	r.tag(f.untagged, "second")
	r.check("after adding a tag")
	r.deleteTag("latest")
	r.check("after deleting latest")
	r.deleteTag("second")
	r.check("after deleting second")

	r.deleteManifest(f.untagged, nil, nil)
	r.check("after deleting the untagged image")

	r.deleteBlob(digest.FromString("the untagged image's own layer"))
	r.check("after deleting a blob")

	r.deleteManifest(f.image, []*pushed{f.signature}, nil)
	r.check("after deleting the image and, by cascade, its signature")

	r.deleteManifest(f.index, []*pushed{f.indexSBOM, f.amd64, f.armv7}, nil)
	rp := r.check("after deleting the index and, by cascade, its sbom and children")
	if rp.ManifestCount != 1 || rp.TagCount != 0 {
		t.Errorf("%d manifests and %d tags left, want the sbom alone", rp.ManifestCount, rp.TagCount)
	}
}

func TestRepositoryListing(t *testing.T) {
	t.Parallel()
	c := start(t)
	names := []string{"list/c", "list/a", "list/e/deep", "list/b", "list/d"}
	for i, name := range names {
		r := c.repo(name)
		for j := range i + 1 {
			r.tag(r.image(ocispec.Platform{OS: "linux", Architecture: "amd64"}, name, fmt.Sprint(j)), fmt.Sprint("t", j))
		}
		r.check("after the pushes")
	}
	slices.Sort(names)

	all := c.repositories(2)
	var got []string
	for _, rp := range all {
		got = append(got, rp.Name)
		if one := c.repository(rp.Name); one != rp {
			t.Errorf("the listing has %+v, /graft/v1/%s has %+v", rp, rp.Name, one)
		}
	}
	if !slices.Equal(got, names) {
		t.Errorf("walking pages of 2 listed %q, want %q", got, names)
	}

	// A repository that holds blobs and no manifest is a repository all the same.
	blobs := c.repo("list/blobs-only")
	blobs.pushBlob([]byte("a blob"))
	blobs.pushBlob([]byte("another blob"))
	if rp := blobs.check("after pushing blobs only"); rp.ManifestCount != 0 || rp.Size != int64(len("a blob")+len("another blob")) {
		t.Errorf("a repository of two blobs: %+v", rp)
	}
	names = append(names, blobs.name)
	slices.Sort(names)
	if got := c.repositories(10000); len(got) != len(names) {
		t.Errorf("%d repositories listed, want %d", len(got), len(names))
	}
	if got := c.want(http.StatusOK, http.MethodGet, "/graft/v1/_repositories?n=99999999999999999999", nil); apitest.NextLink(t, got) != "" {
		t.Errorf("a huge n: Link %q, want everything on one page", got.Header.Get("Link"))
	}

	r := c.want(http.StatusOK, http.MethodGet, "/graft/v1/_repositories?n=0", nil)
	if r.Header.Get("Link") != "" || string(r.Body) != `{"repositories":[]}` {
		t.Errorf("n=0: Link %q, body %s; want no link and an empty list", r.Header.Get("Link"), r.Body)
	}
	r = c.want(http.StatusOK, http.MethodGet, "/graft/v1/_repositories?n=2&last=list/c", nil)
	var page struct {
		Repositories []repositoryInfo `json:"repositories"`
	}
	apitest.Decode(t, "page after list/c", r.Body, &page)
	if len(page.Repositories) != 2 || page.Repositories[0].Name != "list/d" || page.Repositories[1].Name != "list/e/deep" {
		t.Errorf("page after list/c: %v", r)
	}
	if r.Header.Get("Link") != "" {
		t.Errorf("the last page has a Link: %q", r.Header.Get("Link"))
	}
}

// A descriptor whose size is not its content's is refused, so that totals can count
// what descriptors say: an image whose layer claims 1,000 bytes more, and an index
// whose child does, are stored neither, and the repository's totals stay those of what
// it holds.
func TestClaimedSizesAreRefused(t *testing.T) {
	t.Parallel()
	c := start(t)
	r := c.repo("meta/claims")
	layer := r.blob(ocispec.MediaTypeImageLayerGzip, []byte("a layer whose descriptor lies"))
	config := r.blob(ocispec.MediaTypeImageConfig, apitest.JSON(t, ocispec.Image{Platform: linux,
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.Digest}}}))
	claimed := layer
	claimed.Size += 1000
	lying := r.manifest(ocispec.Manifest{Config: config, Layers: []ocispec.Descriptor{claimed}})
	resp := c.want(http.StatusBadRequest, http.MethodPut, "/v2/"+r.name+"/manifests/v1", lying.Body, "Content-Type", lying.MediaType)
	if resp.ErrorCode() != "MANIFEST_INVALID" || !strings.Contains(string(resp.Body), layer.Digest.String()) {
		t.Errorf("a layer of a claimed size: %s, want MANIFEST_INVALID naming %s", resp, layer.Digest)
	}

	img := r.manifest(ocispec.Manifest{Config: config, Layers: []ocispec.Descriptor{layer}})
	img.TotalSize = img.Size() + config.Size + layer.Size
	img.Platform = &platformInfo{OS: linux.OS, Architecture: linux.Architecture}
	r.putManifest(img, "v1")
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: img.MediaType, Digest: img.Digest, Size: img.Size() + 1000}}}
	body := apitest.JSON(t, idx)
	resp = c.want(http.StatusBadRequest, http.MethodPut, "/v2/"+r.name+"/manifests/multi", body, "Content-Type", idx.MediaType)
	if resp.ErrorCode() != "MANIFEST_INVALID" || !strings.Contains(string(resp.Body), img.Digest.String()) {
		t.Errorf("an index child of a claimed size: %s, want MANIFEST_INVALID naming %s", resp, img.Digest)
	}
	r.check("after the pushes")
}

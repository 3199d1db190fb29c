package apitest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/manifest"
)

// AcceptManifests is an Accept header naming every manifest type the registry serves.
var AcceptManifests = strings.Join([]string{
	ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
	manifest.MediaTypeDockerManifest, manifest.MediaTypeDockerManifestList,
	manifest.MediaTypeArtifact, manifest.MediaTypeORASArtifact,
}, ", ")

// Blob is content with its descriptor.
type Blob struct {
	Desc ocispec.Descriptor
	Data []byte
}

// NewBlob is data as a blob of mediaType.
func NewBlob(mediaType string, data []byte) Blob {
	return Blob{Desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}, Data: data}
}

// ManifestBlob is v encoded as a manifest of mediaType.
func ManifestBlob(t testing.TB, mediaType string, v any) Blob {
	t.Helper()
	return NewBlob(mediaType, JSON(t, v))
}

// ImageManifest is the JSON of an OCI image manifest; artifactType and subject, when
// set, make it an artifact.
func ImageManifest(config ocispec.Descriptor, layers []ocispec.Descriptor, artifactType string, subject *ocispec.Descriptor) []byte {
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	b, err := json.Marshal(ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       config,
		Layers:       layers,
		Subject:      subject,
	})
	if err != nil {
		panic(err) // descriptors always encode
	}
	return b
}

// Image is an image manifest with its config and layers.
type Image struct {
	Manifest Blob
	Config   Blob
	Layers   []Blob
}

// Blobs are the image's config and layers.
func (im Image) Blobs() []Blob { return append([]Blob{im.Config}, im.Layers...) }

// Desc is the descriptor of the image's manifest.
func (im Image) Desc() ocispec.Descriptor { return im.Manifest.Desc }

// NewImage builds an OCI image for platform with a layer of each content given.
func NewImage(t testing.TB, platform ocispec.Platform, layers ...string) Image {
	t.Helper()
	return buildImage(t, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig,
		ocispec.MediaTypeImageLayerGzip, platform, nil, layers)
}

// NewDockerImage builds a Docker schema 2 image for platform.
func NewDockerImage(t testing.TB, platform ocispec.Platform, layers ...string) Image {
	t.Helper()
	return buildImage(t, manifest.MediaTypeDockerManifest, manifest.MediaTypeDockerConfig,
		"application/vnd.docker.image.rootfs.diff.tar.gzip", platform, nil, layers)
}

// NewReferrer builds an OCI image for platform whose subject is subject: an image
// that is also a referrer.
func NewReferrer(t testing.TB, subject ocispec.Descriptor, platform ocispec.Platform, layers ...string) Image {
	t.Helper()
	return buildImage(t, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig,
		ocispec.MediaTypeImageLayerGzip, platform, &subject, layers)
}

func buildImage(t testing.TB, manifestType, configType, layerType string, platform ocispec.Platform, subject *ocispec.Descriptor, layers []string) Image {
	t.Helper()
	var im Image
	diffIDs := []digest.Digest{}
	for _, l := range layers {
		b := NewBlob(layerType, []byte(l))
		im.Layers = append(im.Layers, b)
		diffIDs = append(diffIDs, b.Desc.Digest)
	}
	im.Config = NewBlob(configType, JSON(t, ocispec.Image{
		Platform: platform,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}))
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestType,
		Config:    im.Config.Desc,
		Layers:    []ocispec.Descriptor{},
		Subject:   subject,
	}
	for _, l := range im.Layers {
		m.Layers = append(m.Layers, l.Desc)
	}
	im.Manifest = ManifestBlob(t, manifestType, m)
	return im
}

// NewIndex builds an index of mediaType listing children (their platforms set in
// their descriptors), in digest order so that the index's digest is stable.
func NewIndex(t testing.TB, mediaType string, children []ocispec.Descriptor, annotations map[string]string) Blob {
	t.Helper()
	idx := ocispec.Index{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   mediaType,
		Manifests:   slices.Clone(children),
		Annotations: annotations,
	}
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	slices.SortFunc(idx.Manifests, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return ManifestBlob(t, mediaType, idx)
}

// WithPlatform is d with platform p.
func WithPlatform(d ocispec.Descriptor, p ocispec.Platform) ocispec.Descriptor {
	d.Platform = &p
	return d
}

// PushBlob stores data in repo with a monolithic upload (POST ?digest=) and returns its
// digest; headers go with the request.
func (c *Client) PushBlob(t testing.TB, repo string, data []byte, headers ...string) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	r := c.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data,
		append([]string{"Content-Type", "application/octet-stream"}, headers...)...)
	WantStatus(t, "monolithic upload of "+d.String()+" to "+repo, r, http.StatusCreated)
	if got := r.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Fatalf("monolithic upload to %s: Docker-Content-Digest %q, want %s", repo, got, d)
	}
	return d
}

// PushBlobs pushes each of blobs to repo.
func (c *Client) PushBlobs(t testing.TB, repo string, blobs []Blob, headers ...string) {
	t.Helper()
	for _, b := range blobs {
		c.PushBlob(t, repo, b.Data, headers...)
	}
}

// PutManifest PUTs body as manifest ref of repo with Content-Type mediaType and
// returns the answer, whatever it is.
func (c *Client) PutManifest(t testing.TB, repo, ref, mediaType string, body []byte, headers ...string) *Response {
	t.Helper()
	return c.Do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, body, append([]string{"Content-Type", mediaType}, headers...)...)
}

// PushManifest PUTs m as manifest ref of repo (by its digest when ref is "") and
// stops the test unless the registry took it.
func (c *Client) PushManifest(t testing.TB, repo, ref string, m Blob, headers ...string) {
	t.Helper()
	if ref == "" {
		ref = m.Desc.Digest.String()
	}
	r := c.PutManifest(t, repo, ref, m.Desc.MediaType, m.Data, headers...)
	WantStatus(t, "PUT manifest "+repo+":"+ref, r, http.StatusCreated)
	if got := r.Header.Get("Docker-Content-Digest"); got != m.Desc.Digest.String() {
		t.Fatalf("PUT manifest %s:%s: Docker-Content-Digest %q, want %s", repo, ref, got, m.Desc.Digest)
	}
}

// PushImage pushes im's blobs and manifest to repo, as ref (by digest when ref is "").
func (c *Client) PushImage(t testing.TB, repo, ref string, im Image, headers ...string) {
	t.Helper()
	c.PushBlobs(t, repo, im.Blobs(), headers...)
	c.PushManifest(t, repo, ref, im.Manifest, headers...)
}

// StartUpload opens an upload session in repo and returns its location.
func (c *Client) StartUpload(t testing.TB, repo string) string {
	t.Helper()
	r := c.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	WantStatus(t, "POST upload to "+repo, r, http.StatusAccepted)
	loc := r.Header.Get("Location")
	if loc == "" || r.Header.Get("Range") != "0-0" {
		t.Fatalf("POST upload to %s: no Location or not an empty Range: %v", repo, r)
	}
	return loc
}

// WithQuery returns target with key=value pairs added to its query.
func WithQuery(target string, kv ...string) string {
	u, err := url.Parse(target)
	if err != nil {
		panic(err) // a Location or a path a test wrote
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// UploadRange is the Range header of an upload holding size bytes, as the registry
// writes it: the inclusive range received, "0-0" when there is none (as distribution
// answers).
func UploadRange(size int64) string {
	return "0-" + strconv.FormatInt(max(size-1, 0), 10)
}

// Tags walks the tag list of repo in pages of 100; it returns nil when the repository
// is unknown.
func (c *Client) Tags(t testing.TB, repo string) []string {
	t.Helper()
	tags := []string{}
	target := "/v2/" + repo + "/tags/list?n=100"
	for target != "" {
		r := c.Do(t, http.MethodGet, target, nil)
		if r.Status == http.StatusNotFound && r.ErrorCode() == "NAME_UNKNOWN" {
			return nil
		}
		WantStatus(t, "GET "+target, r, http.StatusOK)
		var page struct {
			Tags []string `json:"tags"`
		}
		Decode(t, "GET "+target, r.Body, &page)
		tags = append(tags, page.Tags...)
		target = NextLink(t, r)
	}
	return tags
}

// Catalog walks the catalog in pages of 100.
func (c *Client) Catalog(t testing.TB) []string {
	t.Helper()
	repos := []string{}
	for _, r := range c.Pages(t, "/v2/_catalog?n=100", 1000) {
		var page struct {
			Repositories []string `json:"repositories"`
		}
		Decode(t, "GET "+r.URL, r.Body, &page)
		repos = append(repos, page.Repositories...)
	}
	return repos
}

// Referrers walks the referrers of subject in repo.
func (c *Client) Referrers(t testing.TB, repo string, subject digest.Digest) []ocispec.Descriptor {
	t.Helper()
	out := []ocispec.Descriptor{}
	for _, r := range c.Pages(t, "/v2/"+repo+"/referrers/"+subject.String(), 1000) {
		var idx ocispec.Index
		Decode(t, "GET "+r.URL, r.Body, &idx)
		out = append(out, idx.Manifests...)
	}
	return out
}

// Digests are the digests of descs, sorted.
func Digests(descs []ocispec.Descriptor) []digest.Digest {
	out := make([]digest.Digest, len(descs))
	for i, d := range descs {
		out[i] = d.Digest
	}
	slices.Sort(out)
	return out
}

// Sorted is ds sorted, in a new slice.
func Sorted(ds ...digest.Digest) []digest.Digest {
	out := slices.Clone(ds)
	if out == nil {
		out = []digest.Digest{}
	}
	slices.Sort(out)
	return out
}

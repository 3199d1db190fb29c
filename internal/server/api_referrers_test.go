package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/registrytest"
)

const (
	typeSBOM      = "application/vnd.example.sbom.v1+json"
	typeSignature = "application/vnd.example.signature.v1"
)

// referrersIndex is the body of a referrers answer listing descs, which it sorts by
// digest, as the registry lists them.
func referrersIndex(t *testing.T, descs ...ocispec.Descriptor) []byte {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: sortedByDigest(descs)}
	idx.SchemaVersion = 2
	return apitest.JSON(t, idx)
}

func sortedByDigest(descs []ocispec.Descriptor) []ocispec.Descriptor {
	out := slices.Clone(descs)
	if out == nil {
		out = []ocispec.Descriptor{}
	}
	slices.SortFunc(out, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return out
}

// referrerFixture is a subject with two signatures and an SBOM, in repo.
type referrerFixture struct {
	subject         apitest.Image
	sbom, sig, sig2 ocispec.Descriptor
}

func (f referrerFixture) all() []ocispec.Descriptor {
	return []ocispec.Descriptor{f.sbom, f.sig, f.sig2}
}

func pushReferrers(t *testing.T, srv *registrytest.Server, repo string) referrerFixture {
	t.Helper()
	f := referrerFixture{subject: apitest.NewImage(t, linuxAMD64, "the subject's layer")}
	srv.PushImage(t, repo, "v1", f.subject)
	for _, a := range []struct {
		d            *ocispec.Descriptor
		artifactType string
		payload      string
		annotations  map[string]string
	}{
		{&f.sbom, typeSBOM, "an SBOM", map[string]string{"org.example.kind": "sbom", "org.example.format": "spdx"}},
		{&f.sig, typeSignature, "a signature", map[string]string{"org.example.kind": "signature"}},
		{&f.sig2, typeSignature, "another signature", nil},
	} {
		subject := f.subject.Desc()
		m := artifact(t, srv, repo, a.artifactType, a.payload, &subject, a.annotations)
		srv.PushManifest(t, repo, "", m)
		*a.d = m.Desc
		a.d.ArtifactType, a.d.Annotations = a.artifactType, a.annotations
	}
	return f
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "ref/app"
		f := pushReferrers(t, srv, repo)
		path := "/v2/" + repo + "/referrers/" + f.subject.Desc().Digest.String()
		index := map[string]string{"Content-Type": ocispec.MediaTypeImageIndex}
		filtered := map[string]string{"Content-Type": ocispec.MediaTypeImageIndex, "OCI-Filters-Applied": "artifactType"}
		unfiltered := map[string]string{"Content-Type": ocispec.MediaTypeImageIndex, "OCI-Filters-Applied": "", "Link": ""}
		byType := func(typ string) string { return path + "?artifactType=" + url.QueryEscape(typ) }
		absent := digest.FromString("no manifest has this digest")
		run(t, srv, []call{
			{name: "all", method: http.MethodGet, target: path, status: http.StatusOK, headers: unfiltered,
				answer: referrersIndex(t, f.all()...)},
			{name: "HEAD", method: http.MethodHead, target: path, status: http.StatusOK, headers: index, answer: []byte{}},
			{name: "SBOMs", method: http.MethodGet, target: byType(typeSBOM), status: http.StatusOK, headers: filtered,
				answer: referrersIndex(t, f.sbom)},
			{name: "signatures", method: http.MethodGet, target: byType(typeSignature), status: http.StatusOK, headers: filtered,
				answer: referrersIndex(t, f.sig, f.sig2)},
			{name: "a type nothing has", method: http.MethodGet, target: byType("application/vnd.example.none"), status: http.StatusOK,
				headers: filtered, answer: referrersIndex(t)},
			{name: "n=0 is the registry's page", method: http.MethodGet, target: path + "?n=0", status: http.StatusOK,
				answer: referrersIndex(t, f.all()...)},
			{name: "a subject nothing refers to", method: http.MethodGet, target: "/v2/" + repo + "/referrers/" + absent.String(),
				status: http.StatusOK, headers: unfiltered, answer: referrersIndex(t)},
			{name: "an unknown repository", method: http.MethodGet, target: "/v2/ref/none/referrers/" + f.subject.Desc().Digest.String(),
				status: http.StatusOK, headers: unfiltered, answer: referrersIndex(t)},
			{name: "a referrer's own referrers", method: http.MethodGet, target: "/v2/" + repo + "/referrers/" + f.sbom.Digest.String(),
				status: http.StatusOK, answer: referrersIndex(t)},
			{name: "a malformed subject", method: http.MethodGet, target: "/v2/" + repo + "/referrers/sha256:abc",
				status: http.StatusBadRequest, code: "DIGEST_INVALID", message: `invalid digest "sha256:abc"`},
			{name: "a malformed last", method: http.MethodGet, target: path + "?last=v1",
				status: http.StatusBadRequest, code: "DIGEST_INVALID", message: `invalid digest "v1"`},
			{name: "a bad n", method: http.MethodGet, target: path + "?n=-1",
				status: http.StatusBadRequest, code: "PAGINATION_NUMBER_INVALID", message: "n must be a non-negative integer"},
			{name: "an invalid name", method: http.MethodGet, target: "/v2/Ref/referrers/" + f.subject.Desc().Digest.String(),
				status: http.StatusBadRequest, code: "NAME_INVALID"},
		})

		// Pages keep the filter and the page size in their Link.
		for _, tc := range []struct {
			name         string
			artifactType string
			n            int
			want         []ocispec.Descriptor
		}{
			{"n=1", "", 1, f.all()},
			{"n=2", "", 2, f.all()},
			{"signatures n=1", typeSignature, 1, []ocispec.Descriptor{f.sig, f.sig2}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				want := sortedByDigest(tc.want)
				q := url.Values{"n": {strconv.Itoa(tc.n)}}
				headers := map[string]string{"OCI-Filters-Applied": ""}
				if tc.artifactType != "" {
					q.Set("artifactType", tc.artifactType)
					headers["OCI-Filters-Applied"] = "artifactType"
				}
				target := path + "?" + q.Encode()
				for i := 0; ; i += tc.n {
					page := want[i:min(i+tc.n, len(want))]
					headers["Link"] = ""
					if i+tc.n < len(want) {
						q.Set("last", page[len(page)-1].Digest.String())
						headers["Link"] = nextPage(path, q)
					}
					r := call{method: http.MethodGet, target: target, status: http.StatusOK, headers: headers,
						answer: referrersIndex(t, page...)}.check(t, srv)
					if headers["Link"] == "" || t.Failed() {
						break
					}
					target = apitest.NextLink(t, r)
				}
			})
		}
		call{name: "after the first", method: http.MethodGet, target: path + "?last=" + sortedByDigest(f.all())[0].Digest.String(),
			status: http.StatusOK, answer: referrersIndex(t, sortedByDigest(f.all())[1:]...)}.check(t, srv)

		// A referrer pushed to another repository is that repository's.
		other := apitest.NewReferrer(t, f.subject.Desc(), linuxAMD64, "a referrer elsewhere")
		srv.PushImage(t, "ref/other", "", other)
		wantReferrers(t, srv, repo, f.subject.Desc().Digest, f.all()...)
		wantReferrers(t, srv, "ref/other", f.subject.Desc().Digest, other.Desc())
	})
}

// TestReferrersArtifactType: a manifest's artifact type is its artifactType, else its
// config's media type; the artifact manifests of early clients are referrers too.
func TestReferrersArtifactType(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "ref/types"
		subject := apitest.NewImage(t, linuxAMD64, "a subject")
		srv.PushImage(t, repo, "", subject)
		const configType = "application/vnd.example.config.v1+json"
		config := apitest.NewBlob(configType, []byte(`{"tool":"example"}`))
		payload := apitest.NewBlob("application/vnd.example.payload", []byte("payload"))
		srv.PushBlobs(t, repo, []apitest.Blob{config, payload})
		sd := subject.Desc()
		configTyped := apitest.NewBlob(ocispec.MediaTypeImageManifest, apitest.ImageManifest(config.Desc, []ocispec.Descriptor{payload.Desc}, "", &sd))
		ociArtifact := apitest.ManifestBlob(t, manifest.MediaTypeArtifact, map[string]any{
			"mediaType": manifest.MediaTypeArtifact, "artifactType": "application/vnd.example.oci-artifact",
			"blobs": []ocispec.Descriptor{payload.Desc}, "subject": sd, "annotations": map[string]string{"k": "v"},
		})
		orasArtifact := apitest.ManifestBlob(t, manifest.MediaTypeORASArtifact, map[string]any{
			"mediaType": manifest.MediaTypeORASArtifact, "artifactType": "application/vnd.example.oras-artifact",
			"blobs": []ocispec.Descriptor{payload.Desc}, "subject": sd,
		})
		want := map[string]ocispec.Descriptor{}
		for _, m := range []struct {
			blob         apitest.Blob
			artifactType string
			annotations  map[string]string
		}{
			{configTyped, configType, nil},
			{ociArtifact, "application/vnd.example.oci-artifact", map[string]string{"k": "v"}},
			{orasArtifact, "application/vnd.example.oras-artifact", nil},
		} {
			srv.PushManifest(t, repo, "", m.blob)
			d := m.blob.Desc
			d.ArtifactType, d.Annotations = m.artifactType, m.annotations
			want[m.artifactType] = d
		}
		path := "/v2/" + repo + "/referrers/" + sd.Digest.String()
		call{method: http.MethodGet, target: path, status: http.StatusOK,
			answer: referrersIndex(t, want[configType], want["application/vnd.example.oci-artifact"], want["application/vnd.example.oras-artifact"])}.check(t, srv)
		for typ, d := range want {
			call{name: typ, method: http.MethodGet, target: path + "?artifactType=" + url.QueryEscape(typ),
				status: http.StatusOK, answer: referrersIndex(t, d)}.check(t, srv)
		}
	})
}

// TestReferrersBeforeSubject: the spec lets a referrer come before its subject, which
// may never come; it is listed from the start.
func TestReferrersBeforeSubject(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "ref/early"
		later := apitest.NewImage(t, linuxARM64, "a subject pushed after its referrer")
		a := artifact(t, srv, repo, typeSignature, "signed early", ptr(later.Desc()), nil)
		call{method: http.MethodPut, target: "/v2/" + repo + "/manifests/" + a.Desc.Digest.String(), body: a.Data,
			header: []string{"Content-Type", a.Desc.MediaType}, status: http.StatusCreated,
			headers: map[string]string{"OCI-Subject": later.Desc().Digest.String()}}.check(t, srv)
		early := a.Desc
		early.ArtifactType = typeSignature
		wantReferrers(t, srv, repo, later.Desc().Digest, early)
		srv.PushImage(t, repo, "later", later)
		wantReferrers(t, srv, repo, later.Desc().Digest, early)
		wantManifest(t, srv, repo, a.Desc.Digest.String(), a)
	})
}

func ptr[T any](v T) *T { return &v }

// TestLegacyORASAPI covers /oras/artifacts/v1/, which early ORAS clients use.
func TestLegacyORASAPI(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "legacy/app"
		f := pushReferrers(t, srv, repo)
		base := "/oras/artifacts/v1/" + repo + "/manifests/"
		d := f.subject.Desc().Digest.String()
		references := func(descs ...ocispec.Descriptor) []byte {
			return apitest.JSON(t, map[string]any{"references": sortedByDigest(descs)})
		}
		manifestHeaders := map[string]string{
			"Content-Type": ocispec.MediaTypeImageManifest, "Docker-Content-Digest": d,
			"Content-Length": strconv.Itoa(len(f.subject.Manifest.Data)), "Etag": `"` + d + `"`,
		}
		sorted := sortedByDigest(f.all())
		run(t, srv, []call{
			{name: "manifest", method: http.MethodGet, target: base + d, status: http.StatusOK, headers: manifestHeaders,
				answer: f.subject.Manifest.Data},
			{name: "manifest, HEAD", method: http.MethodHead, target: base + d, status: http.StatusOK, headers: manifestHeaders,
				answer: []byte{}},
			{name: "unknown manifest", method: http.MethodGet, target: base + digest.FromString("unknown").String(),
				status: http.StatusNotFound, code: "MANIFEST_UNKNOWN"},
			{name: "malformed digest", method: http.MethodGet, target: base + "sha256:abc", status: http.StatusBadRequest,
				code: "DIGEST_INVALID"},
			{name: "referrers", method: http.MethodGet, target: base + d + "/referrers", status: http.StatusOK,
				headers: map[string]string{"Content-Type": "application/json", "OCI-Filters-Applied": "", "Link": ""},
				answer:  references(f.all()...)},
			{name: "referrers of a type", method: http.MethodGet, target: base + d + "/referrers?artifactType=" + url.QueryEscape(typeSignature),
				status: http.StatusOK, headers: map[string]string{"OCI-Filters-Applied": ""}, answer: references(f.sig, f.sig2)},
			{name: "a page", method: http.MethodGet, target: base + d + "/referrers?n=2", status: http.StatusOK,
				headers: map[string]string{"Link": nextPage(base+d+"/referrers", url.Values{"n": {"2"}, "last": {sorted[1].Digest.String()}})},
				answer:  references(sorted[:2]...)},
			{name: "the next page", method: http.MethodGet, target: base + d + "/referrers?n=2&last=" + sorted[1].Digest.String(),
				status: http.StatusOK, headers: map[string]string{"Link": ""}, answer: references(sorted[2:]...)},
			{name: "a page of a type", method: http.MethodGet, target: base + d + "/referrers?n=1&artifactType=" + url.QueryEscape(typeSignature),
				status: http.StatusOK, headers: map[string]string{"Link": nextPage(base+d+"/referrers", url.Values{
					"n": {"1"}, "artifactType": {typeSignature}, "last": {sortedByDigest([]ocispec.Descriptor{f.sig, f.sig2})[0].Digest.String()}})}},
			{name: "referrers of nothing", method: http.MethodGet, target: base + digest.FromString("unknown").String() + "/referrers",
				status: http.StatusOK, answer: []byte(`{"references":[]}`)},
			{name: "referrers of a malformed digest", method: http.MethodGet, target: base + "sha256:abc/referrers",
				status: http.StatusBadRequest, code: "DIGEST_INVALID"},
			{name: "referrers with a bad n", method: http.MethodGet, target: base + d + "/referrers?n=x",
				status: http.StatusBadRequest, code: "PAGINATION_NUMBER_INVALID"},
		})
	})
}

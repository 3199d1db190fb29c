// Package graph drives graft's artifact graph end to end with the clients that make it:
// cosign in its default tag mode (signatures, attestations and SBOMs tagged
// sha256-<hex>.sig, .att and .sbom, with no subject) and in its oci-1-1 mode, and the
// notation CLI as `notation sign` runs by default since 1.2 (a signature with a subject,
// and the referrers tag schema's sha256-<hex> index listing it). Against a real `graft
// serve`, embedded and scale-out (S3 + PostgreSQL, two replicas behind a round-robin
// proxy), the tests delete with the API and with `graft delete`, collect garbage with
// `graft gc` beside the running server, and lock a signature, and check what the
// metadata API, the tags, the referrers API and the clients themselves see afterwards.
//
// The clients are the real ones, run by internal/clienttest: the team's pinned cosign,
// oras and crane, and the notation CLI it builds.
package graph

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
	"github.com/graft-registry/graft/internal/scaletest"
)

// Headers of graft's answer to a manifest DELETE.
const (
	cascadeDeletedHeader = "Graft-Cascade-Deleted"
	cascadeLockedHeader  = "Graft-Cascade-Locked"
)

// registry is a running deployment of graft, as its clients and its admin see it.
type registry struct {
	// Client speaks the API at Addr.
	*apitest.Client
	// Addr is the host:port clients use.
	Addr string
	// admin are the flags that point an admin verb (graft gc) at the deployment's
	// stores.
	admin []string
}

// deployment starts a fresh registry of one kind for a test.
type deployment struct {
	name  string
	start func(t *testing.T) *registry
}

var deployments = []deployment{
	{"embedded", startEmbedded},
	{"scale-out", startScaleOut},
}

// eachDeployment runs test as a parallel subtest on a fresh registry of each kind.
func eachDeployment(t *testing.T, test func(t *testing.T, r *registry)) {
	t.Helper()
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			test(t, d.start(t))
		})
	}
}

// startEmbedded starts `graft serve` with no flags but its address and data directory:
// blobs on the filesystem, metadata in SQLite.
func startEmbedded(t *testing.T) *registry {
	srv := graftest.Start(t)
	return &registry{Client: srv.Client, Addr: srv.Addr, admin: []string{"--data-dir", srv.DataDir}}
}

// startScaleOut starts two replicas on a fresh S3 prefix and PostgreSQL database, and
// a proxy that sends each request to the next replica: a client's consecutive requests
// land on different replicas.
func startScaleOut(t *testing.T) *registry {
	cfg := scaletest.Config(t)
	path := filepath.Join(t.TempDir(), "graft.yaml")
	if err := os.WriteFile(path, []byte(scaletest.YAML(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	a := graftest.Start(t, "--config", path)
	b := graftest.Start(t, "--config", path)
	proxy := graftest.StartRoundRobin(t, a, b)
	return &registry{Client: apitest.NewClient("http://" + proxy), Addr: proxy, admin: []string{"--config", path, "--data-dir", a.DataDir}}
}

var linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}

// pushImage pushes a one-layer image of content to repo, tagged tag, and returns its
// digest.
func (r *registry) pushImage(t *testing.T, repo, tag, content string) digest.Digest {
	t.Helper()
	im := apitest.NewImage(t, linuxAMD64, content)
	r.PushImage(t, repo, tag, im)
	return im.Desc().Digest
}

// ref is the reference of manifest d of repo, as clients name it.
func (r *registry) ref(repo string, d digest.Digest) string {
	return r.Addr + "/" + repo + "@" + d.String()
}

// schemaTag is the referrers tag schema's tag of d: "sha256-<hex>", the fallback
// index's tag, and the stem of cosign's .sig, .att and .sbom tags.
func schemaTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

func manifestPath(repo, ref string) string { return "/v2/" + repo + "/manifests/" + ref }

// present reports whether ref (a tag or digest) names a manifest of repo.
func (r *registry) present(t *testing.T, repo, ref string) bool {
	t.Helper()
	resp := r.Do(t, http.MethodGet, manifestPath(repo, ref), nil, "Accept", apitest.AcceptManifests)
	switch {
	case resp.Status == http.StatusOK:
		return true
	case resp.Status == http.StatusNotFound && resp.ErrorCode() == "MANIFEST_UNKNOWN":
		return false
	}
	t.Fatalf("GET %s: %v", manifestPath(repo, ref), resp)
	return false
}

// resolve returns the digest tag names in repo.
func (r *registry) resolve(t *testing.T, repo, tag string) digest.Digest {
	t.Helper()
	resp := r.Want(t, http.StatusOK, http.MethodGet, manifestPath(repo, tag), nil, "Accept", apitest.AcceptManifests)
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		t.Fatalf("GET %s: Docker-Content-Digest: %v", manifestPath(repo, tag), err)
	}
	return d
}

// index returns the digests the image index tag names in repo lists, in order.
func (r *registry) index(t *testing.T, repo, tag string) []digest.Digest {
	t.Helper()
	resp := r.Want(t, http.StatusOK, http.MethodGet, manifestPath(repo, tag), nil, "Accept", ocispec.MediaTypeImageIndex)
	var idx ocispec.Index
	apitest.Decode(t, "GET "+manifestPath(repo, tag), resp.Body, &idx)
	out := []digest.Digest{}
	for _, d := range idx.Manifests {
		out = append(out, d.Digest)
	}
	return out
}

// wantThere fails the test unless every ref names a manifest of repo.
func (r *registry) wantThere(t *testing.T, what, repo string, refs ...string) {
	t.Helper()
	for _, ref := range refs {
		if !r.present(t, repo, ref) {
			t.Errorf("%s: %s:%s is gone", what, repo, ref)
		}
	}
}

// wantGone fails the test if any ref names a manifest of repo.
func (r *registry) wantGone(t *testing.T, what, repo string, refs ...string) {
	t.Helper()
	for _, ref := range refs {
		if r.present(t, repo, ref) {
			t.Errorf("%s: %s:%s is still there", what, repo, ref)
		}
	}
}

// wantTags fails the test unless repo's tags are want.
func (r *registry) wantTags(t *testing.T, what, repo string, want ...string) {
	t.Helper()
	got := r.Tags(t, repo)
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s: the tags of %s are %q, want %q", what, repo, got, want)
	}
}

// deleted is the body of graft's answer to a manifest DELETE.
type deleted struct {
	Deleted []digest.Digest `json:"deleted"`
	Locked  []digest.Digest `json:"locked"`
}

// deleteManifest deletes manifest d of repo with the API, as any client would, and
// returns graft's account of the cascade: its headers and body.
func (r *registry) deleteManifest(t *testing.T, repo string, d digest.Digest) (*apitest.Response, deleted) {
	t.Helper()
	resp := r.Want(t, http.StatusAccepted, http.MethodDelete, manifestPath(repo, d.String()), nil)
	var body deleted
	apitest.Decode(t, "DELETE "+manifestPath(repo, d.String()), resp.Body, &body)
	if len(body.Deleted) == 0 || body.Deleted[0] != d {
		t.Errorf("DELETE %s: deleted %v, want %s first", d, body.Deleted, d)
	}
	return resp, body
}

// wantCascade fails the test unless the answer to a DELETE counts deleted and locked
// manifests besides the one named, in its headers and its body.
func wantCascade(t *testing.T, what string, resp *apitest.Response, body deleted, deleted, locked []digest.Digest) {
	t.Helper()
	apitest.WantHeader(t, what, resp, cascadeDeletedHeader, fmt.Sprint(len(deleted)-1))
	apitest.WantHeader(t, what, resp, cascadeLockedHeader, fmt.Sprint(len(locked)))
	if !sameSet(body.Deleted, deleted) {
		t.Errorf("%s: deleted %v, want %v", what, body.Deleted, deleted)
	}
	if !sameSet(body.Locked, locked) {
		t.Errorf("%s: locked %v, want %v", what, body.Locked, locked)
	}
}

// sameSet reports whether a and b hold the same digests, each once.
func sameSet(a, b []digest.Digest) bool {
	return slices.Equal(apitest.Sorted(a...), apitest.Sorted(b...))
}

// manifestInfo is what the metadata API says of a manifest, as far as the graph goes.
type manifestInfo struct {
	Digest    digest.Digest    `json:"digest"`
	Tags      []string         `json:"tags"`
	Kind      string           `json:"kind"`
	Subject   digest.Digest    `json:"subject"`
	Edge      string           `json:"edge"`
	Artifacts map[string]int64 `json:"artifacts"`
	Signed    bool             `json:"signed"`
}

// wantInfo fails the test unless the metadata API says want of manifest want.Digest of
// repo.
func (r *registry) wantInfo(t *testing.T, repo string, want manifestInfo) {
	t.Helper()
	target := "/graft/v1/" + repo + "/_manifests/" + want.Digest.String()
	var got manifestInfo
	apitest.Decode(t, "GET "+target, r.Want(t, http.StatusOK, http.MethodGet, target, nil).Body, &got)
	slices.Sort(got.Tags)
	slices.Sort(want.Tags)
	if want.Tags == nil {
		want.Tags = []string{}
	}
	if want.Artifacts == nil {
		want.Artifacts = map[string]int64{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GET %s:\n got %+v\nwant %+v", target, got, want)
	}
}

// listed returns the digests of the manifests of repo the metadata API lists with
// query, over every page.
func (r *registry) listed(t *testing.T, repo, query string) []digest.Digest {
	t.Helper()
	out := []digest.Digest{}
	for _, page := range r.Pages(t, "/graft/v1/"+repo+"/_manifests?"+query, 100) {
		var list struct {
			Manifests []manifestInfo `json:"manifests"`
		}
		apitest.Decode(t, "GET "+page.URL, page.Body, &list)
		for _, m := range list.Manifests {
			out = append(out, m.Digest)
		}
	}
	return out
}

// The clients.

// gcReport is what `graft gc -o json` prints.
type gcReport struct {
	Manifests []string `json:"manifests"`
}

// gc runs `graft gc` on r's stores beside the running servers, with no grace period
// and flags, and returns the manifests it removed, as repo@digest.
func gc(t *testing.T, c *clienttest.Tools, r *registry, flags ...string) []string {
	t.Helper()
	args := append(append([]string{"gc", "--gc-delay", "0", "-o", "json"}, r.admin...), flags...)
	var rep gcReport
	apitest.Decode(t, "graft gc", []byte(c.Must("graft", args...)), &rep)
	return rep.Manifests
}

// inRepo is each of ds as repo@digest, as graft gc reports manifests.
func inRepo(repo string, ds ...digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = repo + "@" + d.String()
	}
	return out
}

// decodeJSON decodes out, a client's JSON output, into v.
func decodeJSON(t *testing.T, what, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, out)
	}
}

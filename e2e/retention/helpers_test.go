// Package retention drives retention policies and immutable tags end to end: a real
// `graft serve`, embedded and scale-out (S3 + PostgreSQL, two replicas behind a
// round-robin proxy), filled by the real clients (cosign in its tag and oci-1-1 modes,
// oras, crane, regctl, notation, oras-go), and collected by the real `graft gc`, each
// run with a configuration file of its own, beside the running servers or while they
// are stopped, and by graft serve's periodic collection. What remains is checked as a
// client sees it: the tags, the metadata API, the referrers API, and pulls of every
// blob.
//
// The rules about time (a tag's age, a pull's) are applied as of a time the test
// chooses (graft gc --as-of), never with margins of the machine's speed: see
// TestRetention.
package retention

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/scaletest"
)

// registry is a running deployment of graft, as its clients and its admin see it.
type registry struct {
	// Client speaks the API at Addr.
	*apitest.Client
	// Addr is the host:port clients use.
	Addr    string
	servers []*graftest.Server
	// stores is the part of a configuration file that names the deployment's stores:
	// "" for the embedded one, whose data directory admin names.
	stores string
	admin  []string
	dir    string
}

// deployment starts a fresh registry of one kind, with serve (YAML) added to its
// configuration file.
type deployment struct {
	name  string
	start func(t *testing.T, serve string) *registry
}

var deployments = []deployment{
	{"embedded", startEmbedded},
	{"scale-out", startScaleOut},
}

// eachDeployment runs test as a parallel subtest of each kind of deployment.
func eachDeployment(t *testing.T, test func(t *testing.T, d deployment)) {
	t.Helper()
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			test(t, d)
		})
	}
}

// writeConfig writes a configuration file into dir and returns its path.
func writeConfig(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startEmbedded starts `graft serve` on a data directory: blobs on the filesystem,
// metadata in SQLite.
func startEmbedded(t *testing.T, serve string) *registry {
	dir := t.TempDir()
	srv := graftest.Start(t, "--config", writeConfig(t, dir, "serve.yaml", serve))
	return &registry{Client: srv.Client, Addr: srv.Addr, servers: []*graftest.Server{srv},
		admin: []string{"--data-dir", srv.DataDir}, dir: dir}
}

// startScaleOut starts two replicas on a fresh S3 prefix and PostgreSQL database, and
// a proxy that sends each request to the next replica.
func startScaleOut(t *testing.T, serve string) *registry {
	dir := t.TempDir()
	cfg := scaletest.Config(t)
	stores := scaletest.YAML(cfg)
	path := writeConfig(t, dir, "serve.yaml", stores+serve)
	a := graftest.Start(t, "--config", path)
	b := graftest.Start(t, "--config", path)
	proxy := graftest.StartRoundRobin(t, a, b)
	return &registry{Client: apitest.NewClient("http://" + proxy), Addr: proxy, servers: []*graftest.Server{a, b},
		stores: stores, admin: []string{"--data-dir", a.DataDir}, dir: dir}
}

// stop stops every replica gracefully: each writes the pulls it recorded.
func (r *registry) stop() {
	for _, s := range r.servers {
		s.Stop()
	}
}

// restart starts the stopped replicas again, where they listened.
func (r *registry) restart() {
	for _, s := range r.servers {
		s.Restart()
	}
}

// gcReport is what `graft gc -o json` prints.
type gcReport struct {
	Tags      []string        `json:"tags"`
	Manifests []string        `json:"manifests"`
	Links     []string        `json:"links"`
	Blobs     []digest.Digest `json:"blobs"`
	Decisions []decision      `json:"decisions"`
}

// decision is what the report says of one tag or manifest, and the rule that decided.
type decision struct {
	Repo   string        `json:"repository"`
	Tag    string        `json:"tag"`
	Digest digest.Digest `json:"digest"`
	Remove bool          `json:"remove"`
	Policy string        `json:"policy"`
	Rule   string        `json:"rule"`
}

// gc runs `graft gc -o json` on r's stores with the configuration file config and
// flags, and returns its report.
func (r *registry) gc(t *testing.T, c *clienttest.Tools, config string, flags ...string) *gcReport {
	t.Helper()
	args := append(append([]string{"gc", "--config", config, "-o", "json"}, r.admin...), flags...)
	var rep gcReport
	apitest.Decode(t, "graft gc", []byte(c.Must("graft", args...)), &rep)
	return &rep
}

// gcConfig writes a configuration file for graft gc: r's stores and rest.
func (r *registry) gcConfig(t *testing.T, name, rest string) string {
	t.Helper()
	return writeConfig(t, r.dir, name+".yaml", r.stores+rest)
}

// ref is the reference of manifest d of repo, as clients name it.
func (r *registry) ref(repo string, d digest.Digest) string {
	return r.Addr + "/" + repo + "@" + d.String()
}

// pushImage pushes a one-layer image of content for platform to repo, tagged tag (by
// digest when tag is ""), and returns its descriptor.
func (r *registry) pushImage(t *testing.T, repo, tag string, platform ocispec.Platform, content string) ocispec.Descriptor {
	t.Helper()
	im := apitest.NewImage(t, platform, content)
	r.PushImage(t, repo, tag, im)
	return im.Desc()
}

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

func manifestPath(repo, ref string) string { return "/v2/" + repo + "/manifests/" + ref }

// resolve returns the digest tag names in repo.
func (r *registry) resolve(t *testing.T, repo, tag string) digest.Digest {
	t.Helper()
	resp := r.Want(t, http.StatusOK, http.MethodHead, manifestPath(repo, tag), nil, "Accept", apitest.AcceptManifests)
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		t.Fatalf("HEAD %s: Docker-Content-Digest: %v", manifestPath(repo, tag), err)
	}
	return d
}

// schemaTag is the referrers tag schema's tag of d: "sha256-<hex>", the fallback
// index's tag, and the stem of cosign's .sig, .att and .sbom tags.
func schemaTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

// manifestInfo is what the metadata API says of a manifest, as far as these tests go.
type manifestInfo struct {
	Digest         digest.Digest    `json:"digest"`
	Tags           []string         `json:"tags"`
	Kind           string           `json:"kind"`
	Artifacts      map[string]int64 `json:"artifacts"`
	Signed         bool             `json:"signed"`
	LastPulledTime *time.Time       `json:"lastPulledTime"`
}

// manifests returns what the metadata API lists of the manifests of repo, by digest.
func (r *registry) manifests(t *testing.T, repo string) map[digest.Digest]manifestInfo {
	t.Helper()
	out := map[digest.Digest]manifestInfo{}
	for _, page := range r.Pages(t, "/graft/v1/"+repo+"/_manifests?n=100", 100) {
		var list struct {
			Manifests []manifestInfo `json:"manifests"`
		}
		apitest.Decode(t, "GET "+page.URL, page.Body, &list)
		for _, m := range list.Manifests {
			out[m.Digest] = m
		}
	}
	return out
}

// info returns what the metadata API says of manifest ref of repo.
func (r *registry) info(t *testing.T, repo, ref string) manifestInfo {
	t.Helper()
	target := "/graft/v1/" + repo + "/_manifests/" + ref
	var m manifestInfo
	apitest.Decode(t, "GET "+target, r.Want(t, http.StatusOK, http.MethodGet, target, nil).Body, &m)
	return m
}

// lock makes manifest ref (a tag or digest) of repo deletable by no one.
func (r *registry) lock(t *testing.T, repo, ref string) {
	t.Helper()
	r.Want(t, http.StatusOK, http.MethodPatch, "/graft/v1/"+repo+"/_manifests/"+ref, []byte(`{"deleteEnabled": false}`),
		"Content-Type", "application/json")
}

// pullsCompletely reports an error unless ref of repo, everything it names and every
// referrer of it (with what they name) can be read, each blob whole and as its digest
// says.
func (r *registry) pullsCompletely(t *testing.T, repo, ref string) {
	t.Helper()
	resp := r.Do(t, http.MethodGet, manifestPath(repo, ref), nil, "Accept", apitest.AcceptManifests)
	if resp.Status != http.StatusOK {
		t.Errorf("pull %s:%s: %v", repo, ref, resp)
		return
	}
	m, err := manifest.Parse(resp.Header.Get("Content-Type"), resp.Body)
	if err != nil {
		t.Errorf("pull %s:%s: %v", repo, ref, err)
		return
	}
	for _, b := range m.Blobs {
		blob := r.Do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+b.Digest.String(), nil)
		switch {
		case blob.Status != http.StatusOK:
			t.Errorf("pull %s:%s: blob %s: %v", repo, ref, b.Digest, blob)
		case digest.FromBytes(blob.Body) != b.Digest || int64(len(blob.Body)) != b.Size:
			t.Errorf("pull %s:%s: blob %s: %d bytes of digest %s", repo, ref, b.Digest, len(blob.Body), digest.FromBytes(blob.Body))
		}
	}
	for _, c := range m.Manifests {
		r.pullsCompletely(t, repo, c.Digest.String())
	}
}

// wantSet reports an error unless got and want hold the same strings, naming those
// missing and those not wanted.
func wantSet[S ~string](t *testing.T, what string, got, want []S) {
	t.Helper()
	var missing, extra []S
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	if len(missing)+len(extra) > 0 || len(got) != len(want) {
		t.Errorf("%s: %d, want %d\n missing %q\n not wanted %q", what, len(got), len(want), missing, extra)
	}
}

// inRepo is each of ds as repo@digest, as graft gc reports manifests.
func inRepo(repo string, ds ...digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = repo + "@" + d.String()
	}
	return out
}

// exitCode is the exit status of the client that failed with err, or -1 when err is
// no exit (nil, or the client could not be run).
func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return -1
}

// refused reports an error unless a client failed (err) for the registry's 403.
func refused(t *testing.T, what string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: done, want it refused", what)
	case exitCode(err) <= 0:
		t.Errorf("%s: %v, want an exit status", what, err)
	case !strings.Contains(err.Error(), "403") && !strings.Contains(strings.ToLower(err.Error()), "denied"):
		t.Errorf("%s: exit status %d, but not for a 403 DENIED: %v", what, exitCode(err), err)
	}
}

// The clients.

// signer runs cosign with a key pair of the test's own, offline (nothing goes to a
// transparency log), oras and crane.
type signer struct {
	*clienttest.Tools
	t *testing.T
	r *registry
}

func newSigner(t *testing.T, r *registry) *signer {
	t.Helper()
	s := &signer{Tools: clienttest.New(t), t: t, r: r}
	s.Must("cosign", "generate-key-pair")
	return s
}

// The registries are plain HTTP on loopback.
var cosignRegistryFlags = []string{"--allow-insecure-registry", "--allow-http-registry"}

// cosignArtifactSig is the artifact type of cosign's signatures in its oci-1-1 mode.
const cosignArtifactSig = "application/vnd.dev.cosign.artifact.sig.v1+json"

// cosignSign runs `cosign sign` with args (flags, and the references of the images it
// signs, all at once): in its default tag mode (a signature tagged sha256-<hex>.sig,
// with no subject), or in its oci-1-1 mode (a referrer, untagged). It stops the test
// when cosign fails.
func (s *signer) cosignSign(oci11 bool, args ...string) {
	s.t.Helper()
	flags := append([]string{"sign", "-y", "--key", "cosign.key", "--tlog-upload=false"}, cosignRegistryFlags...)
	var env []string
	if oci11 {
		flags = append(flags, "--registry-referrers-mode=oci-1-1")
		env = []string{"COSIGN_EXPERIMENTAL=1"} // the mode is experimental
	}
	if _, err := s.Run(env, "cosign", append(flags, args...)...); err != nil {
		s.t.Fatal(err)
	}
}

// attachSBOM attaches an SPDX document named name to manifest ref with `oras attach`,
// as a referrer, and returns its digest. It stops the test when oras fails.
func (s *signer) attachSBOM(ref, name string) digest.Digest {
	s.t.Helper()
	return s.attachSBOMs([]string{ref}, []string{name})[0]
}

// attachSBOMs attaches an SBOM named names[i] to each refs[i], as attachSBOM does,
// with four oras processes at a time, and returns their digests.
func (s *signer) attachSBOMs(refs, names []string) []digest.Digest {
	s.t.Helper()
	out := make([]digest.Digest, len(refs))
	errs := make([]error, len(refs))
	files := make([]string, len(refs))
	for i, name := range names {
		files[i] = strings.NewReplacer("/", "-", ":", "-", "@", "-").Replace(name) + ".spdx.json"
		s.WriteFile(files[i], `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"`+name+`"}`)
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, 4)
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			var stdout string
			stdout, errs[i] = s.Run(nil, "oras", "attach", "--plain-http", "--artifact-type", "application/spdx+json",
				"--format", "go-template", "--template", "{{.digest}}", ref, files[i]+":application/spdx+json")
			if errs[i] == nil {
				if out[i], errs[i] = digest.Parse(strings.TrimSpace(stdout)); errs[i] != nil {
					errs[i] = fmt.Errorf("oras attach printed %q: %w", stdout, errs[i])
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// index pushes, with `crane index append`, an index of children (manifests of repo
// by digest) tagged tag, and returns its digest.
func (s *signer) index(repo, tag string, children ...digest.Digest) digest.Digest {
	s.t.Helper()
	args := []string{"index", "append", "--insecure", "-t", s.r.Addr + "/" + repo + ":" + tag}
	for _, c := range children {
		args = append(args, "-m", s.r.ref(repo, c))
	}
	s.Must("crane", args...)
	return s.r.resolve(s.t, repo, tag)
}

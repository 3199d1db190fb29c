package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

const sbomType = "application/spdx+json"

// image pushes an image of one layer to ref with crane, attaches an SBOM to it with
// oras, and returns the digests of both.
func image(t *testing.T, u *user, ref, content string) (img, sbom string) {
	t.Helper()
	l := u.file("layer.tar.gz", layer(t, "hello.txt", []byte(content)))
	u.must("crane", "append", "--insecure", "-f", l, "-t", ref)
	img = strings.TrimSpace(u.must("crane", "digest", "--insecure", ref))
	u.file("sbom.json", []byte(`{"spdxVersion":"SPDX-2.3","name":"`+content+`"}`))
	out := u.must("oras", "attach", "--plain-http", "--artifact-type", sbomType, "--format", "json", ref, "sbom.json:application/json")
	var attached struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal([]byte(out), &attached); err != nil || attached.Digest == "" {
		t.Fatalf("oras attach: %v\n%s", err, out)
	}
	return img, attached.Digest
}

// discover returns the digests of the referrers oras discover finds of ref, by
// artifact type.
func discover(t *testing.T, u *user, ref string) map[string][]string {
	t.Helper()
	out := u.must("oras", "discover", "--plain-http", "--format", "json", "--depth", "1", ref)
	var tree struct {
		Referrers []ocispec.Descriptor `json:"referrers"`
	}
	if err := json.Unmarshal([]byte(out), &tree); err != nil {
		t.Fatalf("oras discover: %v\n%s", err, out)
	}
	got := map[string][]string{}
	for _, m := range tree.Referrers {
		got[m.ArtifactType] = append(got[m.ArtifactType], m.Digest.String())
	}
	return got
}

// pullThrough pulls ref from a mirror with crane and skopeo, and checks that both got
// the manifest want.
func pullThrough(t *testing.T, u *user, ref, want string) {
	t.Helper()
	if got := strings.TrimSpace(u.must("crane", "digest", "--insecure", ref)); got != want {
		t.Errorf("crane digest %s = %s, want %s", ref, got, want)
	}
	tarball := filepath.Join(u.wd, "image.tar")
	u.must("crane", "pull", "--insecure", ref, tarball)
	if fi, err := os.Stat(tarball); err != nil || fi.Size() == 0 {
		t.Errorf("crane pull %s wrote nothing: %v", ref, err)
	}
	// skopeo's dir: format keeps the manifest as it was pulled
	dir := filepath.Join(u.wd, "copied")
	os.RemoveAll(dir)
	u.must("skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+ref, "dir:"+dir)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(b).String(); got != want {
		t.Errorf("skopeo copy %s: manifest %s, want %s", ref, got, want)
	}
}

// TestMirrorOfGraft pulls through a graft mirror of another graft serve: crane and
// skopeo pull, oras discovers upstream's referrers, pushes are refused, and once the
// upstream is stopped, what was pulled still pulls.
func TestMirrorOfGraft(t *testing.T) {
	up := graftest.Start(t)
	m := startMirror(t, time.Hour, "hub/", "http://"+up.Addr)
	u := newUser(t)
	img, sbom := image(t, u, up.Addr+"/library/app:v1", "hello from upstream")
	other, _ := image(t, u, up.Addr+"/library/other:v1", "never pulled")
	_ = other
	ref := m.Addr + "/hub/library/app:v1"

	pullThrough(t, u, ref, img)
	if got := discover(t, u, ref); len(got[sbomType]) != 1 || got[sbomType][0] != sbom {
		t.Errorf("oras discover through the mirror: %v, want the SBOM %s", got, sbom)
	}
	// Pulled once: the second pull asks upstream nothing (the tag TTL is an hour).
	layers := up.Requests(http.MethodGet, "/v2/library/app/manifests/v1")
	pullThrough(t, u, ref, img)
	if n := up.Requests(http.MethodGet, "/v2/library/app/manifests/v1"); n != layers {
		t.Errorf("the second pull asked upstream for the tag again")
	}

	out := u.fail("crane", "copy", "--insecure", up.Addr+"/library/app:v1", m.Addr+"/hub/library/app:v2")
	if !strings.Contains(out, "DENIED") || !strings.Contains(out, "mirror hub/") {
		t.Errorf("a push to the mirror: %s, want DENIED naming the mirror", out)
	}
	out = u.fail("oras", "push", "--plain-http", m.Addr+"/hub/library/app:v3", "sbom.json")
	if !strings.Contains(out, "mirror hub/") {
		t.Errorf("oras push to the mirror: %s, want a refusal naming the mirror", out)
	}

	up.Stop()
	pullThrough(t, u, ref, img)
	if got := discover(t, u, ref); len(got[sbomType]) != 1 {
		t.Errorf("oras discover with the upstream stopped: %v, want the SBOM held", got)
	}
	// skopeo, which does not retry by default: crane would try a 503 again for 13 s
	out = u.fail("skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+m.Addr+"/hub/library/other:v1", "dir:"+filepath.Join(u.wd, "other"))
	if !strings.Contains(out, "503") {
		t.Errorf("skopeo copy of what the mirror never held, upstream stopped: %s, want a 503", out)
	}
	r := m.Do(t, http.MethodGet, "/v2/hub/library/other/manifests/v1", nil)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), `"code":"UNAVAILABLE"`) ||
		!strings.Contains(string(r.Body), "cannot be reached") || !strings.Contains(string(r.Body), "library/other:v1") {
		t.Errorf("a pull of what the mirror never held, upstream stopped: %s, want an error that says why", r)
	}
}

// TestMirrorOfDistribution pulls through a graft mirror of CNCF distribution, which has
// no referrers API: the mirror reads the referrers tag schema upstream and answers the
// referrers API itself.
func TestMirrorOfDistribution(t *testing.T) {
	up := clienttest.StartDistribution(t, clienttest.DistributionOptions{})
	m := startMirror(t, time.Hour, "dist/", "http://"+up.Addr)
	u := newUser(t)
	img, sbom := image(t, u, up.Addr+"/library/app:v1", "hello from distribution")
	ref := m.Addr + "/dist/library/app:v1"

	pullThrough(t, u, ref, img)
	if got := discover(t, u, ref); len(got[sbomType]) != 1 || got[sbomType][0] != sbom {
		t.Errorf("oras discover through the mirror: %v, want the SBOM %s", got, sbom)
	}
	// The referrer itself pulls through the mirror.
	if got := strings.TrimSpace(u.must("crane", "digest", "--insecure", m.Addr+"/dist/library/app@"+sbom)); got != sbom {
		t.Errorf("the SBOM through the mirror: %s", got)
	}
}

// TestFiftyPullsOneFetch has 50 clients pull one 256 MiB blob the mirror lacks, at
// once: the upstream serves it once, and every client gets every byte.
func TestFiftyPullsOneFetch(t *testing.T) {
	const size, clients = 256 << 20, 50
	up := graftest.Start(t)
	m := startMirror(t, time.Hour, "hub/", "http://"+up.Addr)
	blob := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{'g', 'r', 'a', 'f', 't'}), size) }
	h := sha256.New()
	io.Copy(h, blob())
	d := digest.NewDigest(digest.SHA256, h)
	r, err := up.Try(t.Context(), http.MethodPost, "/v2/library/big/blobs/uploads/?digest="+d.String(), blob(),
		"Content-Type", "application/octet-stream")
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("pushing the blob upstream: %v %v", err, r)
	}

	url := m.URL + "/v2/hub/library/big/blobs/" + d.String()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = clients
	tr.DisableCompression = true
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			resp, err := client.Get(url)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			got := "sha256:" + hex.EncodeToString(h.Sum(nil))
			if err != nil || resp.StatusCode != http.StatusOK || n != size || got != d.String() {
				errs <- fmt.Errorf("GET: %d, %d bytes of %s, %v", resp.StatusCode, n, got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d clients pulled %d MiB each through the mirror in %s", clients, size>>20, time.Since(start).Round(time.Millisecond))
	if n := up.Requests(http.MethodGet, "/v2/library/big/blobs/"+d.String()); n != 1 {
		t.Errorf("%d clients made %d upstream fetches of the blob, by its access log; want 1", clients, n)
	}
}

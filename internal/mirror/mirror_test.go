package mirror_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/mirror"
	"github.com/graft-registry/graft/internal/registrytest"
	"github.com/graft-registry/graft/internal/scaletest"
	"github.com/graft-registry/graft/internal/server"
)

// Every test runs a real upstream (graft's own server and stores, in process) and a
// real mirror in front of it, over loopback; the upstream counts the requests it
// answers, as an operator reads them in its access log.

var linux = ocispec.Platform{OS: "linux", Architecture: "amd64"}

// upstream is a registry a mirror fetches from.
type upstream struct {
	*apitest.Client
	hs *httptest.Server
	mu sync.Mutex
	// hits counts the requests answered, by "METHOD path".
	hits map[string]int
	// corrupt, when set, changes a byte of every blob it serves.
	corrupt atomic.Bool
	// gate, when set, holds every blob GET until it is closed.
	gate chan struct{}
	// cut, when set, stops every blob GET halfway through the blob, holds it there
	// until cut is closed, then ends it short.
	cut chan struct{}
}

func startUpstream(t testing.TB, store registrytest.Store) *upstream {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if store == registrytest.Postgres {
		cfg.Metadata.Postgres.URL = scaletest.NewPostgres(t)
	}
	st, err := daemon.Open(t.Context(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := daemon.NewRegistry(st, &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(reg, server.Options{})
	u := &upstream{hits: map[string]int{}}
	u.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits[r.Method+" "+r.URL.Path]++
		u.mu.Unlock()
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			if u.gate != nil {
				<-u.gate
			}
			if u.corrupt.Load() {
				w = &corrupting{ResponseWriter: w}
			}
			if u.cut != nil {
				w = &cutting{ResponseWriter: w, cut: u.cut}
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		u.hs.Close()
		st.Close()
	})
	u.Client = apitest.NewClient(u.hs.URL)
	return u
}

// count returns how many requests of method for path the upstream answered.
func (u *upstream) count(method, path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[method+" "+path]
}

// corrupting changes the first byte of a body.
type corrupting struct {
	http.ResponseWriter
	done bool
}

func (c *corrupting) Write(p []byte) (int, error) {
	if !c.done && len(p) > 0 {
		c.done = true
		q := append([]byte{p[0] ^ 0xff}, p[1:]...)
		return c.ResponseWriter.Write(q)
	}
	return c.ResponseWriter.Write(p)
}

// cutting sends half of a body, then waits for cut to be closed and fails, as an
// upstream that dies mid-blob: the client gets fewer bytes than the Content-Length.
type cutting struct {
	http.ResponseWriter
	cut  <-chan struct{}
	sent int64
}

func (c *cutting) Write(p []byte) (int, error) {
	half, _ := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64)
	half /= 2
	if c.sent+int64(len(p)) > half {
		n, _ := c.ResponseWriter.Write(p[:half-c.sent])
		c.sent += int64(n)
		c.ResponseWriter.(http.Flusher).Flush()
		<-c.cut
		return n, errors.New("the upstream died")
	}
	n, err := c.ResponseWriter.Write(p)
	c.sent += int64(n)
	return n, err
}

// mirrorServer is graft serve's handler with mirrors of up: hub/ with a tag TTL of an
// hour, fresh/ with one that is always over.
type mirrorServer struct {
	*apitest.Client
	log *registrytest.LogBuffer
	// spool is the directory of the blobs being fetched.
	spool string
}

// metric returns the value of the counter line of /metrics that starts with series,
// or -1 when there is no answer. It may run in a goroutine of its own.
func (m *mirrorServer) metric(t testing.TB, series string) float64 {
	r, err := m.Try(t.Context(), http.MethodGet, "/metrics", nil)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

func startMirror(t testing.TB, store registrytest.Store, up *upstream) *mirrorServer {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if store == registrytest.Postgres {
		cfg.Metadata.Postgres.URL = scaletest.NewPostgres(t)
	}
	cfg.Mirrors = &[]config.Mirror{
		{Prefix: "hub/", Upstream: up.hs.URL, TagTTL: time.Hour},
		{Prefix: "fresh/", Upstream: up.hs.URL, TagTTL: time.Nanosecond},
	}
	logs := &registrytest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := daemon.Open(t.Context(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := daemon.NewRegistry(st, &cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	set, err := daemon.NewMirrors(reg, &cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := daemon.Handler(reg, &cfg, nil, log, daemon.Extras{Mirrors: set})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		set.Close()
		st.Close()
		if t.Failed() {
			t.Logf("mirror log:\n%s", logs.String())
		}
	})
	return &mirrorServer{Client: apitest.NewClient(hs.URL), log: logs, spool: daemon.SpoolDir(&cfg)}
}

// pull pulls ref of repo from c as a client does, checking every byte against its
// digest, and returns the manifest's digest.
func pull(t *testing.T, c *apitest.Client, repo, ref string) digest.Digest {
	t.Helper()
	r := c.Want(t, http.StatusOK, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", apitest.AcceptManifests)
	d := digest.FromBytes(r.Body)
	if got := r.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Fatalf("pull %s:%s: Docker-Content-Digest %s, content %s", repo, ref, got, d)
	}
	var m ocispec.Manifest
	apitest.Decode(t, "manifest", r.Body, &m)
	for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		r := c.Want(t, http.StatusOK, http.MethodGet, "/v2/"+repo+"/blobs/"+b.Digest.String(), nil)
		if got := digest.FromBytes(r.Body); got != b.Digest {
			t.Fatalf("pull %s:%s: blob %s has content %s", repo, ref, b.Digest, got)
		}
	}
	return d
}

func TestPullThrough(t *testing.T) {
	for _, store := range registrytest.Stores {
		t.Run(string(store), func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, store)
			m := startMirror(t, store, up)
			img := apitest.NewImage(t, linux, "layer one", "layer two")
			up.PushImage(t, "library/app", "v1", img)

			if got := pull(t, m.Client, "hub/library/app", "v1"); got != img.Desc().Digest {
				t.Fatalf("pulled %s, want %s", got, img.Desc().Digest)
			}
			layer := "/v2/library/app/blobs/" + img.Layers[0].Desc.Digest.String()
			if n := up.count(http.MethodGet, layer); n != 1 {
				t.Errorf("the first pull fetched the layer %d times upstream, want once", n)
			}
			// The second pull, within the tag TTL, asks upstream nothing.
			before := up.snapshot()
			pull(t, m.Client, "hub/library/app", "v1")
			pull(t, m.Client, "hub/library/app", img.Desc().Digest.String())
			if asked := up.since(before); len(asked) > 0 {
				t.Errorf("the second pull asked upstream: %v", asked)
			}
			// A HEAD of a blob the mirror lacks asks upstream, and fetches nothing.
			other := apitest.NewImage(t, linux, "layer three")
			up.PushImage(t, "library/app", "v2", other)
			blob := other.Layers[0].Desc
			r := m.Want(t, http.StatusOK, http.MethodHead, "/v2/hub/library/app/blobs/"+blob.Digest.String(), nil)
			apitest.WantHeader(t, "HEAD", r, "Content-Length", fmt.Sprint(blob.Size))
			if n := up.count(http.MethodGet, "/v2/library/app/blobs/"+blob.Digest.String()); n != 0 {
				t.Errorf("a HEAD fetched the blob")
			}

			// Clients may not change the mirror.
			r = m.Do(t, http.MethodPut, "/v2/hub/library/app/manifests/v3", img.Manifest.Data, "Content-Type", img.Manifest.Desc.MediaType)
			apitest.WantError(t, "push to a mirror", r, http.StatusForbidden, "DENIED")
			if !strings.Contains(string(r.Body), "mirror hub/") {
				t.Errorf("the refusal does not name the mirror: %s", r.Body)
			}
			r = m.Do(t, http.MethodPost, "/v2/hub/library/app/blobs/uploads/", nil)
			apitest.WantError(t, "upload to a mirror", r, http.StatusForbidden, "DENIED")
			r = m.Do(t, http.MethodDelete, "/v2/hub/library/app/manifests/"+img.Desc().Digest.String(), nil)
			apitest.WantError(t, "delete from a mirror", r, http.StatusForbidden, "DENIED")
			// Outside the mirrors, the registry is as ever.
			m.PushImage(t, "team/app", "v1", img)

			r = m.Do(t, http.MethodGet, "/v2/hub/library/absent/manifests/v1", nil)
			apitest.WantError(t, "a manifest upstream lacks", r, http.StatusNotFound, "MANIFEST_UNKNOWN")
			r = m.Do(t, http.MethodGet, "/v2/hub/library/app/blobs/"+digest.FromString("absent").String(), nil)
			apitest.WantError(t, "a blob upstream lacks", r, http.StatusNotFound, "BLOB_UNKNOWN")
		})
	}
}

// snapshot returns how many requests the upstream answered so far, by "METHOD path".
func (u *upstream) snapshot() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return maps.Clone(u.hits)
}

// since returns the requests the upstream answered after snapshot before.
func (u *upstream) since(before map[string]int) []string {
	var out []string
	for k, n := range u.snapshot() {
		for range n - before[k] {
			out = append(out, k)
		}
	}
	return out
}

// TestTagTTL checks that a tag is checked upstream once its TTL is over, and only then.
func TestTagTTL(t *testing.T) {
	up := startUpstream(t, registrytest.SQLite)
	m := startMirror(t, registrytest.SQLite, up)
	one, two := apitest.NewImage(t, linux, "one"), apitest.NewImage(t, linux, "two")
	up.PushImage(t, "library/app", "latest", one)
	for _, repo := range []string{"hub/library/app", "fresh/library/app"} {
		if got := pull(t, m.Client, repo, "latest"); got != one.Desc().Digest {
			t.Fatalf("%s: pulled %s, want %s", repo, got, one.Desc().Digest)
		}
	}
	up.PushImage(t, "library/app", "latest", two)
	if got := pull(t, m.Client, "hub/library/app", "latest"); got != one.Desc().Digest {
		t.Errorf("hub/ (TTL 1h) moved its tag within the TTL: %s", got)
	}
	heads := up.count(http.MethodHead, "/v2/library/app/manifests/latest")
	if got := pull(t, m.Client, "fresh/library/app", "latest"); got != two.Desc().Digest {
		t.Errorf("fresh/ (TTL over) serves %s, want the tag's new manifest %s", got, two.Desc().Digest)
	}
	if n := up.count(http.MethodHead, "/v2/library/app/manifests/latest"); n != heads+1 {
		t.Errorf("checking the tag took %d HEADs, want 1", n-heads)
	}
	// The manifest the tag left stays pullable by digest.
	pull(t, m.Client, "fresh/library/app", one.Desc().Digest.String())
	// A tag that moves back to a manifest the mirror holds costs a HEAD, no fetch.
	up.PushImage(t, "library/app", "latest", one)
	gets := up.count(http.MethodGet, "/v2/library/app/manifests/"+one.Desc().Digest.String())
	if got := pull(t, m.Client, "fresh/library/app", "latest"); got != one.Desc().Digest {
		t.Errorf("fresh/ serves %s, want %s, where the tag moved back to", got, one.Desc().Digest)
	}
	if n := up.count(http.MethodGet, "/v2/library/app/manifests/"+one.Desc().Digest.String()); n != gets {
		t.Errorf("the mirror fetched again a manifest it holds")
	}
}

// TestConcurrentPullsFetchOnce checks that clients asking at once for a blob the
// mirror lacks make one upstream fetch, and all get the blob.
func TestConcurrentPullsFetchOnce(t *testing.T) {
	up := startUpstream(t, registrytest.SQLite)
	m := startMirror(t, registrytest.SQLite, up)
	data := make([]byte, 4<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	d := up.PushBlob(t, "library/big", data)
	path := "/v2/hub/library/big/blobs/" + d.String()

	// The upstream holds the fetch until every other client waits for it.
	up.gate = make(chan struct{})
	const clients = 20
	go func() {
		defer close(up.gate)
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if m.metric(t, `graft_mirror_blob_joins_total{mirror="hub/"}`) == clients-1 {
				return
			}
		}
		t.Errorf("the clients did not all wait for one fetch")
	}()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			var headers []string
			if i%5 == 4 {
				headers = []string{"Range", "bytes=100-"} // a ranged GET waits for the whole
			}
			r, err := m.Try(t.Context(), http.MethodGet, path, nil, headers...)
			switch {
			case err != nil:
				errs <- err
			case len(headers) > 0:
				if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, data[100:]) {
					errs <- fmt.Errorf("ranged GET: %d, %d bytes", r.Status, len(r.Body))
				}
			case r.Status != http.StatusOK || sha256.Sum256(r.Body) != sha256.Sum256(data):
				errs <- fmt.Errorf("GET: %d, %d bytes, not the blob", r.Status, len(r.Body))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := up.count(http.MethodGet, "/v2/library/big/blobs/"+d.String()); n != 1 {
		t.Errorf("%d clients made %d upstream fetches, want 1", clients, n)
	}
}

// TestUpstreamDown checks that what the mirror holds is served when the upstream is
// gone, and that the rest is a clear error.
func TestUpstreamDown(t *testing.T) {
	up := startUpstream(t, registrytest.SQLite)
	m := startMirror(t, registrytest.SQLite, up)
	img, other := apitest.NewImage(t, linux, "kept"), apitest.NewImage(t, linux, "never pulled")
	sbom := apitest.NewReferrer(t, img.Desc(), linux, "sbom")
	up.PushImage(t, "library/app", "v1", img)
	up.PushImage(t, "library/app", other.Desc().Digest.String(), other)
	up.PushImage(t, "library/app", sbom.Desc().Digest.String(), sbom)
	up.PushImage(t, "library/other", "v1", other)
	for _, repo := range []string{"hub/library/app", "fresh/library/app"} {
		pull(t, m.Client, repo, "v1")
		if refs := m.Referrers(t, repo, img.Desc().Digest); len(refs) != 1 || refs[0].Digest != sbom.Desc().Digest {
			t.Fatalf("%s: referrers %v, want the SBOM", repo, refs)
		}
	}
	up.hs.Close()

	// fresh/ must ask upstream about the tag, fails to, and serves what it holds.
	for _, repo := range []string{"hub/library/app", "fresh/library/app"} {
		if got := pull(t, m.Client, repo, "v1"); got != img.Desc().Digest {
			t.Errorf("%s: pulled %s with the upstream down", repo, got)
		}
		if refs := m.Referrers(t, repo, img.Desc().Digest); len(refs) != 1 {
			t.Errorf("%s: referrers %v with the upstream down, want the SBOM", repo, refs)
		}
	}
	r := m.Do(t, http.MethodGet, "/v2/hub/library/other/manifests/v1", nil)
	apitest.WantError(t, "a manifest never pulled", r, http.StatusServiceUnavailable, "UNAVAILABLE")
	if !strings.Contains(string(r.Body), "cannot be reached") {
		t.Errorf("the error does not say why: %s", r.Body)
	}
	r = m.Do(t, http.MethodGet, "/v2/hub/library/app/blobs/"+other.Layers[0].Desc.Digest.String(), nil)
	apitest.WantError(t, "a blob never pulled", r, http.StatusServiceUnavailable, "UNAVAILABLE")
	r = m.Do(t, http.MethodGet, "/v2/hub/library/app/referrers/"+sbom.Desc().Digest.String(), nil)
	apitest.WantError(t, "referrers never asked", r, http.StatusServiceUnavailable, "UNAVAILABLE")
}

// TestReferrers checks that the referrers of a mirrored manifest are upstream's, and
// that a mirror asks again once its TTL is over.
func TestReferrers(t *testing.T) {
	up := startUpstream(t, registrytest.SQLite)
	m := startMirror(t, registrytest.SQLite, up)
	img := apitest.NewImage(t, linux, "app")
	sbom := apitest.NewReferrer(t, img.Desc(), linux, "sbom")
	up.PushImage(t, "library/app", "v1", img)
	up.PushImage(t, "library/app", sbom.Desc().Digest.String(), sbom)

	for _, repo := range []string{"hub/library/app", "fresh/library/app"} {
		refs := m.Referrers(t, repo, img.Desc().Digest)
		if len(refs) != 1 || refs[0].Digest != sbom.Desc().Digest {
			t.Fatalf("%s: referrers %v, want the SBOM", repo, refs)
		}
		// the referrer itself is held, and pulls
		pull(t, m.Client, repo, sbom.Desc().Digest.String())
	}
	sig := apitest.NewReferrer(t, img.Desc(), linux, "signature")
	up.PushImage(t, "library/app", sig.Desc().Digest.String(), sig)
	if refs := m.Referrers(t, "hub/library/app", img.Desc().Digest); len(refs) != 1 {
		t.Errorf("hub/ (TTL 1h) asked again within the TTL: %v", refs)
	}
	if refs := m.Referrers(t, "fresh/library/app", img.Desc().Digest); len(refs) != 2 {
		t.Errorf("fresh/ (TTL over): referrers %v, want the SBOM and the signature", refs)
	}
}

// TestCorruptUpstream checks that a blob the upstream serves wrong is never stored, and
// that the client that streams it gets a failed transfer, not the wrong blob.
func TestCorruptUpstream(t *testing.T) {
	up := startUpstream(t, registrytest.SQLite)
	m := startMirror(t, registrytest.SQLite, up)
	data := bytes.Repeat([]byte("graft "), 200000)
	d := up.PushBlob(t, "library/app", data)
	path := "/v2/hub/library/app/blobs/" + d.String()
	up.corrupt.Store(true)
	r, err := m.Try(t.Context(), http.MethodGet, path, nil)
	if err == nil && r.Status == http.StatusOK && len(r.Body) == len(data) {
		t.Fatalf("the client got every byte of a blob that does not match its digest")
	}
	r = m.Do(t, http.MethodGet, path, nil, "Range", "bytes=0-9")
	apitest.WantError(t, "a blob the upstream serves corrupt", r, http.StatusBadGateway, "UNAVAILABLE")
	up.corrupt.Store(false)
	r = m.Want(t, http.StatusOK, http.MethodGet, path, nil)
	if !bytes.Equal(r.Body, data) {
		t.Errorf("the blob, served right at last, is not the blob")
	}
}

// TestUpstreamDiesMidBlob checks that clients stream a blob as it arrives, that an
// upstream that dies halfway fails every client reading along and leaves nothing
// stored or spooled, and that the next pull fetches the blob again, whole.
func TestUpstreamDiesMidBlob(t *testing.T) {
	up := startUpstream(t, registrytest.SQLite)
	m := startMirror(t, registrytest.SQLite, up)
	data := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{2}).Read(data)
	d := up.PushBlob(t, "library/big", data)
	path := "/v2/library/big/blobs/" + d.String()
	url := m.URL + "/v2/hub" + path[len("/v2"):]

	up.cut = make(chan struct{})
	const clients = 5
	var reading sync.WaitGroup
	reading.Add(clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			started := false
			defer func() {
				if !started {
					reading.Done()
				}
			}()
			resp, err := http.Get(url)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			// A client reads along while the upstream still holds back the rest.
			head := make([]byte, 1<<20)
			if _, err := io.ReadFull(resp.Body, head); err != nil || !bytes.Equal(head, data[:len(head)]) {
				errs <- fmt.Errorf("reading the start of the blob while it is fetched: %v", err)
				return
			}
			started = true
			reading.Done()
			rest, err := io.ReadAll(resp.Body)
			if err == nil && bytes.Equal(append(head, rest...), data) {
				errs <- fmt.Errorf("a client got the whole blob from an upstream that died halfway")
			}
		})
	}
	reading.Wait()
	close(up.cut)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := up.count(http.MethodGet, path); n != 1 {
		t.Errorf("%d clients made %d upstream fetches, want 1", clients, n)
	}
	// Once the fetch has given up, nothing of it is left.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		left, err := os.ReadDir(m.spool)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spool keeps %v", left)
		}
	}
	up.cut = nil
	r := m.Want(t, http.StatusOK, http.MethodGet, "/v2/hub"+path[len("/v2"):], nil)
	if !bytes.Equal(r.Body, data) {
		t.Errorf("the blob pulled after the failure is not the blob")
	}
	if n := up.count(http.MethodGet, path); n != 2 {
		t.Errorf("the pull after the failure made %d upstream fetches in all, want 2: the first stored nothing", n)
	}
}

// TestUpstreamStalls checks that an upstream that stops sending mid-blob, keeping its
// connection open, fails the clients reading along rather than holding them.
func TestUpstreamStalls(t *testing.T) {
	mirror.SetBlobStall(t, 200*time.Millisecond)
	up := startUpstream(t, registrytest.SQLite)
	m := startMirror(t, registrytest.SQLite, up)
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{3}).Read(data)
	d := up.PushBlob(t, "library/app", data)
	path := "/v2/hub/library/app/blobs/" + d.String()
	up.cut = make(chan struct{}) // never closed while the mirror waits
	defer close(up.cut)

	r, err := m.Try(t.Context(), http.MethodGet, path, nil)
	if err == nil && r.Status == http.StatusOK && bytes.Equal(r.Body, data) {
		t.Fatalf("the client got the whole blob from an upstream that stopped halfway")
	}
	// A pull that did not read along gets the error, with its code.
	r = m.Do(t, http.MethodGet, path, nil, "Range", "bytes=0-9")
	apitest.WantError(t, "a blob whose upstream stalls", r, http.StatusGatewayTimeout, "UNAVAILABLE")
	if !strings.Contains(string(r.Body), "stopped sending") {
		t.Errorf("the error does not say why: %s", r.Body)
	}
}

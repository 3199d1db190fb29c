package scaleout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/faultproxy"
	"github.com/graft-registry/graft/internal/graftest"
	"github.com/graft-registry/graft/internal/scaletest"
)

// requestDeadline is how long a client of the fault test waits for any answer. A
// request that meets a dead dependency must be answered 503 well within it; one that
// is not answered by then hung.
const requestDeadline = 60 * time.Second

// TestDependencyFaults puts a fault-injecting proxy in front of PostgreSQL and one in
// front of the S3 server, and has 16 clients push images through three replicas while
// the proxies add latency, reset connections, stop the dependency for a while and hold
// its connections half-open. While a dependency is down, every request that needs it
// is answered 503 UNAVAILABLE naming it, within the request deadline; everything else
// succeeds. Once it is back the replicas recover by themselves (no restart), and every
// push that was acknowledged pulls completely from every replica.
func TestDependencyFaults(t *testing.T) {
	cfg := scaletest.Config(t)
	pgURL, err := url.Parse(cfg.Metadata.Postgres.URL)
	if err != nil {
		t.Fatal(err)
	}
	pg := faultproxy.Start(t, pgURL.Host)
	pgURL.Host = pg.Addr()
	cfg.Metadata.Postgres.URL = pgURL.String()
	s3URL, err := url.Parse(cfg.Storage.S3.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	s3 := faultproxy.Start(t, s3URL.Host)
	cfg.Storage.S3.Endpoint = "http://" + s3.Addr()
	path := filepath.Join(t.TempDir(), "graft.yaml")
	if err := os.WriteFile(path, []byte(scaletest.YAML(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	var rs []*graftest.Server
	for range 3 {
		rs = append(rs, graftest.Start(t, "--config", path))
	}
	f := &faultRun{t: t, base: "http://" + graftest.StartRoundRobin(t, rs...), phases: map[string]*phaseStats{}}
	f.setPhase("steady")

	const pushers = 16
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() { f.pusher(p) })
	}
	defer func() {
		f.stop.Store(true)
		wg.Wait()
	}()

	// Each phase that waits for progress waits for every pusher to have its pushes
	// acknowledged again: however fast the machine, the pushes and the faults overlap.
	f.progress("steady")
	f.setPhase("latency")
	pg.SetLatency(30 * time.Millisecond)
	s3.SetLatency(30 * time.Millisecond)
	f.progress("latency")
	pg.SetLatency(0)
	s3.SetLatency(0)

	f.setPhase("resets")
	for range 3 {
		pg.Reset()
		s3.Reset()
		f.progress("resets")
	}

	for _, fault := range []struct {
		name  string
		proxy *faultproxy.Proxy
		mode  faultproxy.Mode
		hold  time.Duration // past the dependency's timeouts, for a half-open one
		part  string
	}{
		{"postgres down", pg, faultproxy.Down, 5 * time.Second, "metadata store"},
		{"s3 down", s3, faultproxy.Down, 5 * time.Second, "blob store"},
		{"postgres half-open", pg, faultproxy.HalfOpen, 15 * time.Second, "metadata store"},
		{"s3 half-open", s3, faultproxy.HalfOpen, 25 * time.Second, "blob store"},
	} {
		f.setPhase(fault.name)
		fault.proxy.SetMode(fault.mode)
		time.Sleep(fault.hold)
		f.readyz(rs[0], fault.part)
		f.waitFor503(fault.name, fault.part)
		fault.proxy.SetMode(faultproxy.Pass)
		f.setPhase("after " + fault.name)
		f.progress("after " + fault.name)
	}
	f.stop.Store(true)
	wg.Wait()

	for _, name := range f.order {
		s := f.phases[name]
		t.Logf("%-28s %4d requests answered, %3d of them 503 (slowest %v); %d pushes acknowledged", name, s.answered, s.unavailable, s.slowest503.Round(time.Millisecond), s.acked)
		for _, bad := range s.bad {
			t.Errorf("%s: %s", name, bad)
		}
	}
	for _, name := range []string{"steady", "latency", "resets"} {
		if s := f.phases[name]; s.unavailable > 0 && name != "resets" {
			t.Errorf("%s: %d requests answered 503 with every dependency up", name, s.unavailable)
		}
	}

	// Every acknowledged push pulls completely, from every replica.
	f.mu.Lock()
	acked := f.acked
	f.mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no push was acknowledged")
	}
	for _, im := range acked {
		for _, r := range rs {
			checkPull(t, r.URL, im)
		}
	}
	t.Logf("%d acknowledged pushes pull completely from each of %d replicas", len(acked), len(rs))
}

// faultRun is the state of a fault test: the pushers' outcomes, by phase.
type faultRun struct {
	t    *testing.T
	base string
	stop atomic.Bool

	mu     sync.Mutex
	phase  string
	order  []string
	phases map[string]*phaseStats
	acked  []pushedImage
	// pushes counts each pusher's acknowledged pushes.
	pushes [16]int
}

type phaseStats struct {
	answered, unavailable, acked int
	slowest503                   time.Duration
	parts                        map[string]int
	bad                          []string
}

type pushedImage struct {
	repo     string
	manifest digest.Digest
	blobs    map[digest.Digest][]byte
}

var faultClient = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr, Timeout: requestDeadline}
}()

func (f *faultRun) setPhase(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.phase = name
	f.order = append(f.order, name)
	f.phases[name] = &phaseStats{parts: map[string]int{}}
}

func (f *faultRun) stats() *phaseStats { return f.phases[f.phase] }

// progress waits until every pusher has had a push acknowledged since the call: the
// registry works, through every replica. It gives up after a few minutes.
func (f *faultRun) progress(what string) {
	f.t.Helper()
	f.mu.Lock()
	start := f.pushes
	f.mu.Unlock()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		f.mu.Lock()
		behind := 0
		for p := range f.pushes {
			if f.pushes[p] <= start[p] {
				behind++
			}
		}
		f.mu.Unlock()
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: %d pushers had no push acknowledged in 5 minutes", what, behind)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor503 waits until a request of the current phase has been answered 503 naming
// part (the pushers keep asking).
func (f *faultRun) waitFor503(what, part string) {
	f.t.Helper()
	deadline := time.Now().Add(2 * requestDeadline)
	for {
		f.mu.Lock()
		n := f.stats().parts[part]
		f.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Errorf("%s: no request was answered 503 naming the %s", what, part)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readyz checks, where the server has a readiness endpoint, that it says which part is
// down.
func (f *faultRun) readyz(r *graftest.Server, part string) {
	resp, err := faultClient.Get(r.URL + "/readyz")
	if err != nil {
		f.t.Errorf("GET /readyz: %v", err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return // no readiness endpoint
	}
	word := map[string]string{"metadata store": "metadata", "blob store": "blob"}[part]
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(strings.ToLower(string(b)), word) {
		f.t.Errorf("GET /readyz while the %s is down: %d %s", part, resp.StatusCode, b)
	}
}

// request sends one request of a push and reports whether it got status want. A 503
// must be the spec's error body, UNAVAILABLE, naming the store; any other answer, or
// none within the deadline, is recorded as bad.
func (f *faultRun) request(method, target string, body []byte, header map[string]string, want int) (*http.Response, bool) {
	req, err := http.NewRequest(method, f.base+target, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := faultClient.Do(req)
	took := time.Since(start)
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats()
	if err != nil {
		s.bad = append(s.bad, fmt.Sprintf("%s %s: no answer after %v: %v", method, target, took.Round(time.Millisecond), err))
		return nil, false
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.answered++
	switch resp.StatusCode {
	case want:
		return resp, true
	case http.StatusServiceUnavailable:
		var e struct {
			Errors []struct{ Code, Message string }
		}
		json.Unmarshal(b, &e)
		part := ""
		for _, p := range []string{"metadata store", "blob store"} {
			if len(e.Errors) == 1 && strings.Contains(e.Errors[0].Message, p) {
				part = p
			}
		}
		if len(e.Errors) != 1 || e.Errors[0].Code != "UNAVAILABLE" || part == "" {
			s.bad = append(s.bad, fmt.Sprintf("%s %s: 503 %s", method, target, b))
			return nil, false
		}
		s.unavailable++
		s.parts[part]++
		s.slowest503 = max(s.slowest503, took)
		return nil, false
	}
	s.bad = append(s.bad, fmt.Sprintf("%s %s: %d %s, want %d", method, target, resp.StatusCode, clipBytes(b), want))
	return nil, false
}

func clipBytes(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// pusher pushes images until the run stops: blobs monolithic or, every fourth push,
// in a chunked session; then the manifest under a tag. A push that meets a 503 is
// given up and the next one starts.
func (f *faultRun) pusher(p int) {
	repo := fmt.Sprintf("faults/p%d", p%4)
	for n := 0; !f.stop.Load(); n++ {
		config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","pusher":%d,"push":%d}`, p, n))
		layer := bytes.Repeat([]byte(fmt.Sprintf("layer of push %d of pusher %d. ", n, p)), 2000)
		ok := f.monolithic(repo, config)
		if n%4 == 0 {
			ok = ok && f.chunked(repo, layer)
		} else {
			ok = ok && f.monolithic(repo, layer)
		}
		if !ok {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
			Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}}}
		m.SchemaVersion = 2
		b, _ := json.Marshal(m)
		if _, ok := f.request(http.MethodPut, fmt.Sprintf("/v2/%s/manifests/p%d-%d", repo, p, n), b,
			map[string]string{"Content-Type": ocispec.MediaTypeImageManifest}, http.StatusCreated); !ok {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		f.acked = append(f.acked, pushedImage{repo: repo, manifest: digest.FromBytes(b),
			blobs: map[digest.Digest][]byte{digest.FromBytes(config): config, digest.FromBytes(layer): layer}})
		f.pushes[p]++
		f.stats().acked++
		f.mu.Unlock()
	}
}

func (f *faultRun) monolithic(repo string, b []byte) bool {
	_, ok := f.request(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b,
		map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
	return ok
}

func (f *faultRun) chunked(repo string, b []byte) bool {
	resp, ok := f.request(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
	if !ok {
		return false
	}
	loc := resp.Header.Get("Location")
	half := len(b) / 2
	resp, ok = f.request(http.MethodPatch, loc, b[:half], map[string]string{"Content-Type": "application/octet-stream",
		"Content-Range": fmt.Sprintf("0-%d", half-1)}, http.StatusAccepted)
	if !ok {
		return false
	}
	loc = resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	_, ok = f.request(http.MethodPut, loc+sep+"digest="+digest.FromBytes(b).String(), b[half:],
		map[string]string{"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("%d-%d", half, len(b)-1)}, http.StatusCreated)
	return ok
}

// checkPull pulls im from the replica at base: the manifest and each blob, whole.
func checkPull(t *testing.T, base string, im pushedImage) {
	t.Helper()
	get := func(target string) []byte {
		resp, err := faultClient.Get(base + target)
		if err != nil {
			t.Errorf("GET %s: %v", target, err)
			return nil
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s%s: %d %v", base, target, resp.StatusCode, err)
			return nil
		}
		return b
	}
	if b := get("/v2/" + im.repo + "/manifests/" + im.manifest.String()); b != nil && digest.FromBytes(b) != im.manifest {
		t.Errorf("manifest %s@%s reads as %s", im.repo, im.manifest, digest.FromBytes(b))
	}
	for d, want := range im.blobs {
		if b := get("/v2/" + im.repo + "/blobs/" + d.String()); b != nil && !bytes.Equal(b, want) {
			t.Errorf("blob %s of %s@%s: %d bytes that do not match", d, im.repo, im.manifest, len(b))
		}
	}
}

// Package soak runs the embedded deployment under a mixed load for a while, as a night
// of use would, and checks that nothing was lost and nothing leaks: after a warm-up,
// the server's anonymous memory and its open file descriptors come back to where they
// were. It is bounded and off by default: GRAFT_SOAK=10m runs it for ten minutes
// (.ci/run runs it for three).
package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

const (
	workers = 8
	// gcDelay is the server's grace period. A push slower than it may meet
	// MANIFEST_BLOB_UNKNOWN, and uploads its blobs again, as clients do.
	gcDelay = 10 * time.Second
)

func TestSoak(t *testing.T) {
	length, err := time.ParseDuration(os.Getenv("GRAFT_SOAK"))
	if os.Getenv("GRAFT_SOAK") == "" {
		t.Skip("GRAFT_SOAK is not set: GRAFT_SOAK=10m runs the soak test for ten minutes")
	}
	if err != nil || length < time.Minute {
		t.Fatalf("GRAFT_SOAK=%q: want a duration of 1m or more (half of it warms up)", os.Getenv("GRAFT_SOAK"))
	}
	// The server's heap is collected at 10% growth, not Go's default 100%: a quiet
	// reading then measures what the server keeps, not where in its collection cycle
	// the load happened to stop (which alone moves the memory by a third).
	t.Setenv("GOGC", "10")
	srv := graftest.Start(t, "--gc-interval", "3s", "--gc-delay", gcDelay.String())
	s := &soak{t: t, srv: srv}

	// Warm up: the caches and pools fill (each of the database's connections has a
	// page cache and prepared statements of its own, and the less used fill slowly),
	// the database reaches the size the load keeps it at. Then the first reading, and
	// the rest of the run.
	warmUp := length / 2
	s.run(warmUp)
	before := s.quiet("after the warm-up")
	s.run(length - warmUp)
	after := s.quiet("at the end")
	// Back within 10% means back, not at one instant: the Go runtime returns freed
	// pages to the system in the background, over a minute or two, and SQLite's page
	// caches shrink as connections are recycled. Wait for it, bounded.
	for deadline := time.Now().Add(2 * time.Minute); (after.rssAnon > allowed(before, after) || after.fds > before.fds*11/10) && time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
		s.srv.CloseIdleConnections()
		r := s.read()
		after.rssAnon, after.fds, after.db = r.rssAnon, r.fds, r.db
	}

	t.Logf("%d operations: %d pushes, %d attaches, %d pulls, %d deletes, %d pushes uploaded again after a collection",
		s.ops.Load(), s.pushes.Load(), s.attaches.Load(), s.pulls.Load(), s.deletes.Load(), s.retries.Load())
	t.Logf("under load: %s", strings.Join(s.samples, ", "))
	t.Logf("anonymous memory %d KiB after the warm-up (Go heap %d KiB), %d KiB at the end (Go heap %d KiB); open files %d, %d; database %d KiB, %d KiB; collections %d",
		before.rssAnon, before.heap, after.rssAnon, after.heap, before.fds, after.fds, before.db, after.db, after.gcRuns)
	s.mu.Lock()
	for _, err := range s.errs {
		t.Error(err)
	}
	s.mu.Unlock()
	if after.gcRuns <= before.gcRuns {
		t.Errorf("no garbage collection ran after the warm-up (%d, %d)", before.gcRuns, after.gcRuns)
	}
	if after.rssAnon > allowed(before, after) {
		t.Errorf("anonymous memory grew from %d KiB to %d KiB, more than 10%% and the page cache of a database of %d KiB",
			before.rssAnon, after.rssAnon, after.db)
	}
	if after.fds > before.fds*11/10 {
		t.Errorf("open files grew from %d to %d, more than 10%%", before.fds, after.fds)
	}
	s.checkAll()
}

// soak is the load and what it expects of the registry.
type soak struct {
	t   *testing.T
	srv *graftest.Server

	ops, pushes, attaches, pulls, deletes, retries atomic.Int64

	mu   sync.Mutex
	errs []error
	// samples are readings of the server under load, every 10 s.
	samples []string
	// want are the images each worker's tags name, with what hangs under them.
	want [workers]map[string]*image
	seq  [workers]int
}

// image is an image pushed and acknowledged, with the artifacts attached to it.
type image struct {
	manifest  []byte
	blobs     [][]byte
	artifacts [][]byte // manifests whose subject is the image, or the one before
}

func (s *soak) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 50 {
		s.errs = append(s.errs, err)
	}
}

// run runs the workers for d. Each works in a repository of its own, so that what it
// expects is its own to change; garbage collection runs beside them all.
func (s *soak) run(d time.Duration) {
	ctx, cancel := context.WithTimeout(s.t.Context(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { s.worker(ctx, w) })
	}
	// The memory under load, for the log.
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
			r := s.read()
			s.mu.Lock()
			s.samples = append(s.samples, fmt.Sprintf("%d KiB/%d files", r.rssAnon, r.fds))
			s.mu.Unlock()
		}
	})
	wg.Wait()
}

func (s *soak) worker(ctx context.Context, w int) {
	s.mu.Lock()
	if s.want[w] == nil {
		s.want[w] = map[string]*image{}
	}
	want := s.want[w]
	s.mu.Unlock()
	repo := fmt.Sprintf("soak/w%d", w)
	rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		s.ops.Add(1)
		s.mu.Lock()
		s.seq[w]++
		n := s.seq[w]
		s.mu.Unlock()
		tag := fmt.Sprintf("t%d", n%4) // tags move: what they named before is garbage
		var err error
		switch op := rng.IntN(10); {
		case op < 4:
			var im *image
			if im, err = s.pushImage(repo, tag, n, rng); err == nil {
				s.set(want, tag, im)
				s.pushes.Add(1)
			}
		case op < 6:
			if im := s.pick(want, rng); im != nil {
				err = s.attach(repo, im, n)
				s.attaches.Add(1)
			}
		case op < 9:
			if tag, im := s.pickTag(want, rng); im != nil {
				err = s.pull(repo, tag, im)
				s.pulls.Add(1)
			}
		default:
			if tag, im := s.pickTag(want, rng); im != nil {
				err = s.delete(repo, tag, im, want)
				s.deletes.Add(1)
			}
		}
		// Requests run on the test's context, not ctx: the last operation completes, and
		// its failure counts as any other.
		if err != nil {
			s.fail(fmt.Errorf("worker %d: %w", w, err))
		}
	}
}

func (s *soak) set(want map[string]*image, tag string, im *image) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want[tag] = im
}

func (s *soak) pick(want map[string]*image, rng *rand.Rand) *image {
	_, im := s.pickTag(want, rng)
	return im
}

func (s *soak) pickTag(want map[string]*image, rng *rand.Rand) (string, *image) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(want) == 0 {
		return "", nil
	}
	k := rng.IntN(len(want))
	for tag, im := range want {
		if k == 0 {
			return tag, im
		}
		k--
	}
	return "", nil
}

// do sends a request and checks its status.
func (s *soak) do(method, target string, body []byte, want int, headers ...string) (*apitest.Response, error) {
	r, err := s.srv.Try(s.t.Context(), method, target, bytes.NewReader(body), headers...)
	if err != nil {
		return nil, err
	}
	if r.Status != want {
		return r, fmt.Errorf("%s %s: %s, want %d", method, target, r, want)
	}
	return r, nil
}

// pushManifest pushes the blobs, then the manifest under ref; on MANIFEST_BLOB_UNKNOWN
// (a collection took a blob it saw unused for the grace period) it uploads them again,
// for two minutes at most.
func (s *soak) pushManifest(repo, ref, mediaType string, manifest []byte, blobs [][]byte) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, b := range blobs {
			if _, err := s.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b,
				http.StatusCreated, "Content-Type", "application/octet-stream"); err != nil {
				return err
			}
		}
		r, err := s.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, manifest, http.StatusCreated, "Content-Type", mediaType)
		if err != nil && r != nil && r.Status == http.StatusBadRequest && bytes.Contains(r.Body, []byte("MANIFEST_BLOB_UNKNOWN")) && time.Now().Before(deadline) {
			s.retries.Add(1)
			continue
		}
		return err
	}
}

func (s *soak) pushImage(repo, tag string, n int, rng *rand.Rand) (*image, error) {
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","repo":%q,"n":%d}`, repo, n))
	size := 1 << (10 + rng.IntN(10)) // 1 KiB to 512 KiB
	layer := bytes.Repeat([]byte(fmt.Sprintf("%s %d ", repo, n)), size/8+1)[:size]
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}}}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	if err := s.pushManifest(repo, tag, ocispec.MediaTypeImageManifest, b, [][]byte{config, layer}); err != nil {
		return nil, err
	}
	return &image{manifest: b, blobs: [][]byte{config, layer}}, nil
}

// attach attaches an SBOM to im and a signature to the SBOM, by subject.
func (s *soak) attach(repo string, im *image, n int) error {
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(im.manifest), Size: int64(len(im.manifest))}
	for _, kind := range []string{"application/spdx+json", "application/vnd.dev.cosign.artifact.sig.v1+json"} {
		payload := []byte(fmt.Sprintf(`{"kind":%q,"of":%q,"n":%d}`, kind, subject.Digest, n))
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: kind, Config: ocispec.DescriptorEmptyJSON,
			Layers:  []ocispec.Descriptor{{MediaType: kind, Digest: digest.FromBytes(payload), Size: int64(len(payload))}},
			Subject: &subject}
		m.SchemaVersion = 2
		b, _ := json.Marshal(m)
		if err := s.pushManifest(repo, digest.FromBytes(b).String(), ocispec.MediaTypeImageManifest, b,
			[][]byte{ocispec.DescriptorEmptyJSON.Data, payload}); err != nil {
			return err
		}
		s.mu.Lock()
		im.artifacts = append(im.artifacts, b)
		s.mu.Unlock()
		subject = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}
	}
	return nil
}

// pull pulls what tag names, whole, and the artifacts attached to it.
func (s *soak) pull(repo, tag string, im *image) error {
	r, err := s.do(http.MethodGet, "/v2/"+repo+"/manifests/"+tag, nil, http.StatusOK, "Accept", ocispec.MediaTypeImageManifest)
	if err != nil {
		return err
	}
	if !bytes.Equal(r.Body, im.manifest) {
		return fmt.Errorf("%s:%s names %s, want %s", repo, tag, digest.FromBytes(r.Body), digest.FromBytes(im.manifest))
	}
	s.mu.Lock()
	manifests := append([][]byte{im.manifest}, im.artifacts...)
	blobs := slicesClone(im.blobs)
	s.mu.Unlock()
	for _, m := range manifests {
		r, err := s.do(http.MethodGet, "/v2/"+repo+"/manifests/"+digest.FromBytes(m).String(), nil, http.StatusOK)
		if err != nil {
			return err
		}
		if !bytes.Equal(r.Body, m) {
			return fmt.Errorf("manifest %s of %s reads otherwise", digest.FromBytes(m), repo)
		}
		var v ocispec.Manifest
		json.Unmarshal(m, &v)
		for _, d := range append([]ocispec.Descriptor{v.Config}, v.Layers...) {
			r, err := s.do(http.MethodGet, "/v2/"+repo+"/blobs/"+d.Digest.String(), nil, http.StatusOK)
			if err != nil {
				return err
			}
			if digest.FromBytes(r.Body) != d.Digest {
				return fmt.Errorf("blob %s of %s reads as %s", d.Digest, repo, digest.FromBytes(r.Body))
			}
		}
	}
	for _, b := range blobs {
		if _, err := s.do(http.MethodHead, "/v2/"+repo+"/blobs/"+digest.FromBytes(b).String(), nil, http.StatusOK); err != nil {
			return err
		}
	}
	return nil
}

func slicesClone(b [][]byte) [][]byte { return append([][]byte(nil), b...) }

// delete deletes the image tag names, by digest: the cascade takes its artifacts.
func (s *soak) delete(repo, tag string, im *image, want map[string]*image) error {
	d := digest.FromBytes(im.manifest)
	s.mu.Lock()
	for t, other := range want {
		if other == im || digest.FromBytes(other.manifest) == d {
			delete(want, t)
		}
	}
	s.mu.Unlock()
	if _, err := s.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+d.String(), nil, http.StatusAccepted); err != nil {
		return err
	}
	_, err := s.do(http.MethodGet, "/v2/"+repo+"/manifests/"+d.String(), nil, http.StatusNotFound)
	return err
}

// checkAll pulls everything every worker expects.
func (s *soak) checkAll() {
	n := 0
	for w := range workers {
		for tag, im := range s.want[w] {
			if err := s.pull(fmt.Sprintf("soak/w%d", w), tag, im); err != nil {
				s.t.Error(err)
			}
			n++
		}
	}
	s.t.Logf("%d tagged images, and what is attached to them, pull whole", n)
}

// reading is the server's state when it is quiet.
type reading struct {
	rssAnon int64 // KiB
	fds     int
	gcRuns  int
	heap    int64 // KiB of Go heap in use, of rssAnon, for the log
	db      int64 // KiB of the metadata database's files
}

// writerCache is the page cache of the SQLite store's writer, in KiB (its cache_size):
// memory that fills with the database as the database grows, up to this much.
const writerCache = 16 << 10

// allowed is how much anonymous memory a server that read before may hold at after and
// leak nothing: 10% more, and what its writer's page cache may have taken in since. That
// cache fills with the pages the writes touch, up to the database's size or its cap,
// and how full it was at the first reading is not known: a leak smaller than the
// database passes a short run, and shows in a longer one (GRAFT_SOAK=10m).
func allowed(before, after reading) int64 {
	return before.rssAnon*11/10 + min(after.db, writerCache)
}

// quiet lets the server settle with no load, the same way each time, and reads its
// anonymous memory and open files: the client's idle connections are closed, two
// garbage collections pass (what the load left behind is collected), and the memory
// is read once it stops falling.
func (s *soak) quiet(when string) reading {
	s.t.Helper()
	s.srv.CloseIdleConnections()
	runs := s.gcRuns()
	deadline := time.Now().Add(5 * time.Minute)
	for s.gcRuns() < runs+2 {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: no garbage collection ran in 5 minutes", when)
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.srv.CloseIdleConnections() // the metrics requests'
	var r reading
	prev := int64(-1)
	for range 60 {
		time.Sleep(time.Second)
		r = s.read()
		if prev >= 0 && r.rssAnon >= prev-prev/100 {
			break
		}
		prev = r.rssAnon
	}
	r.gcRuns = s.gcRuns()
	r.heap = int64(s.metric("go_memstats_heap_inuse_bytes")) / 1024
	s.srv.CloseIdleConnections()
	return r
}

func (s *soak) read() reading {
	s.t.Helper()
	pid := s.srv.PID()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	var r reading
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			r.rssAnon, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		s.t.Fatal(err)
	}
	r.fds = len(fds)
	for _, name := range []string{"graft.db", "graft.db-wal"} {
		if fi, err := os.Stat(filepath.Join(s.srv.DataDir, name)); err == nil {
			r.db += fi.Size() >> 10
		}
	}
	return r
}

// gcRuns is how many garbage collections the server ran, from its metrics.
func (s *soak) gcRuns() int {
	return int(s.metric(`graft_gc_runs_total{outcome="ok"}`))
}

// metric is the value of the server's metric series named, or 0.
func (s *soak) metric(series string) float64 {
	s.t.Helper()
	r, err := s.srv.Try(s.t.Context(), http.MethodGet, "/metrics", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	for line := range strings.Lines(string(r.Body)) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n
		}
	}
	return 0
}

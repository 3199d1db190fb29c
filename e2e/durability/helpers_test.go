// Package durability holds end-to-end tests of what graft keeps when things go wrong:
// a process killed at any moment, bad or truncated input, concurrent writers, restarts
// and expiring upload sessions. Every test drives a real `graft serve` over raw
// net/http, so that each request and answer is visible.
package durability

import (
	"bufio"
	"context"
	_ "crypto/sha512" // the blob store names sha384 and sha512 blobs too
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

// pollTimeout bounds how long a test waits for a condition it polls. It is generous:
// the tests may run under the race detector on a loaded machine.
const pollTimeout = 90 * time.Second

// api checks what a server answers and keeps, on behalf of the tests.
type api struct {
	srv *graftest.Server
}

func newAPI(s *graftest.Server) *api { return &api{srv: s} }

// close drops the idle connections to the server, which a kill left dead.
func (a *api) close() { a.srv.CloseIdleConnections() }

// checkError reports, without stopping the test, whether r is the spec's error answer
// with status and code (see apitest.CheckError), and whether it leaks anything of the
// server's insides.
func (a *api) checkError(t testing.TB, what string, r *apitest.Response, status int, code string) bool {
	t.Helper()
	return apitest.CheckError(t, what, r, status, code) && a.checkNoLeak(t, what, r)
}

// wantError is checkError that stops the test.
func (a *api) wantError(t testing.TB, what string, r *apitest.Response, status int, code string) {
	t.Helper()
	if !a.checkError(t, what, r, status, code) {
		t.FailNow()
	}
}

// leaks are texts that only an internal error would put in an answer.
var leaks = []string{"open ", "no such file", "blobstore:", "metastore:", "sqlite", "goroutine ", "panic"}

// checkNoLeak reports whether r's body is free of file paths and Go error text.
func (a *api) checkNoLeak(t testing.TB, what string, r *apitest.Response) bool {
	t.Helper()
	body := string(r.Body)
	if strings.Contains(body, a.srv.DataDir) {
		t.Errorf("%s: the answer shows the data directory: %s", what, r)
		return false
	}
	for _, l := range leaks {
		if strings.Contains(strings.ToLower(body), l) {
			t.Errorf("%s: the answer holds %q: %s", what, l, r)
			return false
		}
	}
	return true
}

// checkNoPanic fails the test if the server logged a panic.
func checkNoPanic(t testing.TB, s *graftest.Server) {
	t.Helper()
	for _, line := range strings.Split(s.Log(), "\n") {
		if strings.Contains(strings.ToLower(line), "panic") {
			t.Errorf("the server logged a panic: %s", line)
		}
	}
}

// checkAlive fails the test unless the server answers the base endpoint.
func (a *api) checkAlive(t testing.TB) {
	t.Helper()
	r, err := a.srv.Try(context.Background(), http.MethodGet, "/v2/", nil)
	if err != nil {
		t.Fatalf("the server stopped answering: %v\n%s", err, a.srv.Log())
	}
	apitest.WantStatus(t, "GET /v2/", r, http.StatusOK)
}

// uploadEnd parses an upload's Range header ("0-<last byte>") and returns the number of
// bytes it says the upload holds. "0-0" is both an empty upload and a one-byte one, as
// in distribution; ambiguous reports that.
func uploadEnd(rng string) (size int64, ambiguous bool, err error) {
	first, last, ok := strings.Cut(strings.TrimPrefix(rng, "bytes="), "-")
	if !ok || first != "0" {
		return 0, false, fmt.Errorf("malformed upload Range %q", rng)
	}
	end, err := strconv.ParseInt(last, 10, 64)
	if err != nil || end < 0 {
		return 0, false, fmt.Errorf("malformed upload Range %q", rng)
	}
	if end == 0 {
		return 0, true, nil
	}
	return end + 1, false, nil
}

// patch appends chunk at offset start of the upload at loc and checks the answer.
func (a *api) patch(t testing.TB, loc string, start int64, chunk []byte) *apitest.Response {
	t.Helper()
	end := start + int64(len(chunk)) - 1
	r := a.srv.Do(t, http.MethodPatch, loc, chunk, "Content-Type", "application/octet-stream",
		"Content-Range", fmt.Sprintf("%d-%d", start, end))
	apitest.WantStatus(t, "PATCH upload", r, http.StatusAccepted)
	if got := r.Header.Get("Range"); got != apitest.UploadRange(end+1) {
		t.Fatalf("PATCH upload: Range %q, want %q", got, apitest.UploadRange(end+1))
	}
	return r
}

// uploadStatus returns the Range an upload reports.
func (a *api) uploadStatus(t testing.TB, loc string) string {
	t.Helper()
	r := a.srv.Do(t, http.MethodGet, loc, nil)
	apitest.WantStatus(t, "GET upload status", r, http.StatusNoContent)
	return r.Header.Get("Range")
}

// checkBlob checks that repo serves data as its blob: HEAD gives its size and digest,
// GET its bytes.
func (a *api) checkBlob(t testing.TB, repo string, data []byte) bool {
	t.Helper()
	d := digest.FromBytes(data)
	path := "/v2/" + repo + "/blobs/" + d.String()
	r, err := a.srv.Try(context.Background(), http.MethodHead, path, nil)
	if err != nil {
		t.Errorf("HEAD %s: %v", path, err)
		return false
	}
	if r.Status != http.StatusOK || r.Header.Get("Content-Length") != strconv.Itoa(len(data)) ||
		r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("HEAD %s: got %s, want 200 with Content-Length %d", path, r, len(data))
		return false
	}
	r, err = a.srv.Try(context.Background(), http.MethodGet, path, nil)
	if err != nil {
		t.Errorf("GET %s: %v", path, err)
		return false
	}
	if r.Status != http.StatusOK {
		t.Errorf("GET %s: got %s", path, r)
		return false
	}
	if got := digest.FromBytes(r.Body); got != d {
		t.Errorf("GET %s: %d bytes that hash to %s", path, len(r.Body), got)
		return false
	}
	return true
}

// checkNoBlob checks that repo does not serve blob d.
func (a *api) checkNoBlob(t testing.TB, repo string, d digest.Digest) {
	t.Helper()
	path := "/v2/" + repo + "/blobs/" + d.String()
	r := a.srv.Do(t, http.MethodGet, path, nil)
	a.checkError(t, "GET "+path, r, http.StatusNotFound, "BLOB_UNKNOWN")
}

// putManifest pushes body as manifest ref of repo, tagged with tags too.
func (a *api) putManifest(t testing.TB, repo, ref, mediaType string, body []byte, tags ...string) digest.Digest {
	t.Helper()
	path := "/v2/" + repo + "/manifests/" + ref
	for i, tag := range tags {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		path += sep + "tag=" + url.QueryEscape(tag)
	}
	r := a.srv.Do(t, http.MethodPut, path, body, "Content-Type", mediaType)
	apitest.WantStatus(t, "PUT "+path, r, http.StatusCreated)
	d := digest.FromBytes(body)
	if r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("PUT %s: Docker-Content-Digest %q, want %s", path, r.Header.Get("Docker-Content-Digest"), d)
	}
	return d
}

// getManifest fetches manifest ref of repo and checks that its bytes hash to the
// digest the server names; it returns nil for MANIFEST_UNKNOWN.
func (a *api) getManifest(t testing.TB, repo, ref string) *apitest.Response {
	t.Helper()
	path := "/v2/" + repo + "/manifests/" + ref
	r := a.srv.Do(t, http.MethodGet, path, nil, "Accept", apitest.AcceptManifests)
	if r.Status == http.StatusNotFound {
		a.checkError(t, "GET "+path, r, http.StatusNotFound, "MANIFEST_UNKNOWN")
		return nil
	}
	apitest.WantStatus(t, "GET "+path, r, http.StatusOK)
	if got, named := digest.FromBytes(r.Body), r.Header.Get("Docker-Content-Digest"); got.String() != named {
		t.Errorf("GET %s: the bytes hash to %s, the server says %s", path, got, named)
	}
	if strings.Contains(ref, ":") && digest.FromBytes(r.Body).String() != ref {
		t.Errorf("GET %s: the bytes hash to %s", path, digest.FromBytes(r.Body))
	}
	return r
}

// imageConfig is an image config that names a platform; nonce makes it unique.
func imageConfig(nonce string) []byte {
	b, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{}},
		"config":       map[string]any{"Labels": map[string]string{"nonce": nonce}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// blobFiles walks dataDir/blobs, checks that every file there is a complete blob
// (its bytes hash to the digest its path names) and that nothing else is there, and
// returns the blobs with their sizes.
func blobFiles(t testing.TB, dataDir string) map[digest.Digest]int64 {
	t.Helper()
	root := filepath.Join(dataDir, "blobs")
	out := map[digest.Digest]int64{}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if rel == "." {
			return nil
		}
		if e.IsDir() {
			if len(parts) > 2 || len(parts) == 1 && !digest.Algorithm(parts[0]).Available() ||
				len(parts) == 2 && len(parts[1]) != 2 {
				t.Errorf("unexpected directory in the blob store: %s", rel)
				return fs.SkipDir
			}
			return nil
		}
		if len(parts) != 3 || !e.Type().IsRegular() {
			t.Errorf("unexpected file in the blob store: %s", rel)
			return nil
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
		if d.Validate() != nil || !strings.HasPrefix(parts[2], parts[1]) {
			t.Errorf("unexpected file in the blob store: %s", rel)
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		v := d.Verifier()
		n, err := io.Copy(v, f)
		if err != nil {
			return err
		}
		if !v.Verified() {
			t.Errorf("blob file %s: its %d bytes do not hash to %s", rel, n, d)
		}
		out[d] = n
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("walking the blob store: %v", err)
	}
	return out
}

// uploadDirs lists the sessions under dataDir/uploads.
func uploadDirs(t testing.TB, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "uploads"))
	if err != nil {
		t.Fatalf("reading the uploads directory: %v", err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// checkDataDirLayout fails the test if dataDir holds anything besides the blob store,
// the upload sessions, the database and graft serve's lock.
func checkDataDirLayout(t testing.TB, dataDir string) {
	t.Helper()
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatalf("reading the data directory: %v", err)
	}
	for _, e := range entries {
		switch e.Name() {
		case "blobs", "uploads", "graft.db", "graft.db-wal", "graft.db-shm", "graft.db-journal", "graft.lock":
		default:
			t.Errorf("unexpected entry in the data directory: %s", e.Name())
		}
	}
}

// snapshot is what a test checks a bad request did not change.
type snapshot struct {
	repos   []string
	blobs   map[digest.Digest]int64
	uploads []string
}

func (a *api) snapshot(t testing.TB) snapshot {
	t.Helper()
	return snapshot{repos: a.srv.Catalog(t), blobs: blobFiles(t, a.srv.DataDir), uploads: uploadDirs(t, a.srv.DataDir)}
}

// checkUnchanged fails the test if the catalog, the blob store or (with uploads set)
// the upload sessions differ from before, or the data directory holds anything new.
func (a *api) checkUnchanged(t testing.TB, what string, before snapshot, uploads bool) {
	t.Helper()
	after := a.snapshot(t)
	if !slices.Equal(before.repos, after.repos) {
		t.Errorf("%s: the catalog changed from %q to %q", what, before.repos, after.repos)
	}
	if len(before.blobs) != len(after.blobs) {
		t.Errorf("%s: the blob store changed from %v to %v", what, before.blobs, after.blobs)
	}
	for d := range after.blobs {
		if _, ok := before.blobs[d]; !ok {
			t.Errorf("%s: blob %s appeared in the blob store", what, d)
		}
	}
	if uploads && !slices.Equal(before.uploads, after.uploads) {
		t.Errorf("%s: the upload sessions changed from %q to %q", what, before.uploads, after.uploads)
	}
	checkDataDirLayout(t, a.srv.DataDir)
}

// rawExchange sends head (a request line and headers, without the blank line that ends
// them) and then body over a connection of its own, half-closes it when cut is set
// (the server sees the body end early), and returns what the server answered. The
// server has finished with the request when it returns: it closed the connection or
// answered in full.
func rawExchange(t testing.TB, addr, head string, body io.Reader, cut bool) (*apitest.Response, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(pollTimeout))
	written := make(chan error, 1)
	go func() {
		_, err := io.WriteString(conn, head+"\r\n\r\n")
		if err == nil {
			_, err = io.Copy(conn, body)
		}
		if cut {
			conn.(*net.TCPConn).CloseWrite()
		}
		written <- err
	}()
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		<-written
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if cut {
		// The server closes a connection whose request body ended early: wait for
		// that, so that the handler is done when the caller looks.
		io.Copy(io.Discard, br)
	}
	method, target, _ := strings.Cut(head, " ")
	target, _, _ = strings.Cut(target, " ")
	return &apitest.Response{Method: method, URL: target, Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// seed returns the seed of a randomized test: the value of the environment variable
// env, else the time.
func seed(t testing.TB, env string) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv(env); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", env, v, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", s, env, s)
	return s
}

// randomBytes returns n bytes from rng.
func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, n); j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return b
}

// poll calls cond until it returns true, failing the test after pollTimeout.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %v", what, pollTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pacedReader yields data in small pieces, waiting between them, and stops at hold
// until release is closed, so that a request can be caught in the middle of its body.
type pacedReader struct {
	data    []byte
	off     int
	piece   int
	pause   time.Duration
	hold    int           // offset at which to wait for release
	reached chan struct{} // closed when hold is reached
	release chan struct{}
	held    bool
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.off >= len(p.data) {
		return 0, io.EOF
	}
	if p.off == p.hold && !p.held {
		p.held = true
		close(p.reached)
		<-p.release
	}
	end := min(p.off+p.piece, len(p.data), p.off+len(b))
	if p.off < p.hold {
		end = min(end, p.hold)
	}
	time.Sleep(p.pause)
	n := copy(b, p.data[p.off:end])
	p.off += n
	return n, nil
}

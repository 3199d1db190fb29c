package durability

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

// TestUploadSurvivesRestart opens an upload session, writes to it, restarts the
// server (gracefully, then killed), and finishes the upload from where the server says
// it stands.
func TestUploadSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*graftest.Server)
	}{
		{"SIGTERM", (*graftest.Server).Stop},
		{"SIGKILL", (*graftest.Server).Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := graftest.Start(t)
			a := newAPI(s)
			data := randomBytes(rand.New(rand.NewPCG(3, 3)), 300<<10)
			loc := a.srv.StartUpload(t, "life")
			a.patch(t, loc, 0, data[:100<<10])
			before := a.uploadStatus(t, loc)

			tc.stop(s)
			if tc.name == "SIGTERM" && s.ExitCode() != 0 {
				t.Errorf("graft serve exited with %d after SIGTERM", s.ExitCode())
			}
			a.close()
			s.Restart()
			a = newAPI(s)
			defer a.close()

			r := a.srv.Do(t, http.MethodGet, loc, nil)
			apitest.WantStatus(t, "GET upload status after the restart", r, http.StatusNoContent)
			if got := r.Header.Get("Range"); got != before {
				t.Fatalf("after the restart the upload holds %q, before it held %q", got, before)
			}
			if got := r.Header.Get("Location"); got != loc {
				t.Errorf("after the restart the upload's Location is %q, want %q", got, loc)
			}
			a.patch(t, loc, 100<<10, data[100<<10:200<<10])
			r = a.srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", digest.FromBytes(data).String()), data[200<<10:],
				"Content-Type", "application/octet-stream")
			apitest.WantStatus(t, "PUT with the last chunk", r, http.StatusCreated)
			a.checkBlob(t, "life", data)
			if dirs := uploadDirs(t, s.DataDir); len(dirs) != 0 {
				t.Errorf("upload sessions left behind: %q", dirs)
			}
			checkNoPanic(t, s)
		})
	}
}

// TestStaleUploadsExpire leaves a session unwritten for longer than the upload TTL:
// the janitor reclaims it, its status is BLOB_UPLOAD_UNKNOWN and its bytes are gone.
func TestStaleUploadsExpire(t *testing.T) {
	s := graftest.Start(t, "--uploads-ttl=2s")
	a := newAPI(s)
	defer a.close()
	loc := a.srv.StartUpload(t, "stale")
	a.patch(t, loc, 0, []byte("bytes nobody will ever commit"))
	dir := filepath.Join(s.DataDir, "uploads", loc[strings.LastIndexByte(loc, '/')+1:])
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the session's directory: %v", err)
	}
	poll(t, "the stale session is reclaimed", func() bool {
		return a.srv.Do(t, http.MethodGet, loc, nil).Status == http.StatusNotFound
	})
	a.wantError(t, "GET a reclaimed session", a.srv.Do(t, http.MethodGet, loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	poll(t, "the stale session's directory is removed", func() bool {
		_, err := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist)
	})
	r := a.srv.Do(t, http.MethodPatch, loc, []byte("more"), "Content-Range", "29-32")
	a.wantError(t, "PATCH a reclaimed session", r, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	r = a.srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", digest.FromBytes([]byte("x")).String()), []byte("x"))
	a.wantError(t, "PUT a reclaimed session", r, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	checkNoPanic(t, s)
}

// TestOrphanUploadReclaimed kills the server in the middle of a monolithic upload,
// which leaves bytes under uploads/ that no session record names: after the restart
// the janitor reclaims them.
func TestOrphanUploadReclaimed(t *testing.T) {
	s := graftest.Start(t, "--uploads-ttl=2s")
	a := newAPI(s)
	data := randomBytes(rand.New(rand.NewPCG(4, 4)), 256<<10)
	body := &pacedReader{data: data, piece: 16 << 10, hold: 128 << 10,
		reached: make(chan struct{}), release: make(chan struct{})}
	var release sync.Once
	defer release.Do(func() { close(body.release) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.srv.Try(context.Background(), http.MethodPost, "/v2/orphan/blobs/uploads/?digest="+digest.FromBytes(data).String(), body)
	}()
	<-body.reached
	poll(t, "the upload reaches the blob store", func() bool { return len(uploadDirs(t, s.DataDir)) == 1 })
	s.Kill()
	release.Do(func() { close(body.release) })
	<-done
	a.close()

	s.Restart()
	a = newAPI(s)
	defer a.close()
	poll(t, "the orphaned upload is reclaimed", func() bool { return len(uploadDirs(t, s.DataDir)) == 0 })
	a.checkNoBlob(t, "orphan", digest.FromBytes(data))
	if files := blobFiles(t, s.DataDir); len(files) != 0 {
		t.Errorf("the blob store holds %v", files)
	}
	checkNoPanic(t, s)
}

// TestActiveUploadNotExpired writes to a session in one PATCH that streams for longer
// than the upload TTL. The session is written to all along, so it is not stale: once
// the PATCH is acknowledged, the session holds its bytes and can be committed.
//
// A second session, opened just after and never written, is the control: the janitor
// reclaims stale sessions oldest first, so once the control is gone the janitor has
// made up its mind about the active one.
func TestActiveUploadNotExpired(t *testing.T) {
	s := graftest.Start(t, "--uploads-ttl=2s")
	a := newAPI(s)
	defer a.close()
	data := randomBytes(rand.New(rand.NewPCG(5, 5)), 48<<10)
	loc := a.srv.StartUpload(t, "active")
	control := a.srv.StartUpload(t, "active")
	// About 5 s: more than twice the TTL.
	body := &pacedReader{data: data, piece: 1 << 10, pause: 100 * time.Millisecond, hold: -1}
	r, err := a.srv.Try(context.Background(), http.MethodPatch, loc, body, "Content-Type", "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	apitest.WantStatus(t, "slow PATCH", r, http.StatusAccepted)
	if got := r.Header.Get("Range"); got != apitest.UploadRange(int64(len(data))) {
		t.Fatalf("slow PATCH: Range %q", got)
	}
	poll(t, "the idle control session is reclaimed", func() bool {
		return a.srv.Do(t, http.MethodGet, control, nil).Status == http.StatusNotFound
	})
	r = a.srv.Do(t, http.MethodGet, loc, nil)
	if r.Status != http.StatusNoContent || r.Header.Get("Range") != apitest.UploadRange(int64(len(data))) {
		t.Fatalf("a session whose PATCH was just acknowledged answers %s, want 204 with Range %q: "+
			"the janitor reclaimed it while it was being written", r, apitest.UploadRange(int64(len(data))))
	}
	apitest.WantStatus(t, "PUT", a.srv.Do(t, http.MethodPut, apitest.WithQuery(loc, "digest", digest.FromBytes(data).String()), nil), http.StatusCreated)
	a.checkBlob(t, "active", data)
	checkNoPanic(t, s)
}

// TestGracefulShutdown sends SIGTERM while a large upload streams: the server stops
// taking connections at once, lets the upload finish with 201, and exits 0; the blob
// is intact after a restart.
func TestGracefulShutdown(t *testing.T) {
	s := graftest.Start(t, "--shutdown-timeout=120s")
	a := newAPI(s)
	data := randomBytes(rand.New(rand.NewPCG(6, 6)), 4<<20)
	d := digest.FromBytes(data)
	// About 2 s in all, held in the middle until the test has seen the listener
	// closed.
	body := &pacedReader{data: data, piece: 64 << 10, pause: 30 * time.Millisecond, hold: 2 << 20,
		reached: make(chan struct{}), release: make(chan struct{})}
	var release sync.Once
	defer release.Do(func() { close(body.release) })

	type result struct {
		r   *apitest.Response
		err error
	}
	uploaded := make(chan result, 1)
	go func() {
		r, err := a.srv.Try(context.Background(), http.MethodPost, "/v2/slow/blobs/uploads/?digest="+d.String(), body,
			"Content-Type", "application/octet-stream")
		uploaded <- result{r, err}
	}()
	<-body.reached

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.Stop()
	}()
	poll(t, "the server begins to shut down", func() bool { return strings.Contains(s.Log(), "shutting down") })
	poll(t, "new connections are refused", func() bool {
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case res := <-uploaded:
		t.Fatalf("the upload ended before the end of its body: %v %v", res.r, res.err)
	default:
	}
	release.Do(func() { close(body.release) })

	res := <-uploaded
	if res.err != nil {
		t.Fatalf("the upload in flight at SIGTERM failed: %v", res.err)
	}
	apitest.WantStatus(t, "the upload in flight at SIGTERM", res.r, http.StatusCreated)
	<-stopped
	if code := s.ExitCode(); code != 0 {
		t.Errorf("graft serve exited with %d after SIGTERM", code)
	}
	a.close()

	s.Restart()
	a = newAPI(s)
	defer a.close()
	a.checkBlob(t, "slow", data)
	if dirs := uploadDirs(t, s.DataDir); len(dirs) != 0 {
		t.Errorf("upload sessions left behind: %q", dirs)
	}
	checkNoPanic(t, s)
}

//go:build linux

package server_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/registrytest"
)

// smallDisk mounts a tmpfs of size bytes for the test, or skips it where this process
// may not mount one.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("mounting a %s tmpfs needs root (CAP_SYS_ADMIN): %v", size, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the tmpfs: %v", err)
		}
	})
	return dir
}

// fill leaves about left bytes free on the file system of dir, with a file it returns.
func fill(t *testing.T, dir string, left int64) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for n := free - left; n > 0; n -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), n)]); err != nil {
			t.Fatalf("filling the disk: %v", err)
		}
	}
	return path
}

// A full disk during a blob upload is the server's failure: 507 with the spec's error
// body, logged at ERROR with the operation and the file; reads go on; the upload keeps
// what it had and completes once there is room, nothing lost.
func TestDiskFull(t *testing.T) {
	dir := smallDisk(t, "16m")
	srv := registrytest.Start(t, registrytest.SQLite, func(c *config.Config) { c.DataDir = filepath.Join(dir, "data") })
	const repo = "team/app"
	kept := []byte("a blob pushed while there was room")
	keptDigest := digest.FromBytes(kept)
	srv.Want(t, http.StatusCreated, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+keptDigest.String(), kept)

	first := bytes.Repeat([]byte("first chunk "), 10000)
	big := bytes.Repeat([]byte("0123456789abcdef"), 128<<10) // 2 MiB
	whole := append(append([]byte{}, first...), big...)
	d := digest.FromBytes(whole)
	start := srv.Want(t, http.StatusAccepted, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	loc := start.Header.Get("Location")
	r := srv.Want(t, http.StatusAccepted, http.MethodPatch, loc, first, "Content-Type", "application/octet-stream")
	loc = r.Header.Get("Location")

	filler := fill(t, dir, 512<<10)
	r = srv.Do(t, http.MethodPatch, loc, big, "Content-Type", "application/octet-stream")
	if errs, ok := r.Errors(); r.Status != http.StatusInsufficientStorage || !ok || len(errs) != 1 || errs[0].Code != "UNKNOWN" {
		t.Fatalf("a chunk on a full disk: %v, want 507 with one UNKNOWN error", r)
	}
	var logged bool
	for l := range strings.Lines(srv.Log()) {
		if strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, `"op":"write"`) &&
			strings.Contains(l, `"file":"`+filepath.Join(dir, "data", "uploads")) {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no ERROR line with the operation and the file:\n%s", srv.Log())
	}

	// Reads go on.
	if got := srv.Want(t, http.StatusOK, http.MethodGet, "/v2/"+repo+"/blobs/"+keptDigest.String(), nil); !bytes.Equal(got.Body, kept) {
		t.Error("a blob read on a full disk differs")
	}
	srv.Want(t, http.StatusOK, http.MethodGet, "/v2/", nil)
	// The upload holds what it had before the chunk.
	st := srv.Want(t, http.StatusNoContent, http.MethodGet, loc, nil)
	if want := "0-" + strconv.Itoa(len(first)-1); st.Header.Get("Range") != want {
		t.Errorf("the upload after the failed chunk holds %s, want %s", st.Header.Get("Range"), want)
	}

	// Room again: the same chunk goes in, and the blob is whole.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r = srv.Want(t, http.StatusAccepted, http.MethodPatch, loc, big, "Content-Type", "application/octet-stream")
	srv.Want(t, http.StatusCreated, http.MethodPut, r.Header.Get("Location")+"?digest="+d.String(), nil)
	if got := srv.Want(t, http.StatusOK, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil); !bytes.Equal(got.Body, whole) {
		t.Error("the blob completed after the disk had room again differs from what was sent")
	}
}

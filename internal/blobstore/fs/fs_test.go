package fs_test

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	blobfs "github.com/graft-registry/graft/internal/blobstore/fs"
	"github.com/graft-registry/graft/internal/blobstore/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) blobstore.Store { return open(t, t.TempDir()) })
}

func open(tb testing.TB, root string) *blobfs.Store {
	tb.Helper()
	s, err := blobfs.Open(root)
	if err != nil {
		tb.Fatalf("Open(%q): %v", root, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func content(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func newUpload(t *testing.T, s *blobfs.Store, parts ...[]byte) blobstore.Upload {
	t.Helper()
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	for _, p := range parts {
		if _, err := u.Append(t.Context(), bytes.NewReader(p)); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	return u
}

func commit(t *testing.T, u blobstore.Upload, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	if _, err := u.Commit(t.Context(), d); err != nil {
		t.Fatalf("Commit(%s): %v", d, err)
	}
	return d
}

func TestLayout(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	data := []byte("laid out by digest")
	d := commit(t, newUpload(t, s, data), data)

	p := filepath.Join(root, "blobs", "sha256", d.Encoded()[:2], d.Encoded())
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("the blob is not at %s: %v", p, err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s holds %q, want %q", p, got, data)
	}
}

// checkOnlyBlobs fails unless every file under root is a blob at its place in the
// layout, holding content that hashes to its name, and no upload is left.
func checkOnlyBlobs(t *testing.T, root string, want map[digest.Digest]bool) {
	t.Helper()
	found := map[digest.Digest]bool{}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 4 || parts[0] != "blobs" || !strings.HasPrefix(parts[3], parts[2]) {
			t.Errorf("stray file %s", rel)
			return nil
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[3])
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if d.Validate() != nil || d.Algorithm() != digest.SHA256 || digest.FromBytes(b) != d {
			t.Errorf("%s is not a blob of its digest", rel)
		}
		found[d] = true
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	if !mapsEqual(found, want) {
		t.Errorf("blobs on disk %v, want %v", found, want)
	}
	entries, err := os.ReadDir(filepath.Join(root, "uploads"))
	if err != nil {
		t.Fatalf("reading uploads: %v", err)
	}
	for _, e := range entries {
		t.Errorf("left in uploads/: %s", e.Name())
	}
}

func mapsEqual[K, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestNoTemporaryFiles(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := t.Context()
	want := map[digest.Digest]bool{}

	a := content(1, 3<<20+7)
	want[commit(t, newUpload(t, s, a[:1<<20], a[1<<20:]), a)] = true
	want[commit(t, newUpload(t, s, a), a)] = true // stored once
	want[commit(t, newUpload(t, s), nil)] = true

	if err := newUpload(t, s, []byte("cancelled")).Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}

	// Refused, then cancelled.
	u := newUpload(t, s, []byte("refused"))
	if _, err := u.Commit(ctx, digest.FromString("other")); !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Fatalf("Commit error = %v, want ErrDigestMismatch", err)
	}
	if err := u.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}

	// A failed Append, then closed, resumed and committed.
	b := []byte("after a failed append")
	u = newUpload(t, s, b)
	if _, err := u.Append(ctx, &failing{}); err == nil {
		t.Fatal("Append from a failing reader succeeded")
	}
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	u, err := s.Resume(ctx, u.ID())
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	want[commit(t, u, b)] = true

	checkOnlyBlobs(t, root, want)
}

// failing yields some bytes, then fails.
type failing struct{ n int }

func (f *failing) Read(p []byte) (int, error) {
	if f.n > 0 {
		return 0, errors.New("failing")
	}
	f.n = min(len(p), 1000)
	return f.n, nil
}

// TestHashStateRecovery simulates what a crash or a damaged disk leaves in an upload's
// directory. Whatever it is, Commit must accept exactly the digest of the data the
// upload holds when resumed, and the blob must be that data.
func TestHashStateRecovery(t *testing.T) {
	first, second := content(2, 300_001), content(3, 5_000)
	written := append(bytes.Clone(first), second...)
	tests := []struct {
		name string
		// crash damages the upload in dir, closed after written was appended, and
		// returns what its data now is. state is the state file after first.
		crash func(t *testing.T, dir string, state []byte) []byte
	}{
		{"data beyond the state", func(t *testing.T, dir string, _ []byte) []byte {
			// A crash between a write and the state update that follows it.
			extra := []byte("written, then the process died")
			f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(extra); err != nil {
				t.Fatal(err)
			}
			return append(bytes.Clone(written), extra...)
		}},
		{"state of an earlier size", func(t *testing.T, dir string, state []byte) []byte {
			writeFile(t, filepath.Join(dir, "state"), state)
			return written
		}},
		{"state missing", func(t *testing.T, dir string, _ []byte) []byte {
			if err := os.Remove(filepath.Join(dir, "state")); err != nil {
				t.Fatal(err)
			}
			return written
		}},
		{"state empty", func(t *testing.T, dir string, _ []byte) []byte {
			writeFile(t, filepath.Join(dir, "state"), nil)
			return written
		}},
		{"state truncated", func(t *testing.T, dir string, _ []byte) []byte {
			p := filepath.Join(dir, "state")
			writeFile(t, p, readFile(t, p)[:20])
			return written
		}},
		{"state garbage", func(t *testing.T, dir string, _ []byte) []byte {
			writeFile(t, filepath.Join(dir, "state"), content(4, 200))
			return written
		}},
		{"state with a damaged hash", func(t *testing.T, dir string, _ []byte) []byte {
			// The size it covers is right; one bit of the hash state is not.
			p := filepath.Join(dir, "state")
			st := readFile(t, p)
			st[len(st)/4] ^= 1
			writeFile(t, p, st)
			return written
		}},
		{"data lost in a power loss after the state was saved", func(t *testing.T, dir string, _ []byte) []byte {
			// The state is renamed in place but the data was never fsynced: after a
			// power loss, and so a reboot, a file system may show the file at its
			// size with zeros.
			p := filepath.Join(dir, "data")
			data := readFile(t, p)
			clear(data[len(data)-4096:])
			writeFile(t, p, data)
			rebooted(t, dir)
			return data
		}},
		{"state from an earlier boot", func(t *testing.T, dir string, _ []byte) []byte {
			rebooted(t, dir)
			return written
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			s := open(t, root)
			ctx := t.Context()
			u := newUpload(t, s, first)
			dir := filepath.Join(root, "uploads", u.ID())
			state := readFile(t, filepath.Join(dir, "state"))
			if _, err := u.Append(ctx, bytes.NewReader(second)); err != nil {
				t.Fatalf("Append: %v", err)
			}
			if err := u.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			data := tt.crash(t, dir, state)

			u, err := s.Resume(ctx, u.ID())
			if err != nil {
				t.Fatalf("Resume: %v", err)
			}
			defer u.Close()
			if u.Size() != int64(len(data)) {
				t.Fatalf("Size after Resume = %d, want %d", u.Size(), len(data))
			}
			wrong := []digest.Digest{digest.FromBytes(first), digest.FromBytes(data[:len(data)-1])}
			if !bytes.Equal(data, written) {
				wrong = append(wrong, digest.FromBytes(written))
			}
			for _, d := range wrong {
				if _, err := u.Commit(ctx, d); !errors.Is(err, blobstore.ErrDigestMismatch) {
					t.Fatalf("Commit(%s), not the digest of the data: error = %v, want ErrDigestMismatch", d, err)
				}
			}

			// Appends after the recovery are hashed along.
			tail := []byte("appended after Resume")
			if _, err := u.Append(ctx, bytes.NewReader(tail)); err != nil {
				t.Fatalf("Append: %v", err)
			}
			want := append(bytes.Clone(data), tail...)
			if _, err := u.Commit(ctx, digest.FromBytes(written)); !errors.Is(err, blobstore.ErrDigestMismatch) {
				t.Fatalf("Commit of the digest written before the crash: error = %v, want ErrDigestMismatch", err)
			}
			d := digest.FromBytes(want)
			if _, err := u.Commit(ctx, d); err != nil {
				t.Fatalf("Commit(%s), the digest of the data: %v", d, err)
			}
			if got := readFile(t, filepath.Join(root, "blobs", "sha256", d.Encoded()[:2], d.Encoded())); sha256.Sum256(got) != sha256.Sum256(want) {
				t.Errorf("the blob does not hold the upload's data")
			}
		})
	}
}

// rebooted makes the upload's state look written before the machine last booted.
func rebooted(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "state")
	st := readFile(t, p)
	if len(st) < 10 || int(st[8]) == 0 {
		t.Fatalf("the state file has no epoch to change")
	}
	st[9] ^= 0xff
	writeFile(t, p, st)
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestResumeOutsideRoot puts an upload's files next to the store: no ID may reach them.
func TestResumeOutsideRoot(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "store")
	s := open(t, root)
	outside := filepath.Join(dir, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	data := []byte("not the store's")
	writeFile(t, filepath.Join(outside, "data"), data)

	for _, id := range []string{"../outside", "../../outside", "../../../outside", outside, "..", "../.."} {
		u, err := s.Resume(t.Context(), id)
		if err == nil {
			u.Append(t.Context(), strings.NewReader("written through the store"))
			u.Cancel(t.Context())
			t.Errorf("Resume(%q) opened a session outside the store", id)
			continue
		}
		if !errors.Is(err, blobstore.ErrInvalidID) && !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("Resume(%q) error = %v, want ErrInvalidID or ErrNotFound", id, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(outside, "data")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the file outside the store now holds %q (%v), want %q", got, err, data)
	}
	err := s.Uploads(t.Context(), func(id string, _ time.Time) error {
		t.Errorf("Uploads lists %q", id)
		return nil
	})
	if err != nil {
		t.Fatalf("Uploads: %v", err)
	}
}

// BenchmarkUploadCommit measures the write path of a layer push: a 64 MiB blob
// appended in 8 MiB chunks (the PATCH requests), then committed (hash check, fsync,
// rename).
func BenchmarkUploadCommit(b *testing.B) {
	const size, chunk = 64 << 20, 8 << 20
	s := open(b, b.TempDir())
	ctx := b.Context()
	data := content(5, size)
	d := digest.FromBytes(data)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		u, err := s.NewUpload(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < size; off += chunk {
			if _, err := u.Append(ctx, bytes.NewReader(data[off:off+chunk])); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := u.Commit(ctx, d); err != nil {
			b.Fatal(err)
		}
		// The next iteration commits the blob anew instead of finding it stored.
		b.StopTimer()
		if err := s.Delete(ctx, d); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)*size/(1<<20)/b.Elapsed().Seconds(), "MiB/s")
}

// TestWritebackPlacement appends chunks as a chunked push does, each in an Append of its
// own, of sizes below, at and above the writeback's step. No Append may start the
// writeback of its own last bytes: that would hold its response, and the client's next
// chunk, for as long as the disk's queue is full. And by the time the upload commits,
// the writeback of every byte before the last Append must have been started, whatever
// the chunks' sizes, so that the commit's fsync has only the last chunk left to write.
func TestWritebackPlacement(t *testing.T) {
	ctx := t.Context()
	ranges := blobfs.RecordWriteback(t)
	s := open(t, t.TempDir())
	u := newUpload(t, s)
	id := u.ID()
	u.Close()
	sizes := []int{5 << 20, 8 << 20, 12 << 20, 3 << 20, 8 << 20}
	var all []byte
	for i, n := range sizes {
		u, err := s.Resume(ctx, id)
		if err != nil {
			t.Fatalf("Resume: %v", err)
		}
		before := len(*ranges)
		b := content(byte(10+i), n)
		if _, err := u.Append(ctx, bytes.NewReader(b)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		u.Close()
		all = append(all, b...)
		for _, r := range (*ranges)[before:] {
			if r[0]+r[1] >= int64(len(all)) {
				t.Errorf("Append %d, of bytes up to %d, started the writeback of [%d, %d): its own last bytes", i, len(all), r[0], r[0]+r[1])
			}
		}
	}
	// The union of the ranges started, from 0: how far the writeback reaches.
	started := slices.Clone(*ranges)
	slices.SortFunc(started, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var reach int64
	for _, r := range started {
		if r[0] > reach {
			break
		}
		reach = max(reach, r[0]+r[1])
	}
	if last := int64(len(all) - sizes[len(sizes)-1]); reach < last {
		t.Errorf("writeback started for [0, %d) of %d bytes; want at least the %d before the last Append", reach, len(all), last)
	}
	u, err := s.Resume(ctx, id)
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	commit(t, u, all)
}

// Package storetest is the contract test suite of blobstore.Store: every implementation
// runs it, and a new one is correct when it passes.
//
// The suite does not import crypto/sha512: a store must itself make available every
// digest algorithm it accepts, and a test binary that linked the hash for it would hide
// a store that does not. Its SHA-512 digests are therefore published test vectors.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
)

// Run runs the suite. open returns a new, empty store; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) blobstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blobstore.Store)
	}{
		{"Missing", testMissing},
		{"Read", testRead},
		{"Seek", testSeek},
		{"Walk", testWalk},
		{"Delete", testDelete},
		{"Upload", testUpload},
		{"Empty", testEmpty},
		{"Large", testLarge},
		{"SHA512", testSHA512},
		{"DigestMismatch", testDigestMismatch},
		{"AppendAllOrNothing", testAppendAllOrNothing},
		{"Resume", testResume},
		{"ResumeUnknown", testResumeUnknown},
		{"ResumeMalformed", testResumeMalformed},
		{"ResumeWaits", testResumeWaits},
		{"ResumeCancelled", testResumeCancelled},
		{"ResumeAfterEnd", testResumeAfterEnd},
		{"ResumeExclusive", testResumeExclusive},
		{"Dedupe", testDedupe},
		{"ConcurrentSameContent", testConcurrentSameContent},
		{"Uploads", testUploads},
		{"CloseAfterEnd", testCloseAfterEnd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// SHA-512 test vectors of FIPS 180-2 (appendix C).
const (
	sha512Empty = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
	sha512ABC   = "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
	sha512MillA = "sha512:e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973ebde0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"
)

// content returns n pseudo-random bytes, the same for the same seed.
func content(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func newUpload(t *testing.T, s blobstore.Store) blobstore.Upload {
	t.Helper()
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	return u
}

func resume(t *testing.T, s blobstore.Store, id string) blobstore.Upload {
	t.Helper()
	u, err := s.Resume(t.Context(), id)
	if err != nil {
		t.Fatalf("Resume(%q): %v", id, err)
	}
	return u
}

func appendBytes(t *testing.T, u blobstore.Upload, b []byte) {
	t.Helper()
	before := u.Size()
	n, err := u.Append(t.Context(), bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Append(%d bytes): %v", len(b), err)
	}
	if n != int64(len(b)) {
		t.Fatalf("Append(%d bytes) = %d", len(b), n)
	}
	if got := u.Size(); got != before+int64(len(b)) {
		t.Fatalf("Size after Append(%d bytes) to %d bytes = %d", len(b), before, got)
	}
}

func commit(t *testing.T, u blobstore.Upload, d digest.Digest, want int64) {
	t.Helper()
	n, err := u.Commit(t.Context(), d)
	if err != nil {
		t.Fatalf("Commit(%s): %v", d, err)
	}
	if n != want {
		t.Fatalf("Commit(%s) = %d bytes, want %d", d, n, want)
	}
}

// put stores b as a blob through one upload and returns its digest.
func put(t *testing.T, s blobstore.Store, b []byte) digest.Digest {
	t.Helper()
	u := newUpload(t, s)
	appendBytes(t, u, b)
	d := digest.FromBytes(b)
	commit(t, u, d, int64(len(b)))
	return d
}

// checkBlob fails unless blob d holds exactly want, through Stat and Open.
func checkBlob(t *testing.T, s blobstore.Store, d digest.Digest, want []byte) {
	t.Helper()
	size, err := s.Stat(t.Context(), d)
	if err != nil {
		t.Fatalf("Stat(%s): %v", d, err)
	}
	if size != int64(len(want)) {
		t.Errorf("Stat(%s) = %d, want %d", d, size, len(want))
	}
	b, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	defer b.Close()
	if b.Size != int64(len(want)) {
		t.Errorf("Open(%s).Size = %d, want %d", d, b.Size, len(want))
	}
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("reading %s: %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("blob %s: read %d bytes that differ from the %d written", d, len(got), len(want))
	}
}

func checkMissing(t *testing.T, s blobstore.Store, d digest.Digest) {
	t.Helper()
	if _, err := s.Stat(t.Context(), d); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("Stat(%s) error = %v, want ErrNotFound", d, err)
	}
	b, err := s.Open(t.Context(), d)
	if err == nil {
		b.Close()
	}
	if !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("Open(%s) error = %v, want ErrNotFound", d, err)
	}
}

// walk returns what Walk reports, failing on a blob reported twice.
func walk(t *testing.T, s blobstore.Store) map[digest.Digest]int64 {
	t.Helper()
	got := map[digest.Digest]int64{}
	err := s.Walk(t.Context(), func(d digest.Digest, size int64) error {
		if _, ok := got[d]; ok {
			t.Errorf("Walk reported %s twice", d)
		}
		got[d] = size
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

// uploads returns the sessions Uploads reports, with their times.
func uploads(t *testing.T, s blobstore.Store) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	err := s.Uploads(t.Context(), func(id string, modified time.Time) error {
		if _, ok := got[id]; ok {
			t.Errorf("Uploads reported %s twice", id)
		}
		got[id] = modified
		return nil
	})
	if err != nil {
		t.Fatalf("Uploads: %v", err)
	}
	return got
}

func testMissing(t *testing.T, s blobstore.Store) {
	for _, d := range []digest.Digest{digest.FromString("never stored"), sha512ABC} {
		checkMissing(t, s, d)
		if err := s.Delete(t.Context(), d); !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("Delete(%s) error = %v, want ErrNotFound", d, err)
		}
	}
	if got := walk(t, s); len(got) != 0 {
		t.Errorf("Walk of an empty store reported %v", got)
	}
	if got := uploads(t, s); len(got) != 0 {
		t.Errorf("Uploads of an empty store reported %v", got)
	}
}

func testRead(t *testing.T, s blobstore.Store) {
	blobs := [][]byte{[]byte("a"), []byte("hello, world\n"), content(1, 100_000)}
	for _, b := range blobs {
		d := put(t, s, b)
		checkBlob(t, s, d, b)
	}
	// Each blob is readable again and independently of the others.
	for _, b := range blobs {
		checkBlob(t, s, digest.FromBytes(b), b)
	}
	checkMissing(t, s, digest.FromString("b"))
}

func testSeek(t *testing.T, s blobstore.Store) {
	data := content(2, 10_000)
	d := put(t, s, data)
	b, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()

	steps := []struct {
		offset int64
		whence int
		pos    int64 // the position Seek reports
		read   int   // bytes to read from there
	}{
		{1234, io.SeekStart, 1234, 100},
		{0, io.SeekStart, 0, 10},
		{500, io.SeekCurrent, 510, 1},
		{-100, io.SeekEnd, 9_900, 100},
		{4096, io.SeekStart, 4096, 4096},
		{-1, io.SeekCurrent, 8191, 2},
		{0, io.SeekEnd, 10_000, 0},
	}
	for _, st := range steps {
		pos, err := b.Seek(st.offset, st.whence)
		if err != nil {
			t.Fatalf("Seek(%d, %d): %v", st.offset, st.whence, err)
		}
		if pos != st.pos {
			t.Fatalf("Seek(%d, %d) = %d, want %d", st.offset, st.whence, pos, st.pos)
		}
		got := make([]byte, st.read)
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatalf("reading %d bytes at %d: %v", st.read, pos, err)
		}
		if want := data[pos : pos+int64(st.read)]; !bytes.Equal(got, want) {
			t.Errorf("%d bytes at %d differ from the blob's", st.read, pos)
		}
	}
	// At the end, a read returns io.EOF and nothing else.
	if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want 0, EOF", n, err)
	}
	// A section reader (how an HTTP range is served) sees the same bytes.
	got, err := io.ReadAll(io.NewSectionReader(readerAt{b}, 7_777, 1_000))
	if err != nil {
		t.Fatalf("reading a section: %v", err)
	}
	if !bytes.Equal(got, data[7_777:8_777]) {
		t.Errorf("section [7777, 8777) differs from the blob's")
	}
}

// readerAt reads at an offset through Seek and Read, as io.SectionReader needs.
type readerAt struct{ io.ReadSeeker }

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(r, p)
}

func testWalk(t *testing.T, s blobstore.Store) {
	want := map[digest.Digest]int64{}
	for i, n := range []int{0, 1, 3_000, 70_000} {
		b := content(byte(10+i), n)
		want[put(t, s, b)] = int64(n)
	}
	// Open uploads are not blobs.
	u := newUpload(t, s)
	appendBytes(t, u, []byte("not a blob yet"))
	defer u.Cancel(t.Context())

	if got := walk(t, s); !mapsEqual(got, want) {
		t.Errorf("Walk = %v, want %v", got, want)
	}

	// An error from fn stops the walk and is returned.
	errStop := errors.New("stop")
	calls := 0
	err := s.Walk(t.Context(), func(digest.Digest, int64) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Errorf("Walk with fn failing = %v, want %v", err, errStop)
	}
	if calls != 1 {
		t.Errorf("Walk called fn %d times after it failed, want 1 call", calls)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			return false
		}
	}
	return true
}

func testDelete(t *testing.T, s blobstore.Store) {
	keep := []byte("keep")
	gone := []byte("delete me")
	dk, dg := put(t, s, keep), put(t, s, gone)

	if err := s.Delete(t.Context(), dg); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkMissing(t, s, dg)
	if err := s.Delete(t.Context(), dg); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("second Delete error = %v, want ErrNotFound", err)
	}
	checkBlob(t, s, dk, keep)
	if got, want := walk(t, s), map[digest.Digest]int64{dk: int64(len(keep))}; !mapsEqual(got, want) {
		t.Errorf("Walk after Delete = %v, want %v", got, want)
	}

	// A deleted blob can be uploaded again.
	put(t, s, gone)
	checkBlob(t, s, dg, gone)
}

func testUpload(t *testing.T, s blobstore.Store) {
	u := newUpload(t, s)
	if u.ID() == "" {
		t.Fatal("NewUpload returned an upload without an ID")
	}
	if u.Size() != 0 {
		t.Fatalf("Size of a new upload = %d", u.Size())
	}
	other := newUpload(t, s)
	defer other.Cancel(t.Context())
	if other.ID() == u.ID() {
		t.Fatalf("two uploads have the ID %q", u.ID())
	}

	parts := [][]byte{[]byte("first,"), {}, []byte("second,"), content(3, 5_000)}
	var all []byte
	for _, p := range parts {
		appendBytes(t, u, p)
		all = append(all, p...)
	}
	d := digest.FromBytes(all)
	checkMissing(t, s, d) // not a blob before Commit
	commit(t, u, d, int64(len(all)))
	checkBlob(t, s, d, all)

	if u, err := s.Resume(t.Context(), u.ID()); !errors.Is(err, blobstore.ErrNotFound) {
		if err == nil {
			u.Close()
		}
		t.Errorf("Resume of a committed upload: error = %v, want ErrNotFound", err)
	}
}

func testEmpty(t *testing.T, s blobstore.Store) {
	u := newUpload(t, s)
	n, err := u.Append(t.Context(), bytes.NewReader(nil))
	if err != nil || n != 0 {
		t.Fatalf("Append of nothing = %d, %v", n, err)
	}
	d := digest.FromBytes(nil)
	commit(t, u, d, 0)
	checkBlob(t, s, d, nil)
	if got := walk(t, s); !mapsEqual(got, map[digest.Digest]int64{d: 0}) {
		t.Errorf("Walk = %v, want only the empty blob", got)
	}
}

func testLarge(t *testing.T, s blobstore.Store) {
	data := content(4, 5<<20+12_345)
	sizes := []int{1, 4095, 65_537, 1<<20 + 3, 7, 2<<20 - 1}
	u := newUpload(t, s)
	off := 0
	for i, n := range sizes {
		appendBytes(t, u, data[off:off+n])
		off += n
		if i == 2 { // and a pause, as between two PATCH requests
			id := u.ID()
			if err := u.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			u = resume(t, s, id)
			if u.Size() != int64(off) {
				t.Fatalf("Size after Resume = %d, want %d", u.Size(), off)
			}
		}
	}
	appendBytes(t, u, data[off:])
	d := digest.FromBytes(data)
	commit(t, u, d, int64(len(data)))
	checkBlob(t, s, d, data)
}

func testSHA512(t *testing.T, s blobstore.Store) {
	u := newUpload(t, s)
	commit(t, u, sha512Empty, 0)
	checkBlob(t, s, sha512Empty, nil)

	u = newUpload(t, s)
	appendBytes(t, u, []byte("abc"))
	commit(t, u, sha512ABC, 3)
	checkBlob(t, s, sha512ABC, []byte("abc"))

	// A million 'a's in appends of odd sizes, with a Resume between them.
	million := bytes.Repeat([]byte("a"), 1_000_000)
	u = newUpload(t, s)
	appendBytes(t, u, million[:333_331])
	id := u.ID()
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	u = resume(t, s, id)
	appendBytes(t, u, million[333_331:999_999])
	// One byte short: the digest of the whole million is not the content's.
	if _, err := u.Commit(t.Context(), sha512MillA); !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Fatalf("Commit one byte short: error = %v, want ErrDigestMismatch", err)
	}
	appendBytes(t, u, million[999_999:])
	commit(t, u, sha512MillA, int64(len(million)))
	checkBlob(t, s, sha512MillA, million)
}

func testDigestMismatch(t *testing.T, s blobstore.Store) {
	data := []byte("the content")
	right := digest.FromBytes(data)
	wrong := []digest.Digest{
		digest.FromString("other content"),
		digest.FromBytes(data[:len(data)-1]),
		sha512ABC,
	}

	t.Run("ThenCommit", func(t *testing.T) {
		u := newUpload(t, s)
		appendBytes(t, u, data)
		for _, d := range wrong {
			if _, err := u.Commit(t.Context(), d); !errors.Is(err, blobstore.ErrDigestMismatch) {
				t.Fatalf("Commit(%s) error = %v, want ErrDigestMismatch", d, err)
			}
			if u.Size() != int64(len(data)) {
				t.Fatalf("Size after a refused Commit = %d, want %d", u.Size(), len(data))
			}
			checkMissing(t, s, d)
		}
		checkMissing(t, s, right)
		commit(t, u, right, int64(len(data)))
		checkBlob(t, s, right, data)
		if err := s.Delete(t.Context(), right); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	})

	t.Run("ThenCancel", func(t *testing.T) {
		u := newUpload(t, s)
		appendBytes(t, u, data)
		if _, err := u.Commit(t.Context(), wrong[0]); !errors.Is(err, blobstore.ErrDigestMismatch) {
			t.Fatalf("Commit error = %v, want ErrDigestMismatch", err)
		}
		if err := u.Cancel(t.Context()); err != nil {
			t.Fatalf("Cancel after a refused Commit: %v", err)
		}
		checkMissing(t, s, right)
		checkMissing(t, s, wrong[0])
		if u, err := s.Resume(t.Context(), u.ID()); !errors.Is(err, blobstore.ErrNotFound) {
			if err == nil {
				u.Close()
			}
			t.Errorf("Resume after Cancel: error = %v, want ErrNotFound", err)
		}
	})

	t.Run("ThenClose", func(t *testing.T) {
		u := newUpload(t, s)
		appendBytes(t, u, data)
		if _, err := u.Commit(t.Context(), wrong[0]); !errors.Is(err, blobstore.ErrDigestMismatch) {
			t.Fatalf("Commit error = %v, want ErrDigestMismatch", err)
		}
		if err := u.Close(); err != nil {
			t.Fatalf("Close after a refused Commit: %v", err)
		}
		u = resume(t, s, u.ID())
		if u.Size() != int64(len(data)) {
			t.Fatalf("Size after Resume = %d, want %d", u.Size(), len(data))
		}
		appendBytes(t, u, []byte("!"))
		all := append(slices.Clone(data), '!')
		commit(t, u, digest.FromBytes(all), int64(len(all)))
		checkBlob(t, s, digest.FromBytes(all), all)
	})
}

// failAfter yields r, then fails with err instead of io.EOF.
type failAfter struct {
	r   io.Reader
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

func testAppendAllOrNothing(t *testing.T, s blobstore.Store) {
	errBroken := errors.New("connection broken")
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"at once", iotest.ErrReader(errBroken)},
		{"after a few bytes", &failAfter{bytes.NewReader(content(5, 100)), errBroken}},
		{"with the last bytes", iotest.DataErrReader(&failAfter{bytes.NewReader(content(5, 100)), errBroken})},
		{"after a few MiB", &failAfter{bytes.NewReader(content(6, 3<<20+5)), errBroken}},
		{"in one-byte reads", iotest.OneByteReader(&failAfter{bytes.NewReader(content(7, 1_000)), errBroken})},
		// What net/http's request body returns when the client goes away mid-body.
		{"unexpected EOF", &failAfter{bytes.NewReader(content(8, 100)), io.ErrUnexpectedEOF}},
		{"unexpected EOF after a few MiB", &failAfter{bytes.NewReader(content(9, 2<<20+1)), io.ErrUnexpectedEOF}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := []byte("before the failure,")
			after := []byte("after the failure")
			u := newUpload(t, s)
			appendBytes(t, u, before)

			n, err := u.Append(t.Context(), tt.r)
			if err == nil {
				t.Errorf("Append from a failing reader = %d, nil; want an error", n)
			}
			if u.Size() != int64(len(before)) {
				t.Errorf("Size after a failed Append = %d, want %d", u.Size(), len(before))
			}

			appendBytes(t, u, after)
			want := append(slices.Clone(before), after...)
			commit(t, u, digest.FromBytes(want), int64(len(want)))
			checkBlob(t, s, digest.FromBytes(want), want)
		})
	}
}

func testResume(t *testing.T, s blobstore.Store) {
	parts := [][]byte{[]byte("one,"), content(11, 70_001), []byte("three")}
	u := newUpload(t, s)
	id := u.ID()
	var all []byte
	for i, p := range parts {
		if i > 0 {
			u = resume(t, s, id)
			if u.ID() != id {
				t.Fatalf("Resume(%q).ID() = %q", id, u.ID())
			}
			if u.Size() != int64(len(all)) {
				t.Fatalf("Size after Resume = %d, want %d", u.Size(), len(all))
			}
		}
		appendBytes(t, u, p)
		all = append(all, p...)
		if err := u.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	u = resume(t, s, id)
	commit(t, u, digest.FromBytes(all), int64(len(all)))
	checkBlob(t, s, digest.FromBytes(all), all)
}

func resumeFails(t *testing.T, s blobstore.Store, id string, want ...error) {
	t.Helper()
	u, err := s.Resume(t.Context(), id)
	if err == nil {
		u.Close()
		t.Errorf("Resume(%.40q) succeeded, want one of %v", id, want)
		return
	}
	for _, w := range want {
		if errors.Is(err, w) {
			return
		}
	}
	t.Errorf("Resume(%.40q) error = %v, want one of %v", id, err, want)
}

func testResumeUnknown(t *testing.T, s blobstore.Store) {
	cancelled := newUpload(t, s)
	if err := cancelled.Cancel(t.Context()); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	resumeFails(t, s, cancelled.ID(), blobstore.ErrNotFound)

	// An ID of the store's shape that it never issued.
	live := newUpload(t, s)
	defer live.Cancel(t.Context())
	id := []byte(live.ID())
	last := len(id) - 1
	if id[last] == '0' {
		id[last] = '1'
	} else {
		id[last] = '0'
	}
	resumeFails(t, s, string(id), blobstore.ErrNotFound, blobstore.ErrInvalidID)
}

func testResumeMalformed(t *testing.T, s blobstore.Store) {
	data := []byte("must stay as it is")
	u := newUpload(t, s)
	appendBytes(t, u, data)
	id := u.ID()
	// Closed, so that an ID wrongly taken for it opens it instead of waiting forever.
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	ids := []string{
		"", ".", "..", "/", "../x", "../../../../../../../etc/passwd", "x/../..",
		strings.Repeat("a", 4096), "\x00", "%2e%2e%2f",
		// Aliases of the live session: none may open it.
		"./" + id, id + "/", id + "/.", "../uploads/" + id, "x/../" + id, id + "/../" + id,
		" " + id, id + " ", id + "\x00", id + "\n", strings.Repeat(id, 2),
	}
	if up := strings.ToUpper(id); up != id {
		ids = append(ids, up)
	}
	for _, bad := range ids {
		resumeFails(t, s, bad, blobstore.ErrInvalidID, blobstore.ErrNotFound)
	}

	u = resume(t, s, id)
	if u.Size() != int64(len(data)) {
		t.Fatalf("Size after the malformed Resumes = %d, want %d", u.Size(), len(data))
	}
	commit(t, u, digest.FromBytes(data), int64(len(data)))
	checkBlob(t, s, digest.FromBytes(data), data)
}

type resumed struct {
	u   blobstore.Upload
	err error
}

// resumeAsync resumes id in a goroutine: the result arrives on the channel.
func resumeAsync(ctx context.Context, s blobstore.Store, id string) <-chan resumed {
	c := make(chan resumed, 1)
	go func() {
		u, err := s.Resume(ctx, id)
		c <- resumed{u, err}
	}()
	return c
}

// notYet fails if Resume already returned: the holder still has the session open.
func notYet(t *testing.T, c <-chan resumed) {
	t.Helper()
	select {
	case r := <-c:
		if r.err == nil {
			r.u.Close()
		}
		t.Fatalf("Resume returned (%v) while another holder had the upload open", r.err)
	default:
	}
}

func testResumeWaits(t *testing.T, s blobstore.Store) {
	u := newUpload(t, s)
	appendBytes(t, u, []byte("held,"))
	c := resumeAsync(t.Context(), s, u.ID())

	// The holder goes on writing while the other waits.
	appendBytes(t, u, []byte("still held,"))
	notYet(t, c)
	appendBytes(t, u, []byte("released"))
	notYet(t, c)
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	r := <-c
	if r.err != nil {
		t.Fatalf("Resume after Close: %v", r.err)
	}
	want := []byte("held,still held,released")
	if r.u.Size() != int64(len(want)) {
		t.Fatalf("Size seen by the waiter = %d, want %d", r.u.Size(), len(want))
	}
	commit(t, r.u, digest.FromBytes(want), int64(len(want)))
	checkBlob(t, s, digest.FromBytes(want), want)
}

// testResumeCancelled gives up waiting for a session: a client that goes away must not
// leave its request waiting for as long as another holds the session.
func testResumeCancelled(t *testing.T, s blobstore.Store) {
	// Not a speed goal: how long to wait before taking the wait for a hang.
	const hang = 5 * time.Second
	data := []byte("held throughout")
	u := newUpload(t, s)
	appendBytes(t, u, data)
	ctx, cancel := context.WithCancel(t.Context())
	c := resumeAsync(ctx, s, u.ID())
	notYet(t, c)
	cancel()

	select {
	case r := <-c:
		if r.err == nil {
			r.u.Close()
			t.Errorf("Resume with its context cancelled opened a session another holds")
		}
	case <-time.After(hang):
		t.Errorf("Resume still waits for the holder %v after its context was cancelled", hang)
		// Let it go, so that it does not outlive the test.
		if err := u.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if r := <-c; r.err == nil {
			r.u.Close()
		}
		return
	}

	// The holder is not disturbed.
	appendBytes(t, u, []byte("!"))
	want := append(slices.Clone(data), '!')
	commit(t, u, digest.FromBytes(want), int64(len(want)))
	checkBlob(t, s, digest.FromBytes(want), want)
}

func testResumeAfterEnd(t *testing.T, s blobstore.Store) {
	ends := []struct {
		name string
		end  func(ctx context.Context, u blobstore.Upload) error
	}{
		{"Commit", func(ctx context.Context, u blobstore.Upload) error {
			_, err := u.Commit(ctx, digest.FromString("ended by Commit"))
			return err
		}},
		{"Cancel", func(ctx context.Context, u blobstore.Upload) error { return u.Cancel(ctx) }},
	}
	for _, e := range ends {
		t.Run(e.name, func(t *testing.T) {
			data := []byte("ended by " + e.name)
			u := newUpload(t, s)
			appendBytes(t, u, data)
			waiters := []<-chan resumed{resumeAsync(t.Context(), s, u.ID()), resumeAsync(t.Context(), s, u.ID())}
			for _, c := range waiters {
				notYet(t, c)
			}
			if err := e.end(t.Context(), u); err != nil {
				t.Fatalf("%s: %v", e.name, err)
			}
			for _, c := range waiters {
				if r := <-c; !errors.Is(r.err, blobstore.ErrNotFound) {
					if r.err == nil {
						r.u.Close()
					}
					t.Errorf("Resume waiting on a %s: error = %v, want ErrNotFound", e.name, r.err)
				}
			}
			// And whoever comes later.
			resumeFails(t, s, u.ID(), blobstore.ErrNotFound)
			if e.name == "Commit" {
				checkBlob(t, s, digest.FromBytes(data), data)
			} else {
				checkMissing(t, s, digest.FromBytes(data))
			}
		})
	}
}

// testResumeExclusive has several writers take turns on one session: if two held it
// at once, both would append at the same offset and a byte would be lost.
func testResumeExclusive(t *testing.T, s blobstore.Store) {
	const writers = 8
	u := newUpload(t, s)
	id := u.ID()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			u, err := s.Resume(t.Context(), id)
			if err != nil {
				errs <- fmt.Errorf("Resume: %w", err)
				return
			}
			if _, err := u.Append(t.Context(), strings.NewReader("x")); err != nil {
				u.Close()
				errs <- fmt.Errorf("Append: %w", err)
				return
			}
			if err := u.Close(); err != nil {
				errs <- fmt.Errorf("Close: %w", err)
			}
		})
	}
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	u = resume(t, s, id)
	want := bytes.Repeat([]byte("x"), writers)
	if u.Size() != int64(len(want)) {
		t.Fatalf("Size after %d writers appended one byte each = %d", writers, u.Size())
	}
	commit(t, u, digest.FromBytes(want), int64(len(want)))
}

func testDedupe(t *testing.T, s blobstore.Store) {
	data := content(12, 50_000)
	d := put(t, s, data)

	// The same content uploaded again, once in one piece and once in several.
	u := newUpload(t, s)
	appendBytes(t, u, data)
	commit(t, u, d, int64(len(data)))
	u = newUpload(t, s)
	appendBytes(t, u, data[:10_000])
	appendBytes(t, u, data[10_000:])
	commit(t, u, d, int64(len(data)))

	checkBlob(t, s, d, data)
	if got := walk(t, s); !mapsEqual(got, map[digest.Digest]int64{d: int64(len(data))}) {
		t.Errorf("Walk = %v, want the blob once", got)
	}
	if got := uploads(t, s); len(got) != 0 {
		t.Errorf("Uploads after the commits = %v, want none", got)
	}
}

func testConcurrentSameContent(t *testing.T, s blobstore.Store) {
	const n = 8
	data := content(13, 300_000)
	d := digest.FromBytes(data)
	ups := make([]blobstore.Upload, n)
	for i := range ups {
		ups[i] = newUpload(t, s)
		appendBytes(t, ups[i], data)
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, n)
	sizes := make([]int64, n)
	for i, u := range ups {
		wg.Go(func() {
			<-start
			sizes[i], errs[i] = u.Commit(t.Context(), d)
		})
	}
	close(start)
	wg.Wait()
	for i := range ups {
		if errs[i] != nil || sizes[i] != int64(len(data)) {
			t.Errorf("Commit %d = %d, %v; want %d, nil", i, sizes[i], errs[i], len(data))
		}
	}
	checkBlob(t, s, d, data)
	if got := walk(t, s); !mapsEqual(got, map[digest.Digest]int64{d: int64(len(data))}) {
		t.Errorf("Walk = %v, want the blob once", got)
	}
	if got := uploads(t, s); len(got) != 0 {
		t.Errorf("Uploads after the commits = %v, want none", got)
	}
}

func testUploads(t *testing.T, s blobstore.Store) {
	// Stores may keep coarse times (a file system's clock tick, an object store's
	// second): a time within this margin of the writes is theirs.
	const slack = time.Minute
	start := time.Now()
	committed, cancelled, closed, open := newUpload(t, s), newUpload(t, s), newUpload(t, s), newUpload(t, s)
	for _, u := range []blobstore.Upload{committed, cancelled, closed, open} {
		appendBytes(t, u, []byte(u.ID()))
	}
	if err := closed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	defer open.Cancel(t.Context())
	end := time.Now()

	got := uploads(t, s)
	for _, u := range []blobstore.Upload{committed, cancelled, closed, open} {
		m, ok := got[u.ID()]
		if !ok {
			t.Errorf("Uploads does not list the session %s", u.ID())
			continue
		}
		if m.Before(start.Add(-slack)) || m.After(end.Add(slack)) {
			t.Errorf("Uploads: session %s last written at %v, want between %v and %v", u.ID(), m, start, end)
		}
	}
	if len(got) != 4 {
		t.Errorf("Uploads listed %d sessions, want 4: %v", len(got), got)
	}

	// A later write does not move the time back.
	first := got[open.ID()]
	appendBytes(t, open, []byte("more"))
	if m := uploads(t, s)[open.ID()]; m.Before(first) {
		t.Errorf("session written again: time %v, before the earlier %v", m, first)
	}

	commit(t, committed, digest.FromString(committed.ID()), int64(len(committed.ID())))
	if err := cancelled.Cancel(t.Context()); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	got = uploads(t, s)
	for _, u := range []blobstore.Upload{committed, cancelled} {
		if _, ok := got[u.ID()]; ok {
			t.Errorf("Uploads lists the ended session %s", u.ID())
		}
	}
	for _, u := range []blobstore.Upload{closed, open} {
		if _, ok := got[u.ID()]; !ok {
			t.Errorf("Uploads does not list the session %s", u.ID())
		}
	}

	// An error from fn stops the listing and is returned.
	errStop := errors.New("stop")
	calls := 0
	err := s.Uploads(t.Context(), func(string, time.Time) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("Uploads with fn failing: %d calls, error %v; want 1 call, %v", calls, err, errStop)
	}
}

// testCloseAfterEnd: Close after Commit or Cancel does nothing, so callers may defer it.
func testCloseAfterEnd(t *testing.T, s blobstore.Store) {
	ctx := t.Context()
	committed := newUpload(t, s)
	b := content(9, 1000)
	appendBytes(t, committed, b)
	if _, err := committed.Commit(ctx, digest.FromBytes(b)); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := committed.Close(); err != nil {
		t.Errorf("Close after Commit: %v", err)
	}
	if size, err := s.Stat(ctx, digest.FromBytes(b)); err != nil || size != int64(len(b)) {
		t.Errorf("Stat after Commit and Close = %d, %v", size, err)
	}
	cancelled := newUpload(t, s)
	if err := cancelled.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := cancelled.Close(); err != nil {
		t.Errorf("Close after Cancel: %v", err)
	}
	if _, err := s.Resume(ctx, cancelled.ID()); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("Resume after Cancel and Close: %v, want ErrNotFound", err)
	}
}

// Package fs is a blobstore.Store in a local directory.
//
// Layout under the root:
//
//	blobs/<algorithm>/<first two hex digits>/<hex>   one file per blob
//	uploads/<id>/data                                the bytes of an upload
//	uploads/<id>/state                               its size and sha256 state
//
// A blob appears under blobs/ by rename(2) only after its digest was verified and its
// file and directory fsynced, so a crash never leaves a partial blob there.
//
// The hash state lets a commit skip re-reading the upload. Neither it nor the data is
// fsynced before the commit, so it is trusted only while it provably describes the
// data: it must cover exactly the data's size and have been written since the machine
// last booted (a process crash keeps the page cache; a power loss may not). Otherwise,
// and before refusing a digest, Commit hashes the data file again.
package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "crypto/sha512" // sha384 and sha512 digests
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
)

// Store is a blobstore.Store rooted at a directory.
type Store struct {
	blobs   string
	uploads string
	// epoch names this boot of the machine (or, where that is unknown, this Store):
	// hash states written in another epoch are not trusted.
	epoch []byte
}

var _ blobstore.Store = (*Store)(nil)

// Open opens the store rooted at dir, creating it when needed.
func Open(dir string) (*Store, error) {
	s := &Store{blobs: filepath.Join(dir, "blobs"), uploads: filepath.Join(dir, "uploads"), epoch: bootID()}
	for _, d := range []string{s.blobs, s.uploads} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("blobstore: %w", err)
		}
	}
	return s, nil
}

// Ping implements blobstore.Pinger: the directories of blobs and uploads are there.
func (s *Store) Ping(context.Context) error {
	for _, d := range []string{s.blobs, s.uploads} {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("blobstore: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("blobstore: %s is not a directory", d)
		}
	}
	return nil
}

var _ blobstore.Pinger = (*Store)(nil)

// Close implements blobstore.Store; the store holds no resources.
func (s *Store) Close() error { return nil }

func (s *Store) path(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", blobstore.ErrNotFound
	}
	enc := d.Encoded()
	return filepath.Join(s.blobs, string(d.Algorithm()), enc[:2], enc), nil
}

// Stat implements blobstore.Reader.
func (s *Store) Stat(_ context.Context, d digest.Digest) (int64, error) {
	p, err := s.path(d)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, notFound(err)
	}
	return fi.Size(), nil
}

// Open implements blobstore.Reader. The reader is an *os.File.
func (s *Store) Open(_ context.Context, d digest.Digest) (*blobstore.Blob, error) {
	p, err := s.path(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	return &blobstore.Blob{ReadSeekCloser: f, Size: fi.Size()}, nil
}

// Delete implements blobstore.Store.
func (s *Store) Delete(_ context.Context, d digest.Digest) error {
	p, err := s.path(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return notFound(err)
	}
	return nil
}

// Walk implements blobstore.Store.
func (s *Store) Walk(ctx context.Context, fn func(digest.Digest, int64) error) error {
	algs, err := os.ReadDir(s.blobs)
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	for _, alg := range algs {
		root := filepath.Join(s.blobs, alg.Name())
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if e.IsDir() {
				return nil
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg.Name()), e.Name())
			if d.Validate() != nil {
				return nil // not a blob
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // deleted meanwhile
				}
				return err
			}
			return fn(d, fi.Size())
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// bootID identifies the current boot of the machine; where the kernel does not say,
// a random value stands for this process.
func bootID() []byte {
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return bytes.TrimSpace(b)
	}
	b := make([]byte, 16)
	rand.Read(b)
	return []byte(hex.EncodeToString(b))
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return blobstore.ErrNotFound
	}
	return fmt.Errorf("blobstore: %w", err)
}

// Upload IDs are 32 lowercase hex digits: nothing else ever reaches a path.
const idLen = 32

func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NewUpload implements blobstore.Uploader.
func (s *Store) NewUpload(_ context.Context) (blobstore.Upload, error) {
	var b [idLen / 2]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	dir := filepath.Join(s.uploads, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blobstore: new upload: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("blobstore: new upload: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("blobstore: lock upload: %w", err)
	}
	u := &upload{s: s, id: id, dir: dir, f: f, h: sha256.New(), hashed: true}
	if err := u.saveState(); err != nil {
		u.Cancel(context.Background())
		return nil, err
	}
	return u, nil
}

// Resume implements blobstore.Uploader.
func (s *Store) Resume(ctx context.Context, id string) (blobstore.Upload, error) {
	if !validID(id) {
		return nil, blobstore.ErrInvalidID
	}
	dir := filepath.Join(s.uploads, id)
	data := filepath.Join(dir, "data")
	f, err := os.OpenFile(data, os.O_RDWR, 0)
	if err != nil {
		return nil, notFound(err)
	}
	if err := lock(ctx, f); err != nil {
		f.Close()
		return nil, err
	}
	// Whoever held the lock before may have committed or cancelled the upload: the
	// file is then no longer the upload's data.
	held, err1 := f.Stat()
	now, err2 := os.Stat(data)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, blobstore.ErrNotFound
	}
	u := &upload{s: s, id: id, dir: dir, f: f, size: held.Size(), h: sha256.New()}
	u.loadState()
	return u, nil
}

// lock takes f's exclusive lock, waiting for its holder until ctx ends. A blocking
// flock(2) could not be abandoned, and would pin a thread per waiter.
func lock(ctx context.Context, f *os.File) error {
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("blobstore: lock upload: %w", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Uploads implements blobstore.Uploader.
func (s *Store) Uploads(ctx context.Context, fn func(string, time.Time) error) error {
	entries, err := os.ReadDir(s.uploads)
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !validID(e.Name()) {
			continue
		}
		modified := time.Time{}
		if fi, err := os.Stat(filepath.Join(s.uploads, e.Name(), "data")); err == nil {
			modified = fi.ModTime()
		} else if fi, err := e.Info(); err == nil {
			modified = fi.ModTime() // a session that crashed before its data file
		}
		if err := fn(e.Name(), modified); err != nil {
			return err
		}
	}
	return nil
}

type upload struct {
	s    *Store
	id   string
	dir  string
	f    *os.File // the data file, flocked while open
	size int64
	// h is the sha256 of the first size bytes when hashed is true.
	h      hash.Hash
	hashed bool
	done   bool // committed, cancelled or closed
}

func (u *upload) ID() string  { return u.id }
func (u *upload) Size() int64 { return u.size }

// Appends move data through a ring of buffers and three goroutines: one reads the
// body into buffers, the caller writes them, one more hashes them. A body read in
// turn with the work would leave the socket full and the sender waiting for as long
// as each buffer takes to hash and write; overlapped, an upload costs about the
// slowest of the three per byte.
const (
	bufSize  = 256 << 10
	bufCount = 8
	// writebackEvery is how many written bytes start their writeback to disk.
	writebackEvery = 8 << 20
)

// startWriteback is writeback, or what a test puts in its place to see the ranges.
var startWriteback = writeback

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// chunk is a buffer the reader filled, and how its read ended.
type chunk struct {
	b   []byte
	err error
}

// shared is a buffer being written and hashed at once: the last of the two to be done
// with it frees it.
type shared struct {
	b    []byte
	refs atomic.Int32
}

func (u *upload) Append(_ context.Context, r io.Reader) (int64, error) {
	var saved []byte
	if u.hashed {
		saved, _ = u.h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	// A buffer is filled by the reader alone, then only read, by the writer and the
	// hasher at once, and goes back to free when both are done. Every channel holds
	// all the buffers, so no send ever blocks.
	free := make(chan []byte, bufCount)
	for range bufCount {
		free <- *bufPool.Get().(*[]byte)
	}
	filled := make(chan chunk, bufCount)
	var stop atomic.Bool
	go func() {
		defer close(filled)
		for {
			b := <-free
			if stop.Load() {
				free <- b
				return
			}
			n, err := fill(r, b)
			filled <- chunk{b[:n], err}
			if err != nil {
				return
			}
		}
	}()
	release := func(s *shared) {
		if s.refs.Add(-1) == 0 {
			free <- s.b[:cap(s.b)]
		}
	}
	var jobs chan *shared
	var hashed chan struct{}
	if u.hashed {
		jobs, hashed = make(chan *shared, bufCount), make(chan struct{})
		go func() {
			defer close(hashed)
			for s := range jobs {
				u.h.Write(s.b)
				release(s)
			}
		}()
	}
	off := u.size
	// flushed is where the bytes whose writeback may not have been started begin. The
	// writeback of what an Append wrote last is started by the next one, with its
	// first buffer in hand, or by Commit's fsync: started at the end of an Append, it
	// would hold the response, and a chunked push's next chunk, for as long as the
	// disk's queue is full. So an Append also covers up to writebackEvery bytes before
	// its own (those already under way cost nothing).
	flushed := max(off-writebackEvery, 0)
	var err error
	for c := range filled {
		if c.err != nil && c.err != io.EOF && err == nil {
			err = c.err
		}
		if len(c.b) == 0 || err != nil {
			free <- c.b[:cap(c.b)]
			continue
		}
		s := &shared{b: c.b}
		s.refs.Store(1)
		if jobs != nil {
			s.refs.Store(2)
			jobs <- s // hashed while it is written: both only read it
		}
		if off-flushed >= writebackEvery {
			startWriteback(u.f, flushed, off-flushed)
			flushed = off
		}
		if _, werr := u.f.WriteAt(c.b, off); werr != nil {
			err = fmt.Errorf("blobstore: write upload: %w", werr)
			stop.Store(true)
		}
		off += int64(len(c.b))
		release(s)
	}
	if jobs != nil {
		close(jobs)
		<-hashed
	}
	for range bufCount {
		b := <-free
		bufPool.Put(&b)
	}
	if err != nil {
		// all or nothing: drop what this call wrote
		if terr := u.f.Truncate(u.size); terr != nil {
			return 0, fmt.Errorf("blobstore: roll back upload: %w", terr)
		}
		if u.hashed {
			u.hashed = u.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(saved) == nil
		}
		return 0, err
	}
	n := off - u.size
	u.size = off
	if n > 0 {
		if err := u.saveState(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// fill reads from r into buf until buf is full or r ends. Only r's own io.EOF ends it
// well: io.ReadFull would also take an io.ErrUnexpectedEOF from r (a client that went
// away mid-body) for a clean end.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// The state file: the size the hash covers (8 bytes, big endian), the length of the
// epoch it was written in (1 byte) and that epoch, then the marshaled sha256 state. It
// is replaced by rename, so it is either the old or the new state.
func (u *upload) saveState() error {
	state, err := u.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil || !u.hashed {
		return nil // nothing to keep: Commit re-hashes
	}
	buf := binary.BigEndian.AppendUint64(make([]byte, 0, 9+len(u.s.epoch)+len(state)), uint64(u.size))
	buf = append(buf, byte(len(u.s.epoch)))
	buf = append(buf, u.s.epoch...)
	buf = append(buf, state...)
	tmp := filepath.Join(u.dir, "state.tmp")
	if err := os.WriteFile(tmp, buf, 0o644); err != nil {
		return fmt.Errorf("blobstore: save upload state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(u.dir, "state")); err != nil {
		return fmt.Errorf("blobstore: save upload state: %w", err)
	}
	return nil
}

func (u *upload) loadState() {
	buf, err := os.ReadFile(filepath.Join(u.dir, "state"))
	if err != nil || len(buf) < 9 || int64(binary.BigEndian.Uint64(buf)) != u.size {
		return
	}
	n := int(buf[8])
	if len(buf) < 9+n || !bytes.Equal(buf[9:9+n], u.s.epoch) {
		return // written before a reboot: the data may not be what it describes
	}
	u.hashed = u.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(buf[9+n:]) == nil
}

func (u *upload) Commit(ctx context.Context, d digest.Digest) (int64, error) {
	if err := d.Validate(); err != nil {
		return 0, blobstore.ErrDigestMismatch
	}
	fast := d.Algorithm() == digest.SHA256 && u.hashed
	if !fast || digest.NewDigest(digest.SHA256, u.h) != d {
		// No running hash, or it disagrees: the data decides, read back in full.
		v := d.Algorithm().Hash()
		if _, err := io.Copy(v, io.NewSectionReader(u.f, 0, u.size)); err != nil {
			return 0, fmt.Errorf("blobstore: hash upload: %w", err)
		}
		if digest.NewDigest(d.Algorithm(), v) != d {
			return 0, blobstore.ErrDigestMismatch
		}
	}
	dest, _ := u.s.path(d)
	if _, err := os.Stat(dest); err == nil {
		return u.size, u.Cancel(ctx) // stored once: keep the existing blob
	}
	if err := u.f.Sync(); err != nil {
		return 0, fmt.Errorf("blobstore: sync upload: %w", err)
	}
	if err := mkdirAllSync(filepath.Dir(dest)); err != nil {
		return 0, err
	}
	if err := os.Rename(filepath.Join(u.dir, "data"), dest); err != nil {
		return 0, fmt.Errorf("blobstore: commit upload: %w", err)
	}
	if err := syncDir(filepath.Dir(dest)); err != nil {
		return 0, err
	}
	size := u.size
	return size, u.Cancel(ctx)
}

func (u *upload) Cancel(context.Context) error {
	if u.done {
		return nil
	}
	u.done = true
	err := os.RemoveAll(u.dir)
	u.f.Close()
	if err != nil {
		return fmt.Errorf("blobstore: remove upload: %w", err)
	}
	return nil
}

func (u *upload) Close() error {
	if u.done {
		return nil
	}
	u.done = true
	return u.f.Close()
}

// mkdirAllSync creates dir and its missing parents, fsyncing the parent of each
// directory it creates so that the new entries survive a crash.
func mkdirAllSync(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := mkdirAllSync(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("blobstore: %w", err)
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blobstore: sync %s: %w", filepath.Base(dir), err)
	}
	return nil
}

package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/opencontainers/go-digest"
)

// errMismatch is a fetched blob whose content is not what its digest and size say.
var errMismatch = errors.New("the content does not match the digest or size")

// spool is a blob being fetched, in a file that readers read along as it grows. It
// shows the last byte only once all of them hash to the digest.
type spool struct {
	f    *os.File
	fd   uintptr
	size int64
	d    digest.Digest
	// path is the file's name when it could not be unlinked at once (a system that
	// does not unlink open files): it goes when the spool is released.
	path string

	mu      sync.Mutex
	written int64
	// verified is set once every byte is written and matches the digest; err once the
	// fetch failed.
	verified bool
	err      error
	// changed is closed, and replaced, whenever written, verified or err changes.
	changed chan struct{}
	// refs counts the fetch and the readers; the file is closed with the last.
	refs int
}

func newSpool(dir string, d digest.Digest, size int64) (*spool, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "graft-mirror-*")
	if err != nil {
		return nil, fmt.Errorf("creating a spool for %s: %w", d, err)
	}
	sp := &spool{f: f, fd: f.Fd(), size: size, d: d, changed: make(chan struct{}), refs: 1}
	if os.Remove(f.Name()) != nil {
		sp.path = f.Name()
	}
	return sp, nil
}

// fill writes what body yields into the spool, hashing it, until the blob's size is
// reached; it fails, as the spool's readers then do, when body fails, or holds other
// content or another size than the blob's.
//
// The hash runs beside the copy, on each buffer once it is written: a fetch then takes
// the longer of the two, not their sum, and the readers, who may see the bytes once
// written, are not held back by the hash (sha256 is the slowest stage of a fetch from a
// fast upstream).
func (sp *spool) fill(body io.Reader) error {
	h := sp.d.Algorithm().Hash()
	free := make(chan []byte, spoolBuffers)
	for range spoolBuffers {
		free <- make([]byte, spoolBuffer)
	}
	written := make(chan []byte, spoolBuffers)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range written {
			h.Write(b)
			free <- b[:cap(b)]
		}
	}()
	err := sp.copy(body, free, written)
	close(written)
	<-hashed
	if err == nil && digest.NewDigest(sp.d.Algorithm(), h) != sp.d {
		err = errMismatch
	}
	sp.mu.Lock()
	if err != nil {
		sp.err = err
	} else {
		sp.verified = true
	}
	sp.notify()
	sp.mu.Unlock()
	return err
}

// spoolBuffer is the size of the reads from the upstream; spoolBuffers how many the
// copy and the hash share.
const (
	spoolBuffer  = 256 << 10
	spoolBuffers = 4
)

// copy reads body into the buffers free yields, writes each to the spool, and hands it
// to the hash on written.
func (sp *spool) copy(body io.Reader, free chan []byte, written chan<- []byte) error {
	var off int64
	for {
		buf := <-free
		n, err := body.Read(buf)
		if int64(n) > sp.size-off {
			return fmt.Errorf("%w: more than %d bytes", errMismatch, sp.size)
		}
		if n > 0 {
			if _, werr := sp.f.WriteAt(buf[:n], off); werr != nil {
				return fmt.Errorf("writing the spool: %w", werr)
			}
			written <- buf[:n]
			off += int64(n)
			sp.mu.Lock()
			sp.written = off
			sp.notify()
			sp.mu.Unlock()
		} else {
			free <- buf
		}
		switch {
		case err == io.EOF && off < sp.size:
			return fmt.Errorf("%w: %d bytes of %d", errMismatch, off, sp.size)
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
}

func (sp *spool) notify() {
	close(sp.changed)
	sp.changed = make(chan struct{})
}

// failed reports whether the fetch into the spool failed.
func (sp *spool) failed() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.err != nil
}

// visible is how many bytes readers may read: all that are written, but the last one
// before the digest is verified.
func (sp *spool) visible() int64 {
	if sp.verified {
		return sp.size
	}
	return min(sp.written, sp.size-1)
}

// reader returns a reader of the spool from its start, which must be closed, or nil
// when the spool is released already.
func (sp *spool) reader(ctx context.Context) *spoolReader {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.refs == 0 {
		return nil
	}
	sp.refs++
	return &spoolReader{sp: sp, ctx: ctx}
}

// reopen opens the spool's file again, with an offset of its own, at its start. The
// file is unlinked: on Linux, /proc names it still.
func (sp *spool) reopen() (*os.File, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.ErrUnsupported
	}
	return os.Open(fmt.Sprintf("/proc/self/fd/%d", sp.fd))
}

// release gives up a reference; the last closes the file.
func (sp *spool) release() {
	sp.mu.Lock()
	sp.refs--
	last := sp.refs == 0
	sp.mu.Unlock()
	if last {
		sp.f.Close()
		if sp.path != "" {
			os.Remove(sp.path)
		}
	}
}

// spoolReader reads a spool as it grows. It waits for bytes until the spool has them
// or fails, or its context ends.
type spoolReader struct {
	sp     *spool
	ctx    context.Context
	off    int64
	closed bool
}

func (r *spoolReader) Read(p []byte) (int, error) {
	vis, err := r.wait()
	if err != nil {
		return 0, err
	}
	n, err := r.sp.f.ReadAt(p[:min(int64(len(p)), vis-r.off)], r.off)
	r.off += int64(n)
	if n > 0 {
		return n, nil
	}
	return 0, err
}

// wait waits until the spool shows bytes past the reader's offset, and returns how many
// it shows; io.EOF once the reader has read the verified blob, the fetch's error once it
// failed.
func (r *spoolReader) wait() (int64, error) {
	sp := r.sp
	for {
		sp.mu.Lock()
		vis, err, changed := sp.visible(), sp.err, sp.changed
		sp.mu.Unlock()
		switch {
		case r.off < vis:
			return vis, nil
		case err != nil:
			return 0, err
		case r.off == sp.size:
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

// WriteTo writes the spool to w as it grows. The bytes go from a file of the reader's
// own, so that a writer that is a network connection has the kernel send them
// (sendfile) rather than copy them through the process twice.
func (r *spoolReader) WriteTo(w io.Writer) (int64, error) {
	f, err := r.sp.reopen()
	if err != nil {
		return io.Copy(w, struct{ io.Reader }{r}) // the reads above, a copy at a time
	}
	defer f.Close()
	var total int64
	for {
		vis, err := r.wait()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		// f's offset is r.off: every byte before it went to w
		want := vis - r.off
		n, err := io.Copy(w, &io.LimitedReader{R: f, N: want})
		r.off += n
		total += n
		if err == nil && n < want {
			err = io.ErrUnexpectedEOF // the file is shorter than what was written to it
		}
		if err != nil {
			return total, err
		}
	}
}

// Close releases the reader's hold on the spool.
func (r *spoolReader) Close() error {
	if !r.closed {
		r.closed = true
		r.sp.release()
	}
	return nil
}

package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/graft-registry/graft/internal/errcode"
)

// A blob the registry lacks is fetched once, whoever asks for it and however many ask
// at once. The fetch writes what the upstream sends to a spool (a file the mirror
// unlinks as it creates it, so that nothing is left of it after a crash), as fast as the
// upstream sends it, hashing it on the way. Every plain GET that arrives while the
// fetch runs, the first and the fiftieth alike, reads along from the spool at its own
// pace: a client is never held to the speed of another, or of the blob store. Once the
// upstream has sent it all, the store reads the spool at the pace of its disk or
// bucket, and makes the blob visible once it has verified the digest itself; writing
// it meanwhile would take from the clients' stream the CPU and disk it needs (measured:
// bench/mirror.sh). Nothing is held in memory but the buffers of the copies; a ranged
// GET waits for the store to hold the blob.
//
// A client reading along never gets the whole of a blob that is not what it asked
// for: the spool shows its last byte only once the fetch has verified the digest, so a
// wrong blob is cut short and its clients see a failed transfer.

type flights struct {
	mu sync.Mutex
	m  map[string]*flight
	// running counts the fetches, which Close waits for.
	running sync.WaitGroup
}

// flight is a fetch of a blob in progress.
type flight struct {
	// ready is closed once the upstream answered, with sp set, or failed, with
	// failed set.
	ready  chan struct{}
	sp     *spool
	failed error
	// done is closed once the store holds the blob, or the fetch failed; err says
	// which.
	done chan struct{}
	err  error
}

// StatBlob answers a HEAD of blob ref of repo, a repository of a mirror that the
// registry lacks, with upstream's word: the digest and size of the blob, fetching
// nothing.
func (s *Set) StatBlob(ctx context.Context, repo, ref string) (digest.Digest, int64, error) {
	up, r, d, what, err := s.blobRoute(repo, ref)
	if err != nil {
		return "", 0, err
	}
	if f := s.blobs.get(key(repo, d.String())); f != nil {
		// a fetch under way knows the size: the upstream told it
		select {
		case <-f.ready:
			if f.failed == nil {
				return d, f.sp.size, nil
			}
		default:
		}
	}
	desc, err := r.Blobs().Resolve(ctx, d.String())
	s.metrics.upstream.WithLabelValues(up.Prefix, "blob_stat", outcome(err)).Inc()
	if err != nil {
		return "", 0, s.failed(up, err, errcode.BlobUnknown, what)
	}
	if has, err := s.fill.HasBlob(ctx, d); err == nil && has {
		// bytes another repository brought serve this one's GET from now on
		if _, err := s.fill.LinkBlob(ctx, repo, d); err != nil {
			s.log.Warn("mirror: linking a blob the store holds failed", "repo", repo, "digest", d, "err", err)
		}
	}
	return d, desc.Size, nil
}

func (s *Set) blobRoute(repo, ref string) (*upstream, *remote.Repository, digest.Digest, string, error) {
	up, name, ok := s.route(repo)
	if !ok {
		return nil, nil, "", "", errcode.New(errcode.BlobUnknown, "blob %s is not in the repository", ref)
	}
	d, err := digest.Parse(ref)
	if err != nil {
		return nil, nil, "", "", errcode.New(errcode.DigestInvalid, "invalid digest")
	}
	what := fmt.Sprintf("blob %s@%s", name, d)
	r, err := up.repository(name)
	if err != nil {
		return nil, nil, "", "", s.failed(up, err, errcode.BlobUnknown, what)
	}
	return up, r, d, what, nil
}

// FetchBlob makes the registry hold blob ref of repo, a repository of a mirror that
// the registry lacks, fetched from upstream. With stream set, a call that starts the
// fetch returns the blob as it arrives, and its size: its caller must read it to the
// end or close it. Every other call returns a nil reader once the registry holds the
// blob, which it then serves.
func (s *Set) FetchBlob(ctx context.Context, repo, ref string, stream bool) (io.ReadCloser, int64, error) {
	up, r, d, what, err := s.blobRoute(repo, ref)
	if err != nil {
		return nil, 0, err
	}
	k := key(repo, d.String())
	fl := &s.blobs
	if fl.get(k) == nil {
		// Bytes another repository brought need no fetch, only upstream's word that
		// this repository has them too. A fetch of this repository's own is joined
		// instead: the store may hold its bytes a moment before the repository may
		// read them, and a pull then must not ask upstream again.
		if linked, err := s.linkHeld(ctx, up, r, repo, d, what); err != nil || linked {
			return nil, 0, err
		}
	}
	fl.mu.Lock()
	f, joined := fl.m[k]
	if !joined {
		// A fetch that ended after the caller looked has stored it.
		if _, _, err := s.reg.StatBlob(ctx, repo, ref); err == nil {
			fl.mu.Unlock()
			return nil, 0, nil
		}
		if s.ctx.Err() != nil {
			fl.mu.Unlock()
			return nil, 0, s.failed(up, errClosed, errcode.BlobUnknown, what)
		}
		f = &flight{ready: make(chan struct{}), done: make(chan struct{})}
		if fl.m == nil {
			fl.m = map[string]*flight{}
		}
		fl.m[k] = f
		fl.running.Add(1)
		go s.fetchBlob(up, r, repo, d, what, f)
	} else {
		s.metrics.joins.WithLabelValues(up.Prefix).Inc()
	}
	fl.mu.Unlock()

	select {
	case <-f.ready:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	if f.failed != nil {
		return nil, 0, f.failed
	}
	if stream && !f.sp.failed() {
		// A fetch that failed already is answered with its error below, not with
		// the start of a transfer that is cut.
		if rd := f.sp.reader(ctx); rd != nil {
			return rd, f.sp.size, nil
		}
		// the spool is gone: the store holds the blob by now, or the fetch failed
	}
	select {
	case <-f.done:
		return nil, 0, f.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// fetchBlob fetches blob d of repo from r into a spool, then from the spool into the
// store.
func (s *Set) fetchBlob(up *upstream, r *remote.Repository, repo string, d digest.Digest, what string, f *flight) {
	defer s.blobs.running.Done()
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	start := time.Now()
	err := func() error {
		desc, body, err := r.Blobs().FetchReference(ctx, d.String())
		s.metrics.upstream.WithLabelValues(up.Prefix, "blob", outcome(err)).Inc()
		if err != nil {
			return s.failed(up, err, errcode.BlobUnknown, what)
		}
		defer body.Close()
		// An upstream that stops sending mid-blob would hold every client reading along
		// for as long as the connection stays open.
		stall := time.AfterFunc(blobStall, func() { cancel(errStalled) })
		defer stall.Stop()
		body = &watched{ReadCloser: body, stall: stall}
		sp, err := newSpool(s.spoolDir, d, desc.Size)
		if err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		defer sp.release()
		f.sp = sp
		close(f.ready)

		feed := sp.reader(ctx)
		defer feed.Close()
		fetchErr := sp.fill(body)
		stall.Stop() // the store takes the time it needs
		if fetchErr == nil {
			body.Close() // the upstream's connection is free for the next fetch
			err = s.fill.PutBlob(ctx, repo, d, desc.Size, feed)
		}
		switch {
		case fetchErr != nil && context.Cause(ctx) == errStalled:
			s.log.Warn("mirror: the upstream stopped sending a blob", "mirror", up.Prefix, "repo", repo, "digest", d,
				"stall", blobStall.String())
			return errcode.New(errcode.Unavailable, "upstream %s of mirror %s stopped sending %s for %s",
				up.Upstream, up.Prefix, what, blobStall).WithStatus(http.StatusGatewayTimeout)
		case errors.Is(fetchErr, errMismatch):
			s.log.Warn("mirror: the upstream served a blob that does not match its digest or size", "mirror", up.Prefix,
				"repo", repo, "digest", d, "err", fetchErr)
			return errcode.New(errcode.Unavailable, "upstream %s of mirror %s served %s with content that does not match its digest or size",
				up.Upstream, up.Prefix, what).WithStatus(http.StatusBadGateway)
		case fetchErr != nil:
			return s.failed(up, fetchErr, errcode.BlobUnknown, what)
		case err != nil:
			return err
		}
		s.metrics.bytes.WithLabelValues(up.Prefix).Add(float64(desc.Size))
		return nil
	}()
	select {
	case <-f.ready:
	default:
		f.failed = err
		close(f.ready)
	}
	if err == nil {
		s.log.Debug("mirror: fetched a blob", "mirror", up.Prefix, "repo", repo, "digest", d,
			"duration", time.Since(start).String())
	} else if s.ctx.Err() == nil {
		s.log.Warn("mirror: fetching a blob failed", "mirror", up.Prefix, "repo", repo, "digest", d, "err", err)
	}
	s.blobs.mu.Lock()
	delete(s.blobs.m, key(repo, d.String()))
	s.blobs.mu.Unlock()
	f.err = err
	close(f.done)
}

// blobStall is how long a fetch waits for the next bytes of a blob before it gives the
// upstream up.
var blobStall = 2 * time.Minute

var errStalled = errors.New("mirror: the upstream stopped sending")

// watched is the body of a blob's fetch: every read that yields bytes restarts stall.
type watched struct {
	io.ReadCloser
	stall *time.Timer
}

func (w *watched) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	if n > 0 {
		w.stall.Reset(blobStall)
	}
	return n, err
}

// linkHeld lets repo read blob d when the store holds it already, once upstream
// confirmed that its repository has it, and reports whether repo may read it now.
func (s *Set) linkHeld(ctx context.Context, up *upstream, r *remote.Repository, repo string, d digest.Digest, what string) (bool, error) {
	if has, err := s.fill.HasBlob(ctx, d); err != nil || !has {
		return false, err
	}
	if _, _, err := s.reg.StatBlob(ctx, repo, d.String()); err == nil {
		return true, nil // a fetch of this repository ended since the caller looked
	}
	_, err := r.Blobs().Resolve(ctx, d.String())
	s.metrics.upstream.WithLabelValues(up.Prefix, "blob_stat", outcome(err)).Inc()
	if err != nil {
		return false, s.failed(up, err, errcode.BlobUnknown, what)
	}
	return s.fill.LinkBlob(ctx, repo, d)
}

// get returns the fetch of key k in flight, or nil.
func (fl *flights) get(k string) *flight {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.m[k]
}

// wait waits for the fetches in flight to end.
func (fl *flights) wait() { fl.running.Wait() }

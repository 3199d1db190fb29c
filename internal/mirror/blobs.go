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
// at once. The first plain GET starts the fetch and is served the bytes as they arrive
// from upstream, while the same bytes are written to the blob store; every other pull
// (a GET of another client, a ranged GET) waits for the store to hold the blob, and is
// then served from it. Nothing is held in memory but the buffers of the copy.
//
// The client that streams never gets the whole of a blob the store refused: the last
// bytes go to it only once the store has verified the digest (and made the blob
// durable), so a wrong blob is cut short and its client sees a failed transfer.

type flights struct {
	mu sync.Mutex
	m  map[string]*flight
	// running counts the fetches, which Close waits for.
	running sync.WaitGroup
}

// flight is a fetch of a blob in progress.
type flight struct {
	done chan struct{}
	// err is what the fetch ended with; set before done is closed.
	err error
	// size is the blob's size, once the upstream said it.
	size int64
}

// StatBlob answers a HEAD of blob ref of repo, a repository of a mirror that the
// registry lacks, with upstream's word: the digest and size of the blob, fetching
// nothing.
func (s *Set) StatBlob(ctx context.Context, repo, ref string) (digest.Digest, int64, error) {
	up, r, d, what, err := s.blobRoute(repo, ref)
	if err != nil {
		return "", 0, err
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
	// Bytes another repository brought need no fetch, only upstream's word that this
	// repository has them too.
	if has, err := s.fill.HasBlob(ctx, d); err != nil {
		return nil, 0, err
	} else if has {
		_, err := r.Blobs().Resolve(ctx, d.String())
		s.metrics.upstream.WithLabelValues(up.Prefix, "blob_stat", outcome(err)).Inc()
		if err != nil {
			return nil, 0, s.failed(up, err, errcode.BlobUnknown, what)
		}
		if linked, err := s.fill.LinkBlob(ctx, repo, d); err != nil || linked {
			return nil, 0, err
		}
	}

	k := key(repo, d.String())
	fl := &s.blobs
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
		f = &flight{done: make(chan struct{})}
		if fl.m == nil {
			fl.m = map[string]*flight{}
		}
		fl.m[k] = f
		fl.running.Add(1)
	}
	fl.mu.Unlock()

	if joined || !stream {
		if joined {
			s.metrics.waits.WithLabelValues(up.Prefix).Inc()
		} else {
			go s.fetchBlob(up, r, repo, d, what, f, nil, nil)
		}
		select {
		case <-f.done:
			return nil, 0, f.err
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	pr, pw := io.Pipe()
	ready := make(chan error, 1)
	go s.fetchBlob(up, r, repo, d, what, f, pw, ready)
	select {
	case err := <-ready:
		if err != nil {
			pr.Close()
			return nil, 0, err
		}
	case <-ctx.Done():
		pr.CloseWithError(ctx.Err())
		return nil, 0, ctx.Err()
	}
	return pr, f.size, nil
}

// clientStall is how long the client that streams a fetch may leave a write unread
// before it is dropped: the fetch, and the pulls waiting for it, go on without it.
const clientStall = 30 * time.Second

// fetchBlob fetches blob d of repo from r into the registry, streaming it to client
// (when not nil) and saying on ready (when not nil) once the upstream answered or
// failed.
func (s *Set) fetchBlob(up *upstream, r *remote.Repository, repo string, d digest.Digest, what string, f *flight,
	client *io.PipeWriter, ready chan<- error) {
	defer s.blobs.running.Done()
	ctx := s.ctx
	start := time.Now()
	t := &tee{client: client}
	if client != nil {
		t.stall = time.AfterFunc(time.Hour, func() { client.CloseWithError(errStalled) })
		t.stall.Stop()
		defer t.stall.Stop()
	}
	err := func() error {
		desc, body, err := r.Blobs().FetchReference(ctx, d.String())
		s.metrics.upstream.WithLabelValues(up.Prefix, "blob", outcome(err)).Inc()
		if err != nil {
			return s.failed(up, err, errcode.BlobUnknown, what)
		}
		defer body.Close()
		f.size = desc.Size
		t.r, t.size = body, desc.Size
		if ready != nil {
			ready <- nil
			ready = nil
		}
		err = s.fill.PutBlob(ctx, repo, d, desc.Size, t)
		switch {
		case t.err != nil:
			return s.failed(up, t.err, errcode.BlobUnknown, what)
		case errcode.Is(err, errcode.DigestInvalid), errcode.Is(err, errcode.SizeInvalid):
			s.log.Warn("mirror: the upstream served a blob that does not match its digest or size", "mirror", up.Prefix,
				"repo", repo, "digest", d, "err", err)
			return errcode.New(errcode.Unavailable, "upstream %s of mirror %s served %s with content that does not match its digest or size",
				up.Upstream, up.Prefix, what).WithStatus(http.StatusBadGateway)
		case err != nil:
			return err
		}
		s.metrics.bytes.WithLabelValues(up.Prefix).Add(float64(desc.Size))
		t.finish()
		return nil
	}()
	if ready != nil {
		ready <- err
	}
	if client != nil {
		client.CloseWithError(err)
	}
	if err == nil {
		s.log.Debug("mirror: fetched a blob", "mirror", up.Prefix, "repo", repo, "digest", d, "size", f.size,
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

var errStalled = errors.New("mirror: the client stopped reading")

// wait waits for the fetches in flight to end.
func (fl *flights) wait() { fl.running.Wait() }

// tee passes what the upstream sends to the blob store, and a copy to the client that
// streams the fetch, if any, holding back the last read until finish.
type tee struct {
	r       io.Reader
	size, n int64
	// client is nil when there is none, or once it is gone: the fetch goes on.
	client *io.PipeWriter
	stall  *time.Timer
	tail   []byte
	// err is the upstream's failure, told apart from the store's.
	err error
}

func (t *tee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	if n > 0 && t.client != nil {
		t.n += int64(n)
		if t.n >= t.size {
			t.tail = append(t.tail, p[:n]...)
		} else {
			t.send(p[:n])
		}
	}
	return n, err
}

// send writes b to the client, dropping a client that is gone or stalls.
func (t *tee) send(b []byte) {
	t.stall.Reset(clientStall)
	_, err := t.client.Write(b)
	t.stall.Stop()
	if err != nil {
		t.client = nil
	}
}

// finish sends the bytes held back, once the store has verified them.
func (t *tee) finish() {
	if t.client != nil && len(t.tail) > 0 {
		t.send(t.tail)
	}
}

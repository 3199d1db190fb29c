package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/manifest"
)

// Manifest bodies are held whole in memory while they are checked and stored, up to
// manifest.MaxSize each. Their bytes in flight share one budget, so that clients
// that start many manifest PUTs and never finish them cannot pin more than it: a
// request takes from the budget as its body arrives (never what it merely declares),
// waits a moment when the budget is spent, then is answered 429.

// manifestWait is how long a manifest body waits for room in the budget.
const manifestWait = 2 * time.Second

// bodyBudget is a budget of bytes held by request bodies.
type bodyBudget struct {
	size int64
	sem  *semaphore.Weighted

	mu       sync.Mutex
	held     int64
	peak     int64
	returned time.Time
}

func newBodyBudget(size int64) *bodyBudget {
	if size <= 0 {
		size = DefaultManifestMemory
	}
	// one manifest of the largest size must always fit, with the byte that tells
	// a larger one
	size = max(size, manifest.MaxSize+1)
	return &bodyBudget{size: size, sem: semaphore.NewWeighted(size)}
}

// errBudgetSpent answers a manifest body the budget has no room for.
var errBudgetSpent = errcode.New(errcode.TooManyRequests, "too many manifest bodies in flight; try again in a moment")

// take takes n bytes from the budget, waiting up to manifestWait for them.
func (b *bodyBudget) take(ctx context.Context, n int64) error {
	if !b.sem.TryAcquire(n) {
		wctx, cancel := context.WithTimeout(ctx, manifestWait)
		defer cancel()
		if err := b.sem.Acquire(wctx, n); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errBudgetSpent
		}
	}
	b.mu.Lock()
	b.held += n
	b.peak = max(b.peak, b.held)
	b.mu.Unlock()
	return nil
}

// spike is how much of the budget held at once makes its release worth handing the
// memory back to the operating system; returnEvery is how often that happens at most.
const (
	spikeFraction = 4
	returnEvery   = 30 * time.Second
)

// give returns n bytes to the budget. When the budget empties after a spike, the
// memory the spike took goes back to the operating system: left to itself, the
// runtime keeps it until its next collection, which an idle server may not run for
// minutes.
func (b *bodyBudget) give(n int64) {
	if n == 0 {
		return
	}
	b.sem.Release(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	if b.held > 0 || b.peak < b.size/spikeFraction || time.Since(b.returned) < returnEvery {
		return
	}
	b.peak = 0
	b.returned = time.Now()
	// after the handler that gave the last bytes has let go of its buffer
	time.AfterFunc(100*time.Millisecond, debug.FreeOSMemory)
}

// readManifest reads r's body, of manifest.MaxSize at most, taking its bytes from
// the budget as they arrive; the caller gives them back with release once it no
// longer holds the body (release does nothing after the first call, or after an
// error).
func (b *bodyBudget) readManifest(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	var held int64
	release = func() { b.give(held); held = 0 }
	defer func() {
		if err != nil {
			release()
		}
	}()
	if r.ContentLength > manifest.MaxSize {
		return nil, release, errManifestTooLarge()
	}
	limit := int64(manifest.MaxSize + 1) // one byte more tells a body too large
	if r.ContentLength >= 0 {
		limit = r.ContentLength
	}
	buf := []byte{}
	for {
		if len(buf) == cap(buf) {
			if int64(cap(buf)) >= limit {
				more, err := hasMore(r.Body)
				if err != nil {
					return nil, release, readError(r)
				}
				if more {
					return nil, release, errManifestTooLarge()
				}
				break
			}
			grow := min(max(2*int64(cap(buf)), 16<<10), limit) - int64(cap(buf))
			if err := b.take(r.Context(), grow); err != nil {
				if errors.Is(err, errBudgetSpent) {
					w.Header().Set("Retry-After", "1")
				}
				return nil, release, err
			}
			held += grow
			buf = append(make([]byte, 0, int64(cap(buf))+grow), buf...)
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, release, readError(r)
		}
	}
	if int64(len(buf)) > manifest.MaxSize {
		return nil, release, errManifestTooLarge()
	}
	return buf, release, nil
}

// hasMore reports whether body holds more than was read of it.
func hasMore(body io.Reader) (bool, error) {
	var one [1]byte
	for {
		n, err := body.Read(one[:])
		switch {
		case n > 0:
			return true, nil
		case err == io.EOF:
			return false, nil
		case err != nil:
			return false, err
		}
	}
}

// readError is the error of a manifest body that could not be read: the client
// went away, or sent a broken body.
func readError(r *http.Request) error {
	if err := r.Context().Err(); err != nil {
		return err
	}
	return errcode.New(errcode.ManifestInvalid, "reading the manifest failed")
}

func errManifestTooLarge() error {
	return errcode.New(errcode.ManifestInvalid, "manifest larger than %d bytes", manifest.MaxSize).
		WithStatus(http.StatusRequestEntityTooLarge)
}

package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/manifest"
)

func (b *bodyBudget) heldNow() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// TestManifestBodyBudget: a manifest body takes from the budget what has arrived,
// never what it declares; one the budget has no room for waits, then is answered 429;
// a body larger than a manifest may be is refused, declared or not.
func TestManifestBodyBudget(t *testing.T) {
	b := newBodyBudget(1) // the least: one manifest of the largest size

	// declares 4 MiB, sends 10 bytes, then stalls
	pr, pw := io.Pipe()
	stalled := httptest.NewRequest(http.MethodPut, "/v2/a/manifests/v1", pr)
	stalled.ContentLength = manifest.MaxSize
	done := make(chan error)
	go func() {
		_, release, err := b.readManifest(httptest.NewRecorder(), stalled)
		release()
		done <- err
	}()
	pw.Write([]byte("0123456789"))
	deadline := time.Now().Add(10 * time.Second)
	for b.heldNow() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if held := b.heldNow(); held == 0 || held > 16<<10 {
		t.Fatalf("a body that declared 4 MiB and sent 10 bytes holds %d bytes of the budget", held)
	}
	pw.CloseWithError(errors.New("client gone"))
	if err := <-done; !errcode.Is(err, errcode.ManifestInvalid) {
		t.Errorf("a body cut short: %v", err)
	}
	if held := b.heldNow(); held != 0 {
		t.Errorf("%d bytes still held after the request", held)
	}

	// a whole body: what it holds is its size, and goes back on release
	full := bytes.Repeat([]byte("m"), manifest.MaxSize)
	body, release, err := b.readManifest(httptest.NewRecorder(), httptest.NewRequest(http.MethodPut, "/v2/a/manifests/v1", bytes.NewReader(full)))
	if err != nil || !bytes.Equal(body, full) {
		t.Fatalf("a 4 MiB body: %d bytes, %v", len(body), err)
	}
	if held := b.heldNow(); held != manifest.MaxSize {
		t.Errorf("a 4 MiB body holds %d bytes of the budget", held)
	}
	// the budget is spent: the next body waits, then is refused
	w := httptest.NewRecorder()
	_, release2, err := b.readManifest(w, httptest.NewRequest(http.MethodPut, "/v2/a/manifests/v2", strings.NewReader(`{}`)))
	release2()
	if !errcode.Is(err, errcode.TooManyRequests) || w.Header().Get("Retry-After") == "" {
		t.Errorf("a body with the budget spent: %v, Retry-After %q", err, w.Header().Get("Retry-After"))
	}
	release()
	if held := b.heldNow(); held != 0 {
		t.Errorf("%d bytes held after every release", held)
	}

	// too large, with a length and without (chunked)
	for _, length := range []int64{manifest.MaxSize + 1, -1} {
		r := httptest.NewRequest(http.MethodPut, "/v2/a/manifests/v1", bytes.NewReader(append(full, '!')))
		r.ContentLength = length
		_, release, err := b.readManifest(httptest.NewRecorder(), r)
		release()
		if errcode.As(err).HTTPStatus() != http.StatusRequestEntityTooLarge {
			t.Errorf("a body of 4 MiB + 1 with length %d: %v", length, err)
		}
	}
	if held := b.heldNow(); held != 0 {
		t.Errorf("%d bytes held after refusals", held)
	}
}

// Package e2e drives a real `graft serve` over HTTP: with oras-go, the client library
// the registry's users push and pull with, and with raw requests where a client would
// hide the status codes, headers and bodies the distribution spec prescribes.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

// httpClient is the oras-go clients': no retries (a client that retries would hide a
// failing answer) and enough idle connections for the concurrent pushes.
var httpClient = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}()

// repository is an oras-go client of repository name on srv.
func repository(t *testing.T, srv *graftest.Server, name string) *remote.Repository {
	t.Helper()
	repo, err := remote.NewRepository(srv.Addr + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	repo.Client = httpClient
	return repo
}

// registryClient is an oras-go client of srv.
func registryClient(t *testing.T, srv *graftest.Server) *remote.Registry {
	t.Helper()
	reg, err := remote.NewRegistry(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	reg.PlainHTTP = true
	reg.Client = httpClient
	return reg
}

// push pushes blobs to dst in order, skipping those it has.
func push(t *testing.T, dst content.Storage, blobs ...apitest.Blob) {
	t.Helper()
	for _, b := range blobs {
		ok, err := dst.Exists(t.Context(), b.Desc)
		if err != nil {
			t.Fatalf("exists %s: %v", b.Desc.Digest, err)
		}
		if ok {
			continue
		}
		if err := dst.Push(t.Context(), b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatalf("push %s %s: %v", b.Desc.MediaType, b.Desc.Digest, err)
		}
	}
}

// copyImage pushes im to repo as oras-go pushes: with oras.Copy from memory, tagged
// tag unless it is "".
func copyImage(t *testing.T, repo *remote.Repository, im apitest.Image, tag string) {
	t.Helper()
	mem := memory.New()
	push(t, mem, im.Blobs()...)
	push(t, mem, im.Manifest)
	if tag == "" {
		if err := oras.CopyGraph(t.Context(), mem, repo, im.Desc(), oras.DefaultCopyGraphOptions); err != nil {
			t.Fatalf("pushing image %s: %v", im.Desc().Digest, err)
		}
		return
	}
	if err := mem.Tag(t.Context(), im.Desc(), tag); err != nil {
		t.Fatal(err)
	}
	if _, err := oras.Copy(t.Context(), mem, tag, repo, tag, oras.DefaultCopyOptions); err != nil {
		t.Fatalf("pushing image as %s: %v", tag, err)
	}
}

// attach pushes an artifact of artifactType with subject to repo, packed with
// oras.PackManifest as image-spec v1.1 describes, with one layer holding payload.
func attach(t *testing.T, repo *remote.Repository, subject ocispec.Descriptor, artifactType, payload string, annotations map[string]string) ocispec.Descriptor {
	t.Helper()
	layer := apitest.NewBlob("application/vnd.example.payload", []byte(payload))
	push(t, repo, layer)
	desc, err := oras.PackManifest(t.Context(), repo, oras.PackManifestVersion1_1, artifactType, oras.PackManifestOptions{
		Subject:             &subject,
		Layers:              []ocispec.Descriptor{layer.Desc},
		ManifestAnnotations: annotations,
	})
	if err != nil {
		t.Fatalf("attaching %s to %s: %v", artifactType, subject.Digest, err)
	}
	return desc
}

// fetchAll reads desc from src.
func fetchAll(t *testing.T, src content.Fetcher, desc ocispec.Descriptor) []byte {
	t.Helper()
	b, err := content.FetchAll(t.Context(), src, desc)
	if err != nil {
		t.Fatalf("fetching %s: %v", desc.Digest, err)
	}
	return b
}

// referrers GETs the referrers of subject in repo (with query, if any) and returns
// the index.
func referrers(t *testing.T, srv *graftest.Server, repo string, subject digest.Digest, query string) (ocispec.Index, *apitest.Response) {
	t.Helper()
	target := "/v2/" + repo + "/referrers/" + subject.String()
	if query != "" {
		target += "?" + query
	}
	r := srv.Want(t, http.StatusOK, http.MethodGet, target, nil)
	apitest.WantHeader(t, "GET "+target, r, "Content-Type", ocispec.MediaTypeImageIndex)
	var idx ocispec.Index
	apitest.Decode(t, "GET "+target, r.Body, &idx)
	return idx, r
}

// manifestStatus GETs manifest ref of repo and returns the status.
func manifestStatus(t *testing.T, srv *graftest.Server, repo, ref string) int {
	t.Helper()
	return srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", apitest.AcceptManifests).Status
}

// countFiles counts the regular files under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and fails the test with
// the first error.
func parallel(t *testing.T, n, workers int, fn func(ctx context.Context, i int) error) {
	t.Helper()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("item %d: %w", i, err)
						cancel()
					}
					mu.Unlock()
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// waitLogged waits until srv has logged n requests of method on path.
func waitLogged(t *testing.T, srv *graftest.Server, method, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for srv.Requests(method, path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the registry did not log %d requests %s %s within 60s", n, method, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

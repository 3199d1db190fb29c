// Package scaleout drives three `graft serve` replicas on one S3 bucket and one
// PostgreSQL database, behind a proxy that sends each request to the next replica:
// what one replica accepts, every replica serves, and concurrent writers on different
// replicas keep tags, referrers and counts exact.
package scaleout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/graft-registry/graft/internal/graftest"
	"github.com/graft-registry/graft/internal/scaletest"
)

// replicas starts three replicas of a fresh scale-out deployment and the proxy in
// front of them.
func replicas(t *testing.T) (proxy string, rs []*graftest.Server) {
	t.Helper()
	cfg := scaletest.Config(t)
	path := filepath.Join(t.TempDir(), "graft.yaml")
	if err := os.WriteFile(path, []byte(scaletest.YAML(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rs = append(rs, graftest.Start(t, "--config", path))
	}
	return graftest.StartRoundRobin(t, rs...), rs
}

var client = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}()

func do(t *testing.T, method, url, contentType string, body []byte, want int) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	return resp
}

// TestChunkedUploadAcrossReplicas sends an upload's POST, PATCHes and PUT to three
// different replicas in turn, then reads the blob from each replica directly.
func TestChunkedUploadAcrossReplicas(t *testing.T) {
	proxy, rs := replicas(t)
	base := "http://" + proxy
	blob := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	d := digest.FromBytes(blob)
	resp := do(t, http.MethodPost, base+"/v2/team/app/blobs/uploads/", "", nil, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	const chunk = 100_000
	for off := 0; off < len(blob); off += chunk {
		end := min(off+chunk, len(blob))
		req, _ := http.NewRequest(http.MethodPatch, base+loc, bytes.NewReader(blob[off:end]))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH %d-%d = %d", off, end-1, resp.StatusCode)
		}
		loc = resp.Header.Get("Location")
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	do(t, http.MethodPut, base+loc+sep+"digest="+d.String(), "", nil, http.StatusCreated)
	for i, r := range rs {
		resp := do(t, http.MethodGet, r.URL+"/v2/team/app/blobs/"+d.String(), "", nil, http.StatusOK)
		got, _ := io.ReadAll(resp.Body)
		if digest.FromBytes(got) != d {
			t.Errorf("replica %d serves %d bytes that do not match the blob", i, len(got))
		}
	}
}

// TestConcurrentWritersAcrossReplicas has 24 clients push images with referrers and
// move one shared tag, each request on the next replica; afterwards every replica
// answers the same tags, referrers and counts, and they add up.
func TestConcurrentWritersAcrossReplicas(t *testing.T) {
	proxy, rs := replicas(t)
	ctx := context.Background()
	const clients, pushes = 24, 4
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("shared layer")
	repo, err := remote.NewRepository(proxy + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	for _, b := range [][]byte{config, layer, []byte("{}")} {
		desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(b), Size: int64(len(b))}
		if err := repo.Blobs().Push(ctx, desc, bytes.NewReader(b)); err != nil {
			t.Fatalf("push blob: %v", err)
		}
	}
	subject := putManifest(t, proxy, "base", image(config, layer, nil, "", "base"))

	var wg sync.WaitGroup
	var mu sync.Mutex
	var pushed []digest.Digest
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range pushes {
				img := putManifest(t, proxy, "latest", image(config, layer, nil, "", fmt.Sprintf("%d/%d", c, i)))
				sbom := putManifest(t, proxy, "", image(nil, nil, &subject, "application/spdx+json", fmt.Sprintf("sbom %d/%d", c, i)))
				mu.Lock()
				pushed = append(pushed, img.Digest, sbom.Digest)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	var answers []string
	for _, r := range rs {
		tags := do(t, http.MethodGet, r.URL+"/v2/team/app/tags/list", "", nil, http.StatusOK)
		var tl struct{ Tags []string }
		json.NewDecoder(tags.Body).Decode(&tl)
		latest := do(t, http.MethodHead, r.URL+"/v2/team/app/manifests/latest", "", nil, http.StatusOK).Header.Get("Docker-Content-Digest")
		refs := do(t, http.MethodGet, r.URL+"/v2/team/app/referrers/"+subject.Digest.String(), "", nil, http.StatusOK)
		var idx ocispec.Index
		json.NewDecoder(refs.Body).Decode(&idx)
		var rds []string
		for _, m := range idx.Manifests {
			rds = append(rds, m.Digest.String())
		}
		slices.Sort(rds)
		meta := do(t, http.MethodGet, r.URL+"/graft/v1/team/app", "", nil, http.StatusOK)
		var info struct {
			ManifestCount int64 `json:"manifestCount"`
			TagCount      int64 `json:"tagCount"`
		}
		json.NewDecoder(meta.Body).Decode(&info)
		if len(rds) != clients*pushes {
			t.Errorf("%s: %d referrers of the subject, want %d", r.URL, len(rds), clients*pushes)
		}
		if want := int64(1 + len(pushed)); info.ManifestCount != want || info.TagCount != 2 {
			t.Errorf("%s: repository counts %d manifests and %d tags, want %d and 2", r.URL, info.ManifestCount, info.TagCount, want)
		}
		if !slices.Contains(pushed, digest.Digest(latest)) {
			t.Errorf("%s: latest names %s, which no client pushed under it", r.URL, latest)
		}
		answers = append(answers, fmt.Sprint(tl.Tags, latest, rds))
	}
	for i := 1; i < len(answers); i++ {
		if answers[i] != answers[0] {
			t.Errorf("replica %d answers differently from replica 0:\n%s\n%s", i, answers[i], answers[0])
		}
	}
}

func image(config, layer []byte, subject *ocispec.Descriptor, artifactType, title string) ocispec.Manifest {
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Subject: subject,
		Annotations: map[string]string{ocispec.AnnotationTitle: title}}
	m.SchemaVersion = 2
	if config == nil {
		m.Config = ocispec.DescriptorEmptyJSON
		m.Layers = []ocispec.Descriptor{ocispec.DescriptorEmptyJSON}
		return m
	}
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	m.Layers = []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}}
	return m
}

func putManifest(t *testing.T, proxy, tag string, m ocispec.Manifest) ocispec.Descriptor {
	b, _ := json.Marshal(m)
	d := digest.FromBytes(b)
	ref := tag
	if ref == "" {
		ref = d.String()
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+proxy+"/v2/team/app/manifests/"+ref, bytes.NewReader(b))
	req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return ocispec.Descriptor{}
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("PUT manifest %s = %d %s", ref, resp.StatusCode, body)
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(b))}
}

// TestRedirect: with storage.s3.redirect, a blob pull answers with a presigned URL of the
// bucket that serves the blob without credentials.
func TestRedirect(t *testing.T) {
	cfg := scaletest.Config(t)
	cfg.Storage.S3.Redirect = true
	path := filepath.Join(t.TempDir(), "graft.yaml")
	if err := os.WriteFile(path, []byte(scaletest.YAML(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := graftest.Start(t, "--config", path)
	blob := []byte("fetched from the bucket")
	d := digest.FromBytes(blob)
	do(t, http.MethodPost, srv.URL+"/v2/team/app/blobs/uploads/?digest="+d.String(), "application/octet-stream", blob, http.StatusCreated)
	resp := do(t, http.MethodGet, srv.URL+"/v2/team/app/blobs/"+d.String(), "", nil, http.StatusTemporaryRedirect)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, cfg.Storage.S3.Endpoint) || !strings.Contains(loc, "X-Amz-Signature") {
		t.Fatalf("Location = %q, want a presigned URL of %s", loc, cfg.Storage.S3.Endpoint)
	}
	got := do(t, http.MethodGet, loc, "", nil, http.StatusOK)
	b, _ := io.ReadAll(got.Body)
	if !bytes.Equal(b, blob) {
		t.Errorf("the presigned URL serves %q, want %q", b, blob)
	}
	// Another repository may not read it, redirect or not.
	do(t, http.MethodGet, srv.URL+"/v2/other/blobs/"+d.String(), "", nil, http.StatusNotFound)
}

package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/blobstore/fs"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
	"github.com/graft-registry/graft/internal/registry"
)

// The hot paths of the API, measured in process through the real handler, registry
// and stores: what one request costs the server, without a network in the way.

func benchServer(b *testing.B) *Server {
	return benchServerWith(b, registry.Options{Cascade: true})
}

func benchServerWith(b *testing.B, o registry.Options) *Server {
	b.Helper()
	dir := b.TempDir()
	blobs, err := fs.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	meta, err := sqlite.Open(context.Background(), filepath.Join(dir, "graft.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { meta.Close() })
	return New(registry.New(blobs, meta, o), Options{})
}

func do(b *testing.B, s *Server, method, target, contentType string, body []byte, want int) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("%s %s: %d, want %d: %s", method, target, rec.Code, want, rec.Body.String())
	}
	return rec
}

// pushBlob pushes content monolithically and returns its descriptor.
func pushBlob(b *testing.B, s *Server, repo, mediaType string, content []byte) ocispec.Descriptor {
	d := digest.FromBytes(content)
	do(b, s, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "application/octet-stream", content, http.StatusCreated)
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(content))}
}

// image returns an image manifest on config and layer, made distinct by note.
func image(config, layer ocispec.Descriptor, note string, subject *ocispec.Descriptor, artifactType string) []byte {
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       config,
		Layers:       []ocispec.Descriptor{layer},
		Subject:      subject,
		Annotations:  map[string]string{"org.example.note": note},
	}
	m.SchemaVersion = 2
	out, _ := json.Marshal(m)
	return out
}

func imageBlobs(b *testing.B, s *Server, repo string) (config, layer ocispec.Descriptor) {
	config = pushBlob(b, s, repo, ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	l := make([]byte, 4096)
	rand.Read(l)
	layer = pushBlob(b, s, repo, ocispec.MediaTypeImageLayerGzip, l)
	return config, layer
}

// BenchmarkManifestPut: distinct manifests under distinct tags from parallel clients,
// as regbench's manifest-put does.
func BenchmarkManifestPut(b *testing.B) {
	s := benchServer(b)
	config, layer := imageBlobs(b, s, "bench/put")
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := image(config, layer, fmt.Sprint(i), nil, "")
			do(b, s, "PUT", fmt.Sprintf("/v2/bench/put/manifests/t%07d", i), ocispec.MediaTypeImageManifest, body, http.StatusCreated)
		}
	})
}

// BenchmarkManifestGet: GET by tag over 1000 tags from parallel clients, with the
// pulls recorded (as graft serve does) and not: recording must cost the hot path next
// to nothing (the flushes, every 10 s in graft serve, run every 10,000 pulls here).
func BenchmarkManifestGet(b *testing.B) {
	for _, track := range []bool{false, true} {
		b.Run(fmt.Sprint("track-pulls=", track), func(b *testing.B) { benchmarkManifestGet(b, track) })
	}
}

func benchmarkManifestGet(b *testing.B, track bool) {
	s := benchServerWith(b, registry.Options{Cascade: true, TrackPulls: track})
	config, layer := imageBlobs(b, s, "bench/get")
	const tags = 1000
	for i := range tags {
		do(b, s, "PUT", fmt.Sprintf("/v2/bench/get/manifests/t%07d", i), ocispec.MediaTypeImageManifest,
			image(config, layer, fmt.Sprint(i), nil, ""), http.StatusCreated)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if track && i%10_000 == 0 {
				if err := s.reg.FlushPulls(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			i %= tags
			req := httptest.NewRequest("GET", fmt.Sprintf("/v2/bench/get/manifests/t%07d", i), nil)
			req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("GET: %d", rec.Code)
			}
		}
	})
}

// BenchmarkListings: the index queries of the API in a repository holding a subject
// with 1000 referrers (half of artifact type A) and 100 or 10000 unrelated manifests.
// Each answer's cost should follow its size, not the repository's: the figures of a
// query should not change between the two sizes.
func BenchmarkListings(b *testing.B) {
	for _, filler := range []int{100, 10000} {
		b.Run(fmt.Sprintf("filler=%d", filler), func(b *testing.B) {
			s := benchServer(b)
			repo := "bench/referrers"
			config, layer := imageBlobs(b, s, repo)
			subject := image(config, layer, "subject", nil, "")
			do(b, s, "PUT", "/v2/"+repo+"/manifests/subject", ocispec.MediaTypeImageManifest, subject, http.StatusCreated)
			sd := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(subject), Size: int64(len(subject))}
			for i := range 1000 {
				at := "application/vnd.example.a"
				if i%2 == 1 {
					at = "application/vnd.example.b"
				}
				body := image(config, layer, fmt.Sprint("ref", i), &sd, at)
				do(b, s, "PUT", "/v2/"+repo+"/manifests/"+digest.FromBytes(body).String(), ocispec.MediaTypeImageManifest, body, http.StatusCreated)
			}
			for i := range filler {
				body := image(config, layer, fmt.Sprint("filler", i), nil, "")
				do(b, s, "PUT", "/v2/"+repo+"/manifests/"+digest.FromBytes(body).String(), ocispec.MediaTypeImageManifest, body, http.StatusCreated)
			}
			ref := sd.Digest.String()
			for _, q := range []struct {
				name, path string
				want       int
				count      func([]byte) int
			}{
				{"referrers", "/v2/" + repo + "/referrers/" + ref, 1000, countIndex},
				{"referrers-artifactType", "/v2/" + repo + "/referrers/" + ref + "?artifactType=application/vnd.example.a", 500, countIndex},
				{"oras-referrers", "/oras/artifacts/v1/" + repo + "/manifests/" + ref + "/referrers", 1000, countField("references")},
				{"oras-referrers-artifactType", "/oras/artifacts/v1/" + repo + "/manifests/" + ref + "/referrers?artifactType=application/vnd.example.a", 500, countField("references")},
				{"metadata-hasSubject", "/graft/v1/" + repo + "/_manifests?hasSubject=true&n=1000", 1000, countField("manifests")},
				{"metadata-artifactType", "/graft/v1/" + repo + "/_manifests?artifactType=application/vnd.example.a&n=1000", 500, countField("manifests")},
				{"metadata-tagged", "/graft/v1/" + repo + "/_manifests?tagged=true&n=1000", 1, countField("manifests")},
			} {
				b.Run(q.name, func(b *testing.B) {
					rec := do(b, s, "GET", q.path, "", nil, http.StatusOK)
					if n := q.count(rec.Body.Bytes()); n != q.want {
						b.Fatalf("%d entries, want %d", n, q.want)
					}
					b.ReportAllocs()
					for b.Loop() {
						do(b, s, "GET", q.path, "", nil, http.StatusOK)
					}
				})
			}
		})
	}
}

func countIndex(body []byte) int {
	var idx ocispec.Index
	if json.Unmarshal(body, &idx) != nil {
		return -1
	}
	return len(idx.Manifests)
}

func countField(name string) func([]byte) int {
	return func(body []byte) int {
		var v map[string]json.RawMessage
		var list []json.RawMessage
		if json.Unmarshal(body, &v) != nil || json.Unmarshal(v[name], &list) != nil {
			return -1
		}
		return len(list)
	}
}

// BenchmarkBlobPush: a 64 MiB upload over loopback HTTP: hashing, writing, fsync and
// rename; monolithic (one POST with the digest) and chunked (POST, 8 MiB PATCHes, PUT),
// as regbench pushes.
func BenchmarkBlobPush(b *testing.B) {
	for _, chunk := range []int{0, 8 << 20} {
		name := "monolithic"
		if chunk > 0 {
			name = fmt.Sprintf("chunked=%dMiB", chunk>>20)
		}
		b.Run(name, func(b *testing.B) {
			s := benchServer(b)
			ts := httptest.NewServer(s)
			defer ts.Close()
			blob := make([]byte, 64<<20)
			rand.Read(blob)
			b.SetBytes(int64(len(blob)))
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				blob[0] = byte(i) // a new blob each time: a known one would be deduplicated
				blob[1] = byte(i >> 8)
				pushOver(b, ts.URL, "bench/blob", blob, chunk)
			}
		})
	}
}

// pushOver pushes blob to repo at url over HTTP: in one POST when chunk is 0, else in
// PATCHes of chunk bytes and a PUT.
func pushOver(b *testing.B, url, repo string, blob []byte, chunk int) {
	d := digest.FromBytes(blob)
	if chunk == 0 {
		send(b, http.MethodPost, url+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), nil, blob, http.StatusCreated)
		return
	}
	resp := send(b, http.MethodPost, url+"/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	for off := 0; off < len(blob); off += chunk {
		end := min(off+chunk, len(blob))
		hdr := http.Header{"Content-Range": {fmt.Sprintf("%d-%d", off, end-1)}}
		loc = send(b, http.MethodPatch, url+loc, hdr, blob[off:end], http.StatusAccepted).Header.Get("Location")
	}
	send(b, http.MethodPut, url+loc+"?digest="+d.String(), nil, nil, http.StatusCreated)
}

func send(b *testing.B, method, url string, hdr http.Header, body []byte, want int) *http.Response {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %s, want %d", method, url, resp.Status, want)
	}
	return resp
}

// BenchmarkBlobPull: GET of a 64 MiB blob over loopback HTTP, whole (sendfile from the
// page cache) and as a 1 MiB range from its middle, with the repository's read checks.
func BenchmarkBlobPull(b *testing.B) {
	s := benchServer(b)
	ts := httptest.NewServer(s)
	defer ts.Close()
	blob := make([]byte, 64<<20)
	rand.Read(blob)
	pushOver(b, ts.URL, "bench/blob", blob, 0)
	url := ts.URL + "/v2/bench/blob/blobs/" + digest.FromBytes(blob).String()
	buf := make([]byte, 1<<20)
	for _, tt := range []struct {
		name, rng string
		size      int
		status    int
	}{
		{"whole", "", len(blob), http.StatusOK},
		{"range=1MiB", fmt.Sprintf("bytes=%d-%d", 32<<20, 33<<20-1), 1 << 20, http.StatusPartialContent},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(tt.size))
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if tt.rng != "" {
					req.Header.Set("Range", tt.rng)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
				if resp.StatusCode != tt.status || n != int64(tt.size) {
					b.Fatalf("GET: %s with %d bytes, want %d with %d", resp.Status, n, tt.status, tt.size)
				}
			}
		})
	}
}

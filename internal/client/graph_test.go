package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
)

const (
	typeSBOM      = "application/spdx+json"
	typeSignature = "application/vnd.example.signature"
)

// fixedCreated makes packed manifests reproducible.
var fixedCreated = map[string]string{ocispec.AnnotationCreated: "2023-11-14T22:13:20Z"}

func newLayout(t *testing.T) *oci.Store {
	t.Helper()
	store, err := oci.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// writeFiles writes name → content into a new directory and returns the paths.
func writeFiles(t *testing.T, files map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{}
	for name, data := range files {
		paths[name] = filepath.Join(dir, name)
		if err := os.WriteFile(paths[name], []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

func mustPush(t *testing.T, dst oras.Target, files []File, opts PushOptions) ocispec.Descriptor {
	t.Helper()
	if opts.Annotations == nil {
		opts.Annotations = fixedCreated
	}
	desc, err := Push(t.Context(), dst, files, opts)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return desc
}

// imageGraph is an image with an SBOM attached and a signature attached to the SBOM.
type imageGraph struct {
	image, sbom, sig ocispec.Descriptor
}

func pushImageGraph(t *testing.T, store oras.Target, layer string) imageGraph {
	t.Helper()
	p := writeFiles(t, map[string]string{
		"layer.tar":   layer,
		"config.json": `{"architecture":"amd64","os":"linux"}`,
		"sbom.json":   `{"spdxVersion":"SPDX-2.3","about":"` + layer + `"}`,
		"sbom.sig":    "signature of the SBOM of " + layer,
	})
	var g imageGraph
	g.image = mustPush(t, store, []File{{p["layer.tar"], DefaultLayerMediaType}},
		PushOptions{Config: &File{p["config.json"], DefaultConfigMediaType}, Tag: "v1"})
	g.sbom = mustPush(t, store, []File{{p["sbom.json"], typeSBOM}}, PushOptions{ArtifactType: typeSBOM, Subject: &g.image})
	g.sig = mustPush(t, store, []File{{p["sbom.sig"], DefaultLayerMediaType}}, PushOptions{ArtifactType: typeSignature, Subject: &g.sbom})
	return g
}

func TestDiscoverLayout(t *testing.T) {
	store := newLayout(t)
	g := pushImageGraph(t, store, "layer one")

	root, err := Discover(t.Context(), store, g.image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if root.Count() != 2 || root.Referrers[0].Digest != g.sbom.Digest || root.Referrers[0].Referrers[0].Digest != g.sig.Digest {
		t.Fatalf("graph: %+v", root)
	}
	if got := root.Plan(); len(got) != 3 || got[0].Digest != g.sig.Digest || got[1].Digest != g.sbom.Digest || got[2].Digest != g.image.Digest {
		t.Errorf("Plan: %v, want the signature, the SBOM, then the image", got)
	}

	shallow, err := Discover(t.Context(), store, g.image, DiscoverOptions{Depth: 1})
	if err != nil {
		t.Fatal(err)
	}
	if shallow.Count() != 1 {
		t.Errorf("depth 1 found %d referrers, want 1", shallow.Count())
	}
	filtered, err := Discover(t.Context(), store, g.image, DiscoverOptions{ArtifactType: typeSignature})
	if err != nil {
		t.Fatal(err)
	}
	if filtered.Count() != 0 {
		t.Errorf("the image has no signature of its own; found %d", filtered.Count())
	}

	var tree bytes.Buffer
	if err := WriteTree(&tree, Reference{Layout: "dir"}, root); err != nil {
		t.Fatal(err)
	}
	want := "oci:dir@" + g.image.Digest.String() + "\n" +
		"└── " + typeSBOM + "\n" +
		"    └── " + g.sbom.Digest.String() + "\n" +
		"        └── " + typeSignature + "\n" +
		"            └── " + g.sig.Digest.String() + "\n"
	if tree.String() != want {
		t.Errorf("tree:\n%s\nwant:\n%s", tree.String(), want)
	}
}

func TestWriteTreeBranches(t *testing.T) {
	d := func(s string) ocispec.Descriptor {
		return content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, []byte(s))
	}
	typed := func(s, artifactType string) ocispec.Descriptor {
		desc := d(s)
		desc.ArtifactType = artifactType
		return desc
	}
	root := &Node{Descriptor: d("root"), Referrers: []*Node{
		{Descriptor: typed("a", "type/a"), Referrers: []*Node{{Descriptor: typed("c", "type/c")}}},
		{Descriptor: typed("b1", "type/b")},
		{Descriptor: typed("b2", "type/b")},
	}}
	var out bytes.Buffer
	if err := WriteTree(&out, Reference{Registry: "r", Repository: "x"}, root); err != nil {
		t.Fatal(err)
	}
	want := "r/x@" + d("root").Digest.String() + "\n" +
		"├── type/a\n" +
		"│   └── " + d("a").Digest.String() + "\n" +
		"│       └── type/c\n" +
		"│           └── " + d("c").Digest.String() + "\n" +
		"└── type/b\n" +
		"    ├── " + d("b1").Digest.String() + "\n" +
		"    └── " + d("b2").Digest.String() + "\n"
	if out.String() != want {
		t.Errorf("tree:\n%s\nwant:\n%s", out.String(), want)
	}
	var usage *UsageError
	if err := WriteGraph(&out, "yaml", Reference{}, root); !errors.As(err, &usage) {
		t.Errorf("unknown format: %v", err)
	}
}

func TestPullLayout(t *testing.T) {
	store := newLayout(t)
	g := pushImageGraph(t, store, "layer one")

	dir := t.TempDir()
	result, err := Pull(t.Context(), store, g.sbom, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(result.Files, []string{filepath.Join(dir, "sbom.json")}) {
		t.Errorf("pulled %v", result.Files)
	}
	// the subject's layer (layer.tar) is not pulled with the SBOM
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("pull wrote %d files, want only the SBOM", len(entries))
	}

	// an image's layers without a file name are counted, not written
	layer := []byte("an unnamed filesystem layer")
	layerDesc, err := oras.PushBytes(t.Context(), store, DefaultLayerMediaType, layer)
	if err != nil {
		t.Fatal(err)
	}
	config, err := oras.PushBytes(t.Context(), store, DefaultConfigMediaType, []byte(`{"os":"linux"}`))
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{layerDesc}})
	image, err := oras.PushBytes(t.Context(), store, ocispec.MediaTypeImageManifest, manifest)
	if err != nil {
		t.Fatal(err)
	}
	result, err = Pull(t.Context(), store, image, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(result.Files) != 0 || result.Skipped != 1 {
		t.Errorf("pull of an image with an unnamed layer: %+v", result)
	}
}

func TestCopyLayoutRecursive(t *testing.T) {
	src := newLayout(t)
	g := pushImageGraph(t, src, "layer one")

	bare := newLayout(t)
	result, err := Copy(t.Context(), src, bare, g.image, "v1", CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// the image manifest, its config and its layer
	if want := (CopyResult{Manifests: 1, Blobs: 2, Bytes: g.image.Size + int64(len(`{"architecture":"amd64","os":"linux"}`)+len("layer one"))}); result != want {
		t.Errorf("copy without Recursive: %+v, want %+v", result, want)
	}
	if n, err := Discover(t.Context(), bare, g.image, DiscoverOptions{}); err != nil || n.Count() != 0 {
		t.Errorf("copy without Recursive: %v referrers, %v", n, err)
	}

	dst := newLayout(t)
	result, err = Copy(t.Context(), src, dst, g.image, "v2", CopyOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	// and the SBOM and its signature, each a manifest, the empty config (once) and a layer
	if result.Manifests != 3 || result.Blobs != 5 || result.Referrers != 2 || result.Bytes <= g.image.Size+g.sbom.Size+g.sig.Size {
		t.Errorf("copy with Recursive: %+v, want 3 manifests (2 referrers) and 5 blobs", result)
	}
	again, err := Copy(t.Context(), src, dst, g.image, "v2", CopyOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.Manifests != 0 || again.Blobs != 0 || again.Referrers != 2 || again.Present == 0 {
		t.Errorf("copy again: %+v, want nothing copied, the 2 referrers found there", again)
	}
	if d, err := dst.Resolve(t.Context(), "v2"); err != nil || d.Digest != g.image.Digest {
		t.Errorf("v2 in the copy: %v, %v", d.Digest, err)
	}
	n, err := Discover(t.Context(), dst, g.image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Count() != 2 {
		t.Errorf("copied graph has %d referrers, want 2", n.Count())
	}
}

// TestCopyIndexReferrers copies an index: the referrers of the manifests it lists (a
// signature per platform) come along with -r.
func TestCopyIndexReferrers(t *testing.T) {
	src := newLayout(t)
	amd := pushImageGraph(t, src, "amd64 layer")
	arm := pushImageGraph(t, src, "arm64 layer")
	index, _ := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{amd.image, arm.image},
	})
	root, err := oras.TagBytes(t.Context(), src, ocispec.MediaTypeImageIndex, index, "multi")
	if err != nil {
		t.Fatal(err)
	}

	dst := newLayout(t)
	result, err := Copy(t.Context(), src, dst, root, "multi", CopyOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if result.Referrers != 4 {
		t.Errorf("copied %+v, want the 4 referrers of the index's manifests", result)
	}
	for _, child := range []imageGraph{amd, arm} {
		n, err := Discover(t.Context(), dst, child.image, DiscoverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Count() != 2 {
			t.Errorf("child %s has %d referrers in the copy, want 2", child.image.Digest, n.Count())
		}
	}
}

func TestDeleteGraphLayout(t *testing.T) {
	store := newLayout(t)
	g := pushImageGraph(t, store, "layer one")
	other := pushImageGraph(t, store, "another image")
	root, err := Discover(t.Context(), store, g.image, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	result, err := DeleteGraph(t.Context(), store, root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{g.sig.Digest.String(), g.sbom.Digest.String(), g.image.Digest.String()}
	var got []string
	for _, d := range result.Deleted {
		got = append(got, d.String())
	}
	if !slices.Equal(got, want) || result.ByServer {
		t.Errorf("deleted %v (by server: %v), want %v, bottom-up", got, result.ByServer, want)
	}
	for _, d := range []ocispec.Descriptor{g.image, g.sbom, g.sig} {
		if ok, _ := store.Exists(t.Context(), d); ok {
			t.Errorf("%s is still there", d.Digest)
		}
	}
	if ok, _ := store.Exists(t.Context(), other.sig); !ok {
		t.Error("the other image's graph was touched")
	}
}

func TestPushReproducible(t *testing.T) {
	t.Setenv(sourceDateEpochVariable, "1700000000")
	p := writeFiles(t, map[string]string{"a.txt": "a"})
	var digests []string
	for range 2 {
		desc, err := Push(t.Context(), newLayout(t), []File{{p["a.txt"], "text/plain"}}, PushOptions{Tag: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, desc.Digest.String())
	}
	if digests[0] != digests[1] {
		t.Errorf("SOURCE_DATE_EPOCH set, the same file pushed as %v", digests)
	}
	t.Setenv(sourceDateEpochVariable, "yesterday")
	if _, err := Push(t.Context(), newLayout(t), []File{{p["a.txt"], "text/plain"}}, PushOptions{Tag: "v1"}); !errors.As(err, new(*UsageError)) {
		t.Errorf("a bad SOURCE_DATE_EPOCH: %v", err)
	}
}

// lockedBuffer is a buffer a drawing goroutine writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestProgressRateAndETA checks that a bar shows the transfer's rate and, until it
// is done, the time left.
func TestProgressRateAndETA(t *testing.T) {
	var out lockedBuffer
	refresh := make(chan any)
	// a wide line: no terminal to take the width of
	p := newProgress(&out, mpb.WithManualRefresh(refresh), mpb.WithWidth(160))
	data := []byte(strings.Repeat("x", 1<<20))
	desc := content.NewDescriptorFromBytes("application/octet-stream", data)
	rc := p.track(desc, io.NopCloser(bytes.NewReader(data)))
	if _, err := io.CopyN(io.Discard, rc, int64(len(data)/2)); err != nil {
		t.Fatal(err)
	}
	rate := regexp.MustCompile(`\d+\.\d (B|KiB|MiB|GiB)/s`)
	eta := regexp.MustCompile(`ETA \d+(\.\d+)?(ns|µs|ms|s|m)`)
	for !strings.Contains(out.String(), "ETA") {
		refresh <- struct{}{} // until a frame is drawn
		time.Sleep(10 * time.Millisecond)
	}
	midway := out.String()
	if !rate.MatchString(midway) || !eta.MatchString(midway) || !strings.Contains(midway, "50 %") {
		t.Errorf("halfway the bar shows %q, want the percentage, a rate and the time left", midway)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	p.Wait()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "done") || !rate.MatchString(last) || strings.Contains(last, "ETA") {
		t.Errorf("the finished bar shows %q, want done and the rate, no time left", last)
	}
}

// TestProgressAbort checks that a transfer that fails midway does not leave Wait
// waiting for its bar.
func TestProgressAbort(t *testing.T) {
	var out bytes.Buffer
	p := NewProgress(&out)
	data := []byte(strings.Repeat("x", 1<<16))
	desc := content.NewDescriptorFromBytes("application/octet-stream", data)
	full := p.track(desc, io.NopCloser(bytes.NewReader(data)))
	io.Copy(io.Discard, full)
	full.Close()
	half := p.track(desc, io.NopCloser(bytes.NewReader(data)))
	io.CopyN(io.Discard, half, int64(len(data)/2))
	half.Close()

	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after every transfer ended")
	}
	var nilProgress *Progress
	nilProgress.Wait() // a nil Progress draws nothing and waits for nothing
}

package registry

import (
	"bytes"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestPlatformOfSharedConfig: images on one config each record its platform, the
// second from what the first push read.
func TestPlatformOfSharedConfig(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := openEmbedded(t)
	const repo = "platform/shared"
	config, layer := []byte(`{"architecture":"arm64","os":"linux","variant":"v8"}`), []byte("layer")
	for _, b := range [][]byte{config, layer} {
		chunk := Chunk{Body: bytes.NewReader(b), Start: -1, Length: int64(len(b))}
		if _, err := r.PutBlob(ctx, repo, digest.FromBytes(b).String(), chunk); err != nil {
			t.Fatal(err)
		}
	}
	for _, tag := range []string{"a", "b"} {
		if err := pushDistinct(ctx, r, repo, tag, config, layer); err != nil {
			t.Fatal(err)
		}
		m, err := r.meta.TaggedManifest(ctx, repo, tag)
		if err != nil {
			t.Fatal(err)
		}
		want := ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
		if m.Platform == nil || m.Platform.OS != want.OS || m.Platform.Architecture != want.Architecture || m.Platform.Variant != want.Variant {
			t.Errorf("manifest %s: platform %+v, want %+v", tag, m.Platform, want)
		}
	}
}

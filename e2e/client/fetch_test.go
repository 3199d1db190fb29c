package client

import (
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/graftest"
)

// TestManifestConfig: `manifest config` prints the config blob as pushed, and with
// -o json its descriptor too; `manifest get` prints the manifest that names it.
func TestManifestConfig(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	g := newGraft(t)
	config := `{"architecture":"arm64","os":"linux"}`
	g.WriteFile("config.json", config)
	g.WriteFile("layer.txt", "a layer")
	ref := srv.Addr + "/fetch/app:v1"
	g.Must("push", ref, "layer.txt", "--config", "config.json:"+ocispec.MediaTypeImageConfig)

	if got := g.Must("manifest", "config", ref); got != config {
		t.Errorf("manifest config = %q, want %q", got, config)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal([]byte(g.Must("manifest", "get", ref)), &m); err != nil {
		t.Fatalf("manifest get: %v", err)
	}
	if m.Config.Digest != digest.FromString(config) {
		t.Errorf("manifest get names config %s, want %s", m.Config.Digest, digest.FromString(config))
	}
	var out struct {
		Descriptor ocispec.Descriptor `json:"descriptor"`
	}
	if err := json.Unmarshal([]byte(g.Must("manifest", "config", "-o", "json", ref)), &out); err != nil {
		t.Fatalf("manifest config -o json: %v", err)
	}
	if out.Descriptor.Digest != digest.FromString(config) {
		t.Errorf("manifest config -o json describes %s, want the config %s", out.Descriptor.Digest, digest.FromString(config))
	}
}

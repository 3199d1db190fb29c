package client

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/graftest"
)

// TestCopyReport checks that copy says what it copied.
func TestCopyReport(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	g := newGraft(t)
	image := srv.Addr + "/report/app:v1"
	g.Must("copy", buildImage(t, g, "layout"), image)
	attachGraph(t, g, image)

	r := g.Run("", "copy", "-r", "-o", "json", image, srv.Addr+"/report/copy")
	if r.Code != 0 {
		t.Fatalf("copy -r: exit %d\n%s", r.Code, r.Stderr)
	}
	var out struct {
		Reference string `json:"reference"`
		Copied    struct {
			Manifests, Blobs, Referrers, Present int
			Bytes                                int64
		} `json:"copied"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.Stdout)
	}
	// the image, its SBOM and the SBOM's signature; blobs are mounted in the same registry
	c := out.Copied
	if c.Manifests != 3 || c.Referrers != 2 || c.Blobs == 0 || c.Bytes == 0 {
		t.Errorf("copy -r -o json: %+v, want 3 manifests, 2 of them referrers, and their blobs", c)
	}
	if !strings.Contains(r.Stderr, "3 manifests (2 referrers found)") {
		t.Errorf("copy -r says %q, want what it copied", r.Stderr)
	}
	// again: nothing to copy
	if again := g.Run("", "copy", "-r", image, srv.Addr+"/report/copy"); !strings.Contains(again.Stderr, "0 manifests (2 referrers found), 0 blobs, 0 bytes copied") {
		t.Errorf("copy -r again says %q", again.Stderr)
	}
}

// TestLogoutUnknownHost logs out of a registry never logged in to.
func TestLogoutUnknownHost(t *testing.T) {
	t.Parallel()
	g := newGraft(t)
	r := g.Run("", "logout", "registry.example.com")
	if r.Code != 0 || !strings.Contains(r.Stderr, "Not logged in to registry.example.com") || strings.Contains(r.Stderr, "Logged out") {
		t.Errorf("logout of a host never logged in to: exit %d, %q", r.Code, r.Stderr)
	}
}

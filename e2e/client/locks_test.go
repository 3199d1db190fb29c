package client

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// TestTagDelete deletes tags on graft and in an OCI layout: the tag goes, the manifest
// and its other tags stay.
func TestTagDelete(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	g := newGraft(t)
	g.WriteFile("a.txt", "a\n")
	repo := srv.Addr + "/tags/app"
	pushed := strings.TrimSpace(g.Must("push", repo+":v1", "a.txt"))
	g.Must("tag", "add", repo+":v1", "v2")

	if out := strings.TrimSpace(g.Must("tag", "delete", repo+":v1")); out != pushed {
		t.Errorf("tag delete printed %q, want the manifest it named, %s", out, pushed)
	}
	if tags := strings.Fields(g.Must("tag", "list", repo)); strings.Join(tags, " ") != "v2" {
		t.Errorf("tags after deleting v1: %q, want v2", tags)
	}
	g.Must("manifest", "get", pushed)
	g.Fail(3, "manifest", "get", repo+":v1")
	g.Fail(3, "tag", "delete", repo+":v1")
	if msg := g.Fail(2, "tag", "delete", pushed); !strings.Contains(msg, "names a digest, not a tag") || !strings.Contains(msg, "graft manifest delete") {
		t.Errorf("tag delete by digest: %q", msg)
	}
	if msg := g.Fail(2, "tag", "delete", repo); !strings.Contains(msg, "names no tag") {
		t.Errorf("tag delete of a repository: %q", msg)
	}

	// an OCI layout
	layout := "oci:" + g.Dir + "/layout"
	g.Must("push", layout+":v1", "a.txt")
	g.Must("tag", "add", layout+":v1", "v2")
	g.Must("tag", "delete", layout+":v1")
	if tags := strings.Fields(g.Must("tag", "list", layout)); strings.Join(tags, " ") != "v2" {
		t.Errorf("layout tags after deleting v1: %q, want v2", tags)
	}
}

// TestLockUnlock locks a repository and a manifest of a graft registry: what a lock
// refuses fails with exit code 4, and works again after unlock.
func TestLockUnlock(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	g := newGraft(t)
	g.WriteFile("a.txt", "a\n")
	g.WriteFile("b.txt", "b\n")
	repo := srv.Addr + "/locks/app"
	pushed := strings.TrimSpace(g.Must("push", repo+":v1", "a.txt"))

	// the repository, every operation
	g.Must("lock", repo)
	if msg := g.Fail(4, "push", repo+":v2", "b.txt"); strings.Contains(msg, "failed to perform") {
		t.Errorf("a push to a locked repository: %q", msg)
	}
	g.Fail(4, "manifest", "get", repo+":v1")
	g.Must("unlock", repo)
	g.Must("push", repo+":v2", "b.txt")

	// one manifest, deletes only
	var locked struct {
		Reference  string          `json:"reference"`
		Attributes map[string]bool `json:"changeableAttributes"`
	}
	if err := json.Unmarshal([]byte(g.Must("lock", repo+":v1", "--delete", "-o", "json")), &locked); err != nil {
		t.Fatal(err)
	}
	if locked.Reference != pushed || locked.Attributes["deleteEnabled"] || !locked.Attributes["writeEnabled"] ||
		!locked.Attributes["readEnabled"] || !locked.Attributes["listEnabled"] {
		t.Errorf("lock --delete -o json: %+v, want %s with deletes refused, the rest allowed", locked, pushed)
	}
	if msg := g.Fail(4, "manifest", "delete", "--yes", repo+":v1"); !strings.Contains(msg, "graft unlock") {
		t.Errorf("deleting a locked manifest: %q, want a hint at graft unlock", msg)
	}
	g.Must("manifest", "get", repo+":v1") // reads still work
	if r := g.Run("", "unlock", repo+":v1", "--delete"); r.Code != 0 || !strings.Contains(r.Stderr, "allows everything") {
		t.Errorf("unlock --delete: exit %d, %q", r.Code, r.Stderr)
	}
	g.Must("manifest", "delete", "--yes", repo+":v1")

	g.Fail(3, "lock", srv.Addr+"/locks/nope")
	if msg := g.Fail(2, "lock", "oci:"+g.Dir+"/layout:v1"); !strings.Contains(msg, "registries only") {
		t.Errorf("lock of a layout: %q", msg)
	}
}

// TestLockWithoutMetadataAPI locks on CNCF distribution, which has no such API.
func TestLockWithoutMetadataAPI(t *testing.T) {
	t.Parallel()
	reg := clienttest.StartDistribution(t, clienttest.DistributionOptions{})
	g := newGraft(t)
	g.WriteFile("a.txt", "a\n")
	g.Must("push", reg.Addr+"/locks/app:v1", "a.txt")
	for _, verb := range []string{"lock", "unlock"} {
		msg := g.Fail(1, verb, reg.Addr+"/locks/app:v1")
		if !strings.Contains(msg, "does not serve graft's metadata API") {
			t.Errorf("graft %s on distribution: %q, want it to say the registry has no metadata API", verb, msg)
		}
	}
}

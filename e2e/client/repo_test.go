package client

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// TestRepoDelete deletes a repository of a graft registry with everything in it: it
// leaves the catalog, a locked one is refused, and a push creates it anew.
func TestRepoDelete(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	g := newGraft(t)
	g.WriteFile("a.txt", "a\n")
	g.WriteFile("sbom.json", "{}\n")
	repo := srv.Addr + "/team/gone"
	g.Must("push", repo+":v1", "a.txt")
	g.Must("attach", repo+":v1", "sbom.json", "--artifact-type", "application/spdx+json")
	g.Must("push", srv.Addr+"/team/kept:v1", "a.txt")

	// no terminal to ask on, and no --yes: nothing happens
	g.Fail(6, "repo", "delete", repo)
	if list := g.Must("repo", "list", srv.Addr); !strings.Contains(list, "team/gone") {
		t.Fatalf("an unconfirmed delete deleted: %q", list)
	}

	r := g.Run("", "repo", "delete", repo, "--yes", "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stderr, "Deleted repository "+repo+": 2 manifests, 1 tag") {
		t.Fatalf("repo delete: exit %d, %q", r.Code, r.Stderr)
	}
	var deleted struct {
		Name      string `json:"name"`
		Manifests int    `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &deleted); err != nil || deleted.Name != "team/gone" || deleted.Manifests != 2 {
		t.Errorf("repo delete -o json: %q (%v)", r.Stdout, err)
	}
	if list := strings.Fields(g.Must("repo", "list", srv.Addr)); strings.Join(list, " ") != "team/kept" {
		t.Errorf("repositories after the delete: %q, want team/kept", list)
	}
	g.Fail(3, "manifest", "get", repo+":v1")
	g.Fail(3, "repo", "delete", repo, "--yes")

	// a push creates it anew
	g.Must("push", repo+":v2", "a.txt")
	if tags := strings.Fields(g.Must("tag", "list", repo)); strings.Join(tags, " ") != "v2" {
		t.Errorf("tags of the repository pushed again: %q", tags)
	}

	// anything locked in it keeps it
	g.Must("lock", repo+":v2", "--delete")
	if msg := g.Fail(4, "repo", "delete", repo, "--yes"); !strings.Contains(msg, "locked") {
		t.Errorf("deleting a repository with a locked manifest: %q", msg)
	}
	g.Must("manifest", "get", repo+":v2")

	if msg := g.Fail(2, "repo", "delete", repo+":v2", "--yes"); !strings.Contains(msg, "graft manifest delete") {
		t.Errorf("repo delete of a tag: %q", msg)
	}
}

// TestRepoDeleteWithoutMetadataAPI deletes on CNCF distribution, which has no such API.
func TestRepoDeleteWithoutMetadataAPI(t *testing.T) {
	t.Parallel()
	reg := clienttest.StartDistribution(t, clienttest.DistributionOptions{})
	g := newGraft(t)
	g.WriteFile("a.txt", "a\n")
	g.Must("push", reg.Addr+"/gone/app:v1", "a.txt")
	if msg := g.Fail(1, "repo", "delete", reg.Addr+"/gone/app", "--yes"); !strings.Contains(msg, "does not serve graft's metadata API") {
		t.Errorf("repo delete on distribution: %q", msg)
	}
}

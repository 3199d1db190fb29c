package client

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// TestExitCodes checks the documented exit codes and that every failure is one line.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	g := newGraft(t)
	g.WriteFile("a.txt", "a\n")
	g.Must("push", srv.Addr+"/codes/a:v1", "a.txt")

	tests := []struct {
		name string
		code int
		args []string
		hint string
	}{
		{"no argument", 2, []string{"discover"}, "usage: graft discover REF"},
		{"unknown flag", 2, []string{"discover", "--bogus", srv.Addr + "/codes/a:v1"}, "unknown flag"},
		{"bad reference", 2, []string{"discover", "not-a-reference"}, "HOST/REPOSITORY"},
		{"unknown verb of a group", 2, []string{"manifest", "bogus"}, "unknown command"},
		{"bad format", 2, []string{"discover", "-o", "yaml", srv.Addr + "/codes/a:v1"}, `unknown format "yaml": want tree, table or json`},
		{"push without a tag", 2, []string{"push", srv.Addr + "/codes/a", "a.txt"}, "needs a tag"},
		{"attach without a type", 2, []string{"attach", srv.Addr + "/codes/a:v1", "a.txt"}, "--artifact-type"},
		{"missing file", 1, []string{"push", srv.Addr + "/codes/a:v2", "missing.txt"}, "missing.txt"},
		{"unknown tag", 3, []string{"discover", srv.Addr + "/codes/a:nope"}, "check the repository"},
		{"unknown repository", 3, []string{"tag", "list", srv.Addr + "/codes/nope"}, "check the repository"},
		{"not a layout", 1, []string{"discover", "oci:nowhere:v1"}, "not an OCI image layout"},
		{"nothing listening", 5, []string{"discover", clienttest.FreeAddr(t) + "/x/y:v1"}, "is the registry running"},
		{"plain HTTP registry over HTTPS", 5, []string{"discover", "--plain-http=false", srv.Addr + "/codes/a:v1"}, "--plain-http"},
		{"not confirmed", 6, []string{"delete", srv.Addr + "/codes/a:v1"}, "--yes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := g.in(t).Fail(tt.code, tt.args...)
			if !strings.Contains(msg, tt.hint) {
				t.Errorf("stderr %q does not contain %q", msg, tt.hint)
			}
		})
	}
	// what was refused is still there
	g.Must("manifest", "get", srv.Addr+"/codes/a:v1")
}

// TestDeleteLocked locks a referrer on graft: the server's cascade keeps it, graft
// reports it and exits 4.
func TestDeleteLocked(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	g := newGraft(t)
	image := srv.Addr + "/locked/app:v1"
	g.Must("copy", buildImage(t, g, "layout"), image)
	_, sig := attachGraph(t, g, image)

	body, _ := json.Marshal(map[string]bool{"deleteEnabled": false})
	req, err := http.NewRequest(http.MethodPatch, srv.URL+"/graft/v1/locked/app/_manifests/"+digestOf(t, sig), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("locking the signature: %s", resp.Status)
	}

	r := g.Run("", "delete", "--yes", "-o", "json", image)
	if r.Code != 4 {
		t.Fatalf("delete with a locked referrer: exit %d, want 4\nstderr: %s\nstdout: %s", r.Code, r.Stderr, r.Stdout)
	}
	var result struct {
		Deleted  []string `json:"deleted"`
		Locked   []string `json:"locked"`
		ByServer bool     `json:"byServer"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &result); err != nil {
		t.Fatalf("%v: %s", err, r.Stdout)
	}
	if !result.ByServer || len(result.Locked) != 1 || result.Locked[0] != digestOf(t, sig) {
		t.Errorf("result %+v: want the server's cascade, locked at the signature %s", result, digestOf(t, sig))
	}
	if !strings.Contains(r.Stderr, "locked") {
		t.Errorf("stderr does not mention the lock: %s", r.Stderr)
	}
	g.Must("manifest", "get", srv.Addr+"/locked/app@"+digestOf(t, sig))
}

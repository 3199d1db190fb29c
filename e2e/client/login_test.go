package client

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/clienttest"
)

// dockerConfig reads the auths of the Docker config file of g.
func dockerConfig(t *testing.T, g *graft) map[string]struct {
	Auth string `json:"auth"`
} {
	t.Helper()
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	b, err := os.ReadFile(filepath.Join(g.DockerConfig, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("config.json: %v\n%s", err, b)
	}
	return cfg.Auths
}

// TestLogin logs in to a distribution that requires basic auth: graft stores the
// credentials in the Docker config file, sends them, oras reads them, and logout
// removes them.
func TestLogin(t *testing.T) {
	t.Parallel()
	reg := clienttest.StartDistribution(t, clienttest.DistributionOptions{Users: map[string]string{"alice": "s3cret-pass"}})
	g := newGraft(t)
	g.WriteFile("notes.txt", "notes\n")
	repo := reg.Addr + "/team/notes"

	// without credentials the registry refuses, and graft says what to do
	if msg := g.Fail(4, "push", repo+":v1", "notes.txt"); !strings.Contains(msg, "graft login "+reg.Addr) {
		t.Errorf("a refused push says %q, want a hint to log in", msg)
	}
	if r := g.Run("wrong\n", "login", reg.Addr, "-u", "alice", "--password-stdin"); r.Code != 4 {
		t.Fatalf("login with a wrong password: exit %d, want 4\n%s", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(g.DockerConfig, "config.json")); err == nil {
		if _, stored := dockerConfig(t, g)[reg.Addr]; stored {
			t.Fatal("a failed login stored its credentials")
		}
	}

	if r := g.Run("s3cret-pass\n", "login", reg.Addr, "-u", "alice", "--password-stdin"); r.Code != 0 {
		t.Fatalf("login: exit %d\n%s", r.Code, r.Stderr)
	}
	entry, ok := dockerConfig(t, g)[reg.Addr]
	if want := base64.StdEncoding.EncodeToString([]byte("alice:s3cret-pass")); !ok || entry.Auth != want {
		t.Fatalf("config.json has %+v for %s, want auth %s", entry, reg.Addr, want)
	}

	// graft sends them
	g.Must("push", repo+":v1", "notes.txt")
	// oras reads the same file (DOCKER_CONFIG)
	if tags := g.mustTool("oras", "repo", "tags", "--plain-http", repo); strings.TrimSpace(tags) != "v1" {
		t.Errorf("oras repo tags with graft's login: %q", tags)
	}

	g.Must("logout", reg.Addr)
	if _, stored := dockerConfig(t, g)[reg.Addr]; stored {
		t.Fatal("logout left the credentials in config.json")
	}
	if err := g.tool("oras", "repo", "tags", "--plain-http", repo).Run(); err == nil {
		t.Error("oras still gets in after graft logout")
	}
	g.Fail(4, "tag", "list", repo)
}

package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// TestMessages makes the mistakes people make and checks what graft says: what
// happened in graft's words, with the one hint that fits, never a library's operation
// names or a Go rendering of a registry's answer.
func TestMessages(t *testing.T) {
	t.Parallel()
	// words no message may hold
	leaks := []string{"failed to perform", "map[", `"Push"`, `"Exists"`}
	check := func(t *testing.T, msg string, want []string, never ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("graft says %q, want it to say %q", msg, w)
			}
		}
		for _, n := range append(never, leaks...) {
			if strings.Contains(msg, n) {
				t.Errorf("graft says %q, which it must not: %q", msg, n)
			}
		}
	}

	t.Run("DNS failure", func(t *testing.T) {
		t.Parallel()
		msg := newGraft(t).Fail(5, "discover", "graft-test.invalid/x/y:v1")
		check(t, msg, []string{"no such host", "check the registry's host name"}, "--plain-http")
	})

	t.Run("user add without a terminal", func(t *testing.T) {
		t.Parallel()
		g := newGraft(t)
		msg := g.Fail(2, "user", "add", "alice", "--htpasswd", filepath.Join(g.Dir, "htpasswd"))
		check(t, msg, []string{"no terminal", "--password-stdin"}, "--username")
	})

	t.Run("pull into a directory that has the file as a directory", func(t *testing.T) {
		t.Parallel()
		srv := graftest.Start(t)
		g := newGraft(t)
		g.WriteFile("a.txt", "a\n")
		g.Must("push", srv.Addr+"/msg/pull:v1", "a.txt")
		if err := os.MkdirAll(filepath.Join(g.Dir, "out", "a.txt"), 0o755); err != nil {
			t.Fatal(err)
		}
		msg := g.Fail(1, "pull", srv.Addr+"/msg/pull:v1", "out")
		check(t, msg, []string{"pulling", "writing to the destination", "a.txt"})
	})

	t.Run("wrong password and missing credentials", func(t *testing.T) {
		t.Parallel()
		reg := clienttest.StartDistribution(t, clienttest.DistributionOptions{Users: map[string]string{"alice": "s3cret-pass"}})
		g := newGraft(t)
		g.WriteFile("a.txt", "a\n")
		msg := g.Fail(4, "push", reg.Addr+"/msg/app:v1", "a.txt")
		check(t, msg, []string{"checking what the destination has", "log in with `graft login " + reg.Addr + "`"})

		r := g.Run("wrong\n", "login", reg.Addr, "-u", "alice", "--password-stdin")
		if r.Code != 4 {
			t.Fatalf("login with a wrong password: exit %d, want 4\n%s", r.Code, r.Stderr)
		}
		check(t, r.Stderr, []string{"logging in to " + reg.Addr, "401 Unauthorized", "check the user name and password"}, "log in with")
	})

	t.Run("refused by graft's access control", func(t *testing.T) {
		t.Parallel()
		admin := newGraft(t)
		htpasswd := filepath.Join(admin.Dir, "htpasswd")
		if r := admin.Run("admin-password\n", "user", "add", "admin", "--password-stdin", "--htpasswd", htpasswd); r.Code != 0 {
			t.Fatalf("user add: %s", r.Stderr)
		}
		srv := graftest.Start(t, "--htpasswd", htpasswd)
		if r := admin.Run("admin-password\n", "login", srv.Addr, "-u", "admin", "--password-stdin"); r.Code != 0 {
			t.Fatalf("login: %s", r.Stderr)
		}
		admin.WriteFile("a.txt", "a\n")
		image := srv.Addr + "/team/app:v1"
		admin.Must("push", image, "a.txt")

		secret := strings.TrimSpace(admin.Must("token", "create", "reader", "--repo", "**", "--action", "pull", "--data-dir", srv.DataDir))
		reader := newGraft(t)
		if r := reader.Run(secret+"\n", "login", srv.Addr, "-u", "reader", "--password-stdin"); r.Code != 0 {
			t.Fatalf("login as the token: %s", r.Stderr)
		}
		reader.Must("manifest", "get", image)
		msg := reader.Fail(4, "manifest", "delete", "--yes", image)
		check(t, msg, []string{"403 Forbidden", "needs delete on repository team/app", "check your permissions"})
	})
}

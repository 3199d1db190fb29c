package client

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/graftest"
)

// TestOneErrorPath checks that every verb's failure, the server's and the admin
// verbs' too, is printed once, by main, with its exit code.
func TestOneErrorPath(t *testing.T) {
	t.Parallel()
	g := newGraft(t)

	t.Run("serve", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		r := g.in(t).Run("", "serve", "--addr", taken.Addr().String(), "--data-dir", t.TempDir(), "--log-format", "json")
		if r.Code != 1 {
			t.Fatalf("serve on a taken address: exit %d, want 1\n%s", r.Code, r.Stderr)
		}
		if n := strings.Count(r.Stderr, "address already in use"); n != 1 {
			t.Errorf("serve on a taken address reports it %d times, want once:\n%s", n, r.Stderr)
		}
		if !strings.HasPrefix(r.Stderr, "graft serve: ") {
			t.Errorf("serve's failure: %q, want it said by graft serve", r.Stderr)
		}
	})

	// the admin verbs work on a registry's data directory, and create none
	for _, args := range [][]string{{"gc"}, {"gc", "--dry-run"}, {"token", "list"}, {"token", "revoke", "ci"},
		{"token", "create", "ci", "--repo", "x", "--action", "pull"}, {"migrate", "--to", "elsewhere.yaml"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			msg := g.in(t).Fail(1, args...)
			if !strings.Contains(msg, "data directory graft-data does not exist") || !strings.Contains(msg, "--data-dir") {
				t.Errorf("graft %s in an empty directory: %q, want it to say the data directory is missing", strings.Join(args, " "), msg)
			}
			if _, err := os.Stat(filepath.Join(g.Dir, "graft-data")); !os.IsNotExist(err) {
				t.Fatalf("graft %s created ./graft-data (%v)", strings.Join(args, " "), err)
			}
		})
	}
	t.Run("gc beside a server", func(t *testing.T) {
		srv := graftest.Start(t)
		if out := g.in(t).Must("gc", "--dry-run", "--data-dir", srv.DataDir); !strings.Contains(out, "would remove") {
			t.Errorf("gc --dry-run: %q", out)
		}
	})

	usage := []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"gc", "extra"}, "usage: graft gc"},
		{[]string{"gc", "-o", "yaml"}, `unknown format "yaml": want text or json`},
		{[]string{"token", "create"}, "usage: graft token create"},
		{[]string{"version", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"user", "list"}, "no htpasswd file: pass --htpasswd FILE"},
		{[]string{"migrate"}, "--to names the configuration file"},
	}
	for _, tt := range usage {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if msg := g.in(t).Fail(2, tt.args...); !strings.Contains(msg, tt.want) {
				t.Errorf("graft %s: %q, want it to say %q", strings.Join(tt.args, " "), msg, tt.want)
			}
		})
	}
}

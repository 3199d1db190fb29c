// Package mirror drives graft's pull-through mirrors end to end: a `graft serve` whose
// configuration mirrors another registry under a prefix, in front of a second `graft
// serve` and of CNCF distribution v3.1.2 (which has no referrers API), pulled through
// with the real crane, skopeo and oras. Every server listens on a free loopback port.
// The upstream's access log (one line per request) says how often it was asked.
//
// crane, skopeo, oras and distribution's `registry` are the team's pinned binaries:
// GRAFT_CLIENTS_BIN, else what ../shared/tools/install-clients.sh installs.
package mirror

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// user runs the clients as a user on a machine of their own: a home, a working
// directory and a Docker config that no other test shares.
type user struct {
	t        *testing.T
	home, wd string
}

func newUser(t *testing.T) *user {
	return &user{t: t, home: t.TempDir(), wd: t.TempDir()}
}

// run runs a pinned client and returns its stdout, stderr and error.
func (u *user) run(name string, args ...string) (string, string, error) {
	u.t.Helper()
	cmd := clienttest.Command(u.t, name, args...)
	cmd.Dir = u.wd
	cmd.Env = append(os.Environ(), "HOME="+u.home, "DOCKER_CONFIG="+filepath.Join(u.home, ".docker"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// must runs a pinned client, stops the test if it fails, and returns its stdout.
func (u *user) must(name string, args ...string) string {
	u.t.Helper()
	out, errOut, err := u.run(name, args...)
	if err != nil {
		u.t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// fail runs a pinned client that must fail, and returns what it printed.
func (u *user) fail(name string, args ...string) string {
	u.t.Helper()
	out, errOut, err := u.run(name, args...)
	if err == nil {
		u.t.Fatalf("%s %s succeeded, want it to fail:\n%s", name, strings.Join(args, " "), out)
	}
	return out + errOut
}

// file writes a file into the user's working directory and returns its path.
func (u *user) file(name string, content []byte) string {
	u.t.Helper()
	path := filepath.Join(u.wd, name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		u.t.Fatal(err)
	}
	return path
}

// layer is a gzipped tar holding one file of content, as images have them.
func layer(t *testing.T, name string, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// startMirror starts graft serve with mirrors (prefix → upstream URL), each with the
// tag TTL ttl.
func startMirror(t *testing.T, ttl time.Duration, mirrors ...string) *graftest.Server {
	t.Helper()
	var cfg strings.Builder
	cfg.WriteString("mirrors:\n")
	for i := 0; i+1 < len(mirrors); i += 2 {
		fmt.Fprintf(&cfg, "  - prefix: %s\n    upstream: %s\n    tag-ttl: %s\n", mirrors[i], mirrors[i+1], ttl)
	}
	path := filepath.Join(t.TempDir(), "graft.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return graftest.Start(t, "--config", path)
}

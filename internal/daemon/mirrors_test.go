package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/mirror"
)

func mirrorsOf(t *testing.T, file string) ([]mirror.Config, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "graft.yaml")
	file = strings.ReplaceAll(file, "$DIR", dir)
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.File(path)
	if err != nil {
		return nil, err
	}
	return daemon.Mirrors(cfg)
}

func TestMirrorsConfig(t *testing.T) {
	got, err := mirrorsOf(t, `
mirrors:
  - prefix: hub/
    upstream: https://registry-1.docker.io
    credentials: {username: robot, password-file: $DIR/token}
    tag-ttl: 10m
  - prefix: local/
    upstream: http://127.0.0.1:5001
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Mirrors = %+v, want two", got)
	}
	hub, local := got[0], got[1]
	if hub.Prefix != "hub/" || hub.Upstream != "https://registry-1.docker.io" || hub.TagTTL != 10*time.Minute ||
		hub.Credential.Username != "robot" || hub.Credential.Password != "s3cret" {
		t.Errorf("hub = %+v", hub)
	}
	if local.Prefix != "local/" || local.Credential.Username != "" || local.TagTTL != 0 {
		t.Errorf("local = %+v", local)
	}
	ro := mirror.ReadOnly(got)
	if why := ro("hub/library/alpine"); !strings.Contains(why, "mirror hub/") || !strings.Contains(why, "library/alpine") {
		t.Errorf("ReadOnly(hub/library/alpine) = %q, want it to name the mirror and the upstream repository", why)
	}
	if why := ro("team/app"); why != "" {
		t.Errorf("ReadOnly(team/app) = %q, want none", why)
	}
}

func TestMirrorsConfigErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"mirrors:\n  - prefix: hub\n    upstream: https://r.example\n", "ending in a slash"},
		{"mirrors:\n  - prefix: Hub/\n    upstream: https://r.example\n", "prefix"},
		{"mirrors:\n  - prefix: hub/\n    upstream: http://r.example\n", "loopback"},
		{"mirrors:\n  - prefix: hub/\n    upstream: ftp://127.0.0.1\n", "https://"},
		{"mirrors:\n  - prefix: hub/\n    upstream: https://r.example/v2/x\n", "URL of a registry"},
		{"mirrors:\n  - prefix: hub/\n    upstream: https://a.example\n  - prefix: hub/x/\n    upstream: https://b.example\n", "overlap"},
		{"mirrors:\n  - prefix: hub/\n    upstream: https://r.example\n    tag-ttl: -1m\n", "tag-ttl"},
		{"mirrors:\n  - prefix: hub/\n    upstream: https://r.example\n    credentials: {username: robot}\n", "password-file"},
		{"mirrors:\n  - prefix: hub/\n    upstream: https://r.example\n    credentials: {username: robot, password-file: $DIR/absent}\n", "absent"},
		{"mirrors:\n  - prefix: hub/\n    upstream: https://r.example\n    tagttl: 1h\n", "tagttl"},
	}
	for _, tt := range tests {
		_, err := mirrorsOf(t, tt.file)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.file, err, tt.want)
		}
	}
}

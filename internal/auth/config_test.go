package auth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/graft-registry/graft/internal/config"
)

func loadConfig(t *testing.T, yaml string) (*config.Config, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "graft.yaml")
	yaml = strings.ReplaceAll(yaml, "DIR", dir)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.File(path)
	if cfg != nil {
		cfg.DataDir = dir
	}
	return cfg, err
}

// TestFromConfig: the lists of the auth section, which only the file sets, reach the
// authenticator: users of the file with their groups, groups, admins and policies.
func TestFromConfig(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("bot-password"), bcrypt.MinCost)
	cfg, err := loadConfig(t, `
auth:
  users:
    - name: bot
      password: "`+string(hash)+`"
      groups: [builders]
  groups:
    ops: [bot]
  policies:
    - repositories: ["build/**"]
      push: [group:builders]
      pull: [group:builders]
    - repositories: ["ops/*"]
      delete: [group:ops]
`)
	if err != nil {
		t.Fatal(err)
	}
	if !Enabled(cfg) {
		t.Fatal("users and policies in the file do not turn authentication on")
	}
	a, err := FromConfig(cfg, nil, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Login(context.Background(), "bot", "bot-password", "192.0.2.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Policy().Allowed(id, "build/app"); got != Pull|Push {
		t.Errorf("bot on build/app: %v", got)
	}
	if got := a.Policy().Allowed(id, "ops/x"); got != Delete {
		t.Errorf("bot on ops/x: %v", got)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, KeyFile)); err != nil {
		t.Errorf("no signing key generated in the data dir: %v", err)
	}

	if cfg, _ := loadConfig(t, "addr: 127.0.0.1:5000\n"); Enabled(cfg) {
		t.Error("a configuration without users, policies or client CA turns authentication on")
	}
	if a, err := FromConfig(&config.Config{}, nil, slogDiscard()); a != nil || err != nil {
		t.Errorf("FromConfig without auth: %v, %v", a, err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"misspelled policy key", "auth:\n  policies:\n    - repos: [\"a\"]\n      pull: [bob]\n", "repos"},
		{"policies not a list", "auth:\n  policies: everyone\n", "auth.policies"},
		{"misspelled user key", "auth:\n  users:\n    - name: a\n      pasword: x\n", "pasword"},
	}
	for _, tt := range tests {
		if _, err := loadConfig(t, tt.yaml); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %q", tt.name, err, tt.want)
		}
	}
	// what the file accepts but the authenticator refuses, naming what to fix
	refused := []struct{ name, yaml, want string }{
		{"plain password", "auth:\n  users:\n    - name: a\n      password: secret\n", "bcrypt"},
		{"twice the same user", "auth:\n  users:\n    - {name: a, password: x}\n    - {name: a, password: y}\n", "twice"},
		{"unknown group", "auth:\n  policies:\n    - repositories: [a]\n      pull: [group:nobody]\n", "nobody"},
		{"bad pattern", "auth:\n  policies:\n    - repositories: [\"A/*\"]\n", "A/*"},
		{"missing htpasswd", "auth:\n  htpasswd: DIR/absent\n", "absent"},
		{"negative login failures", "auth:\n  htpasswd: DIR/h\n  login-failures: -1\n", "login-failures"},
		{"missing token key", "auth:\n  htpasswd: DIR/h\n  token:\n    key: DIR/absent.pem\n", "absent.pem"},
	}
	for _, tt := range refused {
		cfg, err := loadConfig(t, tt.yaml)
		if err != nil {
			t.Errorf("%s: the file was refused: %v", tt.name, err)
			continue
		}
		os.WriteFile(filepath.Join(cfg.DataDir, "h"), nil, 0o600)
		if _, err := FromConfig(cfg, nil, slogDiscard()); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %q", tt.name, err, tt.want)
		}
	}
}

// Package clienttest runs the real clients of a registry for end-to-end tests: the
// team's pinned cosign, oras, crane, regctl and skopeo, the notation CLI, and graft's
// own verbs, each test's in a home of its own, where they keep their keys,
// certificates, trust policies and credentials. It also starts the pinned CNCF
// distribution registry, a registry other than graft for the clients to talk to.
//
// The pinned clients are GRAFT_CLIENTS_BIN, else what ../shared/tools/install-clients.sh
// prints (it builds them the first time, cosign for minutes). notation is not among
// them: it is built at NotationVersion through a throwaway module from the Go module
// proxy, once per user (GRAFT_NOTATION_BIN names a binary to use instead). `go install
// notation@version` is refused there, as it asks the proxy for the module's version
// list; a module that requires the version fetches it directly. A test that needs a
// client fails when it cannot be had: it never skips.
package clienttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/graft-registry/graft/internal/graftest"
)

// Tools runs the clients for one test, in a home of the test's own, which is also
// their working directory: cosign keeps its keys there, notation its key,
// certificate, trust store and policy.
type Tools struct {
	t    testing.TB
	home string
	env  []string
}

// New returns the clients of t, in a fresh home.
func New(t testing.TB) *Tools {
	t.Helper()
	h := NewHome(t)
	return &Tools{t: t, home: h, env: append(HomeEnv(h),
		"XDG_CACHE_HOME="+filepath.Join(h, ".cache"),
		// cosign: keys without a password; no TUF root from the network
		"COSIGN_PASSWORD=", "TUF_MIRROR=http://127.0.0.1:1",
		// graft: no configuration but the flags
		"GRAFT_CONFIG=",
	)}
}

// NewHome is a fresh home for the clients, removed when the test ends, with the
// directories HomeEnv names (and .cache) made.
func NewHome(t testing.TB) string {
	t.Helper()
	h := t.TempDir()
	for _, d := range []string{".docker", ".config", ".cache", "run"} {
		if err := os.MkdirAll(filepath.Join(h, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// HomeEnv is the environment that gives the clients home as theirs, where they keep
// their credentials and configuration: Docker's config.json (oras, crane, regctl,
// cosign), the XDG configuration directory and the runtime directory (skopeo's
// auth.json).
func HomeEnv(home string) []string {
	return []string{
		"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "XDG_RUNTIME_DIR=" + filepath.Join(home, "run"),
	}
}

// Command is a command of the pinned client name (cosign, oras, crane, regctl or
// skopeo) with args, killed if it still runs when the test ends. Its environment and
// working directory are the caller's to set.
func Command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	return exec.CommandContext(t.Context(), filepath.Join(Dir(t), name), args...)
}

// Path is the file name in the home.
func (c *Tools) Path(name string) string { return filepath.Join(c.home, name) }

// WriteFile writes a file into the home.
func (c *Tools) WriteFile(name, content string) {
	c.t.Helper()
	if err := os.WriteFile(c.Path(name), []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// Run runs a client (cosign, oras, crane, regctl, skopeo, notation or graft) with args
// and env added, and returns its standard output and, when it fails, an error that
// wraps its *exec.ExitError and holds its standard error.
func (c *Tools) Run(env []string, name string, args ...string) (string, error) {
	c.t.Helper()
	var bin string
	switch name {
	case "graft":
		bin = graftest.Binary(c.t)
	case "notation":
		bin = Notation(c.t)
	default:
		bin = filepath.Join(Dir(c.t), name)
	}
	cmd := exec.CommandContext(c.t.Context(), bin, args...)
	cmd.Dir = c.home
	cmd.Env = append(append(os.Environ(), c.env...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Must is Run with no env added that fails the test when the client fails.
func (c *Tools) Must(name string, args ...string) string {
	c.t.Helper()
	out, err := c.Run(nil, name, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// sharedDir is the team's shared directory: GRAFT_SHARED, else ../shared beside the
// module.
func sharedDir() string {
	if d := os.Getenv("GRAFT_SHARED"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared")
}

var (
	clientsOnce sync.Once
	clientsPath string
	clientsErr  error
)

// Dir is the directory of the team's pinned clients: GRAFT_CLIENTS_BIN, else what
// install-clients.sh prints.
func Dir(t testing.TB) string {
	t.Helper()
	clientsOnce.Do(func() {
		if d := os.Getenv("GRAFT_CLIENTS_BIN"); d != "" {
			clientsPath = d
			return
		}
		script := filepath.Join(sharedDir(), "tools", "install-clients.sh")
		var stderr bytes.Buffer
		cmd := exec.Command("bash", script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			clientsErr = fmt.Errorf("%s: %v\n%s", script, err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		clientsPath = lines[len(lines)-1]
	})
	if clientsErr != nil {
		t.Fatalf("the real clients are needed (set GRAFT_CLIENTS_BIN to their directory): %v", clientsErr)
	}
	return clientsPath
}

// NotationVersion is the notation CLI the tests build: 1.2 and later write the
// referrers tag schema's index by default (--force-referrers-tag).
const NotationVersion = "v1.3.2"

var (
	notationOnce sync.Once
	notationPath string
	notationErr  error
)

// Notation returns the path of the notation CLI at NotationVersion: GRAFT_NOTATION_BIN,
// else one built by buildNotation into the user's cache directory the first time.
func Notation(t testing.TB) string {
	t.Helper()
	notationOnce.Do(func() {
		if p := os.Getenv("GRAFT_NOTATION_BIN"); p != "" {
			notationPath = p
			return
		}
		notationPath, notationErr = buildNotation()
	})
	if notationErr != nil {
		t.Fatalf("the notation CLI is needed (set GRAFT_NOTATION_BIN to one of version %s): %v", NotationVersion, notationErr)
	}
	return notationPath
}

// buildNotation builds the notation CLI through a throwaway module that requires it,
// and installs it by rename, so that test processes running at once never see a
// partial file.
func buildNotation() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "graft-e2e", "notation-"+NotationVersion)
	bin := filepath.Join(dir, "notation")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	mod, err := os.MkdirTemp("", "notation-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(mod)
	gomod := "module notation.build\n\ngo 1.23\n\nrequire github.com/notaryproject/notation " + NotationVersion + "\n"
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "notation.*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	cmd := exec.Command("go", "build", "-mod=mod", "-o", tmp.Name(), "github.com/notaryproject/notation/cmd/notation")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		err = os.Rename(tmp.Name(), bin)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("building notation %s: %v\n%s", NotationVersion, err, out)
	}
	return bin, nil
}

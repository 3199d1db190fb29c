// Package client drives the graft binary's client verbs end to end: against a real
// graft serve, against CNCF distribution (which has no referrers API, so the client
// must write and read the referrers tag schema), and beside the real oras and regctl
// binaries, which must read what graft writes.
package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// sourceDateEpoch fixes org.opencontainers.image.created, so that fixed inputs push
// fixed digests.
const sourceDateEpoch = "1700000000"

// graft runs the graft binary as a user would, in a working directory and with a
// Docker config of its own.
type graft struct {
	t   *testing.T
	bin string
	// Dir is the working directory; DockerConfig the directory of config.json.
	Dir, DockerConfig string
}

func newGraft(t *testing.T) *graft {
	t.Helper()
	return &graft{t: t, bin: graftest.Binary(t), Dir: t.TempDir(), DockerConfig: t.TempDir()}
}

// in returns g reporting to t, for use in a subtest.
func (g *graft) in(t *testing.T) *graft {
	sub := *g
	sub.t = t
	return &sub
}

// result is a finished graft run.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (g *graft) env() []string {
	return append(os.Environ(), "DOCKER_CONFIG="+g.DockerConfig, "SOURCE_DATE_EPOCH="+sourceDateEpoch)
}

// Run runs graft with args and stdin, and returns what it printed and its exit code.
func (g *graft) Run(stdin string, args ...string) result {
	g.t.Helper()
	cmd := exec.Command(g.bin, args...)
	cmd.Dir = g.Dir
	cmd.Env = g.env()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		g.t.Fatalf("graft %s: %v", strings.Join(args, " "), err)
	}
	return result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}
}

// Must runs graft and fails the test unless it exits 0; it returns stdout.
func (g *graft) Must(args ...string) string {
	g.t.Helper()
	r := g.Run("", args...)
	if r.Code != 0 {
		g.t.Fatalf("graft %s: exit %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), r.Code, r.Stderr, r.Stdout)
	}
	return r.Stdout
}

// Fail runs graft and fails the test unless it exits with code; it returns stderr.
func (g *graft) Fail(code int, args ...string) string {
	g.t.Helper()
	r := g.Run("", args...)
	if r.Code != code {
		g.t.Fatalf("graft %s: exit %d, want %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), r.Code, code, r.Stderr, r.Stdout)
	}
	if n := strings.Count(strings.TrimRight(r.Stderr, "\n"), "\n"); n != 0 {
		g.t.Errorf("graft %s: the error takes %d lines, want one:\n%s", strings.Join(args, " "), n+1, r.Stderr)
	}
	return r.Stderr
}

// WriteFile writes a file into the working directory.
func (g *graft) WriteFile(name, content string) {
	g.t.Helper()
	if err := os.WriteFile(filepath.Join(g.Dir, name), []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// graphNode is the JSON graft discover prints, as far as tests compare it.
type graphNode struct {
	Reference    string      `json:"reference"`
	MediaType    string      `json:"mediaType"`
	Digest       string      `json:"digest"`
	Size         int64       `json:"size"`
	ArtifactType string      `json:"artifactType"`
	Edge         string      `json:"edge"`
	Tag          string      `json:"tag"`
	IndexTag     string      `json:"indexTag"`
	Referrers    []graphNode `json:"referrers"`
}

// discover returns the graph under ref as graft discover -o json prints it; flags
// are more flags of discover.
func (g *graft) discover(ref string, flags ...string) graphNode {
	g.t.Helper()
	var n graphNode
	out := g.Must(append([]string{"discover", "-o", "json", ref}, flags...)...)
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		g.t.Fatalf("discover %s: %v\n%s", ref, err, out)
	}
	return n
}

// manifestDigest returns the digest of the manifest ref names.
func (g *graft) manifestDigest(ref string) string {
	g.t.Helper()
	var out struct {
		Descriptor struct {
			Digest string `json:"digest"`
		} `json:"descriptor"`
	}
	if err := json.Unmarshal([]byte(g.Must("manifest", "get", "-o", "json", ref)), &out); err != nil || out.Descriptor.Digest == "" {
		g.t.Fatalf("manifest get -o json %s: %v", ref, err)
	}
	return out.Descriptor.Digest
}

// shape is a graph without its references, which name the registry: what must be
// the same wherever the graph is copied, how each artifact is found included.
func (n graphNode) shape() string {
	var b strings.Builder
	var walk func(graphNode, int)
	walk = func(n graphNode, level int) {
		found := strings.TrimSpace(strings.Join([]string{n.Edge, n.Tag, n.IndexTag}, " "))
		fmt.Fprintf(&b, "%s%s %s %d %s\n", strings.Repeat("  ", level), n.ArtifactType, n.Digest, n.Size, found)
		for _, r := range n.Referrers {
			walk(r, level+1)
		}
	}
	walk(n, 0)
	return b.String()
}

// tool returns an exec.Cmd of a pinned client, with the environment of g (its Docker
// config), in g's working directory.
func (g *graft) tool(name string, args ...string) *exec.Cmd {
	g.t.Helper()
	cmd := clienttest.Command(g.t, name, args...)
	cmd.Dir = g.Dir
	cmd.Env = append(g.env(), "HOME="+g.Dir)
	return cmd
}

// mustTool runs a pinned client and returns its stdout.
func (g *graft) mustTool(name string, args ...string) string {
	g.t.Helper()
	cmd := g.tool(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		g.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// registryUnderTest is a registry the graph tests run against.
type registryUnderTest struct {
	name string
	addr string
	// referrersAPI says whether the registry answers the referrers API; without it
	// the client keeps sha256-<hex> index tags.
	referrersAPI bool
}

// registries starts graft serve and CNCF distribution.
func registries(t *testing.T) []registryUnderTest {
	t.Helper()
	return []registryUnderTest{
		{name: "graft", addr: graftest.Start(t).Addr, referrersAPI: true},
		{name: "distribution", addr: clienttest.StartDistribution(t, clienttest.DistributionOptions{}).Addr, referrersAPI: false},
	}
}

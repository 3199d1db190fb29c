package client

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// The addresses the README's walkthrough uses; the test runs it against its own.
const (
	walkthroughFirst  = "127.0.0.1:5000"
	walkthroughSecond = "127.0.0.1:5001"
)

// walkthrough returns the fenced blocks of the README's walkthrough section: the
// shell commands (```bash) and the sample output (plain ```), in order.
func walkthrough(t *testing.T) (commands []string, outputs []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "<!-- walkthrough:start -->")
	section, _, ok2 := strings.Cut(section, "<!-- walkthrough:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no <!-- walkthrough:start --> … <!-- walkthrough:end --> section")
	}
	fence := regexp.MustCompile("(?s)```(\\w*)\\n(.*?)```")
	for _, m := range fence.FindAllStringSubmatch(section, -1) {
		if m[1] == "bash" {
			commands = append(commands, m[2])
		} else {
			outputs = append(outputs, m[2])
		}
	}
	return commands, outputs
}

// TestWalkthrough runs the README's walkthrough with the built binary, against a real
// graft serve and, as the second registry, CNCF distribution; the README's lines that
// start registries are left out, since the test starts its own on free ports.
func TestWalkthrough(t *testing.T) {
	t.Parallel()
	commands, outputs := walkthrough(t)
	first := graftest.Start(t).Addr
	second := clienttest.StartDistribution(t, clienttest.DistributionOptions{}).Addr

	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for _, block := range commands {
		for line := range strings.Lines(block) {
			if strings.HasPrefix(line, "graft serve") {
				continue
			}
			line = strings.ReplaceAll(line, walkthroughFirst, first)
			line = strings.ReplaceAll(line, walkthroughSecond, second)
			script.WriteString(line)
		}
	}
	if !strings.Contains(script.String(), "graft ") {
		t.Fatalf("the walkthrough runs no graft command:\n%s", script.String())
	}

	// the README says `graft`: put the built binary on PATH under that name
	bin := t.TempDir()
	if err := os.Symlink(graftest.Binary(t), filepath.Join(bin, "graft")); err != nil {
		t.Fatal(err)
	}
	g := newGraft(t)
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = g.Dir
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "DOCKER_CONFIG="+g.DockerConfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\nscript:\n%s\noutput:\n%s", err, script.String(), out)
	}

	// the graph is the same on both registries
	onFirst := g.discover(first + "/demo/app:v1")
	onSecond := g.discover(second + "/demo/app:v1")
	if onFirst.shape() != onSecond.shape() {
		t.Errorf("after the copy:\n%s\nwant:\n%s", onSecond.shape(), onFirst.shape())
	}
	if len(onFirst.Referrers) != 1 || len(onFirst.Referrers[0].Referrers) != 1 {
		t.Errorf("the walkthrough's graph is %s, want image → SBOM → signature", onFirst.shape())
	}
	if b, err := os.ReadFile(filepath.Join(g.Dir, "pulled", "sbom.spdx.json")); err != nil || !strings.Contains(string(b), "SPDX-2.3") {
		t.Errorf("pulled SBOM: %q, %v", b, err)
	}

	// the README's sample output is what discover prints, digests elided
	if len(outputs) == 0 {
		t.Fatal("the walkthrough shows no output of discover")
	}
	digests := regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	tree := g.Must("discover", first+"/demo/app:v1")
	tree = digests.ReplaceAllString(strings.ReplaceAll(tree, first, walkthroughFirst), "sha256:…")
	if tree != outputs[0] {
		t.Errorf("the README shows:\n%s\ndiscover prints:\n%s", outputs[0], tree)
	}
}

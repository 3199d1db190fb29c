package client

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// regctlNode is the part of regctl artifact tree's JSON the test compares.
type regctlNode struct {
	Reference struct {
		Digest string `json:"Digest"`
	} `json:"reference"`
	Manifest struct {
		ArtifactType string `json:"artifactType"`
	} `json:"manifest"`
	Referrer []regctlNode `json:"referrer"`
}

// referrersShape lists the referrers under n, one a line, indented by level: what
// graft, oras and regctl must agree on.
func (n graphNode) referrersShape() string {
	var b strings.Builder
	var walk func(graphNode, int)
	walk = func(n graphNode, level int) {
		for _, r := range n.Referrers {
			fmt.Fprintf(&b, "%s%s %s\n", strings.Repeat("  ", level), r.ArtifactType, r.Digest)
			walk(r, level+1)
		}
	}
	walk(n, 0)
	return b.String()
}

func (n regctlNode) referrersShape() string {
	var b strings.Builder
	var walk func(regctlNode, int)
	walk = func(n regctlNode, level int) {
		for _, r := range n.Referrer {
			fmt.Fprintf(&b, "%s%s %s\n", strings.Repeat("  ", level), r.Manifest.ArtifactType, r.Reference.Digest)
			walk(r, level+1)
		}
	}
	walk(n, 0)
	return b.String()
}

// TestInterop checks that what graft attach writes, oras discover and regctl artifact
// tree read as graft discover does, on a registry with the referrers API and on one
// with only the tag schema; and that graft discover reads what oras attach writes.
func TestInterop(t *testing.T) {
	t.Parallel()
	for _, reg := range registries(t) {
		t.Run(reg.name, func(t *testing.T) {
			t.Parallel()
			g := newGraft(t)
			image := reg.addr + "/interop/app:v1"
			g.Must("copy", buildImage(t, g, "layout"), image)
			attachGraph(t, g, image)
			g.WriteFile("by-oras.txt", "attached by oras\n")
			g.mustTool("oras", "attach", "--plain-http", "--artifact-type", "application/vnd.example.oras", image, "by-oras.txt")

			graftView := g.discover(image).referrersShape()
			if !strings.Contains(graftView, "application/vnd.example.oras") || strings.Count(graftView, "\n") != 3 {
				t.Fatalf("graft discover:\n%s\nwant the SBOM, its signature and oras's artifact", graftView)
			}

			var orasView graphNode
			out := g.mustTool("oras", "discover", "--plain-http", "--format", "json", image)
			if err := json.Unmarshal([]byte(out), &orasView); err != nil {
				t.Fatalf("oras discover: %v\n%s", err, out)
			}
			// oras lists in the registry's order; graft sorts
			if got := sortedLines(orasView.referrersShape()); got != sortedLines(graftView) {
				t.Errorf("oras discover:\n%s\ngraft discover:\n%s", orasView.referrersShape(), graftView)
			}

			var regctlView regctlNode
			out = g.mustTool("regctl", "--host", "reg="+reg.addr+",tls=disabled", "artifact", "tree", "--format", "{{json .}}", image)
			if err := json.Unmarshal([]byte(out), &regctlView); err != nil {
				t.Fatalf("regctl artifact tree: %v\n%s", err, out)
			}
			if got := sortedLines(regctlView.referrersShape()); got != sortedLines(graftView) {
				t.Errorf("regctl artifact tree:\n%s\ngraft discover:\n%s", regctlView.referrersShape(), graftView)
			}
		})
	}
}

// sortedLines turns an indented shape into the sorted paths from the root to each
// line, which compares graphs whatever order each registry listed siblings in.
func sortedLines(s string) string {
	var paths []string
	var stack []string
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\n")
		level := (len(line) - len(strings.TrimLeft(line, " "))) / 2
		stack = append(stack[:level], strings.TrimSpace(line))
		paths = append(paths, strings.Join(stack, " / "))
	}
	slices.Sort(paths)
	return strings.Join(paths, "\n")
}

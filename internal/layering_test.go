// Package internal_test checks graft's layering, which otherwise holds only by
// convention: internal/server (HTTP) over internal/registry (the spec's rules) over
// internal/blobstore and internal/metastore (bytes and facts), with internal/client on
// the other side of the wire. It reads the import graph with go/build, as
// go-containerregistry's depcheck reads it with go/packages, and names the chain of
// imports that breaks a rule.
package internal_test

import (
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/graft-registry/graft"

// rule says that no package matched by from may import a package matched by banned:
// directly only, or through any chain of imports. A pattern ending in /... matches a
// package and those below it; one that starts with internal/ or cmd/ names the
// module's packages, any other the standard library's.
type rule struct {
	why          string
	from, banned []string
	direct       bool
}

var rules = []rule{
	{
		why:    "the registry service speaks the spec, not HTTP: errcode carries the statuses, internal/server the protocol",
		from:   []string{"internal/registry"},
		banned: []string{"net/http/..."},
		direct: true,
	},
	{
		why:  "stores know nothing of what is built on them",
		from: []string{"internal/blobstore/...", "internal/metastore/..."},
		banned: []string{"internal/registry/...", "internal/server/...", "internal/client/...", "internal/auth/...",
			"internal/config/...", "internal/daemon/...", "internal/migrate/...", "cmd/..."},
	},
	{
		why:  "the server reaches the stores through their interfaces, never a concrete store: internal/daemon picks them",
		from: []string{"internal/server/..."},
		banned: []string{"internal/blobstore/fs", "internal/blobstore/s3",
			"internal/metastore/sqlite", "internal/metastore/postgres"},
	},
	{
		why:    "a pull-through mirror is built on the registry service: the service knows no upstream, and the mirror nothing of the HTTP server it serves through",
		from:   []string{"internal/registry/...", "internal/mirror/..."},
		banned: []string{"internal/mirror", "internal/server/...", "internal/daemon/..."},
	},
	{
		why:  "the client is a client of any registry, and carries nothing of the server side",
		from: []string{"internal/client/..."},
		banned: []string{"internal/server/...", "internal/registry/...", "internal/blobstore/...",
			"internal/metastore/...", "internal/auth/...", "internal/daemon/..."},
	},
}

func TestLayering(t *testing.T) {
	g, err := loadGraph(moduleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		for _, v := range g.check(r) {
			t.Errorf("%s\n  %s", v, r.why)
		}
	}
}

// TestLayeringFindsViolations checks the check itself, on a graph made up for it.
func TestLayeringFindsViolations(t *testing.T) {
	g := graph{
		module + "/internal/server":           {module + "/internal/auth", "net/http"},
		module + "/internal/auth":             {module + "/internal/metastore/sqlite"},
		module + "/internal/metastore/sqlite": {"database/sql"},
		module + "/internal/registry":         {module + "/internal/errcode"},
		module + "/internal/errcode":          {"net/http"},
		"net/http":                            {"net/http/internal"},
		"net/http/internal":                   nil,
		"database/sql":                        nil,
	}
	tests := []struct {
		rule rule
		want []string
	}{
		{rule{from: []string{"internal/server/..."}, banned: []string{"internal/metastore/sqlite"}},
			[]string{"internal/server → internal/auth → internal/metastore/sqlite"}},
		// errcode may use net/http: only registry's own imports count
		{rule{from: []string{"internal/registry"}, banned: []string{"net/http/..."}, direct: true}, nil},
		{rule{from: []string{"internal/server"}, banned: []string{"net/http/..."}, direct: true},
			[]string{"internal/server → net/http"}},
		{rule{from: []string{"internal/registry"}, banned: []string{"net/http/..."}},
			[]string{"internal/registry → internal/errcode → net/http"}},
		{rule{from: []string{"internal/nothing"}, banned: []string{"net/http"}},
			[]string{"internal/nothing matches no package: a rule that names nothing checks nothing"}},
	}
	for _, tt := range tests {
		if got := g.check(tt.rule); !slices.Equal(got, tt.want) {
			t.Errorf("check(%v) = %q, want %q", tt.rule, got, tt.want)
		}
	}
}

// graph maps a package's import path to the paths it imports, test files aside.
type graph map[string][]string

// loadGraph reads the imports of every package of the module at root (tests aside,
// for this machine's GOOS and GOARCH) with go/build, in this process, so that go
// test's cache sees the files it read and runs the check again when one changes. The
// imports from outside the module are leaves: no standard or third-party package
// imports graft.
func loadGraph(root string) (graph, error) {
	g := graph{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		name := d.Name()
		if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != root {
			return filepath.SkipDir // another module
		}
		p, err := build.ImportDir(path, 0)
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the package in %s: %w", path, err)
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		pkg := module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		g[pkg] = p.Imports
		for _, imp := range p.Imports {
			if _, ok := g[imp]; !ok && !strings.HasPrefix(imp, module+"/") {
				g[imp] = nil
			}
		}
		return nil
	})
	return g, err
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// check returns the violations of r in g, each as the chain of imports that breaks it.
func (g graph) check(r rule) []string {
	var out []string
	var from []string
	for pkg := range g {
		if matchesAny(pkg, r.from) {
			from = append(from, pkg)
		}
	}
	for _, p := range append(append([]string{}, r.from...), r.banned...) {
		if !g.has(p) {
			out = append(out, p+" matches no package: a rule that names nothing checks nothing")
		}
	}
	slices.Sort(from)
	for _, pkg := range from {
		if r.direct {
			for _, imp := range g[pkg] {
				if matchesAny(imp, r.banned) {
					out = append(out, short(pkg)+" → "+short(imp))
				}
			}
			continue
		}
		if chain := g.reach(pkg, r.banned); chain != nil {
			out = append(out, strings.Join(chain, " → "))
		}
	}
	return out
}

// reach returns a shortest chain of imports from pkg to a package banned matches, or
// nil.
func (g graph) reach(pkg string, banned []string) []string {
	parent := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != pkg && matchesAny(p, banned) {
			var chain []string
			for q := p; q != ""; q = parent[q] {
				chain = append([]string{short(q)}, chain...)
			}
			return chain
		}
		imports := slices.Clone(g[p])
		slices.Sort(imports)
		for _, imp := range imports {
			if _, seen := parent[imp]; !seen {
				parent[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

func (g graph) has(pattern string) bool {
	for pkg := range g {
		if match(pkg, pattern) {
			return true
		}
	}
	return false
}

func matchesAny(pkg string, patterns []string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(pkg, p) })
}

// match reports whether pkg is what pattern names.
func match(pkg, pattern string) bool {
	if strings.HasPrefix(pattern, "internal/") || strings.HasPrefix(pattern, "cmd/") {
		pattern = module + "/" + pattern
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// short is a package path without the module's prefix.
func short(pkg string) string { return strings.TrimPrefix(pkg, module+"/") }

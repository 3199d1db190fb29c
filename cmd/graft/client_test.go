package main

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/graft-registry/graft/internal/config"
)

// TestClientCommands checks that every client verb is registered once, beside the
// server's commands, with the exit codes in its help.
func TestClientCommands(t *testing.T) {
	root := rootCommand()
	seen := map[string]bool{}
	for _, c := range root.Commands() {
		if seen[c.Name()] {
			t.Errorf("two commands are named %q", c.Name())
		}
		seen[c.Name()] = true
	}
	verbs := []string{"login", "logout", "push", "attach", "pull", "copy", "discover", "delete", "manifest", "blob", "tag", "repo", "lock", "unlock"}
	for _, name := range verbs {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Errorf("graft %s is not registered: %v", name, err)
			continue
		}
		if !strings.Contains(c.Long, "Exit codes:") {
			t.Errorf("graft %s does not document its exit codes", name)
		}
	}
}

// remoteFlags are the flags of every verb that talks to registries.
var remoteFlags = []string{"ca-file", "insecure", "plain-http", "quiet"}

// settings are --config and the flags of the settings under keys.
func settings(keys ...string) []string {
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	config.AddFlags(fs, keys...)
	var out []string
	fs.VisitAll(func(f *pflag.Flag) { out = append(out, f.Name) })
	return out
}

// with is base and more, in a slice of their own.
func with(base []string, more ...string) []string { return slices.Concat(base, more) }

// TestHelpListsTheVerbsFlags runs every command's --help and checks the flags it
// lists: each verb's own, and no other (no serve flag on gc, token or user).
func TestHelpListsTheVerbsFlags(t *testing.T) {
	store := with(settings("data-dir", "log", "storage", "metadata"), "format")
	want := map[string][]string{
		"":                {"version"},
		"serve":           settings(),
		"version":         {"format"},
		"gc":              with(store, "as-of", "dry-run", "gc-delay", "gc-orphan-referrers"),
		"migrate":         with(store, "to"),
		"replicate":       with(store, "rule", "all"),
		"token":           nil,
		"token create":    with(settings("data-dir", "metadata", "auth.htpasswd"), "repo", "action", "expires"),
		"token list":      with(settings("data-dir", "metadata"), "format"),
		"token revoke":    settings("data-dir", "metadata"),
		"user":            nil,
		"user add":        with(settings("auth.htpasswd"), "password-stdin", "bcrypt-cost"),
		"user remove":     settings("auth.htpasswd"),
		"user list":       settings("auth.htpasswd"),
		"user hash":       {"password-stdin", "bcrypt-cost"},
		"login":           with(remoteFlags, "username", "password", "password-stdin"),
		"logout":          {"quiet"},
		"push":            with(remoteFlags, "artifact-type", "annotation", "config", "format"),
		"attach":          with(remoteFlags, "artifact-type", "annotation", "format"),
		"pull":            with(remoteFlags, "format"),
		"copy":            with(remoteFlags, "recursive", "format"),
		"discover":        with(remoteFlags, "artifact-type", "depth", "format"),
		"delete":          with(remoteFlags, "yes", "format"),
		"manifest":        remoteFlags,
		"manifest get":    with(remoteFlags, "format"),
		"manifest config": with(remoteFlags, "format"),
		"manifest put":    with(remoteFlags, "media-type", "format"),
		"manifest delete": with(remoteFlags, "yes", "format"),
		"blob":            remoteFlags,
		"blob get":        with(remoteFlags, "file", "format"),
		"blob put":        with(remoteFlags, "media-type", "format"),
		"blob delete":     with(remoteFlags, "yes"),
		"tag":             remoteFlags,
		"tag list":        with(remoteFlags, "format"),
		"tag add":         remoteFlags,
		"tag delete":      with(remoteFlags, "format"),
		"repo":            remoteFlags,
		"repo list":       with(remoteFlags, "format"),
		"repo delete":     with(remoteFlags, "yes", "format"),
		"lock":            with(remoteFlags, "write", "delete", "read", "list", "format"),
		"unlock":          with(remoteFlags, "write", "delete", "read", "list", "format"),
	}
	flagRe := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`)
	seen := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimSpace(strings.TrimPrefix(c.CommandPath(), "graft"))
		if c.Name() == "help" || c.Name() == "completion" {
			return
		}
		seen[path] = true
		root := rootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append(strings.Fields(path), "--help"))
		if err := root.Execute(); err != nil {
			t.Fatalf("graft %s --help: %v", path, err)
		}
		_, flags, _ := strings.Cut(out.String(), "Flags:")
		var got []string
		for _, m := range flagRe.FindAllStringSubmatch(flags, -1) {
			if m[1] != "help" {
				got = append(got, m[1])
			}
		}
		slices.Sort(got)
		w, ok := want[path]
		if !ok {
			t.Errorf("graft %s: a command the test does not know, with flags %q", path, got)
		}
		w = slices.Clone(w)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("graft %s --help lists %q, want %q", path, got, w)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCommand())
	for path := range want {
		if !seen[path] {
			t.Errorf("graft %s is not a command", path)
		}
	}
}

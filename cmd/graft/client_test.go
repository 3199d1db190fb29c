package main

import (
	"strings"
	"testing"
)

// TestClientCommands checks that every client verb is registered once, beside the
// server's commands, with the flags all client verbs share and the exit codes in its
// help.
func TestClientCommands(t *testing.T) {
	root := rootCommand()
	seen := map[string]bool{}
	for _, c := range root.Commands() {
		if seen[c.Name()] {
			t.Errorf("two commands are named %q", c.Name())
		}
		seen[c.Name()] = true
	}
	verbs := []string{"login", "logout", "push", "attach", "pull", "copy", "discover", "delete", "manifest", "blob", "tag", "repo"}
	for _, name := range verbs {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Errorf("graft %s is not registered: %v", name, err)
			continue
		}
		for _, flag := range []string{"plain-http", "insecure", "ca-file", "quiet"} {
			if c.PersistentFlags().Lookup(flag) == nil {
				t.Errorf("graft %s has no --%s", name, flag)
			}
		}
		if !strings.Contains(c.Long, "Exit codes:") {
			t.Errorf("graft %s does not document its exit codes", name)
		}
	}
	for _, path := range [][]string{{"manifest", "get"}, {"manifest", "put"}, {"manifest", "delete"}, {"manifest", "config"},
		{"blob", "get"}, {"blob", "put"}, {"blob", "delete"}, {"tag", "list"}, {"tag", "add"}, {"repo", "list"}} {
		c, _, err := root.Find(path)
		if err != nil || c.Name() != path[1] {
			t.Errorf("graft %s is not registered: %v", strings.Join(path, " "), err)
			continue
		}
		if c.InheritedFlags().Lookup("plain-http") == nil {
			t.Errorf("graft %s does not inherit --plain-http", strings.Join(path, " "))
		}
	}
}

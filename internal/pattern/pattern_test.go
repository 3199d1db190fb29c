package pattern_test

import (
	"testing"

	"github.com/graft-registry/graft/internal/pattern"
)

func TestRepository(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"team/*", []string{"team/app", "team/a.b-c_d"}, []string{"team", "team/app/sbom", "teams/app", "other/team/app"}},
		{"team/**", []string{"team/app", "team/app/sbom"}, []string{"team", "teamx/app"}},
		{"**", []string{"a", "a/b/c"}, nil},
		{"*", []string{"app"}, []string{"team/app"}},
		{"team/app", []string{"team/app"}, []string{"team/app2", "team/ap"}},
		{"team/app?", []string{"team/app2"}, []string{"team/app", "team/app/"}},
		// a dot is a dot, not any character
		{"a.b", []string{"a.b"}, []string{"axb"}},
		{"**/sbom", []string{"team/app/sbom", "x/sbom"}, []string{"sbom", "team/sbom2"}},
	}
	for _, tt := range tests {
		p, err := pattern.Repository(tt.pattern)
		if err != nil {
			t.Fatalf("pattern.Repository(%q): %v", tt.pattern, err)
		}
		for _, n := range tt.match {
			if !p.Match(n) {
				t.Errorf("%q does not match %q", tt.pattern, n)
			}
		}
		for _, n := range tt.miss {
			if p.Match(n) {
				t.Errorf("%q matches %q", tt.pattern, n)
			}
		}
	}
	for _, bad := range []string{"", "Team/*", "team/[ab]", "team/(x)", "a+b", "a b"} {
		if _, err := pattern.Repository(bad); err == nil {
			t.Errorf("pattern.Repository(%q) accepted", bad)
		}
	}
}

func TestTag(t *testing.T) {
	for _, tt := range []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"v*", []string{"v1", "v1.2.3", "v", "v1-rc.1"}, []string{"1.0", "V1", "latest"}},
		{"release-*", []string{"release-2025", "release-"}, []string{"release", "prerelease-1"}},
		{"v?.?", []string{"v1.2"}, []string{"v1.22", "v1x2x"}},
		{"*", []string{"anything", "sha256-abc.sig"}, nil},
		{"latest", []string{"latest"}, []string{"latest2"}},
		// a dot is a dot
		{"1.0", []string{"1.0"}, []string{"100"}},
	} {
		p, err := pattern.Tag(tt.pattern)
		if err != nil {
			t.Fatalf("Tag(%q): %v", tt.pattern, err)
		}
		for _, s := range tt.match {
			if !p.Match(s) {
				t.Errorf("%q does not match %q", tt.pattern, s)
			}
		}
		for _, s := range tt.miss {
			if p.Match(s) {
				t.Errorf("%q matches %q", tt.pattern, s)
			}
		}
	}
	for _, bad := range []string{"", "v/1", "v[12]", "a b", "v+"} {
		if _, err := pattern.Tag(bad); err == nil {
			t.Errorf("Tag(%q) accepted", bad)
		}
	}
	set, err := pattern.Tags([]string{"v*", " release-* "})
	if err != nil || !set.Match("release-1") || !set.Match("v2") || set.Match("latest") {
		t.Errorf("Tags: %v, %v", set, err)
	}
}

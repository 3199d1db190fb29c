// Package pattern matches repository names and tags against the globs of graft's
// configuration: access policies, retention policies, immutable tags. One syntax, so
// that a pattern means the same in each.
package pattern

import (
	"fmt"
	"regexp"
	"strings"
)

// Pattern matches repository names, or tags.
//
// In a repository pattern `*` matches within one path component, `**` across
// components, `?` one character that is not a slash; everything else matches itself.
// So team/* matches team/app but not team/app/sbom, team/** matches both, and **
// matches every repository. A pattern that grants less than its author hoped shows up
// as a refusal; one that grants more would not show up at all, hence the narrow `*`.
//
// In a tag pattern (tags have no components) `*` matches any characters and `?` one.
type Pattern struct {
	raw string
	re  *regexp.Regexp
}

// Repository compiles a repository name pattern.
func Repository(p string) (Pattern, error) {
	return compile(p, "repository", func(c byte) bool {
		return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '/' || c == '_' || c == '-' || c == '.'
	}, "lower case letters, digits, . _ - /", "[^/]*", ".*", "[^/]")
}

// Tag compiles a tag pattern.
func Tag(p string) (Pattern, error) {
	return compile(p, "tag", func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
	}, "letters, digits, . _ -", ".*", ".*", ".")
}

func compile(p, what string, literal func(byte) bool, alphabet, star, stars, one string) (Pattern, error) {
	if p == "" {
		return Pattern{}, fmt.Errorf("empty %s pattern", what)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '*' && i+1 < len(p) && p[i+1] == '*':
			b.WriteString(stars)
			i++
		case c == '*':
			b.WriteString(star)
		case c == '?':
			b.WriteString(one)
		case literal(c):
			b.WriteString(regexp.QuoteMeta(string(c)))
		default:
			return Pattern{}, fmt.Errorf("%s pattern %q: %q cannot be in a %s (%s, and * ** ?)", what, clip(p), c, what, alphabet)
		}
	}
	b.WriteString("$")
	return Pattern{raw: p, re: regexp.MustCompile(b.String())}, nil
}

// Match reports whether s matches p.
func (p Pattern) Match(s string) bool { return p.re != nil && p.re.MatchString(s) }

func (p Pattern) String() string { return p.raw }

// Set is patterns any one of which matches.
type Set []Pattern

// Match reports whether s matches any pattern of the set.
func (s Set) Match(name string) bool {
	for _, p := range s {
		if p.Match(name) {
			return true
		}
	}
	return false
}

// Repositories compiles repository patterns, naming the first bad one.
func Repositories(ps []string) (Set, error) { return compileAll(ps, Repository) }

// Tags compiles tag patterns, naming the first bad one.
func Tags(ps []string) (Set, error) { return compileAll(ps, Tag) }

func compileAll(ps []string, compile func(string) (Pattern, error)) (Set, error) {
	out := make(Set, 0, len(ps))
	for _, s := range ps {
		p, err := compile(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

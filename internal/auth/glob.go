package auth

import (
	"fmt"
	"regexp"
	"strings"
)

// Pattern matches repository names. `*` matches within one path component, `**`
// across components, `?` one character that is not a slash; everything else
// matches itself. So team/* matches team/app but not team/app/sbom, team/** matches
// both, and ** matches every repository. A pattern that grants less than its author
// hoped shows up as a refusal; one that grants more would not show up at all, hence
// the narrow `*`.
type Pattern struct {
	raw string
	re  *regexp.Regexp
}

// CompilePattern compiles a repository name pattern.
func CompilePattern(p string) (Pattern, error) {
	if p == "" {
		return Pattern{}, fmt.Errorf("empty repository pattern")
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '*' && i+1 < len(p) && p[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '.':
			b.WriteString(`\.`)
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '/', c == '_', c == '-':
			b.WriteByte(c)
		default:
			return Pattern{}, fmt.Errorf("repository pattern %q: %q cannot be in a repository name (lower case letters, digits, . _ - /, and * ** ?)", clip(p), c)
		}
	}
	b.WriteString("$")
	return Pattern{raw: p, re: regexp.MustCompile(b.String())}, nil
}

// Match reports whether repository name matches p.
func (p Pattern) Match(name string) bool { return p.re != nil && p.re.MatchString(name) }

func (p Pattern) String() string { return p.raw }

// compilePatterns compiles patterns, naming the first bad one.
func compilePatterns(ps []string) ([]Pattern, error) {
	out := make([]Pattern, 0, len(ps))
	for _, s := range ps {
		p, err := CompilePattern(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func matchAny(ps []Pattern, name string) bool {
	for _, p := range ps {
		if p.Match(name) {
			return true
		}
	}
	return false
}

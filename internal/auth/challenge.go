package auth

import (
	"errors"
	"strings"
)

// Challenge is a WWW-Authenticate challenge: a scheme and its parameters.
type Challenge struct {
	Scheme string
	Params map[string]string
}

// BearerChallenge is the challenge that sends a client to the token endpoint at realm
// for scopes. errCode is "" or an RFC 6750 error ("invalid_token", "insufficient_scope").
func BearerChallenge(realm, service string, scopes []Scope, errCode string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm=`)
	quote(&b, realm)
	b.WriteString(`,service=`)
	quote(&b, service)
	if len(scopes) > 0 {
		s := make([]string, len(scopes))
		for i, sc := range scopes {
			s[i] = sc.String()
		}
		b.WriteString(`,scope=`)
		quote(&b, strings.Join(s, " "))
	}
	if errCode != "" {
		b.WriteString(`,error=`)
		quote(&b, errCode)
	}
	return b.String()
}

func quote(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			// no control character may reach a header, escaped or not
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

var errChallenge = errors.New("malformed WWW-Authenticate challenge")

// ParseChallenge reads the first challenge of a WWW-Authenticate header (RFC 7235):
// a scheme, then name=value parameters, values plain tokens or quoted strings with
// backslash escapes. Parameter names are lowercased; the scheme keeps its spelling.
func ParseChallenge(h string) (Challenge, error) {
	p := parser{s: h}
	p.space()
	scheme := p.token()
	if scheme == "" {
		return Challenge{}, errChallenge
	}
	c := Challenge{Scheme: scheme, Params: map[string]string{}}
	p.space()
	for !p.done() {
		name := p.token()
		p.space()
		if name == "" || !p.eat('=') {
			// a second challenge starts, or a token68 (Basic's credentials form),
			// which no challenge graft reads carries
			if len(c.Params) > 0 || name == "" {
				return c, nil
			}
			return Challenge{}, errChallenge
		}
		p.space()
		var val string
		if p.peek() == '"' {
			v, ok := p.quoted()
			if !ok {
				return Challenge{}, errChallenge
			}
			val = v
		} else {
			val = p.token()
		}
		c.Params[strings.ToLower(name)] = val
		p.space()
		if !p.eat(',') {
			break
		}
		p.space()
	}
	return c, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *parser) eat(c byte) bool {
	if p.peek() == c && !p.done() {
		p.i++
		return true
	}
	return false
}

func (p *parser) space() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// token reads an RFC 7230 token.
func (p *parser) token() string {
	start := p.i
	for !p.done() && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~/:", c) >= 0
}

// quoted reads a quoted string, the opening quote first.
func (p *parser) quoted() (string, bool) {
	p.i++
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return b.String(), true
		case '\\':
			if p.done() {
				return "", false
			}
			b.WriteByte(p.s[p.i])
			p.i++
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

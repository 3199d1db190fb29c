package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

// The parsers that read what clients send, fuzzed. Their seeds are in
// testdata/fuzz/<FuzzName>; run go test -fuzz=FuzzName ./internal/auth to look for more.

// FuzzParseScope: no panic, and a scope that parses prints back as something that
// parses to the same scope.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"repository:team/app:pull,push", "registry:catalog:*", "repository(plugin):a:pull",
		"repository:localhost:5000/a:pull", "a:b:", "::", "repository:app"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		if sc.Type == "" || sc.Name == "" {
			t.Fatalf("ParseScope(%q) = %+v with an empty type or name", s, sc)
		}
		again, err := ParseScope(sc.String())
		if err != nil || again.String() != sc.String() {
			t.Fatalf("ParseScope(%q) = %q, which parses back as %q, %v", s, sc.String(), again.String(), err)
		}
		ParseScopes([]string{s, s + " " + s})
	})
}

// FuzzChallenge: no panic on any header, and the challenges graft writes parse back
// to what went in, whatever the realm, service and scope hold.
func FuzzChallenge(f *testing.F) {
	f.Add(`Bearer realm="http://127.0.0.1:5000/auth/token",service="graft",scope="repository:a:pull"`, "http://h/auth/token", "graft", "team/app")
	f.Add(`Basic realm="x", Bearer realm="y"`, `a"b\c`, "svc", "a/b")
	f.Add(`Bearer realm="unterminated`, "", "", "")
	f.Add(`bearer ,,, =`, "r", "s\x00", "n")
	f.Fuzz(func(t *testing.T, header, realm, service, name string) {
		ParseChallenge(header)

		h := BearerChallenge(realm, service, []Scope{RepositoryScope(name, Pull)}, "insufficient_scope")
		if strings.ContainsAny(h, "\r\n\x00") {
			t.Fatalf("BearerChallenge wrote a control character: %q", h)
		}
		c, err := ParseChallenge(h)
		if err != nil {
			t.Fatalf("ParseChallenge(%q): %v", h, err)
		}
		if want := dropControls(realm); c.Params["realm"] != want {
			t.Fatalf("realm %q came back as %q from %q", want, c.Params["realm"], h)
		}
		if want := dropControls(service); c.Params["service"] != want {
			t.Fatalf("service %q came back as %q", want, c.Params["service"])
		}
		if c.Params["error"] != "insufficient_scope" {
			t.Fatalf("error came back as %q from %q", c.Params["error"], h)
		}
	})
}

// dropControls removes control bytes, byte by byte: the header is bytes, not UTF-8.
func dropControls(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c != 0x7f {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzVerify: whatever a client sends as a token, verification does not panic and
// accepts nothing but what the signer signed, unaltered.
func FuzzVerify(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	s, err := NewSigner(key)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a := &Authenticator{signer: s, service: "graft", ttl: time.Minute, now: func() time.Time { return now }}
	good, err := a.IssueAccess(Identity{Kind: Anonymous}, []Scope{RepositoryScope("a", Pull)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.Token)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.verify(tok, "graft", now)
		if err == nil && tok != good.Token {
			t.Fatalf("verify accepted a token the signer did not issue: %q (%+v)", tok, c)
		}
	})
}

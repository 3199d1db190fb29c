package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
)

// fixture is an authenticator with users alice (admin), bob (group dev), carol (in
// the htpasswd file) and dave (in the configuration), a sqlite store for tokens, and a
// clock the test moves.
type fixture struct {
	a        *Authenticator
	meta     metastore.Store
	htpasswd string
	now      time.Time
}

var teamPolicy = PolicyConfig{
	Admins: []string{"alice"},
	Groups: map[string][]string{"dev": {"bob"}},
	Rules: []Rule{
		{Repositories: []string{"team/**"}, Pull: []string{"group:dev", "carol"}, Push: []string{"group:dev"}},
		{Repositories: []string{"public/*"}, AnonymousPull: true},
		{Repositories: []string{"shared/*"}, Pull: []string{"*"}, Delete: []string{"dave"}},
	},
}

func newFixture(t *testing.T, policy PolicyConfig, mod ...func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{htpasswd: filepath.Join(dir, "htpasswd"), now: time.Unix(1_800_000_000, 0)}
	for _, u := range []string{"alice", "bob", "carol"} {
		if _, err := SetPassword(f.htpasswd, u, u+"-password", bcrypt.MinCost); err != nil {
			t.Fatal(err)
		}
	}
	meta, err := sqlite.Open(context.Background(), filepath.Join(dir, "graft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	f.meta = meta
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	daveHash, _ := HashPassword("dave-password", bcrypt.MinCost)
	o := Options{
		Users: map[string]string{"dave": daveHash}, Htpasswd: f.htpasswd, Policy: policy, Tokens: meta,
		Signer: signer, LoginFailures: 1000, Now: func() time.Time { return f.now },
	}
	for _, m := range mod {
		m(&o)
	}
	if f.a, err = New(o); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) login(t *testing.T, name, password string) (Identity, error) {
	t.Helper()
	return f.a.Login(context.Background(), name, password, "192.0.2.1:1234")
}

func (f *fixture) mustLogin(t *testing.T, name, password string) Identity {
	t.Helper()
	id, err := f.login(t, name, password)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return id
}

// bearer authenticates a request carrying token.
func (f *fixture) bearer(token string) (*Caller, error) {
	r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return f.a.Authenticate(r)
}

func TestPolicy(t *testing.T) {
	f := newFixture(t, teamPolicy)
	alice := f.mustLogin(t, "alice", "alice-password")
	bob := f.mustLogin(t, "bob", "bob-password")
	carol := f.mustLogin(t, "carol", "carol-password")
	dave := f.mustLogin(t, "dave", "dave-password")
	anon := Identity{Kind: Anonymous}
	tests := []struct {
		who  string
		id   Identity
		repo string
		want Actions
	}{
		{"alice", alice, "anything/at/all", All},
		{"bob", bob, "team/app", Pull | Push},
		{"bob", bob, "team/app/sbom", Pull | Push},
		{"bob", bob, "team", 0},
		{"bob", bob, "other/app", 0},
		{"carol", carol, "team/app", Pull},
		{"carol", carol, "shared/x", Pull},
		{"dave", dave, "shared/x", Pull | Delete},
		{"dave", dave, "team/app", 0},
		{"anonymous", anon, "public/site", Pull},
		{"anonymous", anon, "public/site/sub", 0},
		{"anonymous", anon, "team/app", 0},
		{"anonymous", anon, "shared/x", 0},
		// anonymous pull is everyone's pull
		{"bob", bob, "public/site", Pull},
	}
	for _, tt := range tests {
		if got := f.a.Policy().Allowed(tt.id, tt.repo); got != tt.want {
			t.Errorf("%s on %s: %v, want %v", tt.who, tt.repo, got, tt.want)
		}
	}
	if !f.a.Policy().Everywhere(alice) || f.a.Policy().Everywhere(bob) || f.a.Policy().Everywhere(anon) {
		t.Error("only the admin may pull everywhere")
	}
}

func TestOpenPolicy(t *testing.T) {
	f := newFixture(t, PolicyConfig{})
	bob := f.mustLogin(t, "bob", "bob-password")
	if got := f.a.Policy().Allowed(bob, "any/repo"); got != All {
		t.Errorf("with no policies a user may do %v, want everything", got)
	}
	if got := f.a.Policy().Allowed(Identity{Kind: Anonymous}, "any/repo"); got != 0 {
		t.Errorf("with no policies an anonymous caller may do %v, want nothing", got)
	}
	if !f.a.Policy().Everywhere(bob) {
		t.Error("with no policies a user may pull everywhere")
	}
}

func TestPolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		c    PolicyConfig
		want string
	}{
		{"undefined group", PolicyConfig{Rules: []Rule{{Repositories: []string{"a"}, Pull: []string{"group:devs"}}}}, "devs"},
		{"admin star", PolicyConfig{Admins: []string{"*"}}, "admins"},
		{"no repositories", PolicyConfig{Rules: []Rule{{Pull: []string{"bob"}}}}, "repositories"},
		{"bad pattern", PolicyConfig{Rules: []Rule{{Repositories: []string{"Team/*"}}}}, "Team"},
		{"empty subject", PolicyConfig{Rules: []Rule{{Repositories: []string{"a"}, Push: []string{""}}}}, "push"},
	}
	for _, tt := range tests {
		_, err := NewPolicy(tt.c)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %q", tt.name, err, tt.want)
		}
	}
	// a group that only a user of the configuration names is defined
	if _, err := NewPolicy(PolicyConfig{UserGroups: map[string][]string{"dave": {"ops"}},
		Rules: []Rule{{Repositories: []string{"a"}, Pull: []string{"group:ops"}}}}); err != nil {
		t.Errorf("a group of auth.users refused: %v", err)
	}
}

func TestLogin(t *testing.T) {
	f := newFixture(t, teamPolicy)
	if id := f.mustLogin(t, "carol", "carol-password"); id.Kind != User || id.Name != "carol" {
		t.Errorf("carol logged in as %+v", id)
	}
	f.mustLogin(t, "dave", "dave-password")
	for _, c := range [][2]string{{"carol", "bob-password"}, {"carol", ""}, {"nobody", "x"}, {"", ""}, {"carol", "carol-password "}} {
		if _, err := f.login(t, c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("login %q/%q: %v, want ErrBadCredentials", c[0], c[1], err)
		}
	}
}

// TestFailedLoginLog checks what a failed login logs: the name of a user or token
// whose password or secret is wrong, and never a name that is neither (it may be a
// mistyped password).
func TestFailedLoginLog(t *testing.T) {
	var logged strings.Builder
	f := newFixture(t, teamPolicy, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	})
	if _, _, err := CreateToken(context.Background(), f.meta, TokenSpec{Name: "ci", Repositories: []string{"team/*"},
		Actions: []string{"pull"}}, f.now); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, password, want string }{
		{"carol", "wrong", `msg="login failed" user=carol`},
		{"ci", "wrong", `msg="login failed" user=ci`},
		{"ci", secretPrefix + "wrong", `msg="login failed" user=ci`},
		{"nobody", "s3cret", `msg="login failed: unknown user"`},
	}
	for _, tt := range tests {
		logged.Reset()
		if _, err := f.login(t, tt.name, tt.password); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("login %s/%s: %v, want ErrBadCredentials", tt.name, tt.password, err)
		}
		if got := logged.String(); !strings.Contains(got, tt.want) || strings.Contains(got, tt.password) {
			t.Errorf("login %s with a wrong password logged %q, want %q and never the password", tt.name, got, tt.want)
		}
	}
}

func TestHtpasswdReadAgain(t *testing.T) {
	f := newFixture(t, PolicyConfig{})
	if _, err := SetPassword(f.htpasswd, "erin", "erin-password", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	if err := RemoveUser(f.htpasswd, "carol"); err != nil {
		t.Fatal(err)
	}
	// the file is looked at once a second at most
	f.a.users.mu.Lock()
	f.a.users.checked = time.Time{}
	f.a.users.mu.Unlock()
	f.mustLogin(t, "erin", "erin-password")
	if _, err := f.login(t, "carol", "carol-password"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a removed user logged in: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, PolicyConfig{}, func(o *Options) { o.LoginFailures = 3 })
	for i := 0; i < 3; i++ {
		if _, err := f.login(t, "bob", "wrong"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	var limited *RateLimitError
	if _, err := f.login(t, "bob", "bob-password"); !errors.As(err, &limited) {
		t.Fatalf("the 4th login from a source that failed 3 times: %v, want a RateLimitError", err)
	}
	if limited.RetryAfter <= 0 || limited.RetryAfter > time.Minute {
		t.Errorf("RetryAfter = %v", limited.RetryAfter)
	}
	// another source is not affected; an IPv6 client is one source for its whole /64
	if _, err := f.a.Login(context.Background(), "bob", "bob-password", "198.51.100.7:1"); err != nil {
		t.Errorf("another source refused: %v", err)
	}
	for i := 0; i < 3; i++ {
		f.a.Login(context.Background(), "bob", "wrong", "[2001:db8::1]:1")
	}
	if _, err := f.a.Login(context.Background(), "bob", "bob-password", "[2001:db8::ffff]:1"); !errors.As(err, &limited) {
		t.Errorf("the same /64 was not limited: %v", err)
	}
	f.now = f.now.Add(61 * time.Second)
	f.mustLogin(t, "bob", "bob-password")
}

// TestRateLimitParallel: guesses that arrive at once are checked no more often than
// sequential ones: each check takes its place in the budget before it starts.
func TestRateLimitParallel(t *testing.T) {
	f := newFixture(t, PolicyConfig{}, func(o *Options) { o.LoginFailures = 5 })
	const n = 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	var checked, limited int
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.a.Login(context.Background(), "bob", fmt.Sprintf("guess-%d", i), "192.0.2.1:1234")
			mu.Lock()
			defer mu.Unlock()
			var rl *RateLimitError
			switch {
			case errors.Is(err, ErrBadCredentials):
				checked++
			case errors.As(err, &rl):
				limited++
			default:
				t.Errorf("guess %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if checked != 5 || limited != n-5 {
		t.Errorf("%d parallel guesses with a budget of 5: %d checked, %d refused", n, checked, limited)
	}
	var rl *RateLimitError
	if _, err := f.login(t, "bob", "bob-password"); !errors.As(err, &rl) {
		t.Errorf("the right password in the spent window: %v", err)
	}
	f.now = f.now.Add(time.Minute)
	f.mustLogin(t, "bob", "bob-password")
}

// TestRateLimitRefund: a right password gives its place back, so that a source's
// successful logins never spend its budget; logins that find every place taken by
// checks under way wait for them, and a password proven before needs no place.
func TestRateLimitRefund(t *testing.T) {
	f := newFixture(t, PolicyConfig{}, func(o *Options) { o.LoginFailures = 2 })
	forget := func() { f.a.verified = verifiedCache{key: f.a.verified.key, m: map[string]time.Time{}} }
	for i := 0; i < 10; i++ {
		forget() // no memory of the last login
		f.mustLogin(t, "bob", "bob-password")
	}
	if _, err := f.login(t, "bob", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a wrong password after 10 right ones: %v", err)
	}
	f.mustLogin(t, "bob", "bob-password")

	// one failure and one check under way hold the budget of 2: a login proven a
	// moment ago passes, another waits for the check
	held, _, _ := f.a.limit.reserve("192.0.2.1", f.now)
	if held == nil {
		t.Fatal("no place for one check after one failure out of 2")
	}
	f.mustLogin(t, "bob", "bob-password")
	done := make(chan error)
	go func() {
		_, err := f.login(t, "dave", "dave-password")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a login with every place held did not wait: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	held.release()
	if err := <-done; err != nil {
		t.Errorf("the waiting login after the check ended: %v", err)
	}

	// many right passwords at once, each checked (none remembered): they wait their
	// turn and all pass
	forget()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name, password := "dave", "dave-password"
			if i%2 == 0 {
				name, password = "bob", "bob-password"
			}
			if _, err := f.a.Login(context.Background(), name, password, "198.51.100.9:1"); err != nil {
				t.Errorf("login %d of 20 at once: %v", i, err)
			}
		}()
	}
	wg.Wait()
}

// TestDummyCost: a failed login of a stranger costs a bcrypt of the users' cost, no
// cheaper and no dearer than a user's.
func TestDummyCost(t *testing.T) {
	f := newFixture(t, PolicyConfig{})
	if got := f.a.users.cost(); got != bcrypt.MinCost {
		t.Errorf("users of cost %d: a stranger's failure costs %d", bcrypt.MinCost, got)
	}
	if got, _ := bcrypt.Cost(dummyHash(f.a.users.cost())); got != bcrypt.MinCost {
		t.Errorf("the dummy hash has cost %d", got)
	}
	none, err := newUserDB(nil, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := none.cost(); got != DefaultCost {
		t.Errorf("without users: cost %d, want %d", got, DefaultCost)
	}
}

func TestRepositoryTokens(t *testing.T) {
	f := newFixture(t, teamPolicy)
	ctx := context.Background()
	secret, tok, err := CreateToken(ctx, f.meta, TokenSpec{Name: "ci", Repositories: []string{"team/*"},
		Actions: []string{"pull,push"}, TTL: time.Hour}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, secretPrefix) || strings.Contains(tok.Hash, secret) {
		t.Fatalf("secret %q, hash %q", secret, tok.Hash)
	}
	stored, err := f.meta.Token(ctx, "ci")
	if err != nil || stored.Hash == secret || !secretMatches(stored.Hash, secret) {
		t.Fatalf("stored token %+v, %v", stored, err)
	}
	if _, _, err := CreateToken(ctx, f.meta, TokenSpec{Name: "ci", Repositories: []string{"x"}, Actions: []string{"pull"}}, f.now); err == nil {
		t.Error("a second token named ci was created")
	}

	id := f.mustLogin(t, "ci", secret)
	if id.Kind != Token {
		t.Fatalf("logged in as %+v", id)
	}
	if got := f.a.Policy().Allowed(id, "team/app"); got != Pull|Push {
		t.Errorf("token on team/app: %v", got)
	}
	if got := f.a.Policy().Allowed(id, "team/app/sbom"); got != 0 {
		t.Errorf("token team/* on team/app/sbom: %v", got)
	}
	if _, err := f.login(t, "ci", secret+"x"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a wrong secret: %v", err)
	}

	// its access tokens end when it does
	iss, err := f.a.IssueAccess(id, f.a.Grant(id, []Scope{RepositoryScope("team/app", All), RepositoryScope("other", Pull)}))
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.bearer(iss.Token)
	if err != nil {
		t.Fatal(err)
	}
	if have, _ := f.a.Allowed(c, "team/app"); have != Pull|Push {
		t.Errorf("the token's access token has %v on team/app, want pull,push (delete was not granted)", have)
	}
	if have, _ := f.a.Allowed(c, "other"); have != 0 {
		t.Errorf("the token's access token has %v on other", have)
	}
	f.now = f.now.Add(59 * time.Minute)
	iss, err = f.a.IssueAccess(id, nil)
	if err != nil || !iss.Expires.Equal(tok.Expires) {
		t.Errorf("an access token issued a minute before the token ends expires %v, want %v (%v)", iss.Expires, tok.Expires, err)
	}
	f.now = f.now.Add(2 * time.Minute)
	if _, err := f.login(t, "ci", secret); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("an expired token logged in: %v", err)
	}

	// revoking it ends the access tokens issued to it
	secret2, _, err := CreateToken(ctx, f.meta, TokenSpec{Name: "deploy", Repositories: []string{"**"}, Actions: []string{"pull"}}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	id2 := f.mustLogin(t, "deploy", secret2)
	if !f.a.Policy().Everywhere(id2) {
		t.Error("a pull token for ** may not pull everywhere")
	}
	iss2, _ := f.a.IssueAccess(id2, f.a.Grant(id2, []Scope{RepositoryScope("x", Pull)}))
	if _, err := f.bearer(iss2.Token); err != nil {
		t.Fatal(err)
	}
	if err := RevokeToken(ctx, f.meta, "deploy"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.bearer(iss2.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("an access token of a revoked token: %v", err)
	}
	// a new token of the same name does not revive the old one's access tokens
	if _, _, err := CreateToken(ctx, f.meta, TokenSpec{Name: "deploy", Repositories: []string{"**"}, Actions: []string{"pull"}}, f.now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.bearer(iss2.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("an access token of a revoked token, after a new one of the same name: %v", err)
	}
	if err := RevokeToken(ctx, f.meta, "nope"); err == nil {
		t.Error("revoking a token that does not exist succeeded")
	}
}

func TestTokenSpecErrors(t *testing.T) {
	f := newFixture(t, PolicyConfig{})
	for _, spec := range []TokenSpec{
		{Name: "bad name", Repositories: []string{"a"}, Actions: []string{"pull"}},
		{Name: "a:b", Repositories: []string{"a"}, Actions: []string{"pull"}},
		{Name: "ok", Actions: []string{"pull"}},
		{Name: "ok", Repositories: []string{"A"}, Actions: []string{"pull"}},
		{Name: "ok", Repositories: []string{"a"}},
		{Name: "ok", Repositories: []string{"a"}, Actions: []string{"write"}},
		{Name: "ok", Repositories: []string{"a"}, Actions: []string{"pull"}, TTL: -time.Hour},
	} {
		if _, _, err := CreateToken(context.Background(), f.meta, spec, f.now); err == nil {
			t.Errorf("CreateToken(%+v) accepted", spec)
		}
	}
}

// TestBearerChecks: an access token is checked for its signature, algorithm, key,
// issuer, audience, expiry, not-before and use, and for its identity still standing.
func TestBearerChecks(t *testing.T) {
	f := newFixture(t, PolicyConfig{})
	bob := f.mustLogin(t, "bob", "bob-password")
	good, err := f.a.IssueAccess(bob, []Scope{RepositoryScope("team/app", Pull)})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := f.bearer(good.Token); err != nil || c.Identity.Name != "bob" || !c.Bearer {
		t.Fatalf("a good token: %+v, %v", c, err)
	}

	base := func() *claims { return f.a.claims(bob, useAccess, f.now, f.now.Add(time.Minute)) }
	sign := func(c *claims) string {
		tok, err := f.a.signer.sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := NewSigner(otherKey)
	bad := map[string]string{
		"expired": sign(func() *claims {
			c := base()
			c.ExpiresAt = jwt.NewNumericDate(f.now.Add(-time.Hour))
			return c
		}()),
		"not yet valid": sign(func() *claims {
			c := base()
			c.NotBefore = jwt.NewNumericDate(f.now.Add(time.Hour))
			return c
		}()),
		"no expiry": sign(func() *claims {
			c := base()
			c.ExpiresAt = nil
			return c
		}()),
		"no not-before": sign(func() *claims {
			c := base()
			c.NotBefore = nil
			return c
		}()),
		"other audience": sign(func() *claims {
			c := base()
			c.Audience = jwt.ClaimStrings{"other-registry"}
			return c
		}()),
		"other issuer": sign(func() *claims {
			c := base()
			c.Issuer = "someone-else"
			return c
		}()),
		"refresh token": sign(f.a.claims(bob, useRefresh, f.now, f.now.Add(time.Hour))),
		"other key, same kid": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, base())
			tok.Header["kid"] = f.a.signer.kid
			s, _ := tok.SignedString(otherKey)
			return s
		}(),
		"other key": func() string { s, _ := other.sign(base()); return s }(),
		"alg none": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, base())
			tok.Header["kid"] = f.a.signer.kid
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(),
		"HS256 keyed with the public key": func() string {
			der, _ := x509.MarshalPKIXPublicKey(f.a.signer.key.Public())
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, base())
			tok.Header["kid"] = f.a.signer.kid
			s, _ := tok.SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
			return s
		}(),
		"tampered payload": func() string {
			parts := strings.Split(good.Token, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			payload = []byte(strings.Replace(string(payload), `"team/app"`, `"team/adm"`, 1))
			parts[1] = base64.RawURLEncoding.EncodeToString(payload)
			return strings.Join(parts, ".")
		}(),
		"tampered signature": func() string {
			b := []byte(good.Token)
			i := len(b) - 10
			b[i] ^= 1
			return string(b)
		}(),
		"unknown kind": sign(func() *claims {
			c := base()
			c.Graft.Kind = "admin"
			return c
		}()),
		"empty":   "",
		"garbage": "not-a-jwt",
	}
	for name, tok := range bad {
		if c, err := f.bearer(tok); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: %+v, %v; want ErrBadCredentials", name, c, err)
		}
	}

	// within the leeway, an expired token still counts (replicas' clocks differ)
	f.now = f.now.Add(good.Expires.Sub(f.now) + 10*time.Second)
	if _, err := f.bearer(good.Token); err != nil {
		t.Errorf("a token expired 10s ago: %v", err)
	}
	f.now = f.now.Add(time.Minute)
	if _, err := f.bearer(good.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a token expired 70s ago: %v", err)
	}
}

func TestPasswordChangeEndsTokens(t *testing.T) {
	f := newFixture(t, PolicyConfig{})
	bob := f.mustLogin(t, "bob", "bob-password")
	access, _ := f.a.IssueAccess(bob, nil)
	refresh, err := f.a.IssueRefresh(bob)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := f.a.Refresh(context.Background(), refresh); err != nil || id.Name != "bob" {
		t.Fatalf("refresh: %+v, %v", id, err)
	}
	if _, err := f.a.Refresh(context.Background(), access.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("an access token was taken as a refresh token: %v", err)
	}
	if _, err := SetPassword(f.htpasswd, "bob", "new-password", bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	f.a.users.mu.Lock()
	f.a.users.checked = time.Time{}
	f.a.users.mu.Unlock()
	if _, err := f.bearer(access.Token); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("an access token from before a password change: %v", err)
	}
	if _, err := f.a.Refresh(context.Background(), refresh); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a refresh token from before a password change: %v", err)
	}
}

func TestGrant(t *testing.T) {
	f := newFixture(t, teamPolicy)
	bob := f.mustLogin(t, "bob", "bob-password")
	got := f.a.Grant(bob, ParseScopes([]string{
		"repository:team/app:pull,push,delete repository:other:pull registry:catalog:* repository:team/app:delete,pull bogus",
	}))
	var names []string
	for _, s := range got {
		names = append(names, s.String())
	}
	if want := "repository:team/app:pull,push registry:catalog:*"; strings.Join(names, " ") != want {
		t.Errorf("Grant(bob) = %q, want %q", names, want)
	}
	anon := f.a.Grant(Identity{Kind: Anonymous}, ParseScopes([]string{"repository:public/site:pull,push registry:catalog:*"}))
	if len(anon) != 2 || anon[0].String() != "repository:public/site:pull" || anon[1].String() != CatalogScope.String() {
		t.Errorf("Grant(anonymous) = %+v", anon)
	}
	closed := newFixture(t, PolicyConfig{})
	if g := closed.a.Grant(Identity{Kind: Anonymous}, []Scope{CatalogScope}); len(g) != 0 {
		t.Errorf("anonymous callers of a registry without anonymous access got %+v", g)
	}
}

// TestGrantRefusesBadNames: no scope is granted for a name outside the repository
// name grammar, not even to an admin, whose patterns match anything.
func TestGrantRefusesBadNames(t *testing.T) {
	f := newFixture(t, teamPolicy)
	alice := f.mustLogin(t, "alice", "alice-password") // an admin
	for _, name := range []string{"team/../private/z", "team/*", "team//a", "team/a/", "team/a\x00", "team/a%00", "team/a:pull", "Team/a", ""} {
		if got := f.a.Grant(alice, []Scope{RepositoryScope(name, All)}); len(got) != 0 {
			t.Errorf("Grant(%q) = %v, want nothing", name, got)
		}
	}
	if got := f.a.Grant(alice, []Scope{RepositoryScope("team/a", Pull)}); len(got) != 1 {
		t.Errorf("Grant(team/a) = %v", got)
	}
}

func TestHtpasswdFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	if added, err := SetPassword(path, "alice", "one", bcrypt.MinCost); err != nil || !added {
		t.Fatalf("SetPassword: %v, %v", added, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("a new htpasswd file has mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if added, err := SetPassword(path, "alice", "two", bcrypt.MinCost); err != nil || added {
		t.Fatalf("SetPassword again: %v, %v", added, err)
	}
	SetPassword(path, "bob", "three", bcrypt.MinCost)
	users, err := ReadHtpasswd(path)
	if err != nil || len(users) != 2 || bcrypt.CompareHashAndPassword([]byte(users["alice"]), []byte("two")) != nil {
		t.Fatalf("ReadHtpasswd = %v, %v", users, err)
	}
	if err := RemoveUser(path, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveUser(path, "alice"); err == nil {
		t.Error("removing a user twice succeeded")
	}
	if _, err := SetPassword(path, "bad:name", "x", bcrypt.MinCost); err == nil {
		t.Error("a user name with a colon was accepted")
	}
	if _, err := SetPassword(path, "carol", strings.Repeat("x", 73), bcrypt.MinCost); err == nil {
		t.Error("a password longer than bcrypt takes was accepted")
	}

	// weak hash kinds are refused, naming the line and never the hash
	for _, line := range []string{"eve:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "eve:$apr1$abc$def", "eve:plain", "no-colon"} {
		weak := filepath.Join(t.TempDir(), "htpasswd")
		os.WriteFile(weak, []byte("# users\n\n"+line+"\n"), 0o600)
		_, err := ReadHtpasswd(weak)
		if err == nil || !strings.Contains(err.Error(), "line 3") {
			t.Errorf("%q: %v, want an error naming line 3", line, err)
		}
		if _, hash, _ := strings.Cut(line, ":"); err != nil && hash != "" && strings.Contains(err.Error(), hash) {
			t.Errorf("the error shows the hash: %v", err)
		}
	}
}

func TestSigners(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", KeyFile)
	s1, created, err := LoadOrCreateSigner(path)
	if err != nil || !created || s1.Method() != "ES256" {
		t.Fatalf("LoadOrCreateSigner: %v, created %v, %v", s1, created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the generated key has mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	s2, created, err := LoadOrCreateSigner(path)
	if err != nil || created || s2.kid != s1.kid {
		t.Errorf("a second start made another key: %v, created %v", err, created)
	}

	// openssl ecparam -genkey writes EC PARAMETERS before the key
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	pemFile := filepath.Join(dir, "ec.pem")
	os.WriteFile(pemFile, append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 5, 43, 129, 4, 0, 34}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...), 0o600)
	if s, err := LoadSigner(pemFile); err != nil || s.Method() != "ES384" {
		t.Errorf("LoadSigner(SEC 1 P-384): %v, %v", s, err)
	}

	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewSigner(weak); err == nil {
		t.Error("a 1024-bit RSA key was accepted")
	}
	os.WriteFile(pemFile, []byte("not a key"), 0o600)
	if _, err := LoadSigner(pemFile); err == nil {
		t.Error("a file without a key was accepted")
	}
}

// TestLowS: the signature of every token issued has the low-S form, and the other
// form of the same signature, (r, n-s), valid as ECDSA goes, is refused: one token
// has one spelling.
func TestLowS(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		key, _ := ecdsa.GenerateKey(curve, rand.Reader)
		signer, err := NewSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		a := &Authenticator{signer: signer, service: "graft", ttl: time.Minute, now: func() time.Time { return now }}
		n := curve.Params().N
		half := new(big.Int).Rsh(n, 1)
		// a signature's s is above n/2 half the time: 64 tokens all below it by
		// chance would be a 1 in 2^64 event
		var tok string
		for range 64 {
			iss, err := a.IssueAccess(Identity{Kind: Anonymous}, []Scope{RepositoryScope("a", Pull)})
			if err != nil {
				t.Fatal(err)
			}
			tok = iss.Token
			sig, _ := base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
			if s := new(big.Int).SetBytes(sig[len(sig)/2:]); s.Cmp(half) > 0 {
				t.Fatalf("%s: issued a token with a high s", curve.Params().Name)
			}
		}
		if _, err := signer.verify(tok, "graft", now); err != nil {
			t.Fatalf("%s: a token just issued: %v", curve.Params().Name, err)
		}

		// (r, n-s): a valid ECDSA signature of the same content
		dot := strings.LastIndexByte(tok, '.')
		sig, _ := base64.RawURLEncoding.DecodeString(tok[dot+1:])
		h := len(sig) / 2
		r, s := new(big.Int).SetBytes(sig[:h]), new(big.Int).SetBytes(sig[h:])
		high := new(big.Int).Sub(n, s)
		digest := signer.method.(lowS).Hash.New()
		digest.Write([]byte(tok[:dot]))
		if !ecdsa.Verify(&key.PublicKey, digest.Sum(nil), r, high) {
			t.Fatalf("%s: (r, n-s) is no valid signature: the test proves nothing", curve.Params().Name)
		}
		malleated := append(slices.Clone(sig[:h]), high.FillBytes(make([]byte, h))...)
		forged := tok[:dot+1] + base64.RawURLEncoding.EncodeToString(malleated)
		if _, err := signer.verify(forged, "graft", now); err == nil {
			t.Errorf("%s: a token with s replaced by n-s was accepted", curve.Params().Name)
		}
	}
}

func TestCallerRights(t *testing.T) {
	f := newFixture(t, teamPolicy)
	bob := f.mustLogin(t, "bob", "bob-password")
	iss, _ := f.a.IssueAccess(bob, f.a.Grant(bob, []Scope{RepositoryScope("team/app", Pull)}))
	c, err := f.bearer(iss.Token)
	if err != nil {
		t.Fatal(err)
	}
	// the token has pull; bob could push with a token that asked for it
	have, could := f.a.Allowed(c, "team/app")
	if have != Pull || could != Pull|Push {
		t.Errorf("Allowed = %v, %v; want pull, pull,push", have, could)
	}
	if f.a.Catalog(c) {
		t.Error("a token without the catalog scope may list the catalog")
	}
	if !f.a.MayList(c, "team/other") || f.a.MayList(c, "elsewhere") {
		t.Error("the catalog of a token shows what its identity may pull")
	}
	if f.a.Everywhere(&Caller{Identity: bob}) {
		t.Error("bob may pull everywhere")
	}
	r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	if c, err := f.a.Authenticate(r); err != nil || c.Authenticated() {
		t.Errorf("a request without credentials: %+v, %v", c, err)
	}
	r.Header.Set("Authorization", "Digest x")
	if _, err := f.a.Authenticate(r); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("an unknown scheme: %v", err)
	}
	r.SetBasicAuth("bob", "bob-password")
	if c, err := f.a.Authenticate(r); err != nil || c.Bearer || c.Identity.Name != "bob" {
		t.Errorf("Basic credentials: %+v, %v", c, err)
	}
}

// TestRealm: the realm follows the host and scheme a request came to; forwarded
// headers count only from a trusted proxy; a configured realm is the realm.
func TestRealm(t *testing.T) {
	f := newFixture(t, PolicyConfig{})
	r := httptest.NewRequest(http.MethodGet, "http://registry.example:5000/v2/", nil)
	r.RemoteAddr = "10.0.0.2:40000"
	if got := f.a.Realm(r); got != "http://registry.example:5000/auth/token" {
		t.Errorf("Realm = %q", got)
	}
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Host", "evil.example")
	if got := f.a.Realm(r); got != "http://registry.example:5000/auth/token" {
		t.Errorf("Realm with forwarded headers and no trusted proxy = %q", got)
	}

	p := newFixture(t, PolicyConfig{}, func(o *Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")} })
	if got := p.a.Realm(r); got != "https://evil.example/auth/token" {
		t.Errorf("Realm behind a trusted proxy = %q", got)
	}
	// the proxy's own values are the last: a client's go first
	r.Header.Set("X-Forwarded-Proto", "javascript, https")
	r.Header.Set("X-Forwarded-Host", "client.example, registry.example")
	if got := p.a.Realm(r); got != "https://registry.example/auth/token" {
		t.Errorf("Realm behind a trusted proxy that appends = %q", got)
	}
	r.Header.Set("X-Forwarded-Proto", "javascript")
	r.Header.Set("X-Forwarded-Host", `evil.example/"x`)
	if got := p.a.Realm(r); got != "http://registry.example:5000/auth/token" {
		t.Errorf("Realm with a bogus X-Forwarded-Proto and -Host = %q", got)
	}
	r.RemoteAddr = "10.0.1.2:40000"
	r.Header.Set("X-Forwarded-Proto", "https")
	if got := p.a.Realm(r); got != "http://registry.example:5000/auth/token" {
		t.Errorf("Realm from a peer outside the trusted proxies = %q", got)
	}

	g := newFixture(t, PolicyConfig{}, func(o *Options) { o.Realm = "https://auth.example/token" })
	if got := g.a.Realm(r); got != "https://auth.example/token" {
		t.Errorf("configured Realm = %q", got)
	}
}

// TestClientAddr: the client of a request is its peer, unless the peer is a trusted
// proxy: then the last address of X-Forwarded-For that is no trusted proxy.
func TestClientAddr(t *testing.T) {
	f := newFixture(t, PolicyConfig{}, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	})
	for _, c := range []struct{ peer, xff, want string }{
		{"192.0.2.1:1", "", "192.0.2.1:1"},
		{"192.0.2.1:1", "198.51.100.7", "192.0.2.1:1"}, // not from a proxy
		{"10.0.0.1:1", "", "10.0.0.1:1"},
		{"10.0.0.1:1", "198.51.100.7", "198.51.100.7"},
		{"10.0.0.1:1", "203.0.113.9, 198.51.100.7", "198.51.100.7"}, // the client's own say goes first
		{"10.0.0.1:1", "198.51.100.7, 10.0.0.3", "198.51.100.7"},    // two proxies
		{"[fd00::1]:1", "198.51.100.7:5555", "198.51.100.7"},        // with a port
		{"10.0.0.1:1", "10.0.0.5, 10.0.0.3", "10.0.0.5"},            // all proxies
		{"10.0.0.1:1", "198.51.100.7, garbage", "10.0.0.1:1"},       // no proxy wrote that
		{"10.0.0.1:1", "garbage, 198.51.100.7, 10.0.0.3", "198.51.100.7"},
		{"[::ffff:10.0.0.1]:1", "198.51.100.7", "198.51.100.7"}, // a mapped peer
	} {
		r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := f.a.ClientAddr(r); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: client %q, want %q", c.peer, c.xff, got, c.want)
		}
	}
}

func TestCheckExposure(t *testing.T) {
	log := slogDiscard()
	for _, addr := range []string{"127.0.0.1:5000", "localhost:0", "[::1]:5000", "127.0.0.2:80"} {
		if err := CheckExposure(addr, false, false, false, log); err != nil {
			t.Errorf("%s without auth: %v", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:5000", ":5000", "[::]:5000", "192.0.2.1:5000"} {
		err := CheckExposure(addr, false, false, false, log)
		if err == nil || !strings.Contains(err.Error(), "--insecure-anonymous") {
			t.Errorf("%s without auth: %v, want a refusal that says how to go on", addr, err)
		}
		if err := CheckExposure(addr, false, false, true, log); err != nil {
			t.Errorf("%s with --insecure-anonymous: %v", addr, err)
		}
		if err := CheckExposure(addr, true, false, false, log); err != nil {
			t.Errorf("%s with auth: %v", addr, err)
		}
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

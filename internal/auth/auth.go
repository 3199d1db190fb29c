// Package auth decides who a registry's callers are and what they may do: users with
// bcrypt passwords (an htpasswd file and the configuration), repository-scoped tokens
// kept in the metadata store, client certificates, and the JWTs of the Docker/OCI token
// flow that graft issues to all of them; and the policies that say, per repository
// pattern, who may pull, push and delete.
//
// It knows nothing of HTTP routes: the server asks it who a request comes from
// (Authenticate) and what that caller may do with a repository (Allowed).
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// TokenPath is where graft serve answers token requests, on the registry's listener.
const TokenPath = "/auth/token"

// Defaults of Options.
const (
	DefaultService    = "graft"
	DefaultTTL        = 5 * time.Minute
	DefaultRefreshTTL = 30 * 24 * time.Hour
	// DefaultLoginWindow is the window of Options.LoginFailures.
	DefaultLoginWindow = time.Minute
)

// Options configure an Authenticator.
type Options struct {
	// Users are bcrypt password hashes by user name, besides those of Htpasswd.
	Users map[string]string
	// Htpasswd is an htpasswd file of bcrypt hashes, read again when it changes.
	Htpasswd string
	Policy   PolicyConfig
	// Tokens is where repository-scoped tokens are kept; nil means there are none.
	Tokens metastore.TokenReader
	// Signer signs and checks the tokens graft issues.
	Signer *Signer
	// Service is the audience and issuer of the tokens: replicas that accept each
	// other's tokens share it (and the signer's key).
	Service string
	// Realm is the token endpoint's URL in challenges; empty means TokenPath on the
	// host (and scheme) each request came to.
	Realm string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For, -Proto and -Host
	// headers are believed; none by default.
	TrustedProxies []netip.Prefix
	// TTL is how long an access token works; RefreshTTL a refresh token.
	TTL, RefreshTTL time.Duration
	// LoginFailures is how many failed logins a source may make per LoginWindow
	// before it is refused for the rest of that window; 0 means no limit.
	LoginFailures int
	// LoginWindow is the window of LoginFailures; 0 is DefaultLoginWindow.
	LoginWindow time.Duration
	// ClientCerts makes the common name of a verified client certificate a user name.
	ClientCerts bool
	Logger      *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Authenticator authenticates requests and authorizes what they do.
type Authenticator struct {
	users      *userDB
	policy     *Policy
	tokens     metastore.TokenReader
	signer     *Signer
	service    string
	realm      string
	ttl        time.Duration
	refreshTTL time.Duration
	limit      *limiter
	certs      bool
	log        *slog.Logger
	now        func() time.Time
	verified   verifiedCache
	proxies    Proxies
	failures   *prometheus.CounterVec
}

// New returns an authenticator.
func New(o Options) (*Authenticator, error) {
	if o.Signer == nil {
		return nil, errors.New("auth: no token signing key")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Service == "" {
		o.Service = DefaultService
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.RefreshTTL <= 0 {
		o.RefreshTTL = DefaultRefreshTTL
	}
	if o.LoginWindow <= 0 {
		o.LoginWindow = DefaultLoginWindow
	}
	for name, h := range o.Users {
		if !ValidName(name) {
			return nil, fmt.Errorf("auth.users: %q is not a valid user name", clip(name))
		}
		if !isBcrypt(h) {
			return nil, fmt.Errorf("auth.users: the password of %s is not a bcrypt hash (make one with `graft user hash`)", name)
		}
	}
	users, err := newUserDB(o.Users, o.Htpasswd, o.Logger)
	if err != nil {
		return nil, err
	}
	policy, err := NewPolicy(o.Policy)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &Authenticator{
		users: users, policy: policy, tokens: o.Tokens, signer: o.Signer, service: o.Service,
		realm: o.Realm, ttl: o.TTL, refreshTTL: o.RefreshTTL, limit: newLimiter(o.LoginFailures, o.LoginWindow),
		certs: o.ClientCerts, log: o.Logger, now: o.Now,
		verified: verifiedCache{key: key, m: map[string]time.Time{}}, proxies: o.TrustedProxies,
		failures: newFailures(),
	}, nil
}

// Service is the service name of the tokens the authenticator issues and accepts.
func (a *Authenticator) Service() string { return a.service }

// Policy is the access policy.
func (a *Authenticator) Policy() *Policy { return a.policy }

// ErrBadCredentials is what a wrong password, an unknown user, or a token that is
// expired, tampered with, revoked or for another service all are, alike.
var ErrBadCredentials = errors.New("auth: invalid credentials")

// RateLimitError refuses a source that failed to log in too often, or (Busy) whose
// logins under way held its whole budget for too long.
type RateLimitError struct {
	RetryAfter time.Duration
	Busy       bool
}

func (e *RateLimitError) Error() string {
	if e.Busy {
		return "too many logins under way from this address; try again in a moment"
	}
	return fmt.Sprintf("too many failed logins from this address; try again in %s", e.RetryAfter.Round(time.Second))
}

// Caller is who sent a request, and what the credentials it came with allow.
type Caller struct {
	Identity Identity
	// Bearer is set when the caller came with an access token: it may do no more than
	// the token grants, even where its identity could do more.
	Bearer  bool
	granted map[string]Actions
	catalog bool
}

// Authenticated reports whether the caller proved who it is, or holds a token.
func (c *Caller) Authenticated() bool { return c.Bearer || c.Identity.Kind != Anonymous }

// Authenticate finds out who sent r: the Authorization header's bearer token or Basic
// credentials, else a verified client certificate, else nobody (Anonymous). Wrong
// credentials are an error, never a fallback to anonymous access.
func (a *Authenticator) Authenticate(r *http.Request) (*Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if id, ok := a.certIdentity(r); ok {
			return &Caller{Identity: id}, nil
		}
		return &Caller{Identity: Identity{Kind: Anonymous}}, nil
	}
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return a.bearer(r.Context(), strings.TrimSpace(cred))
	case strings.EqualFold(scheme, "Basic"):
		name, password, ok := r.BasicAuth()
		if !ok {
			return nil, ErrBadCredentials
		}
		id, err := a.Login(r.Context(), name, password, a.ClientAddr(r))
		if err != nil {
			return nil, err
		}
		return &Caller{Identity: id}, nil
	}
	return nil, ErrBadCredentials
}

func (a *Authenticator) certIdentity(r *http.Request) (Identity, bool) {
	if !a.certs || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return Identity{}, false
	}
	cn := r.TLS.PeerCertificates[0].Subject.CommonName
	if !ValidName(cn) {
		return Identity{}, false
	}
	return Identity{Kind: User, Name: cn}, true
}

// CertIdentity is the user a request's verified client certificate names, if any.
func (a *Authenticator) CertIdentity(r *http.Request) (Identity, bool) { return a.certIdentity(r) }

// Login checks a user name and password: a user's bcrypt password, or the secret of
// the repository-scoped token of that name. remoteAddr is where the attempt comes
// from; a source that failed too often is refused before anything is checked, and a
// check takes its place in the source's failure budget before it starts, so that
// parallel guesses get no more checks than sequential ones. A login that finds every
// place held by checks under way waits for one to end, up to maxQueue.
func (a *Authenticator) Login(ctx context.Context, name, password, remoteAddr string) (Identity, error) {
	src := Source(remoteAddr)
	var attempt *attempt
	var timeout <-chan time.Time
	for attempt == nil {
		now := a.now()
		if blocked, wait := a.limit.blocked(src, now); blocked {
			a.failed(FailureRateLimited)
			return Identity{}, &RateLimitError{RetryAfter: wait}
		}
		// a password proven a moment ago (by a login this one waited for, maybe) is
		// no guess: it needs no place in the budget
		if id, ok := a.remembered(name, password, now); ok {
			return id, nil
		}
		var wait time.Duration
		var changed <-chan struct{}
		attempt, wait, changed = a.limit.reserve(src, now)
		switch {
		case attempt != nil:
			continue
		case changed == nil:
			a.failed(FailureRateLimited)
			return Identity{}, &RateLimitError{RetryAfter: wait}
		}
		if timeout == nil {
			t := time.NewTimer(maxQueue)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			a.failed(FailureRateLimited)
			return Identity{}, &RateLimitError{RetryAfter: time.Second, Busy: true}
		case <-ctx.Done():
			return Identity{}, ctx.Err()
		}
	}
	id, known, err := a.check(ctx, name, password, a.now())
	if err != nil {
		attempt.release()
		return Identity{}, err
	}
	if id.Kind == Anonymous {
		attempt.fail()
		if known { // a name that is no user's may be a mistyped password: never logged
			a.failed(FailureWrongPassword)
			a.log.Warn("login failed", "user", name, "source", src)
		} else {
			a.failed(FailureUnknownUser)
			a.log.Warn("login failed: unknown user", "source", src)
		}
		return Identity{}, ErrBadCredentials
	}
	attempt.release()
	return id, nil
}

// check returns the identity name and password prove, or Anonymous; known says
// whether name is a user or token at all. Every failure costs one bcrypt
// comparison, as a wrong password of a real user does, whether name is a user, a
// repository token or nothing: the time of an answer tells nothing of which names
// exist.
func (a *Authenticator) check(ctx context.Context, name, password string, now time.Time) (id Identity, known bool, err error) {
	hash, isUser := a.users.hash(name)
	if isUser && a.passwordMatches(name, password, hash) {
		return userIdentity(name, hash), true, nil
	}
	known = isUser
	// a token's name is known whatever the password: a wrong secret is not an unknown user
	if a.tokens != nil && ValidName(name) {
		tok, err := a.tokens.Token(ctx, name)
		switch {
		case errors.Is(err, metastore.ErrNotFound):
		case err != nil:
			return Identity{}, false, fmt.Errorf("auth: reading token %s: %w", name, err)
		default:
			known = true
			// a secret is checked by its SHA-256: fast, so a wrong one pays the
			// bcrypt below
			if strings.HasPrefix(password, secretPrefix) && secretMatches(tok.Hash, password) {
				if id, ok := tokenIdentity(tok, now); ok {
					return id, true, nil
				}
			}
		}
	}
	if !isUser {
		bcrypt.CompareHashAndPassword(dummyHash(a.users.cost()), []byte(password))
	}
	return Identity{}, known, nil
}

// dummyHashes are bcrypt hashes of no password, by cost, made on first use: client
// commands of the same binary never need them.
var dummyHashes sync.Map

// dummyHash is a hash of the given cost that no password matches.
func dummyHash(cost int) []byte {
	if h, ok := dummyHashes.Load(cost); ok {
		return h.([]byte)
	}
	h, err := bcrypt.GenerateFromPassword([]byte("graft: no such user"), cost)
	if err != nil {
		h, _ = bcrypt.GenerateFromPassword([]byte("graft: no such user"), DefaultCost)
	}
	dummyHashes.Store(cost, h)
	return h
}

func userIdentity(name, hash string) Identity {
	return Identity{Kind: User, Name: name, version: fingerprint(hash)}
}

// remembered returns the user that name and password proved within verifiedTTL.
func (a *Authenticator) remembered(name, password string, now time.Time) (Identity, bool) {
	hash, ok := a.users.hash(name)
	if !ok || !a.verified.ok(a.verified.sum(name, password, hash), now) {
		return Identity{}, false
	}
	return userIdentity(name, hash), true
}

// passwordMatches checks password against a bcrypt hash, remembering successes for a
// while: clients that send Basic credentials with every request would otherwise cost
// a bcrypt (tens of milliseconds) each. The memory is keyed by the hash too, so a
// password change takes effect at once.
func (a *Authenticator) passwordMatches(name, password, hash string) bool {
	key := a.verified.sum(name, password, hash)
	now := a.now()
	if a.verified.ok(key, now) {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return false
	}
	a.verified.add(key, now.Add(verifiedTTL))
	return true
}

const (
	verifiedTTL = 5 * time.Minute
	maxVerified = 10_000
)

// verifiedCache holds HMACs (under a key of this process) of credentials that passed
// a bcrypt check, never the credentials.
type verifiedCache struct {
	key []byte
	mu  sync.Mutex
	m   map[string]time.Time
}

func (c *verifiedCache) sum(name, password, hash string) string {
	h := hmac.New(sha256.New, c.key)
	for _, s := range []string{name, password, hash} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return string(h.Sum(nil))
}

func (c *verifiedCache) ok(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[key]
	return ok && now.Before(exp)
}

func (c *verifiedCache) add(key string, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxVerified {
		c.m = map[string]time.Time{}
	}
	c.m[key] = exp
}

// bearer authenticates an access token.
func (a *Authenticator) bearer(ctx context.Context, token string) (*Caller, error) {
	c, err := a.signer.verify(token, a.service, a.now())
	if err != nil || c.Graft.Use != useAccess {
		a.failed(FailureInvalidToken)
		return nil, ErrBadCredentials
	}
	id, err := a.resolve(ctx, c)
	if errors.Is(err, ErrBadCredentials) {
		a.failed(FailureInvalidToken)
	}
	if err != nil {
		return nil, err
	}
	caller := &Caller{Identity: id, Bearer: true, granted: map[string]Actions{}}
	for _, ac := range c.Access {
		switch {
		case ac.Type == TypeRepository:
			for _, n := range ac.Actions {
				if b, ok := actionOf(n); ok {
					caller.granted[ac.Name] |= b
				}
			}
		case ac.Type == TypeRegistry && ac.Name == CatalogName:
			caller.catalog = true
		}
	}
	return caller, nil
}

// resolve returns the identity a token was issued to, as it stands now: a token
// issued before its user's password changed, its user was removed, or its
// repository-scoped token was revoked, is refused.
func (a *Authenticator) resolve(ctx context.Context, c *claims) (Identity, error) {
	switch c.Graft.Kind {
	case Anonymous.String():
		return Identity{Kind: Anonymous}, nil
	case User.String():
		if c.Graft.Version == "" { // a client certificate's user: no secret to change
			if !a.certs || !ValidName(c.Subject) {
				return Identity{}, ErrBadCredentials
			}
			return Identity{Kind: User, Name: c.Subject}, nil
		}
		hash, ok := a.users.hash(c.Subject)
		if !ok || fingerprint(hash) != c.Graft.Version {
			return Identity{}, ErrBadCredentials
		}
		return userIdentity(c.Subject, hash), nil
	case Token.String():
		if a.tokens == nil || !ValidName(c.Subject) {
			return Identity{}, ErrBadCredentials
		}
		tok, err := a.tokens.Token(ctx, c.Subject)
		if errors.Is(err, metastore.ErrNotFound) {
			return Identity{}, ErrBadCredentials
		}
		if err != nil {
			return Identity{}, fmt.Errorf("auth: reading token %s: %w", c.Subject, err)
		}
		id, ok := tokenIdentity(tok, a.now())
		if !ok || id.version != c.Graft.Version {
			return Identity{}, ErrBadCredentials
		}
		return id, nil
	}
	return Identity{}, ErrBadCredentials
}

// Allowed returns what c may do with repository repo now (have), and what its
// identity could do there with a token that asked for it (could). A bearer whose
// token lacks what its identity could do is sent for a new token; one whose
// identity cannot is refused.
func (a *Authenticator) Allowed(c *Caller, repo string) (have, could Actions) {
	could = a.policy.Allowed(c.Identity, repo)
	if !c.Bearer {
		return could, could
	}
	return could & c.granted[repo], could
}

// MayList reports whether repository repo is in c's catalog: whether c's identity may
// pull it. The catalog scope lets a token list what its identity may see.
func (a *Authenticator) MayList(c *Caller, repo string) bool {
	return a.policy.Allowed(c.Identity, repo).Has(Pull)
}

// Catalog reports whether c may ask for the catalog.
func (a *Authenticator) Catalog(c *Caller) bool {
	if c.Bearer {
		return c.catalog
	}
	return c.Identity.Kind != Anonymous
}

// Everywhere reports whether c may pull from any repository, as a blob mount that
// names no source repository needs. Bearer tokens never do: they name repositories.
func (a *Authenticator) Everywhere(c *Caller) bool {
	return !c.Bearer && a.policy.Everywhere(c.Identity)
}

// maxScopes bounds the scopes one token carries.
const maxScopes = 64

// Grant returns those of the requested scopes that id may have, cut down to what it
// may do. A scope id may do nothing with is left out, as distribution does; the
// registry then refuses the request the token is for. So is a scope whose name is no
// repository name: a pattern that matches it ("team/**") must not lend a token
// access to "team/../private/z" or "team/*", which other software might read
// otherwise.
func (a *Authenticator) Grant(id Identity, requested []Scope) []Scope {
	var out []Scope
	index := map[string]int{}
	catalog := false
	for _, s := range requested {
		switch s.Type {
		case TypeRepository:
			if !reference.ValidName(s.Name) {
				continue
			}
			var want Actions
			for _, n := range s.Actions {
				if b, ok := actionOf(strings.ToLower(n)); ok {
					want |= b
				}
			}
			got := want & a.policy.Allowed(id, s.Name)
			if got == 0 {
				continue
			}
			if i, ok := index[s.Name]; ok {
				acts, _ := ParseActions(out[i].Actions)
				out[i].Actions = (acts | got).Names()
				continue
			}
			if len(out) >= maxScopes {
				continue
			}
			index[s.Name] = len(out)
			out = append(out, RepositoryScope(s.Name, got))
		case TypeRegistry:
			if s.Name == CatalogName && !catalog && (id.Kind != Anonymous || a.policy.AnonymousAccess()) {
				catalog = true
				out = append(out, CatalogScope)
			}
		}
	}
	return out
}

// Issued is an access token and when it stops working.
type Issued struct {
	Token    string
	IssuedAt time.Time
	Expires  time.Time
}

// IssueAccess returns an access token of id for scopes. A repository-scoped token's
// access tokens end no later than it does.
func (a *Authenticator) IssueAccess(id Identity, scopes []Scope) (*Issued, error) {
	now := a.now()
	exp := now.Add(a.ttl)
	if id.Kind == Token && !id.expires.IsZero() && id.expires.Before(exp) {
		exp = id.expires
	}
	c := a.claims(id, useAccess, now, exp)
	for _, s := range scopes {
		c.Access = append(c.Access, accessClaim{Type: s.Type, Name: s.Name, Actions: s.Actions})
	}
	tok, err := a.signer.sign(c)
	if err != nil {
		return nil, err
	}
	return &Issued{Token: tok, IssuedAt: now, Expires: exp}, nil
}

// IssueRefresh returns a refresh token of id: docker's identity token, which it keeps
// instead of the password and trades for access tokens.
func (a *Authenticator) IssueRefresh(id Identity) (string, error) {
	if id.Kind == Anonymous {
		return "", errors.New("auth: no refresh token for anonymous callers")
	}
	now := a.now()
	exp := now.Add(a.refreshTTL)
	if id.Kind == Token && !id.expires.IsZero() && id.expires.Before(exp) {
		exp = id.expires
	}
	return a.signer.sign(a.claims(id, useRefresh, now, exp))
}

func (a *Authenticator) claims(id Identity, use string, now, exp time.Time) *claims {
	jti := make([]byte, 12)
	rand.Read(jti)
	return &claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.service,
			Subject:   id.Name,
			Audience:  jwt.ClaimStrings{a.service},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
		Graft: graftClaim{Kind: id.Kind.String(), Use: use, Version: id.version},
	}
}

// Refresh returns the identity a refresh token was issued to, if it still stands.
func (a *Authenticator) Refresh(ctx context.Context, token string) (Identity, error) {
	c, err := a.signer.verify(token, a.service, a.now())
	if err != nil || c.Graft.Use != useRefresh {
		return Identity{}, ErrBadCredentials
	}
	return a.resolve(ctx, c)
}

// Realm is the URL of the token endpoint for a request: the configured realm, else
// TokenPath on the host the request came to, by the scheme it came with; from a
// trusted proxy, the host and scheme its X-Forwarded-Host and X-Forwarded-Proto say.
// A pinned realm is what production wants: a client's Host header then decides
// nothing.
func (a *Authenticator) Realm(r *http.Request) string {
	if a.realm != "" {
		return a.realm
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if a.proxies.viaProxy(r) {
		if p := forwarded(r, "X-Forwarded-Proto"); p == "https" || p == "http" {
			scheme = p
		}
		if h := forwarded(r, "X-Forwarded-Host"); validHost(h) {
			host = h
		}
	}
	return scheme + "://" + host + TokenPath
}

// Challenge is the WWW-Authenticate value that sends the client of r for a token
// with scopes; errCode as BearerChallenge takes it.
func (a *Authenticator) Challenge(r *http.Request, scopes []Scope, errCode string) string {
	return BearerChallenge(a.Realm(r), a.service, scopes, errCode)
}

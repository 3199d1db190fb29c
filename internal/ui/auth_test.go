package ui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/metastore"
)

// authFixture is a registry with access control: admin may do everything, dev may
// pull team/**, anyone may pull public/*, and secret/app is nobody's but admin's.
type authFixture struct {
	*fixture
	authn *auth.Authenticator
}

var testPasswords = map[string]string{"admin": "admin-password", "dev": "dev-password"}

func newAuthFixture(t *testing.T) *authFixture {
	af := &authFixture{}
	af.fixture = newFixture(t, func(meta metastore.Store) *auth.Authenticator {
		users := map[string]string{}
		for u, p := range testPasswords {
			h, err := auth.HashPassword(p, bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			users[u] = h
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		signer, err := auth.NewSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		a, err := auth.New(auth.Options{Users: users, Tokens: meta, Signer: signer, LoginFailures: 1000,
			Policy: auth.PolicyConfig{Admins: []string{"admin"}, Rules: []auth.Rule{
				{Repositories: []string{"team/**"}, Pull: []string{"dev"}},
				{Repositories: []string{"public/*"}, AnonymousPull: true},
			}}})
		if err != nil {
			t.Fatal(err)
		}
		af.authn = a
		return a
	})
	for _, repo := range []string{"team/app", "public/site", "secret/app"} {
		af.image(push{repo: repo, tag: "v1", config: `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`, layers: []string{"layer of " + repo}})
	}
	return af
}

// login logs b in and returns the answer.
func (b *browser) login(user, password string) answer {
	b.t.Helper()
	return b.post(Prefix+"_login", url.Values{"user": {user}, "password": {password}, "next": {"/ui/team/app"}})
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.f.srv.URL + Prefix)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func listed(page string) []string {
	var out []string
	for _, r := range []string{"team/app", "public/site", "secret/app"} {
		if strings.Contains(page, `href="/ui/`+r+`"`) {
			out = append(out, r)
		}
	}
	return out
}

// TestAuth: what a viewer sees and may do follows the policies, before and after
// logging in with a password or a repository token, and after logging out.
func TestAuth(t *testing.T) {
	f := newAuthFixture(t)
	b := f.browser()

	// nobody logged in: what anyone may pull, and a login for the rest
	if got := listed(b.page(Prefix)); strings.Join(got, " ") != "public/site" {
		t.Errorf("anonymous list: %q", got)
	}
	if page := b.page(Prefix + "public/site:v1"); strings.Contains(page, "Delete…") || strings.Contains(page, `value="lock"`) {
		t.Errorf("an anonymous viewer is offered actions:\n%s", page)
	}
	a := b.get(Prefix + "team/app")
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/_login?next=%2Fui%2Fteam%2Fapp" {
		t.Errorf("anonymous team/app: %d to %q", a.status, a.header.Get("Location"))
	}
	if a := b.post(Prefix+"public/site", url.Values{"action": {"lock"}}); a.status != http.StatusForbidden {
		t.Errorf("an anonymous lock: %d", a.status)
	}
	if a := b.do(http.MethodPost, Prefix+"_login", url.Values{"user": {"dev"}, "password": {"dev-password"}}); a.status != http.StatusForbidden {
		t.Errorf("a login without the CSRF token: %d", a.status)
	}

	// a wrong password
	a = b.login("dev", "wrong")
	if a.status != http.StatusUnauthorized || !strings.Contains(a.body, "Wrong name or password.") || b.cookie(sessionCookie) != nil {
		t.Errorf("a wrong password: %d, session %v\n%s", a.status, b.cookie(sessionCookie), a.body)
	}

	// dev: team/app and public/site, nothing to change
	a = b.login("dev", "dev-password")
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/team/app" {
		t.Fatalf("login: %d to %q\n%s", a.status, a.header.Get("Location"), a.body)
	}
	set := a.header.Values("Set-Cookie")
	var session string
	for _, c := range set {
		if strings.HasPrefix(c, sessionCookie+"=") {
			session = c
		}
	}
	for _, attr := range []string{"Path=/ui/", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(session, attr) {
			t.Errorf("the session cookie %q has no %s", session, attr)
		}
	}
	if strings.Contains(session, "Secure") {
		t.Errorf("a session cookie over plain HTTP is Secure: %q", session)
	}
	if got := listed(b.page(Prefix)); strings.Join(got, " ") != "team/app public/site" && strings.Join(got, " ") != "public/site team/app" {
		t.Errorf("dev's list: %q", got)
	}
	if page := b.page(Prefix + "team/app:v1"); strings.Contains(page, "Delete…") || !strings.Contains(page, ">dev<") {
		t.Errorf("dev's view of team/app:v1:\n%s", page)
	}
	if a := b.get(Prefix + "secret/app"); a.status != http.StatusNotFound {
		t.Errorf("dev opens secret/app: %d", a.status)
	}
	if a := b.get(Prefix + "secret/app:v1"); a.status != http.StatusNotFound {
		t.Errorf("dev opens secret/app:v1: %d", a.status)
	}
	info, _ := f.reg.ManifestInfo(f.ctx, "team/app", "v1")
	if a := b.post(Prefix+"team/app@"+info.Digest.String(), url.Values{"action": {"delete"}}); a.status != http.StatusForbidden || !f.exists("team/app", info.Digest) {
		t.Errorf("dev's delete in team/app: %d", a.status)
	}
	// the session is the web view's alone: the API does not take it
	sc := b.cookie(sessionCookie)
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/v2/team/app/tags/list", nil)
	req.Header.Set("Authorization", "Bearer "+sc.Value)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API with the session as a bearer token: %v %v", resp.StatusCode, err)
	}

	// logged out: anonymous again
	if a := b.post(Prefix+"_logout", nil); a.status != http.StatusSeeOther {
		t.Errorf("logout: %d", a.status)
	}
	if b.cookie(sessionCookie) != nil {
		t.Error("the session cookie outlived the logout")
	}
	if got := listed(b.page(Prefix)); strings.Join(got, " ") != "public/site" {
		t.Errorf("after logout: %q", got)
	}
	// a session cookie kept from before the logout still names dev until it expires,
	// as a stateless token does; one that is tampered with names nobody
	tampered := &http.Cookie{Name: sessionCookie, Value: sc.Value[:len(sc.Value)-2] + "xx", Path: Prefix}
	u, _ := url.Parse(f.srv.URL + Prefix)
	b.c.Jar.SetCookies(u, []*http.Cookie{tampered})
	if got := listed(b.page(Prefix)); strings.Join(got, " ") != "public/site" {
		t.Errorf("with a tampered session: %q", got)
	}

	// admin: everything, and the actions
	b = f.browser()
	b.login("admin", "admin-password")
	if got := listed(b.page(Prefix)); len(got) != 3 {
		t.Errorf("admin's list: %q", got)
	}
	if page := b.page(Prefix + "secret/app:v1"); !strings.Contains(page, "Delete…") {
		t.Errorf("admin is offered no delete:\n%s", page)
	}

	// a repository token logs in with its name and secret, and sees its repositories
	secret, _, err := auth.CreateToken(context.Background(), f.meta, auth.TokenSpec{Name: "ci", Repositories: []string{"team/*"},
		Actions: []string{"pull"}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b = f.browser()
	if a := b.login("ci", secret); a.status != http.StatusSeeOther {
		t.Fatalf("token login: %d\n%s", a.status, a.body)
	}
	if got := listed(b.page(Prefix)); strings.Join(got, " ") != "team/app" {
		t.Errorf("the token's list: %q", got)
	}
	if err := auth.RevokeToken(context.Background(), f.meta, "ci"); err != nil {
		t.Fatal(err)
	}
	if got := listed(b.page(Prefix)); strings.Join(got, " ") != "public/site" {
		t.Errorf("after the token's revocation: %q", got)
	}
}

// TestSecureCookie: behind TLS (here a proxy that says so), the cookies are Secure.
func TestSecureCookie(t *testing.T) {
	f := newAuthFixture(t)
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+Prefix, nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Header.Values("Set-Cookie") {
		if !strings.Contains(c, "Secure") || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") {
			t.Errorf("a cookie under TLS: %q", c)
		}
	}
	if len(resp.Header.Values("Set-Cookie")) == 0 {
		t.Error("no cookie set")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/team/app":              "/ui/team/app",
		"/ui/team/app?tab=untagged": "/ui/team/app?tab=untagged",
		"https://evil.example/ui/":  "/ui/",
		"//evil.example/ui/":        "/ui/",
		"/v2/team/app/manifests/v1": "/ui/",
		"/ui/\\evil":                "/ui/",
		"":                          "/ui/",
		"javascript:alert(1)":       "/ui/",
		"/ui/x\r\nSet-Cookie: a=b":  "/ui/",
		"/ui/../v2/_catalog":        "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/blobstore/fs"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
	"github.com/graft-registry/graft/internal/registry"
)

// The access control of the HTTP layer, in process: what each route needs, the
// token endpoint, the filtered listings and mounts. e2e/auth drives the same through
// the real binary and real clients.

type authServer struct {
	t *testing.T
	s *Server
	a *auth.Authenticator
}

// newAuthServer serves a registry where admin may do everything, dev may pull and push
// team/** and pull shared/*, and anyone may pull public/*; each of configure changes
// the registry's options.
func newAuthServer(t *testing.T, loginFailures int, configure ...func(*registry.Options)) *authServer {
	t.Helper()
	dir := t.TempDir()
	blobs, err := fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := sqlite.Open(context.Background(), filepath.Join(dir, "graft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	users := map[string]string{}
	for _, u := range []string{"admin", "dev", "outsider"} {
		h, _ := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		users[u] = string(h)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := auth.NewSigner(key)
	a, err := auth.New(auth.Options{
		Users: users, Tokens: meta, Signer: signer, LoginFailures: loginFailures,
		Policy: auth.PolicyConfig{
			Admins: []string{"admin"},
			Rules: []auth.Rule{
				{Repositories: []string{"team/**"}, Pull: []string{"dev"}, Push: []string{"dev"}},
				{Repositories: []string{"shared/*"}, Pull: []string{"dev"}},
				{Repositories: []string{"public/*"}, AnonymousPull: true},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := registry.Options{Cascade: true}
	for _, f := range configure {
		f(&opts)
	}
	s := New(registry.New(blobs, meta, opts), Options{Auth: a})
	return &authServer{t: t, s: s, a: a}
}

type answer struct {
	*httptest.ResponseRecorder
}

func (a answer) challenge() auth.Challenge {
	c, _ := auth.ParseChallenge(a.Header().Get("WWW-Authenticate"))
	return c
}

func (a answer) code() string {
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	json.Unmarshal(a.Body.Bytes(), &body)
	if len(body.Errors) == 0 {
		return ""
	}
	return body.Errors[0].Code
}

// do sends a request; auth is "" (none), "user:password" (Basic) or "bearer TOKEN".
func (as *authServer) do(method, target, cred string, body []byte) answer {
	as.t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	req.RemoteAddr = "192.0.2.10:4000"
	switch {
	case strings.HasPrefix(cred, "bearer "):
		req.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(cred, "bearer "))
	case cred != "":
		u, p, _ := strings.Cut(cred, ":")
		req.SetBasicAuth(u, p)
	}
	if method == http.MethodPut && strings.Contains(target, "/manifests/") {
		req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	}
	rec := httptest.NewRecorder()
	as.s.ServeHTTP(rec, req)
	return answer{rec}
}

func (as *authServer) want(a answer, status int, what string) {
	as.t.Helper()
	if a.Code != status {
		as.t.Fatalf("%s: %d, want %d: %s", what, a.Code, status, a.Body.String())
	}
}

// token gets an access token from the token endpoint.
func (as *authServer) token(cred string, scopes ...string) string {
	as.t.Helper()
	q := url.Values{"service": {"graft"}, "scope": scopes}
	a := as.do(http.MethodGet, auth.TokenPath+"?"+q.Encode(), cred, nil)
	as.want(a, http.StatusOK, "token request")
	var resp tokenResponse
	if err := json.Unmarshal(a.Body.Bytes(), &resp); err != nil || resp.Token == "" || resp.Token != resp.AccessToken {
		as.t.Fatalf("token answer %s: %v", a.Body.String(), err)
	}
	return "bearer " + resp.Token
}

// pushImage pushes a one-layer image to repo as admin and returns its layer's digest.
func (as *authServer) pushImage(repo, tag string) digest.Digest {
	as.t.Helper()
	layer := []byte("layer of " + repo)
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	for _, b := range [][]byte{layer, config} {
		as.want(as.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), "admin:admin-pw", b),
			http.StatusCreated, "blob push")
	}
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}},
	})
	as.want(as.do(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, "admin:admin-pw", m), http.StatusCreated, "manifest push")
	return digest.FromBytes(layer)
}

func TestAuthBase(t *testing.T) {
	as := newAuthServer(t, 0)
	a := as.do(http.MethodGet, "/v2/", "", nil)
	as.want(a, http.StatusUnauthorized, "GET /v2/ anonymous")
	c := a.challenge()
	if c.Scheme != "Bearer" || c.Params["realm"] != "http://example.com/auth/token" || c.Params["service"] != "graft" || c.Params["scope"] != "" {
		t.Errorf("challenge of /v2/: %+v", c)
	}
	if a.Header().Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Error("a 401 of /v2/ lacks Docker-Distribution-API-Version, which docker checks")
	}
	as.want(as.do(http.MethodGet, "/v2/", "dev:dev-pw", nil), http.StatusOK, "GET /v2/ with Basic credentials")
	as.want(as.do(http.MethodGet, "/v2/", as.token(""), nil), http.StatusOK, "GET /v2/ with an anonymous token")
	a = as.do(http.MethodGet, "/v2/", "dev:wrong", nil)
	as.want(a, http.StatusUnauthorized, "GET /v2/ with a wrong password")
	if a.code() != "UNAUTHORIZED" || a.challenge().Params["error"] != "invalid_token" {
		t.Errorf("wrong password: code %s, challenge %+v", a.code(), a.challenge())
	}
	// the metrics and unknown paths answer as without auth
	as.want(as.do(http.MethodGet, "/metrics", "", nil), http.StatusOK, "GET /metrics")
	as.want(as.do(http.MethodGet, "/nothing/here", "", nil), http.StatusNotFound, "GET /nothing/here")
}

func TestAuthRoutes(t *testing.T) {
	as := newAuthServer(t, 0)
	layer := as.pushImage("team/app", "v1")
	as.pushImage("public/site", "v1")
	blob := "/v2/team/app/blobs/" + layer.String()

	// anonymous: 401 with the scope the route needs
	a := as.do(http.MethodGet, blob, "", nil)
	as.want(a, http.StatusUnauthorized, "anonymous blob GET")
	if got := a.challenge().Params["scope"]; got != "repository:team/app:pull" {
		t.Errorf("scope of a blob GET challenge: %q", got)
	}
	a = as.do(http.MethodPut, "/v2/team/app/manifests/v2", "", []byte("{}"))
	if got := a.challenge().Params["scope"]; a.Code != 401 || got != "repository:team/app:pull,push" {
		t.Errorf("manifest PUT: %d, scope %q", a.Code, got)
	}
	a = as.do(http.MethodHead, "/v2/team/app/manifests/v1", "", nil)
	if a.Code != 401 || a.Header().Get("WWW-Authenticate") == "" || a.Body.Len() != 0 {
		t.Errorf("anonymous HEAD: %d %q body %q", a.Code, a.Header().Get("WWW-Authenticate"), a.Body.String())
	}
	// anonymous pull where a policy allows it, without any token
	as.want(as.do(http.MethodGet, "/v2/public/site/manifests/v1", "", nil), http.StatusOK, "anonymous pull of public/site")
	as.want(as.do(http.MethodGet, "/v2/public/site/tags/list", "", nil), http.StatusOK, "anonymous tags of public/site")
	as.want(as.do(http.MethodDelete, "/v2/public/site/manifests/v1", "", nil), http.StatusUnauthorized, "anonymous delete of public/site")

	// Basic: 403 where the user may not
	as.want(as.do(http.MethodGet, blob, "dev:dev-pw", nil), http.StatusOK, "dev pulls team/app")
	a = as.do(http.MethodDelete, "/v2/team/app/manifests/v1", "dev:dev-pw", nil)
	as.want(a, http.StatusForbidden, "dev deletes in team/app")
	if a.code() != "DENIED" || a.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("403: code %s, challenge %q", a.code(), a.Header().Get("WWW-Authenticate"))
	}
	as.want(as.do(http.MethodGet, blob, "outsider:outsider-pw", nil), http.StatusForbidden, "outsider pulls team/app")
	// the metadata API: reading needs pull, changing locks needs delete
	as.want(as.do(http.MethodGet, "/graft/v1/team/app/_manifests", "dev:dev-pw", nil), http.StatusOK, "dev lists manifests")
	as.want(as.do(http.MethodPatch, "/graft/v1/team/app", "dev:dev-pw", []byte(`{"writeEnabled":false}`)), http.StatusForbidden, "dev locks team/app")
	as.want(as.do(http.MethodPatch, "/graft/v1/team/app", "admin:admin-pw", []byte(`{"writeEnabled":true}`)), http.StatusOK, "admin patches team/app")
	as.want(as.do(http.MethodGet, "/graft/v1/team/app", "outsider:outsider-pw", nil), http.StatusForbidden, "outsider reads team/app's metadata")

	// Bearer: a token for pull only is sent for a new one when its user could push,
	// refused when they could not
	pull := as.token("dev:dev-pw", "repository:team/app:pull")
	as.want(as.do(http.MethodGet, blob, pull, nil), http.StatusOK, "pull with a pull token")
	a = as.do(http.MethodPost, "/v2/team/app/blobs/uploads/", pull, nil)
	as.want(a, http.StatusUnauthorized, "push with a pull token")
	if c := a.challenge(); c.Params["error"] != "insufficient_scope" || c.Params["scope"] != "repository:team/app:pull,push" {
		t.Errorf("challenge of an insufficient token: %+v", c)
	}
	as.want(as.do(http.MethodDelete, "/v2/team/app/manifests/v1", pull, nil), http.StatusForbidden, "delete with a pull token of a user who may not delete")
	as.want(as.do(http.MethodGet, "/v2/shared/x/tags/list", pull, nil), http.StatusUnauthorized, "a token for team/app used on shared/x, which dev may pull")
	as.want(as.do(http.MethodGet, "/v2/other/x/tags/list", pull, nil), http.StatusForbidden, "a token for team/app used on other/x")
	push := as.token("dev:dev-pw", "repository:team/app:pull,push,delete")
	as.want(as.do(http.MethodPost, "/v2/team/app/blobs/uploads/", push, nil), http.StatusAccepted, "push with a push token")
	as.want(as.do(http.MethodDelete, "/v2/team/app/manifests/v1", push, nil), http.StatusForbidden, "delete not granted")
}

func TestAuthMount(t *testing.T) {
	as := newAuthServer(t, 0)
	layer := as.pushImage("team/app", "v1")
	secret := as.pushImage("secret/app", "v1")
	mount := func(to, from string, d digest.Digest, cred string) answer {
		q := url.Values{"mount": {d.String()}}
		if from != "" {
			q.Set("from", from)
		}
		return as.do(http.MethodPost, "/v2/"+to+"/blobs/uploads/?"+q.Encode(), cred, nil)
	}
	as.want(mount("team/copy", "team/app", layer, "dev:dev-pw"), http.StatusCreated, "mount from a repository dev may pull")
	// no pull on the source: a new session, as if the blob were not there
	as.want(mount("team/copy", "secret/app", secret, "dev:dev-pw"), http.StatusAccepted, "mount from a repository dev may not pull")
	as.want(as.do(http.MethodHead, "/v2/team/copy/blobs/"+secret.String(), "dev:dev-pw", nil), http.StatusNotFound, "the refused mount's blob")
	// no source named: only who may pull everywhere mounts
	as.want(mount("team/copy2", "", layer, "dev:dev-pw"), http.StatusAccepted, "mount without from by dev")
	as.want(mount("team/copy2", "", secret, "admin:admin-pw"), http.StatusCreated, "mount without from by the admin")
	// a token without pull on the source, whose user could pull it, is sent for one
	tok := as.token("dev:dev-pw", "repository:team/copy3:pull,push")
	a := mount("team/copy3", "team/app", layer, tok)
	as.want(a, http.StatusUnauthorized, "mount with a token lacking the source")
	if got := a.challenge().Params["scope"]; got != "repository:team/copy3:pull,push repository:team/app:pull" {
		t.Errorf("scope of the mount challenge: %q", got)
	}
	tok = as.token("dev:dev-pw", "repository:team/copy3:pull,push", "repository:team/app:pull")
	as.want(mount("team/copy3", "team/app", layer, tok), http.StatusCreated, "mount with a token for both")
}

func TestAuthListings(t *testing.T) {
	as := newAuthServer(t, 0)
	for _, r := range []string{"aaa/x", "public/site", "secret/a", "secret/b", "shared/one", "team/app", "team/app/sbom", "zzz/x"} {
		as.pushImage(r, "v1")
	}
	catalog := func(cred, query string) ([]string, string) {
		a := as.do(http.MethodGet, "/v2/_catalog"+query, cred, nil)
		as.want(a, http.StatusOK, "catalog")
		var body struct{ Repositories []string }
		json.Unmarshal(a.Body.Bytes(), &body)
		return body.Repositories, a.Header().Get("Link")
	}
	all, _ := catalog("admin:admin-pw", "")
	if len(all) != 8 {
		t.Errorf("the admin's catalog: %q", all)
	}
	got, _ := catalog("dev:dev-pw", "")
	want := []string{"public/site", "shared/one", "team/app", "team/app/sbom"}
	if !slices.Equal(got, want) {
		t.Errorf("dev's catalog: %q, want %q", got, want)
	}
	// pages are of what dev sees, with a Link that goes on from the last
	got, link := catalog("dev:dev-pw", "?n=2")
	if !slices.Equal(got, want[:2]) || !strings.Contains(link, "last=shared%2Fone") {
		t.Errorf("dev's first page: %q, Link %q", got, link)
	}
	got, link = catalog("dev:dev-pw", "?n=2&last=shared%2Fone")
	if !slices.Equal(got, want[2:]) || link != "" {
		t.Errorf("dev's second page: %q, Link %q", got, link)
	}
	// anonymous callers are sent for a token; an anonymous token lists the public
	a := as.do(http.MethodGet, "/v2/_catalog", "", nil)
	if a.Code != 401 || a.challenge().Params["scope"] != "registry:catalog:*" {
		t.Errorf("anonymous catalog: %d, %+v", a.Code, a.challenge())
	}
	got, _ = catalog(as.token("", "registry:catalog:*"), "")
	if !slices.Equal(got, []string{"public/site"}) {
		t.Errorf("the anonymous catalog: %q", got)
	}
	// a token without the catalog scope is sent for one
	a = as.do(http.MethodGet, "/v2/_catalog", as.token("dev:dev-pw", "repository:team/app:pull"), nil)
	if a.Code != 401 || a.challenge().Params["error"] != "insufficient_scope" {
		t.Errorf("catalog with a token without the scope: %d, %+v", a.Code, a.challenge())
	}
	got, _ = catalog(as.token("dev:dev-pw", "registry:catalog:*"), "")
	if !slices.Equal(got, want) {
		t.Errorf("dev's catalog with a token: %q", got)
	}

	// the metadata API's list of repositories is filtered alike
	a = as.do(http.MethodGet, "/graft/v1/_repositories", "dev:dev-pw", nil)
	as.want(a, http.StatusOK, "repositories")
	var repos struct{ Repositories []struct{ Name string } }
	json.Unmarshal(a.Body.Bytes(), &repos)
	var names []string
	for _, r := range repos.Repositories {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, want) {
		t.Errorf("dev's repositories: %q", names)
	}
}

func TestTokenEndpoint(t *testing.T) {
	as := newAuthServer(t, 3)
	as.pushImage("team/app", "v1")

	// the OAuth2 password grant, as docker login sends it, with a refresh token
	form := url.Values{"grant_type": {"password"}, "username": {"dev"}, "password": {"dev-pw"}, "service": {"graft"},
		"client_id": {"docker"}, "access_type": {"offline"}, "scope": {"repository:team/app:pull,push repository:secret:pull"}}
	post := func(f url.Values) answer {
		req := httptest.NewRequest(http.MethodPost, auth.TokenPath, strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "192.0.2.20:1"
		rec := httptest.NewRecorder()
		as.s.ServeHTTP(rec, req)
		return answer{rec}
	}
	a := post(form)
	as.want(a, http.StatusOK, "password grant")
	var resp tokenResponse
	json.Unmarshal(a.Body.Bytes(), &resp)
	if resp.AccessToken == "" || resp.RefreshToken == "" || resp.TokenType != "Bearer" || resp.ExpiresIn != 300 ||
		resp.Scope != "repository:team/app:pull,push" {
		t.Fatalf("password grant answered %s", a.Body.String())
	}
	if a.Header().Get("Cache-Control") != "no-store" {
		t.Error("a token answer may be cached")
	}
	as.want(as.do(http.MethodGet, "/v2/team/app/manifests/v1", "bearer "+resp.AccessToken, nil), http.StatusOK, "pull with the granted token")

	// the refresh token grant, as docker uses its identity token
	a = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {resp.RefreshToken}, "service": {"graft"}, "scope": {"repository:team/app:pull"}})
	as.want(a, http.StatusOK, "refresh grant")
	var refreshed tokenResponse
	json.Unmarshal(a.Body.Bytes(), &refreshed)
	if refreshed.AccessToken == "" || refreshed.RefreshToken != resp.RefreshToken {
		t.Errorf("refresh grant answered %s", a.Body.String())
	}
	// an access token is no refresh token
	as.want(post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {resp.AccessToken}}), http.StatusUnauthorized, "an access token as a refresh token")
	// nor is a refresh token an access token
	as.want(as.do(http.MethodGet, "/v2/team/app/manifests/v1", "bearer "+resp.RefreshToken, nil), http.StatusUnauthorized, "a refresh token as an access token")
	as.want(post(url.Values{"grant_type": {"client_credentials"}}), http.StatusBadRequest, "an unknown grant")

	// GET with offline_token, as the token specification has it
	a = as.do(http.MethodGet, auth.TokenPath+"?service=graft&offline_token=true&scope=repository:team/app:pull", "dev:dev-pw", nil)
	json.Unmarshal(a.Body.Bytes(), &resp)
	if a.Code != 200 || resp.RefreshToken == "" {
		t.Errorf("GET with offline_token: %d %s", a.Code, a.Body.String())
	}
	as.want(as.do(http.MethodGet, auth.TokenPath+"?service=other", "dev:dev-pw", nil), http.StatusBadRequest, "a token for another service")
	as.want(as.do(http.MethodPut, auth.TokenPath, "", nil), http.StatusMethodNotAllowed, "PUT of the token endpoint")

	// failed logins from one source are limited (3 here): the 4th attempt, right or
	// wrong, is refused before any check
	for i := 0; i < 3; i++ {
		as.want(as.do(http.MethodGet, auth.TokenPath, "dev:wrong", nil), http.StatusUnauthorized, "a wrong password")
	}
	a = as.do(http.MethodGet, auth.TokenPath, "dev:dev-pw", nil)
	as.want(a, http.StatusTooManyRequests, "a login after 3 failures")
	if a.code() != "TOOMANYREQUESTS" || a.Header().Get("Retry-After") == "" {
		t.Errorf("rate limited: code %s, Retry-After %q", a.code(), a.Header().Get("Retry-After"))
	}
	a = as.do(http.MethodGet, "/v2/team/app/tags/list", "dev:dev-pw", nil)
	as.want(a, http.StatusTooManyRequests, "Basic credentials on the API after 3 failures")
	// a token already issued still works: only logins are limited
	as.want(as.do(http.MethodGet, "/v2/team/app/manifests/v1", "bearer "+refreshed.AccessToken, nil), http.StatusOK, "a token during the limit")
}

// TestTokenEndpointMethods: the token endpoint answers GET and POST, and says so.
func TestTokenEndpointMethods(t *testing.T) {
	as := newAuthServer(t, 0)
	for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodHead} {
		a := as.do(method, auth.TokenPath+"?service=graft", "dev:dev-pw", nil)
		as.want(a, http.StatusMethodNotAllowed, method+" "+auth.TokenPath)
		if got := a.Header().Get("Allow"); got != "GET, POST" {
			t.Errorf("%s %s: Allow %q, want \"GET, POST\"", method, auth.TokenPath, got)
		}
	}
}

// TestUploadCapPerCaller: the upload sessions a caller holds open are counted by who
// it is: a user, with a password or a token alike; another user has a count of its own.
func TestUploadCapPerCaller(t *testing.T) {
	as := newAuthServer(t, 0, func(o *registry.Options) { o.UploadsPerCaller = 2 })
	start := func(cred string, want int) {
		t.Helper()
		a := as.do(http.MethodPost, "/v2/team/app/blobs/uploads/", cred, nil)
		as.want(a, want, "POST an upload session")
		if want == http.StatusTooManyRequests && a.code() != "TOOMANYREQUESTS" {
			t.Errorf("a session past the cap: code %s", a.code())
		}
	}
	start("dev:dev-pw", http.StatusAccepted)
	start(as.token("dev:dev-pw", "repository:team/app:pull,push"), http.StatusAccepted)
	start("dev:dev-pw", http.StatusTooManyRequests)
	start(as.token("dev:dev-pw", "repository:team/app:pull,push"), http.StatusTooManyRequests)
	start("admin:admin-pw", http.StatusAccepted)
	start("admin:admin-pw", http.StatusAccepted)
	start("admin:admin-pw", http.StatusTooManyRequests)
}

// The health endpoints need no credentials, even where everything else does.
func TestHealthNeedsNoCredentials(t *testing.T) {
	as := newAuthServer(t, 0)
	as.want(as.do(http.MethodGet, "/v2/", "", nil), http.StatusUnauthorized, "the base endpoint without credentials")
	for _, p := range []string{"/healthz", "/readyz"} {
		as.want(as.do(http.MethodGet, p, "", nil), http.StatusOK, p+" without credentials")
	}
}

// Failed logins, bad tokens and refusals are counted by reason.
func TestAuthFailureMetrics(t *testing.T) {
	as := newAuthServer(t, 0)
	as.do(http.MethodGet, "/v2/", "admin:wrong", nil)
	as.do(http.MethodGet, "/v2/", "nobody:wrong", nil)
	as.do(http.MethodGet, "/v2/", "bearer not-a-token", nil)
	as.do(http.MethodGet, "/v2/shared/x/tags/list", "outsider:outsider-pw", nil)
	m := as.do(http.MethodGet, "/metrics", "", nil)
	for reason, want := range map[string]string{"wrong_password": "1", "unknown_user": "1", "invalid_token": "1", "denied": "1", "rate_limited": "0"} {
		line := `graft_auth_failures_total{reason="` + reason + `"} ` + want
		if !strings.Contains(m.Body.String(), line+"\n") {
			t.Errorf("/metrics has no %s", line)
		}
	}
}

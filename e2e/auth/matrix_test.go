package authe2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/auth"
)

// need is what a route needs: the registry (/v2/), the catalog, or an action on its
// repository.
type need int

const (
	needBase need = iota
	needCatalog
	needPull
	needPush
	needDelete
)

var needNames = [...]string{"base", "catalog", "pull", "push", "delete"}

// outcome is what a credential gets from a route that needs each of the above: ok
// (the route's own answer), 401 or 403.
type outcome [5]int

const ok = 0

var refusedAll = outcome{401, 401, 401, 401, 401}

// TestNegativeMatrix sends every route of the API with every kind of credential that
// must not get through, and checks each answer: 401 with a challenge where other
// credentials could help, 403 DENIED where the caller's identity may not, and the
// route's own answer only where the credential allows it. Nothing it sends may
// change the registry, which is compared before and after.
func TestNegativeMatrix(t *testing.T) {
	r := startRegistry(t, `  login-failures: 0
  policies:
    - repositories: ["team/**"]
      pull: [dev]
      push: [dev]
    - repositories: ["other/*"]
      pull: [dev]
`)
	subject, layer := r.pushImage("team/app", "v1", nil)
	referrer, _ := r.pushImage("team/app", "sig", &subject)
	_, otherLayer := r.pushImage("other/app", "v1", nil)
	up := r.do(http.MethodPost, "/v2/team/app/blobs/uploads/", as("admin"), nil)
	if up.Status != http.StatusAccepted {
		t.Fatalf("starting an upload as admin: %s", up)
	}
	upload := up.Header.Get("Location")

	// repository-scoped tokens, made with the CLI on the running registry's store
	ciOther := strings.TrimSpace(graft(t, "", "token", "create", "ci-other", "--repo", "other/*", "--action", "pull,push,delete",
		"--config", r.config, "--data-dir", r.srv.DataDir))
	ciPull := strings.TrimSpace(graft(t, "", "token", "create", "ci-pull", "--repo", "team/*", "--action", "pull",
		"--config", r.config, "--data-dir", r.srv.DataDir))

	valid := r.token(as("dev"), "repository:team/app:pull,push")
	// the tokens minted below differ from a good one in one claim each: the control
	// shows that re-signing alone does not spoil a token
	if resp := r.do(http.MethodGet, "/v2/team/app/tags/list", "Bearer "+r.resign(valid, r.key, nil), nil); resp.Status != http.StatusOK {
		t.Fatalf("a token re-signed unchanged: %s", resp)
	}
	now := time.Now()
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	creds := []struct {
		name  string
		authz string
		want  outcome
	}{
		{"anonymous", "", refusedAll},
		{"wrong password", basic("dev", "dev-wrong"), refusedAll},
		{"unknown user", basic("mallory", "x"), refusedAll},
		{"wrong token secret", basic("ci-pull", ciPull+"x"), refusedAll},
		{"expired token", "Bearer " + r.resign(valid, r.key, func(c map[string]any) {
			c["exp"], c["nbf"], c["iat"] = unix(now.Add(-time.Hour)), unix(now.Add(-2*time.Hour)), unix(now.Add(-2*time.Hour))
		}), refusedAll},
		{"token not valid yet", "Bearer " + r.resign(valid, r.key, func(c map[string]any) {
			c["nbf"], c["exp"] = unix(now.Add(time.Hour)), unix(now.Add(2*time.Hour))
		}), refusedAll},
		{"token for another service", "Bearer " + r.resign(valid, r.key, func(c map[string]any) { c["aud"] = []string{"other-registry"} }), refusedAll},
		{"token of another issuer", "Bearer " + r.resign(valid, r.key, func(c map[string]any) { c["iss"] = "someone-else" }), refusedAll},
		{"tampered token", "Bearer " + tamper(valid), refusedAll},
		{"token signed by another key", "Bearer " + r.resign(valid, otherKey, nil), refusedAll},
		{"unsigned token", "Bearer " + unsigned(valid), refusedAll},
		{"refresh token", "Bearer " + r.refreshToken(), refusedAll},
		// dev may pull and push team/app: a token for other/app is sent for another
		// (401), except where dev could not anyway (delete: 403)
		{"user's token for another repo", "Bearer " + r.token(as("dev"), "repository:other/app:pull,push,delete"),
			outcome{ok, 401, 401, 401, 403}},
		{"repository token for another repo", basic("ci-other", ciOther), outcome{ok, ok, 403, 403, 403}},
		{"user's token with pull only", "Bearer " + r.token(as("dev"), "repository:team/app:pull"),
			outcome{ok, 401, ok, 401, 403}},
		{"repository token with pull only", basic("ci-pull", ciPull), outcome{ok, ok, ok, 403, 403}},
		{"outsider", as("outsider"), outcome{ok, ok, 403, 403, 403}},
	}

	newBlob := []byte("a blob no one may push")
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: layer.Digest, Size: layer.Size}})
	patch := []byte(`{"writeEnabled":false,"readEnabled":false}`)
	type route struct {
		method, path string
		need         need
		body         []byte
		ok           int
	}
	routes := []route{
		{"GET", "/v2/", needBase, nil, 200},
		{"GET", "/v2/_catalog", needCatalog, nil, 200},
		{"GET", "/graft/v1/_repositories", needCatalog, nil, 200},
		{"GET", "/v2/team/app/tags/list", needPull, nil, 200},
		{"GET", "/v2/team/app/manifests/v1", needPull, nil, 200},
		{"HEAD", "/v2/team/app/manifests/v1", needPull, nil, 200},
		{"GET", "/v2/team/app/manifests/" + subject.Digest.String(), needPull, nil, 200},
		{"PUT", "/v2/team/app/manifests/v2", needPush, m, 201},
		{"PUT", "/v2/team/app/manifests/v1", needPush, m, 201},
		{"DELETE", "/v2/team/app/manifests/" + referrer.Digest.String(), needDelete, nil, 202},
		{"DELETE", "/v2/team/app/manifests/v1", needDelete, nil, 202},
		{"GET", "/v2/team/app/blobs/" + layer.Digest.String(), needPull, nil, 200},
		{"HEAD", "/v2/team/app/blobs/" + layer.Digest.String(), needPull, nil, 200},
		{"DELETE", "/v2/team/app/blobs/" + layer.Digest.String(), needDelete, nil, 202},
		{"POST", "/v2/team/app/blobs/uploads/", needPush, nil, 202},
		{"POST", "/v2/team/app/blobs/uploads/?digest=" + digest.FromBytes(newBlob).String(), needPush, newBlob, 201},
		{"POST", "/v2/team/app/blobs/uploads/?mount=" + otherLayer.Digest.String() + "&from=other/app", needPush, nil, 201},
		{"GET", upload, needPush, nil, 204},
		{"PATCH", upload, needPush, newBlob, 202},
		{"PUT", upload + "?digest=" + digest.FromBytes(newBlob).String(), needPush, newBlob, 201},
		{"DELETE", upload, needPush, nil, 204},
		{"GET", "/v2/team/app/referrers/" + subject.Digest.String(), needPull, nil, 200},
		{"GET", "/oras/artifacts/v1/team/app/manifests/" + subject.Digest.String(), needPull, nil, 200},
		{"GET", "/oras/artifacts/v1/team/app/manifests/" + subject.Digest.String() + "/referrers", needPull, nil, 200},
		{"GET", "/graft/v1/team/app", needPull, nil, 200},
		{"PATCH", "/graft/v1/team/app", needDelete, patch, 200},
		{"GET", "/graft/v1/team/app/_manifests", needPull, nil, 200},
		{"GET", "/graft/v1/team/app/_manifests/v1", needPull, nil, 200},
		{"PATCH", "/graft/v1/team/app/_manifests/v1", needDelete, patch, 200},
	}

	before := r.snapshot(upload)
	realm := r.srv.URL + auth.TokenPath
	for _, c := range creds {
		for _, rt := range routes {
			want := c.want[rt.need]
			if want == ok && rt.need >= needPush {
				t.Fatalf("the matrix has a credential that may write: %s on %s %s", c.name, rt.method, rt.path)
			}
			resp := r.do(rt.method, rt.path, c.authz, rt.body, "Content-Type", ocispec.MediaTypeImageManifest)
			what := c.name + ": " + rt.method + " " + rt.path + " (" + needNames[rt.need] + ")"
			switch want {
			case ok:
				if resp.Status != rt.ok {
					t.Errorf("%s: %s, want %d", what, resp, rt.ok)
				}
			case 401:
				if resp.Status != 401 {
					t.Errorf("%s: %s, want 401", what, resp)
					continue
				}
				ch, err := auth.ParseChallenge(resp.Header.Get("WWW-Authenticate"))
				if err != nil || ch.Scheme != "Bearer" || ch.Params["realm"] != realm || ch.Params["service"] != "graft" {
					t.Errorf("%s: challenge %q (%v)", what, resp.Header.Get("WWW-Authenticate"), err)
				}
				wantScope := map[need]string{needBase: "", needCatalog: "registry:catalog:*"}[rt.need]
				if rt.need >= needPull {
					wantScope = "repository:team/app:"
				}
				if !strings.HasPrefix(ch.Params["scope"], wantScope) || wantScope == "" && ch.Params["scope"] != "" {
					t.Errorf("%s: challenge scope %q, want %q…", what, ch.Params["scope"], wantScope)
				}
				if rt.method != http.MethodHead && resp.ErrorCode() != "UNAUTHORIZED" {
					t.Errorf("%s: error code %q, want UNAUTHORIZED", what, resp.ErrorCode())
				}
			case 403:
				if resp.Status != 403 {
					t.Errorf("%s: %s, want 403", what, resp)
					continue
				}
				if resp.Header.Get("WWW-Authenticate") != "" {
					t.Errorf("%s: a 403 with a challenge %q", what, resp.Header.Get("WWW-Authenticate"))
				}
				if rt.method != http.MethodHead && resp.ErrorCode() != "DENIED" {
					t.Errorf("%s: error code %q, want DENIED", what, resp.ErrorCode())
				}
			}
		}
	}
	if after := r.snapshot(upload); after != before {
		t.Errorf("the refused requests changed the registry:\nbefore: %s\nafter:  %s", before, after)
	}
	// and the routes do work, for admin: the matrix could tell refusal from success
	for _, rt := range routes[:8] {
		if resp := r.do(rt.method, rt.path, as("admin"), rt.body, "Content-Type", ocispec.MediaTypeImageManifest); resp.Status != rt.ok {
			t.Errorf("admin: %s %s: %s, want %d", rt.method, rt.path, resp, rt.ok)
		}
	}
}

// pullTime is a manifest's last pull time in a listing. The matrix's allowed
// reads are pulls, and the server records pull times in batches, so one may land
// between the snapshots whatever the refused requests did: it is left out.
var pullTime = regexp.MustCompile(`,?"lastPulledTime":"[^"]*"`)

// snapshot is what the registry holds, as admin reads it: repositories with their
// counts, sizes, times and locks, manifests, tags, the test's blob and upload;
// not when manifests were last pulled.
func (r *registry) snapshot(upload string) string {
	r.t.Helper()
	var b strings.Builder
	for _, p := range []string{"/graft/v1/_repositories", "/graft/v1/team/app/_manifests", "/graft/v1/other/app/_manifests",
		"/v2/team/app/tags/list", "/v2/_catalog"} {
		resp := r.do(http.MethodGet, p, as("admin"), nil)
		if resp.Status != http.StatusOK {
			r.t.Fatalf("snapshot: GET %s: %s", p, resp)
		}
		b.Write(pullTime.ReplaceAll(bytes.TrimSpace(resp.Body), nil))
		b.WriteByte('\n')
	}
	st := r.do(http.MethodGet, upload, as("admin"), nil)
	b.WriteString("upload " + strconv.Itoa(st.Status) + " " + st.Header.Get("Range") + "\n")
	return b.String()
}

func unix(t time.Time) json.Number { return json.Number(strconv.FormatInt(t.Unix(), 10)) }

// claimsOf decodes a token's claims, numbers as they are.
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var c map[string]any
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// resign returns token with its claims changed by edit (if any), signed with key
// under the original header (so the same kid).
func (r *registry) resign(token string, key *ecdsa.PrivateKey, edit func(map[string]any)) string {
	r.t.Helper()
	c := claimsOf(r.t, token)
	if edit != nil {
		edit(c)
	}
	payload, _ := json.Marshal(c)
	signing := strings.Split(token, ".")[0] + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := jwt.SigningMethodES256.Sign(signing, key)
	if err != nil {
		r.t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(lowS(sig))
}

// lowS gives an ES256 signature (r || s) its low-S form, the only one the registry
// accepts: ECDSA signs with s or n-s at random, and a re-signed token must differ from
// a good one in nothing but what a test changes.
func lowS(sig []byte) []byte {
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	if s.Cmp(new(big.Int).Rsh(n, 1)) <= 0 {
		return sig
	}
	out := append([]byte(nil), sig[:32]...)
	return append(out, new(big.Int).Sub(n, s).FillBytes(make([]byte, 32))...)
}

// tamper changes a token's claims and keeps its signature: it grants delete now.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = bytes.Replace(payload, []byte(`"pull","push"`), []byte(`"pull","push","delete"`), 1)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// unsigned is token's claims under alg none.
func unsigned(token string) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return header + "." + strings.Split(token, ".")[1] + "."
}

// refreshToken is a refresh token of dev, which is no access token.
func (r *registry) refreshToken() string {
	r.t.Helper()
	resp := r.do(http.MethodGet, "/auth/token?service=graft&offline_token=true", as("dev"), nil)
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(resp.Body, &body); resp.Status != http.StatusOK || body.RefreshToken == "" {
		r.t.Fatalf("refresh token request: %s", resp)
	}
	return body.RefreshToken
}

// Package authe2e drives the access control of a real `graft serve`: raw HTTP for
// the statuses, challenges and bodies of every route, and the real clients people log
// in with (oras, regctl, crane, skopeo, cosign), which find their credentials where
// they keep them.
package authe2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/graftest"
)

// Users of every test server: admin may do everything (auth.admins), dev what the
// test's policies give, outsider nothing unless they say so.
var passwords = map[string]string{
	"admin":    "admin-Pa55word",
	"dev":      "dev-Pa55word",
	"outsider": "outsider-Pa55word",
}

// registry is a running graft serve with authentication on.
type registry struct {
	t   *testing.T
	srv *graftest.Server
	// dir holds its htpasswd file, configuration and token signing key.
	dir, htpasswd, config, keyFile string
	key                            *ecdsa.PrivateKey
}

// startRegistry starts graft serve with the users above in an htpasswd file that
// `graft user add` writes, and authYAML (the body of the auth: section, indented by
// two spaces) in its configuration. The token signing key is the test's, so that it
// can mint tokens of its own.
func startRegistry(t *testing.T, authYAML string, args ...string) *registry {
	t.Helper()
	r := &registry{t: t, dir: t.TempDir()}
	r.htpasswd = filepath.Join(r.dir, "htpasswd")
	for _, u := range []string{"admin", "dev", "outsider"} {
		graft(t, passwords[u]+"\n", "user", "add", u, "--password-stdin", "--htpasswd", r.htpasswd)
	}
	var err error
	if r.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(r.key)
	r.keyFile = filepath.Join(r.dir, "token-key.pem")
	writeFile(t, r.keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	r.config = filepath.Join(r.dir, "graft.yaml")
	writeFile(t, r.config, fmt.Sprintf("auth:\n  htpasswd: %s\n  token:\n    key: %s\n  admins: [admin]\n%s", r.htpasswd, r.keyFile, authYAML))
	// registered before the server's own cleanup, so it runs after the server stopped
	// and its whole log is in
	t.Cleanup(func() { noSecretsLogged(t, r.srv.Log()) })
	r.srv = graftest.Start(t, append([]string{"--config", r.config}, args...)...)
	return r
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// graft runs the graft binary's client or admin commands with stdin, and returns
// what it printed on standard output; it fails the test when the command fails.
func graft(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := graftCmd(t, stdin, nil, args...)
	if err != nil {
		t.Fatalf("graft %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func graftCmd(t *testing.T, stdin string, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(graftest.Binary(t), args...)
	cmd.Env = append(append(os.Environ(), "GRAFT_CONFIG="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// do sends a request to the registry; target is a path with its query, authz the
// Authorization header ("" for none).
func (r *registry) do(method, target, authz string, body []byte, headers ...string) *apitest.Response {
	r.t.Helper()
	return r.srv.Do(r.t, method, target, body, append([]string{"Authorization", authz}, headers...)...)
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// as is the Basic Authorization header of one of the users.
func as(user string) string { return basic(user, passwords[user]) }

// token asks the token endpoint for scopes with authz and returns the access token.
func (r *registry) token(authz string, scopes ...string) string {
	r.t.Helper()
	q := url.Values{"service": {"graft"}, "scope": scopes}
	resp := r.do(http.MethodGet, "/auth/token?"+q.Encode(), authz, nil)
	if resp.Status != http.StatusOK {
		r.t.Fatalf("token request for %q: %s", scopes, resp)
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil || body.Token == "" {
		r.t.Fatalf("token answer %s: %v", resp, err)
	}
	return body.Token
}

// pushImage pushes a one-layer image as admin, with subject if it is set, and returns
// the descriptors of the manifest and of its layer.
func (r *registry) pushImage(repo, tag string, subject *ocispec.Descriptor) (manifest, layer ocispec.Descriptor) {
	r.t.Helper()
	content := fmt.Sprintf("layer of %s:%s %d", repo, tag, time.Now().UnixNano())
	im := apitest.NewImage(r.t, linuxAMD64, content)
	if subject != nil {
		im = apitest.NewReferrer(r.t, *subject, linuxAMD64, content)
	}
	r.srv.PushImage(r.t, repo, tag, im, "Authorization", as("admin"))
	return im.Desc(), im.Layers[0].Desc
}

var linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}

// client runs one of the real clients with a home of the test's own; it returns its
// combined output and error.
func client(t *testing.T, home, stdin, name string, args ...string) (string, error) {
	t.Helper()
	return run(t, home, "", nil, stdin, name, args...)
}

// run runs a real client in dir (if set) with home as its home, where docker, oras,
// crane, cosign, regctl and skopeo all keep their credentials, and env added.
func run(t *testing.T, home, dir string, env []string, stdin, name string, args ...string) (string, error) {
	t.Helper()
	cmd := clienttest.Command(t, name, args...)
	cmd.Dir = dir
	cmd.Env = append(append(append(os.Environ(), clienttest.HomeEnv(home)...),
		"REGISTRY_AUTH_FILE="+filepath.Join(home, ".docker", "config.json")), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustClient is client that fails the test when the client fails.
func mustClient(t *testing.T, home, stdin, name string, args ...string) string {
	t.Helper()
	out, err := client(t, home, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

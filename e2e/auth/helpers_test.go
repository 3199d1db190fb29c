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
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

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

// response is an answer read in full.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) String() string {
	b := r.Body
	if len(b) > 400 {
		b = append(b[:400:400], "…"...)
	}
	return fmt.Sprintf("%d %s", r.Status, b)
}

// errorCode is the first code of an error body.
func (r *response) errorCode() string {
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	json.Unmarshal(r.Body, &body)
	if len(body.Errors) == 0 {
		return ""
	}
	return body.Errors[0].Code
}

// httpClient sends every request once and follows no redirect: a client that
// retried or followed would hide the answer under test.
var httpClient = &http.Client{
	Transport:     http.DefaultTransport.(*http.Transport).Clone(),
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// do sends a request to the registry; target is a path with its query, authz the
// Authorization header ("" for none).
func (r *registry) do(method, target, authz string, body []byte, headers ...string) *response {
	r.t.Helper()
	return doURL(r.t, httpClient, method, r.srv.URL+target, authz, body, headers...)
}

func doURL(t *testing.T, c *http.Client, method, u, authz string, body []byte, headers ...string) *response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
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

// pushImage pushes a one-layer image as admin and returns the manifest's descriptor
// and its layer's digest.
func (r *registry) pushImage(repo, tag string, subject *ocispec.Descriptor) (ocispec.Descriptor, digest.Digest) {
	r.t.Helper()
	layer := []byte(fmt.Sprintf("layer of %s:%s %d", repo, tag, time.Now().UnixNano()))
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	for _, b := range [][]byte{layer, config} {
		resp := r.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), as("admin"), b,
			"Content-Type", "application/octet-stream")
		if resp.Status != http.StatusCreated {
			r.t.Fatalf("blob push to %s: %s", repo, resp)
		}
	}
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}},
		Subject:   subject,
	})
	resp := r.do(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, as("admin"), m, "Content-Type", ocispec.MediaTypeImageManifest)
	if resp.Status != http.StatusCreated {
		r.t.Fatalf("manifest push to %s:%s: %s", repo, tag, resp)
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))},
		digest.FromBytes(layer)
}

// sharedDir is the team's shared directory: GRAFT_SHARED, else ../shared beside the
// module.
func sharedDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("GRAFT_SHARED"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared")
}

var (
	clientsOnce sync.Once
	clientsDir  string
	clientsErr  error
)

// clients returns the directory of the real client binaries: GRAFT_CLIENTS_BIN, else
// what the team's install-clients.sh prints (it builds them the first time, which
// takes minutes). A test that needs them fails when they cannot be had: it never
// skips.
func clients(t *testing.T) string {
	t.Helper()
	clientsOnce.Do(func() {
		if d := os.Getenv("GRAFT_CLIENTS_BIN"); d != "" {
			clientsDir = d
			return
		}
		script := filepath.Join(sharedDir(t), "tools", "install-clients.sh")
		var errOut bytes.Buffer
		cmd := exec.Command(script)
		cmd.Stderr = &errOut
		out, err := cmd.Output()
		if err != nil {
			clientsErr = fmt.Errorf("%s: %v\n%s", script, err, errOut.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		clientsDir = lines[len(lines)-1]
	})
	if clientsErr != nil {
		t.Fatalf("the real clients are needed and could not be installed (set GRAFT_CLIENTS_BIN to their directory): %v", clientsErr)
	}
	return clientsDir
}

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
	cmd := exec.CommandContext(t.Context(), filepath.Join(clients(t), name), args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_RUNTIME_DIR="+filepath.Join(home, "run"),
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

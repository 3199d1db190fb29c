package authe2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/clienttest"
)

// teamPolicy: dev may pull and push team/**, anyone may pull public/*; admin (every
// server's admin) may do everything; outsider nothing.
const teamPolicy = `  policies:
    - repositories: ["team/**"]
      pull: [dev]
      push: [dev]
    - repositories: ["public/*"]
      anonymous-pull: true
`

func TestOras(t *testing.T) {
	r := startRegistry(t, teamPolicy)
	h := clienttest.NewHome(t)
	addr := r.srv.Addr
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "hello.txt"), "hello from oras\n")
	writeFile(t, filepath.Join(work, "sbom.json"), `{"sbom":true}`)

	if out, err := client(t, h, passwords["dev"]+"x\n", "oras", "login", "--plain-http", "-u", "dev", "--password-stdin", addr); err == nil {
		t.Fatalf("oras login with a wrong password succeeded:\n%s", out)
	}
	mustClient(t, h, passwords["dev"]+"\n", "oras", "login", "--plain-http", "-u", "dev", "--password-stdin", addr)
	cfg, _ := os.ReadFile(filepath.Join(h, ".docker", "config.json"))
	if !strings.Contains(string(cfg), addr) {
		t.Fatalf("oras login stored no credentials for %s: %s", addr, cfg)
	}
	orasIn := func(args ...string) string {
		t.Helper()
		return mustClientIn(t, h, work, "oras", args...)
	}
	orasIn("push", "--plain-http", addr+"/team/app:v1", "hello.txt:text/plain")
	orasIn("attach", "--plain-http", "--artifact-type", "sbom/example", addr+"/team/app:v1", "sbom.json:application/json")
	disc := orasIn("discover", "--plain-http", "--format", "json", addr+"/team/app:v1")
	if !strings.Contains(disc, "sbom/example") {
		t.Errorf("oras discover does not show the SBOM: %s", disc)
	}
	orasIn("pull", "--plain-http", "-o", filepath.Join(work, "pulled"), addr+"/team/app:v1")
	if b, _ := os.ReadFile(filepath.Join(work, "pulled", "hello.txt")); string(b) != "hello from oras\n" {
		t.Errorf("pulled %q", b)
	}
	// a copy within team/ mounts across repositories dev may pull
	orasIn("cp", "-r", "--from-plain-http", "--to-plain-http", addr+"/team/app:v1", addr+"/team/copy:v1")
	// outside team/, dev may not push; repo ls shows only what dev may pull
	if out, err := clientIn(t, h, work, "oras", "push", "--plain-http", addr+"/other/app:v1", "hello.txt:text/plain"); err == nil ||
		!strings.Contains(out, "403") {
		t.Errorf("oras push to other/app: %v\n%s", err, out)
	}
	r.pushImage("secret/app", "v1", nil)
	ls := strings.Fields(orasIn("repo", "ls", "--plain-http", addr))
	if !slices.Equal(ls, []string{"team/app", "team/copy"}) {
		t.Errorf("oras repo ls as dev: %q", ls)
	}
	// logged out, oras pulls what anyone may pull and nothing else
	mustClient(t, h, "", "oras", "logout", addr)
	r.pushImage("public/site", "v1", nil)
	orasIn("manifest", "fetch", "--plain-http", addr+"/public/site:v1")
	if out, err := clientIn(t, h, work, "oras", "manifest", "fetch", "--plain-http", addr+"/team/app:v1"); err == nil {
		t.Errorf("oras fetched team/app without credentials:\n%s", out)
	}
}

func TestRegctl(t *testing.T) {
	r := startRegistry(t, teamPolicy)
	h := clienttest.NewHome(t)
	addr := r.srv.Addr
	desc, _ := r.pushImage("team/app", "v1", nil)
	mustClient(t, h, "", "regctl", "registry", "set", "--tls", "disabled", addr)
	if out, err := client(t, h, "not-the-password\n", "regctl", "registry", "login", "-u", "dev", "--pass-stdin", addr); err == nil {
		t.Fatalf("regctl registry login with a wrong password succeeded:\n%s", out)
	}
	mustClient(t, h, passwords["dev"]+"\n", "regctl", "registry", "login", "-u", "dev", "--pass-stdin", addr)
	if tags := mustClient(t, h, "", "regctl", "tag", "ls", addr+"/team/app"); strings.TrimSpace(tags) != "v1" {
		t.Errorf("regctl tag ls: %q", tags)
	}
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "prov.yaml"), "provenance: graft e2e\n")
	mustClient(t, h, "", "regctl", "artifact", "put", "--artifact-type", "application/yaml", "-f", filepath.Join(work, "prov.yaml"),
		"--subject", addr+"/team/app@"+desc.Digest.String())
	tree := mustClient(t, h, "", "regctl", "artifact", "tree", "--format", "{{jsonPretty .}}", addr+"/team/app:v1")
	if !strings.Contains(tree, "application/yaml") {
		t.Errorf("regctl artifact tree lacks the artifact: %s", tree)
	}
	if out, err := client(t, h, "", "regctl", "image", "copy", addr+"/team/app:v1", addr+"/other/app:v1"); err == nil {
		t.Errorf("regctl copied into other/app, which dev may not push:\n%s", out)
	}
}

func TestCrane(t *testing.T) {
	r := startRegistry(t, teamPolicy)
	h := clienttest.NewHome(t)
	addr := r.srv.Addr
	r.pushImage("team/app", "v1", nil)
	r.pushImage("secret/app", "v1", nil)
	mustClient(t, h, passwords["dev"]+"\n", "crane", "auth", "login", addr, "-u", "dev", "--password-stdin")
	if ls := mustClient(t, h, "", "crane", "--insecure", "ls", addr+"/team/app"); strings.TrimSpace(ls) != "v1" {
		t.Errorf("crane ls: %q", ls)
	}
	mustClient(t, h, "", "crane", "--insecure", "copy", addr+"/team/app:v1", addr+"/team/mirror:v1")
	cat := strings.Fields(mustClient(t, h, "", "crane", "--insecure", "catalog", addr))
	if !slices.Equal(cat, []string{"team/app", "team/mirror"}) {
		t.Errorf("crane catalog as dev: %q", cat)
	}
	if out, err := client(t, h, "", "crane", "--insecure", "manifest", addr+"/secret/app:v1"); err == nil {
		t.Errorf("crane read secret/app as dev:\n%s", out)
	}
}

func TestSkopeo(t *testing.T) {
	r := startRegistry(t, teamPolicy)
	h := clienttest.NewHome(t)
	addr := r.srv.Addr
	r.pushImage("team/base", "v1", nil)
	creds := "dev:" + passwords["dev"]
	out := mustClient(t, h, "", "skopeo", "inspect", "--tls-verify=false", "--creds", creds, "docker://"+addr+"/team/base:v1")
	var info struct{ Architecture string }
	if json.Unmarshal([]byte(out), &info); info.Architecture != "amd64" {
		t.Errorf("skopeo inspect: %s", out)
	}
	mustClient(t, h, "", "skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", creds, "--dest-creds", creds, "docker://"+addr+"/team/base:v1", "docker://"+addr+"/team/copy:v1")
	if resp := r.do(http.MethodGet, "/v2/team/copy/manifests/v1", as("admin"), nil); resp.Status != http.StatusOK {
		t.Errorf("skopeo's copy is not there: %s", resp)
	}
	if out, err := client(t, h, "", "skopeo", "inspect", "--tls-verify=false", "--creds", "dev:wrong", "docker://"+addr+"/team/base:v1"); err == nil {
		t.Errorf("skopeo inspect with a wrong password succeeded:\n%s", out)
	}
	if out, err := client(t, h, "", "skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", creds, "--dest-creds", "outsider:"+passwords["outsider"],
		"docker://"+addr+"/team/base:v1", "docker://"+addr+"/team/stolen:v1"); err == nil {
		t.Errorf("skopeo copied as outsider:\n%s", out)
	}
}

// TestCosign signs and verifies with the credentials a login left in the docker
// config, as CI does.
func TestCosign(t *testing.T) {
	r := startRegistry(t, teamPolicy)
	h := clienttest.NewHome(t)
	addr := r.srv.Addr
	desc, _ := r.pushImage("team/app", "v1", nil)
	mustClient(t, h, passwords["dev"]+"\n", "crane", "auth", "login", addr, "-u", "dev", "--password-stdin")
	work := t.TempDir()
	env := []string{"COSIGN_PASSWORD=", "COSIGN_EXPERIMENTAL=1", "TUF_MIRROR=http://127.0.0.1:1"}
	runIn(t, h, work, env, "", "cosign", "generate-key-pair")
	ref := addr + "/team/app@" + desc.Digest.String()
	runIn(t, h, work, env, "", "cosign", "sign", "-y", "--key", "cosign.key", "--tlog-upload=false",
		"--registry-referrers-mode=oci-1-1", "--allow-insecure-registry", ref)
	out := runIn(t, h, work, env, "", "cosign", "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true",
		"--experimental-oci11=true", "--allow-insecure-registry", ref)
	if !strings.Contains(out, desc.Digest.String()) {
		t.Errorf("cosign verify did not report the signature:\n%s", out)
	}
	// the signature is a referrer of the image, in team/app
	resp := r.do(http.MethodGet, "/v2/team/app/referrers/"+desc.Digest.String(), as("dev"), nil)
	if resp.Status != 200 || !strings.Contains(string(resp.Body), "application/vnd.dev.cosign.artifact.sig.v1+json") {
		t.Errorf("referrers after cosign sign: %s", resp)
	}
	// without the credentials, cosign cannot sign
	if out, err := run(t, clienttest.NewHome(t), work, env, "", "cosign", "sign", "-y", "--key", "cosign.key", "--tlog-upload=false",
		"--registry-referrers-mode=oci-1-1", "--allow-insecure-registry", ref); err == nil {
		t.Errorf("cosign signed without credentials:\n%s", out)
	}
}

// TestRepositoryTokenWithClients: a repository-scoped token is the password of its
// name with any client, does what it was given and nothing else, and stops at once
// when revoked.
func TestRepositoryTokenWithClients(t *testing.T) {
	r := startRegistry(t, teamPolicy)
	addr := r.srv.Addr
	r.pushImage("team/app", "v1", nil)
	r.pushImage("other/app", "v1", nil)
	secret := strings.TrimSpace(graft(t, "", "token", "create", "ci", "--repo", "team/*", "--action", "pull,push",
		"--expires", "720h", "--config", r.config, "--data-dir", r.srv.DataDir))
	list := graft(t, "", "token", "list", "-o", "json", "--config", r.config, "--data-dir", r.srv.DataDir)
	if strings.Contains(list, secret) || !strings.Contains(list, `"team/*"`) || !strings.Contains(list, `"expires"`) {
		t.Errorf("graft token list: %s", list)
	}
	if _, errOut, err := graftCmd(t, "", nil, "token", "create", "dev", "--repo", "x", "--action", "pull",
		"--config", r.config, "--data-dir", r.srv.DataDir); err == nil || !strings.Contains(errOut, "user") {
		t.Errorf("a token named like a user: %v %s", err, errOut)
	}

	h := clienttest.NewHome(t)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "f.txt"), "pushed with a token\n")
	mustClient(t, h, secret+"\n", "oras", "login", "--plain-http", "-u", "ci", "--password-stdin", addr)
	mustClientIn(t, h, work, "oras", "push", "--plain-http", addr+"/team/ci:v1", "f.txt")
	mustClientIn(t, h, work, "oras", "manifest", "fetch", "--plain-http", addr+"/team/app:v1")
	if out, err := clientIn(t, h, work, "oras", "manifest", "fetch", "--plain-http", addr+"/other/app:v1"); err == nil {
		t.Errorf("the team/* token read other/app:\n%s", out)
	}
	if out, err := clientIn(t, h, work, "oras", "manifest", "delete", "--force", "--plain-http", addr+"/team/app:v1"); err == nil {
		t.Errorf("a pull,push token deleted:\n%s", out)
	}
	// graft's own client logs in with it too
	gh := clienttest.NewHome(t)
	_, errOut, err := graftCmd(t, secret+"\n", []string{"HOME=" + gh, "DOCKER_CONFIG=" + filepath.Join(gh, ".docker")},
		"login", addr, "-u", "ci", "--password-stdin")
	if err != nil {
		t.Errorf("graft login with a token: %v\n%s", err, errOut)
	}

	graft(t, "", "token", "revoke", "ci", "--config", r.config, "--data-dir", r.srv.DataDir)
	if out, err := clientIn(t, h, work, "oras", "manifest", "fetch", "--plain-http", addr+"/team/app:v1"); err == nil {
		t.Errorf("a revoked token still works:\n%s", out)
	}
	if strings.Contains(r.srv.Log(), secret) {
		t.Error("the server logged a token secret")
	}
}

// clientIn is client run in dir.
func clientIn(t *testing.T, h, dir, name string, args ...string) (string, error) {
	t.Helper()
	return run(t, h, dir, nil, "", name, args...)
}

func mustClientIn(t *testing.T, h, dir, name string, args ...string) string {
	t.Helper()
	return runIn(t, h, dir, nil, "", name, args...)
}

func runIn(t *testing.T, h, dir string, env []string, stdin, name string, args ...string) string {
	t.Helper()
	out, err := run(t, h, dir, env, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

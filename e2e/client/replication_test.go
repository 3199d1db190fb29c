package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/clienttest"
	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/graftest"
	"github.com/graft-registry/graft/internal/scaletest"
	"github.com/graft-registry/graft/internal/webhook"
)

// receiver is a webhook receiver on loopback: it keeps every event it is sent, once
// per id, and refuses (500) while down.
type receiver struct {
	URL    string
	secret []byte
	mu     sync.Mutex
	seen   map[string]bool
	events []events.CloudEvent
	bad    []string
	down   bool
}

func startReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	rc := &receiver{secret: []byte(secret), seen: map[string]bool{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(rc.serve)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	rc.URL = "http://" + l.Addr().String() + "/hook"
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.down {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	if err != nil || r.Header.Get("Content-Type") != "application/cloudevents+json" ||
		!webhook.Verify(rc.secret, body, r.Header.Get(webhook.SignatureHeader)) {
		rc.bad = append(rc.bad, fmt.Sprintf("%s %s: %s", r.Header.Get("Content-Type"), r.Header.Get(webhook.SignatureHeader), body))
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	var e events.CloudEvent
	if err := json.Unmarshal(body, &e); err != nil || e.ID != r.Header.Get("Idempotency-Key") {
		rc.bad = append(rc.bad, "not an event with its id as the key: "+string(body))
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	if !rc.seen[e.ID] {
		rc.seen[e.ID] = true
		rc.events = append(rc.events, e)
	}
	w.WriteHeader(http.StatusNoContent)
}

// got lists the events received as "type subject".
func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, e := range rc.events {
		out = append(out, e.Type+" "+e.Subject)
	}
	return out
}

// eventually polls cond until it holds, failing the test after a minute.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	t.Fatalf("%s: not after 90s; last:\n%s", what, last)
}

// consumerStatus is a consumer as /graft/v1/_events reports it.
type consumerStatus struct {
	Name      string `json:"name"`
	Backlog   int64  `json:"backlog"`
	Failures  int64  `json:"failures"`
	LastError string `json:"lastError"`
}

func eventStatus(t *testing.T, addr string) map[string]consumerStatus {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/graft/v1/_events")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out struct{ Consumers []consumerStatus }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("/graft/v1/_events: %v", err)
	}
	m := map[string]consumerStatus{}
	for _, c := range out.Consumers {
		m[c.Name] = c
	}
	return m
}

// TestReplication pushes an image with the graph supply-chain tools make by default
// and in OCI 1.1 mode (cosign signatures and attestations by tag and by subject, an
// SBOM with a notation-style signature) to a graft that replicates to another graft
// (under a prefix) and to CNCF distribution (no referrers API: the fallback index),
// and tells a webhook; on the embedded deployment and on two scale-out replicas that
// share the outbox. The graphs at both destinations are the source's as graft, oras
// and regctl read them, cosign verifies there, a destination that was down catches
// up, a source killed with deliveries pending delivers them after its restart (or,
// scaled out, the other replica takes them over), and a delete takes the whole graph
// everywhere.
func TestReplication(t *testing.T) {
	t.Parallel()
	for _, deployment := range []string{"embedded", "scale-out"} {
		t.Run(deployment, func(t *testing.T) {
			t.Parallel()
			testReplication(t, deployment)
		})
	}
}

func testReplication(t *testing.T, deployment string) {
	g := newGraft(t)
	replica := graftest.Start(t)
	dist := clienttest.StartDistribution(t, clienttest.DistributionOptions{})
	hook := startReceiver(t, "s3cret")

	configFile := filepath.Join(t.TempDir(), "graft.yaml")
	config := fmt.Sprintf(`events:
  webhooks:
  - name: audit
    url: %s
    secret: s3cret
replication:
- name: replica
  url: http://%s
  prefix: copy
  delete: true
- name: distribution
  url: http://%s
  repositories: ["team/**"]
  delete: true
`, hook.URL, replica.Addr, dist.Addr)
	var sources []*graftest.Server
	var addr string
	if deployment == "scale-out" {
		config += scaletest.YAML(scaletest.Config(t))
	}
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if deployment == "scale-out" {
		sources = []*graftest.Server{graftest.Start(t, "--config", configFile), graftest.Start(t, "--config", configFile)}
		addr = graftest.StartRoundRobin(t, sources...)
	} else {
		sources = []*graftest.Server{graftest.Start(t, "--config", configFile)}
		addr = sources[0].Addr
	}
	source := struct{ Addr string }{addr}

	image := source.Addr + "/team/app"
	d := digestOf(t, strings.TrimSpace(g.Must("copy", buildImage(t, g, "layout"), image+":v1")))
	g.mustCosign("generate-key-pair")
	g.cosignSign(image + "@" + d)
	g.cosignSign(image+"@"+d, "--registry-referrers-mode=oci-1-1")
	g.WriteFile("predicate.json", `{"builder":"graft e2e"}`)
	g.mustCosign(slices.Concat([]string{"attest", "-y", "--key", "cosign.key", "--tlog-upload=false", "--type", "custom",
		"--predicate", "predicate.json"}, cosignLoopback, []string{image + "@" + d})...)
	sbom, _ := attachGraph(t, g, image+"@"+d)
	g.WriteFile("notation.sig", "a notation signature envelope\n")
	g.Must("attach", image+"@"+d, "notation.sig:application/jose+json", "--artifact-type", "application/vnd.cncf.notary.signature")
	want := g.discover(image + ":v1").shape()
	if n := strings.Count(want, "\n"); n != 7 {
		t.Fatalf("the source's graph has %d nodes, want 7:\n%s", n, want)
	}

	copies := map[string]string{"replica": replica.Addr + "/copy/team/app", "distribution": dist.Addr + "/team/app"}
	trees := map[string][2]string{}
	for name, ref := range copies {
		eventually(t, "the graph at "+name, func() (bool, string) {
			r := g.Run("", "discover", "-o", "json", ref+":v1")
			if r.Code != 0 {
				return false, r.Stderr
			}
			var n graphNode
			if err := json.Unmarshal([]byte(r.Stdout), &n); err != nil {
				return false, err.Error()
			}
			return n.shape() == want, n.shape() + "\nwant:\n" + want
		})
		// oras and regctl read the destination's referrers as the source's
		host, _, _ := strings.Cut(ref, "/")
		for _, view := range []struct{ host, ref string }{{source.Addr, image + ":v1"}, {host, ref + ":v1"}} {
			var orasView graphNode
			out := g.mustTool("oras", "discover", "--plain-http", "--format", "json", view.ref)
			if err := json.Unmarshal([]byte(out), &orasView); err != nil {
				t.Fatalf("oras discover: %v\n%s", err, out)
			}
			var regctlView regctlNode
			out = g.mustTool("regctl", "--host", "reg="+view.host+",tls=disabled", "artifact", "tree", "--format", "{{json .}}", view.ref)
			if err := json.Unmarshal([]byte(out), &regctlView); err != nil {
				t.Fatalf("regctl artifact tree: %v\n%s", err, out)
			}
			trees[name+" "+view.ref] = [2]string{sortedLines(orasView.referrersShape()), sortedLines(regctlView.referrersShape())}
		}
		if src, dst := trees[name+" "+image+":v1"], trees[name+" "+ref+":v1"]; src != dst || src[0] == "" {
			t.Errorf("%s: oras discover and regctl artifact tree at the source:\n%s\n%s\nat the destination:\n%s\n%s", name, src[0], src[1], dst[0], dst[1])
		}
		if out, err := g.cosignVerify(ref + "@" + d); err != nil || !strings.Contains(out, d) {
			t.Errorf("%s: cosign verify: %v\n%s", name, err, out)
		}
		if out, err := g.cosignVerify(ref+"@"+d, "--experimental-oci11=true"); err != nil || !strings.Contains(out, d) {
			t.Errorf("%s: cosign verify of the OCI 1.1 signature: %v\n%s", name, err, out)
		}
		if out, err := g.cosign(slices.Concat([]string{"verify-attestation", "--key", "cosign.pub", "--insecure-ignore-tlog=true",
			"--type", "custom"}, cosignLoopback, []string{ref + "@" + d})...); err != nil {
			t.Errorf("%s: cosign verify-attestation: %v\n%s", name, err, out)
		}
		g.Must("manifest", "get", ref+"@"+digestOf(t, sbom))
	}
	// the second rule matches team/** only
	g.Must("copy", image+":v1", source.Addr+"/other/app:v1")
	eventually(t, "other/app at the replica", func() (bool, string) {
		r := g.Run("", "manifest", "get", replica.Addr+"/copy/other/app:v1")
		return r.Code == 0, r.Stderr
	})
	if r := g.Run("", "manifest", "get", dist.Addr+"/other/app:v1"); r.Code == 0 {
		t.Errorf("other/app reached distribution, whose rule is for team/** only")
	}

	// a destination down: the rule records its failures and catches up once it is back
	replica.Stop()
	g.Must("tag", "add", image+":v1", "v2")
	eventually(t, "a failure recorded", func() (bool, string) {
		st := eventStatus(t, source.Addr)["replication:replica"]
		return st.Failures > 0 && st.Backlog > 0 && st.LastError != "", fmt.Sprintf("%+v", st)
	})
	replica.Restart()
	eventually(t, "v2 at the replica", func() (bool, string) {
		r := g.Run("", "manifest", "get", copies["replica"]+":v2")
		return r.Code == 0, r.Stderr
	})

	// a source killed with events pending: they are in its outbox, and go after a restart
	hook.mu.Lock()
	hook.down = true
	hook.mu.Unlock()
	g.Must("tag", "add", image+":v1", "v3")
	sources[0].Kill()
	hook.mu.Lock()
	hook.down = false
	hook.mu.Unlock()
	if deployment == "embedded" {
		sources[0].Restart()
	} else {
		// the other replica takes the leases over once the dead one's run out
		source.Addr = sources[1].Addr
		image = source.Addr + "/team/app"
	}
	for name, ref := range copies {
		eventually(t, "v3 at "+name+" after the source's restart", func() (bool, string) {
			r := g.Run("", "manifest", "get", ref+":v3")
			return r.Code == 0, r.Stderr
		})
	}

	// a delete takes the graph at every destination
	g.Must("delete", "--yes", image+":v1")
	for name, ref := range copies {
		eventually(t, "the delete at "+name, func() (bool, string) {
			for _, tag := range []string{"v1", "v2", "v3"} {
				if r := g.Run("", "manifest", "get", ref+":"+tag); r.Code == 0 {
					return false, tag + " is still there"
				}
			}
			for _, a := range []string{d, digestOf(t, sbom)} {
				if r := g.Run("", "manifest", "get", ref+"@"+a); r.Code == 0 {
					return false, a + " is still there"
				}
			}
			return true, ""
		})
	}
	if tags := strings.Fields(g.Run("", "tag", "list", copies["distribution"]).Stdout); len(tags) != 0 {
		t.Errorf("tags left at distribution after the delete: %v", tags)
	}

	// the webhook: every change once (by id), each signed
	eventually(t, "the webhook's events", func() (bool, string) {
		got := hook.got()
		pushes := 0
		for _, e := range got {
			if strings.HasPrefix(e, events.ManifestPushed+" team/app") {
				pushes++
			}
		}
		ok := pushes >= 7 && slices.Contains(got, events.ManifestDeleted+" team/app@"+d) &&
			slices.Contains(got, events.ManifestPushed+" other/app@"+d)
		return ok, strings.Join(got, "\n")
	})
	hook.mu.Lock()
	if len(hook.bad) > 0 {
		t.Errorf("the receiver refused deliveries:\n%s", strings.Join(hook.bad, "\n"))
	}
	hook.mu.Unlock()
	for name, st := range eventStatus(t, source.Addr) {
		if st.Backlog != 0 {
			t.Errorf("%s: backlog %d after everything arrived", name, st.Backlog)
		}
	}
}

// TestReplicateExisting copies what a registry held before its replication rule with
// graft replicate: every tagged image of the repositories the rule covers, with its
// tag-schema signature and its referrers, to CNCF distribution; run again, it copies
// nothing.
func TestReplicateExisting(t *testing.T) {
	t.Parallel()
	g := newGraft(t)
	source := graftest.Start(t)
	dist := clienttest.StartDistribution(t, clienttest.DistributionOptions{})
	image := source.Addr + "/team/app"
	d := digestOf(t, strings.TrimSpace(g.Must("copy", buildImage(t, g, "layout"), image+":v1")))
	pushTagSchemaSignature(t, g, image, d, "team/app")
	attachGraph(t, g, image+"@"+d)
	g.Must("copy", image+":v1", source.Addr+"/elsewhere/app:v1")
	want := g.discover(image + ":v1").shape()

	configFile := filepath.Join(t.TempDir(), "graft.yaml")
	config := fmt.Sprintf("replication:\n- name: dist\n  url: http://%s\n  repositories: [\"team/**\"]\n  prefix: backup\n", dist.Addr)
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	replicate := []string{"replicate", "--config", configFile, "--data-dir", source.DataDir, "--rule", "dist", "--all", "-o", "json"}
	var first, second struct {
		Repositories []string
		Copied       struct{ Manifests, Present int }
	}
	if err := json.Unmarshal([]byte(g.Must(replicate...)), &first); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first.Repositories, []string{"team/app"}) || first.Copied.Manifests != 4 {
		t.Errorf("graft replicate: %+v, want team/app alone and 4 manifests (the image, its signature, the SBOM and its signature)", first)
	}
	if got := g.discover(dist.Addr + "/backup/team/app:v1").shape(); got != want {
		t.Errorf("the graph at the destination:\n%s\nwant:\n%s", got, want)
	}
	if err := json.Unmarshal([]byte(g.Must(replicate...)), &second); err != nil {
		t.Fatal(err)
	}
	if second.Copied.Manifests != 0 || second.Copied.Present == 0 {
		t.Errorf("graft replicate again: %+v, want nothing copied", second)
	}
	g.Fail(2, "replicate", "--config", configFile, "--data-dir", source.DataDir, "--rule", "nosuch", "--all")
	g.Fail(2, "replicate", "--config", configFile, "--data-dir", source.DataDir, "--rule", "dist")
	g.Fail(2, "replicate", "--config", configFile, "--data-dir", source.DataDir, "--rule", "dist", "elsewhere/app")
}

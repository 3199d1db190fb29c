package retention

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

// nightlyPolicy keeps the newest nightly-* tag of each repository under ci/, and has
// graft serve collect every second with no grace period.
const nightlyPolicy = `retention:
  - name: nightly
    repositories: ["ci/**"]
    keep-tags: {match: ["nightly-*"], last: 1, order: pushed}
gc:
  interval: 1s
  delay: 0s
`

func TestPeriodicRetention(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) { testPeriodicRetention(t, d.start(t, "")) })
}

// testPeriodicRetention: graft serve's periodic collection applies the retention
// policies too. Three nightly builds are pushed (the first with an SBOM from oras
// attach, the second signed by cosign) while no server collects; a server started on
// the same stores with the policy and no grace period then removes the two older
// nightly tags with their graphs (waited for by polling, within minutes), keeps the
// newest and the tags the policy does not match, logs the run's counts with the
// policy's, and counts what the policy removed in its metrics.
func testPeriodicRetention(t *testing.T, r *registry) {
	const repo = "ci/app"
	s := newSigner(t, r)
	var nightly []string
	for i, content := range []string{"first", "second", "third"} {
		tag := "nightly-" + string(rune('1'+i))
		nightly = append(nightly, tag)
		r.pushImage(t, repo, tag, linuxAMD64, content+" nightly build")
	}
	r.pushImage(t, repo, "stable", linuxAMD64, "a stable build")
	first, second, third := r.resolve(t, repo, nightly[0]), r.resolve(t, repo, nightly[1]), r.resolve(t, repo, nightly[2])
	s.attachSBOM(r.ref(repo, first), "sbom of the first nightly")
	s.cosignSign(false, r.ref(repo, second))
	s.attachSBOM(r.ref(repo, third), "sbom of the third nightly")

	r.stop()
	srv := r.serveAgain(t, nightlyPolicy)
	// The run that removes the tags logs its counts when it ends.
	deadline := time.Now().Add(3 * time.Minute) // a bound for a busy machine, never a margin a pass depends on
	for !srv.loggedGC(t, 2) {
		if time.Now().After(deadline) {
			t.Fatalf("3 minutes after graft serve started collecting every second, no run logged the removal of 2 tags:\n%s",
				srv.servers[0].Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	wantSet(t, "the tags of "+repo+" after the periodic collection", srv.Tags(t, repo), []string{nightly[2], "stable"})
	// The graphs went with the tags, in the same run: the signature tag, the SBOM.
	for _, d := range []string{first.String(), second.String()} {
		apitest.CheckError(t, "GET "+d, srv.Do(t, http.MethodGet, manifestPath(repo, d), nil, "Accept", apitest.AcceptManifests),
			http.StatusNotFound, "MANIFEST_UNKNOWN")
	}
	if refs := srv.Referrers(t, repo, first); len(refs) != 0 {
		t.Errorf("the referrers of the first nightly are %v, want none: it is gone", digestsOf(refs))
	}
	if refs := srv.Referrers(t, repo, third); len(refs) != 1 {
		t.Errorf("the referrers of the newest nightly are %v, want its SBOM", digestsOf(refs))
	}
	for _, tag := range []string{nightly[2], "stable"} {
		srv.pullsCompletely(t, repo, tag)
	}

	metrics := string(srv.Want(t, http.StatusOK, http.MethodGet, "/metrics", nil).Body)
	if want := `graft_retention_removed_total{kind="tags",policy="nightly"} 2`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics has no %s:\n%s", want, metrics)
	}
}

// serveAgain starts one graft serve on r's stores (after r.stop) with serve (YAML)
// added to its configuration file, and returns it as a registry of its own.
func (r *registry) serveAgain(t *testing.T, serve string) *registry {
	t.Helper()
	path := writeConfig(t, r.dir, "serve-again.yaml", r.stores+serve)
	args := []string{"--config", path}
	if r.stores == "" {
		args = append(args, "--data-dir", r.servers[0].DataDir)
	}
	srv := graftest.Start(t, args...)
	return &registry{Client: srv.Client, Addr: srv.Addr, servers: []*graftest.Server{srv}, stores: r.stores,
		admin: []string{"--data-dir", srv.DataDir}, dir: r.dir}
}

// loggedGC reports whether a periodic collection of r's server logged that it removed
// tags tags; it fails the test unless that run counted them under the policy nightly.
func (r *registry) loggedGC(t *testing.T, tags int) bool {
	t.Helper()
	for _, line := range strings.Split(r.servers[0].Log(), "\n") {
		var rec struct {
			Msg       string         `json:"msg"`
			Tags      int            `json:"tags"`
			Retention map[string]int `json:"retention"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "garbage collection" && rec.Tags == tags {
			if rec.Retention["nightly"] < tags {
				t.Errorf("the run that removed %d tags logged %s, want them counted under the policy nightly", tags, line)
			}
			return true
		}
	}
	return false
}

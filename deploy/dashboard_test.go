// Package deploy holds what runs graft elsewhere (the Dockerfile's build, Kubernetes
// manifests, a Grafana dashboard); its tests check them against the code.
package deploy_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/registrytest"
)

// scrape serves what graft serve serves, with access control on, pushes an image,
// fails a login and collects garbage, so that every series exists; and returns
// /metrics.
func scrape(t *testing.T) []byte {
	t.Helper()
	d := registrytest.StartDaemon(t, io.Discard, registrytest.Admin("admin", "pw"))
	c := apitest.NewClient(d.URL)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:pw"))
	im := apitest.NewImage(t, ocispec.Platform{OS: "linux", Architecture: "amd64"}, "layer")
	c.PushImage(t, "dash/app", "v1", im, "Authorization", basic)
	c.Want(t, http.StatusOK, http.MethodGet, "/v2/dash/app/blobs/"+im.Layers[0].Desc.Digest.String(), nil, "Authorization", basic)
	c.Want(t, http.StatusUnauthorized, http.MethodGet, "/v2/", nil, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:wrong")))
	if _, err := d.Registry.GC(t.Context(), daemon.GCOptions(d.Config)); err != nil {
		t.Fatal(err)
	}
	return c.Want(t, http.StatusOK, http.MethodGet, "/metrics", nil).Body
}

// Every metric the dashboard asks for is one graft serves.
func TestDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana/graft-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is no JSON: %v", err)
	}

	body := scrape(t)
	served := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllSubmatch(body, -1) {
		name := string(m[1])
		served[name] = true
		if string(m[2]) == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				served[name+s] = true
			}
		}
	}
	metricName := regexp.MustCompile(`\b(?:graft|go|process)_[a-z_]+\b`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range metricName.FindAllString(tg.Expr, -1) {
				used[name] = true
				if !served[name] {
					t.Errorf("panel %q asks for %s, which graft does not serve", p.Title, name)
				}
			}
		}
	}
	for _, name := range []string{"graft_blob_bytes_total", "graft_storage_bytes", "graft_repositories", "graft_manifests",
		"graft_tags", "graft_upload_sessions", "graft_auth_failures_total", "graft_http_request_duration_seconds_bucket"} {
		if !used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
	if strings.Contains(string(b), "${DS_") {
		t.Error("the dashboard names an exported data source input; it should use its datasource variable")
	}
}

package server_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/registrytest"
)

// The health endpoints: /healthz while the process serves, /readyz while both stores
// answer, and 503 naming the store that does not.
func TestHealth(t *testing.T) {
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		run(t, srv, []call{
			{method: http.MethodGet, target: "/healthz", status: http.StatusOK,
				headers: map[string]string{"Content-Type": "application/json"}, answer: []byte(`{"status":"ok"}`)},
			{method: http.MethodHead, target: "/healthz", status: http.StatusOK},
			{method: http.MethodGet, target: "/readyz", status: http.StatusOK, answer: []byte(`{"status":"ready"}`)},
			{method: http.MethodPost, target: "/readyz", status: http.StatusMethodNotAllowed,
				headers: map[string]string{"Allow": "GET, HEAD"}},
		})
		// The metadata store goes away: the process is alive, not ready, and says why.
		if err := srv.Stores.Meta.Close(); err != nil {
			t.Fatal(err)
		}
		srv.Want(t, http.StatusOK, http.MethodGet, "/healthz", nil)
		r := srv.Want(t, http.StatusServiceUnavailable, http.MethodGet, "/readyz", nil)
		var a struct {
			Status  string   `json:"status"`
			Failing []string `json:"failing"`
		}
		if err := json.Unmarshal(r.Body, &a); err != nil || a.Status != "unavailable" || strings.Join(a.Failing, ",") != "metadata" {
			t.Errorf("readyz with the metadata store closed: %s (%v), want status unavailable, failing [metadata]", r.Body, err)
		}
		if !strings.Contains(srv.Log(), `"part":"metadata"`) {
			t.Errorf("the failing store is not logged:\n%s", srv.Log())
		}
	})
}

func TestReadyNamesTheBlobStore(t *testing.T) {
	srv := registrytest.Start(t, registrytest.SQLite)
	if err := os.RemoveAll(filepath.Join(srv.Config.DataDir, "blobs")); err != nil {
		t.Fatal(err)
	}
	r := srv.Want(t, http.StatusServiceUnavailable, http.MethodGet, "/readyz", nil)
	if want := `{"status":"unavailable","failing":["blobs"]}`; string(r.Body) != want {
		t.Errorf("readyz without the blob directory: %s, want %s", r.Body, want)
	}
}

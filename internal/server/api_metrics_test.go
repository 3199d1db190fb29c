package server_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	kinds "github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/registrytest"
)

// metric is the value of the series of /metrics that matches series exactly.
func metric(t *testing.T, body []byte, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Errorf("/metrics has no %s", series)
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// The registry's own gauges and counters after a push, a signature and a pull; and the
// Go and process collectors.
func TestRegistryMetrics(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "metrics/app"
		im := apitest.NewImage(t, linuxAMD64, "a layer of some bytes")
		srv.PushImage(t, repo, "v1", im)
		payload := apitest.NewBlob(kinds.MediaTypeCosignSimpleSigning, []byte(`{"critical":{}}`))
		empty := apitest.NewBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
		srv.PushBlobs(t, repo, []apitest.Blob{payload, empty})
		subject := im.Desc()
		sig := apitest.NewBlob(ocispec.MediaTypeImageManifest,
			apitest.ImageManifest(empty.Desc, []ocispec.Descriptor{payload.Desc}, kinds.MediaTypeCosignSignature, &subject))
		srv.PushManifest(t, repo, sig.Desc.Digest.String(), sig)
		srv.StartUpload(t, repo) // one session left open
		layer := im.Layers[0]
		srv.Want(t, http.StatusOK, http.MethodGet, "/v2/"+repo+"/blobs/"+layer.Desc.Digest.String(), nil)

		pushed := int64(0)
		for _, b := range append(im.Blobs(), payload, empty) {
			pushed += b.Desc.Size
		}
		r := srv.Want(t, http.StatusOK, http.MethodGet, "/metrics", nil)
		for series, want := range map[string]float64{
			`graft_blob_bytes_total{direction="in"}`:  float64(pushed),
			`graft_blob_bytes_total{direction="out"}`: float64(layer.Desc.Size),
			`graft_repositories`:                      1,
			`graft_manifests{kind="image"}`:           1,
			`graft_manifests{kind="signature"}`:       1,
			`graft_tags`:                              1,
			`graft_upload_sessions`:                   1,
			`graft_storage_bytes`:                     float64(pushed + im.Manifest.Desc.Size + sig.Desc.Size),
		} {
			if got := metric(t, r.Body, series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
		for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
			if !regexp.MustCompile(`(?m)^` + name + ` `).Match(r.Body) {
				t.Errorf("/metrics has no %s", name)
			}
		}

		// A delete takes its part from the gauges.
		srv.Want(t, http.StatusAccepted, http.MethodDelete, "/v2/"+repo+"/manifests/"+sig.Desc.Digest.String(), nil)
		r = srv.Want(t, http.StatusOK, http.MethodGet, "/metrics", nil)
		if got := metric(t, r.Body, `graft_manifests{kind="image"}`); got != 1 {
			t.Errorf("images after deleting the signature: %v", got)
		}
		if regexp.MustCompile(`(?m)^graft_manifests\{kind="signature"\} [1-9]`).Match(r.Body) {
			t.Error(fmt.Sprintf("the deleted signature is still counted:\n%s", r.Body))
		}
	})
}

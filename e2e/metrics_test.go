package e2e

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

// TestMetrics: /metrics serves the request counters in the Prometheus text format,
// counting what was asked.
func TestMetrics(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	for range 3 {
		srv.Do(t, http.MethodGet, "/v2/", nil)
	}
	srv.Do(t, http.MethodGet, "/v2/nothing/here/manifests/v1", nil)
	r := srv.Do(t, http.MethodGet, "/metrics", nil)
	apitest.WantStatus(t, "GET /metrics", r, http.StatusOK)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^graft_http_requests_total\{endpoint="base",method="GET",status="200"\} 3$`),
		regexp.MustCompile(`(?m)^graft_http_requests_total\{endpoint="manifest",method="GET",status="404"\} 1$`),
		regexp.MustCompile(`(?m)^graft_http_request_duration_seconds_count\{endpoint="base",method="GET"\} 3$`),
	} {
		if !want.Match(r.Body) {
			t.Errorf("/metrics does not match %s:\n%s", want, r)
		}
	}
}

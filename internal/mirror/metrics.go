package mirror

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	upstream *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	stale    *prometheus.CounterVec
	joins    *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_mirror_upstream_requests_total",
			Help: "Requests of mirrors to their upstreams, by mirror (its prefix), what was asked (manifest, tag: a HEAD of a tag held, blob, blob_stat: a HEAD of a blob, referrers) and outcome (ok, not_found, error).",
		}, []string{"mirror", "kind", "outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_mirror_upstream_blob_bytes_total",
			Help: "Bytes of blobs mirrors fetched from their upstreams and stored.",
		}, []string{"mirror"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_mirror_stale_total",
			Help: "Tags and referrers a mirror served as it held them because its upstream could not be asked.",
		}, []string{"mirror", "kind"}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_mirror_blob_joins_total",
			Help: "Blob pulls that joined a fetch another pull started (reading along, or waiting for the store), rather than fetching again.",
		}, []string{"mirror"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.upstream, m.bytes, m.stale, m.joins}
}

// outcome is the label of an upstream request's result.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case isNotFound(err):
		return "not_found"
	}
	return "error"
}

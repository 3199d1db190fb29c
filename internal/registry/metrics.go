package registry

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// statsCollector serves the registry-wide gauges from the counters the metadata store
// keeps as it changes (metastore.StatsReader): one small read per scrape, whatever the
// size of the registry.
type statsCollector struct {
	r *Registry
}

var (
	repositoriesDesc = prometheus.NewDesc("graft_repositories", "Repositories in the registry.", nil, nil)
	manifestsDesc    = prometheus.NewDesc("graft_manifests", "Manifests in the registry, by kind (image, index, signature, sbom, attestation, artifact, ...).", []string{"kind"}, nil)
	tagsDesc         = prometheus.NewDesc("graft_tags", "Tags in the registry.", nil, nil)
	storageDesc      = prometheus.NewDesc("graft_storage_bytes",
		"Bytes of the blobs and manifests the repositories hold; a blob that several repositories may read counts in each.", nil, nil)
	uploadsDesc = prometheus.NewDesc("graft_upload_sessions", "Blob upload sessions under way.", nil, nil)
)

// statsTimeout bounds a scrape's read of the counters.
const statsTimeout = 5 * time.Second

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{repositoriesDesc, manifestsDesc, tagsDesc, storageDesc, uploadsDesc} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := c.r.meta.Stats(ctx)
	if err != nil {
		// The other metrics still serve; the gauges are missing from this scrape.
		c.r.log.Warn("metrics: reading the registry's counters", "err", err)
		return
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	gauge(repositoriesDesc, st.Repositories)
	gauge(tagsDesc, st.Tags)
	gauge(storageDesc, st.Size)
	gauge(uploadsDesc, st.Uploads)
	for kind, n := range st.Manifests {
		if kind == "" {
			kind = "unknown" // stored before kinds were, not yet classified
		}
		gauge(manifestsDesc, n, kind)
	}
}

package registry

import (
	"path/filepath"
	"testing"

	"github.com/graft-registry/graft/internal/blobstore/fs"
	"github.com/graft-registry/graft/internal/blobstore/s3"
	"github.com/graft-registry/graft/internal/metastore/postgres"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
	"github.com/graft-registry/graft/internal/scaletest"
)

// deployment is a pair of stores a test runs the registry on.
type deployment struct {
	name string
	open func(t *testing.T) *Registry
}

// deployments are the pairs of stores graft runs on: the embedded one always, the
// scale-out one when the test environment names its servers.
func deployments(t *testing.T) []deployment {
	return []deployment{{name: "embedded", open: func(t *testing.T) *Registry { return openEmbedded(t) }}, {name: "scale-out", open: func(t *testing.T) *Registry { return openScaleOut(t) }}}
}

// openScaleOut opens a fresh scale-out deployment: S3 and PostgreSQL, or skips.
func openScaleOut(t testing.TB) *Registry {
	t.Helper()
	c := scaletest.NewS3(t)
	url := scaletest.NewPostgres(t)
	blobs, err := s3.Open(t.Context(), s3.Options{Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket,
		Prefix: c.Prefix, ForcePathStyle: true, AccessKey: c.AccessKey, SecretKey: c.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := postgres.Open(t.Context(), postgres.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		meta.Close()
		blobs.Close()
	})
	return New(blobs, meta, Options{Cascade: true})
}

func openEmbedded(t testing.TB) *Registry {
	t.Helper()
	dir := t.TempDir()
	blobs, err := fs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := sqlite.Open(t.Context(), filepath.Join(dir, "graft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		meta.Close()
		blobs.Close()
	})
	return New(blobs, meta, Options{Cascade: true})
}

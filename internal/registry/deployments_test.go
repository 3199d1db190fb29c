package registry

import (
	"path/filepath"
	"testing"

	"github.com/graft-registry/graft/internal/blobstore/fs"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
)

// deployment is a pair of stores a test runs the registry on.
type deployment struct {
	name string
	open func(t *testing.T) *Registry
}

// deployments are the pairs of stores graft runs on: the embedded one always, the
// scale-out one when the test environment names its servers.
func deployments(t *testing.T) []deployment {
	return []deployment{{name: "embedded", open: openEmbedded}}
}

func openEmbedded(t *testing.T) *Registry {
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

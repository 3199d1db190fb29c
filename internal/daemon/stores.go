package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/blobstore/fs"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
	"github.com/graft-registry/graft/internal/registry"
)

// Stores are the blob store and the metadata store a configuration names.
type Stores struct {
	Blobs blobstore.Store
	Meta  metastore.Store
	// BlobsAt and MetaAt say where they are, for logs; never with credentials.
	BlobsAt, MetaAt string
}

// Open opens the stores cfg names: the data dir's unless S3 or PostgreSQL is set.
func Open(ctx context.Context, cfg *config.Config) (*Stores, error) {
	st := &Stores{}
	if cfg.Storage.S3.Bucket == "" || cfg.Metadata.Postgres.URL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	var err error
	st.Blobs, st.BlobsAt, err = openBlobs(ctx, cfg)
	if err != nil {
		return nil, err
	}
	st.Meta, st.MetaAt, err = openMeta(ctx, cfg)
	if err != nil {
		st.Blobs.Close()
		return nil, err
	}
	return st, nil
}

func openBlobs(ctx context.Context, cfg *config.Config) (blobstore.Store, string, error) {
	b, err := fs.Open(cfg.DataDir)
	if err != nil {
		return nil, "", err
	}
	return b, cfg.DataDir, nil
}

func openMeta(ctx context.Context, cfg *config.Config) (metastore.Store, string, error) {
	path := filepath.Join(cfg.DataDir, "graft.db")
	m, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, "", err
	}
	return m, path, nil
}

// Close closes both stores.
func (s *Stores) Close() error {
	return errors.Join(s.Meta.Close(), s.Blobs.Close())
}

// NewRegistry returns the registry service cfg describes, on st.
func NewRegistry(st *Stores, cfg *config.Config, log *slog.Logger) *registry.Registry {
	return registry.New(st.Blobs, st.Meta, registry.Options{
		Cascade:   cfg.Delete.Cascade,
		UploadTTL: cfg.Uploads.TTL,
		Logger:    log,
	})
}

// GCOptions are the garbage collection settings of cfg.
func GCOptions(cfg *config.Config) registry.GCOptions {
	return registry.GCOptions{Delay: cfg.GC.Delay, KeepOrphanReferrers: cfg.GC.OrphanReferrers == "keep"}
}

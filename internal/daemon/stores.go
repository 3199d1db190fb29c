package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/blobstore/fs"
	"github.com/graft-registry/graft/internal/blobstore/s3"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/postgres"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
	"github.com/graft-registry/graft/internal/mirror"
	"github.com/graft-registry/graft/internal/pattern"
	"github.com/graft-registry/graft/internal/registry"
)

// Stores are the blob store and the metadata store a configuration names.
type Stores struct {
	Blobs blobstore.Store
	Meta  metastore.Store
	// BlobsAt and MetaAt say where they are, for logs; never with credentials.
	BlobsAt, MetaAt string
}

// embedded reports whether cfg keeps blobs or metadata in the data directory.
func embedded(cfg *config.Config) bool {
	return cfg.Storage.S3.Bucket == "" || cfg.Metadata.Postgres.URL == ""
}

// Open opens the stores cfg names: the data dir's unless S3 or PostgreSQL is set.
func Open(ctx context.Context, cfg *config.Config) (*Stores, error) {
	st := &Stores{}
	if embedded(cfg) {
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
	if c := cfg.Storage.S3; c.Bucket != "" {
		b, err := s3.Open(ctx, s3.Options{
			Endpoint:       c.Endpoint,
			Region:         c.Region,
			Bucket:         c.Bucket,
			Prefix:         c.Prefix,
			ForcePathStyle: c.ForcePathStyle,
			AccessKey:      c.AccessKey,
			SecretKey:      c.SecretKey,
			PartSize:       int64(c.PartSize),
		})
		if err != nil {
			return nil, "", err
		}
		where := "s3://" + c.Bucket + "/" + c.Prefix
		if c.Endpoint != "" {
			where = c.Endpoint + "/" + c.Bucket + "/" + c.Prefix
		}
		return b, where, nil
	}
	b, err := fs.Open(cfg.DataDir)
	if err != nil {
		return nil, "", err
	}
	return b, cfg.DataDir, nil
}

// OpenMeta opens the metadata store cfg names, alone, for the admin verbs that need no
// blobs (and so no S3 credentials). Unlike Open it creates no data directory: see
// CheckDataDir.
func OpenMeta(ctx context.Context, cfg *config.Config) (metastore.Store, error) {
	if cfg.Metadata.Postgres.URL == "" {
		if err := existingDataDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	m, _, err := openMeta(ctx, cfg)
	return m, err
}

// ErrNoDataDir is the error of an admin verb pointed at a data directory that does not
// exist.
var ErrNoDataDir = errors.New("does not exist")

// CheckDataDir returns an error wrapping ErrNoDataDir when cfg keeps blobs or metadata
// in a data directory that does not exist. Open creates it, as graft serve must on its
// first start; the admin verbs (gc, migrate's source, token) work on a registry that
// is there, and must not start an empty one where a --data-dir was forgotten.
func CheckDataDir(cfg *config.Config) error {
	if cfg.Storage.S3.Bucket != "" && cfg.Metadata.Postgres.URL != "" {
		return nil
	}
	return existingDataDir(cfg.DataDir)
}

func existingDataDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("the data directory %s %w", dir, ErrNoDataDir)
	case err != nil:
		return fmt.Errorf("data dir: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	return nil
}

func openMeta(ctx context.Context, cfg *config.Config) (metastore.Store, string, error) {
	if c := cfg.Metadata.Postgres; c.URL != "" {
		m, err := postgres.Open(ctx, postgres.Options{URL: c.URL, MaxConns: int32(c.MaxConns), Timeout: c.Timeout})
		if err != nil {
			return nil, "", err
		}
		return m, redact(c.URL), nil
	}
	path := filepath.Join(cfg.DataDir, "graft.db")
	m, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, "", err
	}
	return m, path, nil
}

// redact is a connection URL without its password, for logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres"
	}
	return u.Redacted()
}

// Close closes both stores.
func (s *Stores) Close() error {
	return errors.Join(s.Meta.Close(), s.Blobs.Close())
}

// NewRegistry returns the registry service cfg describes, on st.
func NewRegistry(st *Stores, cfg *config.Config, log *slog.Logger) (*registry.Registry, error) {
	return newRegistry(st, cfg, nil, log)
}

// newRegistry is NewRegistry, telling published when a change that wrote events has
// committed.
func newRegistry(st *Stores, cfg *config.Config, published func(), log *slog.Logger) (*registry.Registry, error) {
	retention, err := Retention(cfg)
	if err != nil {
		return nil, err
	}
	immutable, err := ImmutableTags(cfg)
	if err != nil {
		return nil, err
	}
	mirrors, err := Mirrors(cfg)
	if err != nil {
		return nil, err
	}
	opts := RegistryOptions(cfg, log)
	opts.Retention, opts.ImmutableTags = retention, immutable
	opts.Events, opts.Published = followed(cfg), published
	opts.ReadOnly = mirror.ReadOnly(mirrors)
	return registry.New(st.Blobs, st.Meta, opts), nil
}

// RegistryOptions are the registry service's settings cfg describes, but for the
// retention policies and immutable tags, which NewRegistry compiles.
func RegistryOptions(cfg *config.Config, log *slog.Logger) registry.Options {
	return registry.Options{
		Cascade:              cfg.Delete.Cascade,
		UploadTTL:            cfg.Uploads.TTL,
		EmptyUploadTTL:       cfg.Uploads.EmptyTTL,
		UploadsPerRepository: cfg.Limits.UploadsPerRepository,
		UploadsPerCaller:     cfg.Limits.UploadsPerCaller,
		Redirect:             cfg.Storage.S3.Redirect,
		TrackPulls:           true,
		Logger:               log,
	}
}

// Retention compiles the retention policies of cfg, naming the first that is wrong.
func Retention(cfg *config.Config) ([]registry.RetentionPolicy, error) {
	if cfg.Retention == nil {
		return nil, nil
	}
	var out []registry.RetentionPolicy
	for i, c := range *cfg.Retention {
		p := registry.RetentionPolicy{
			Name:                    c.Name,
			DeleteTagsOlderThan:     c.DeleteTagsOlderThan,
			DeleteUntaggedOlderThan: c.DeleteUntaggedOlderThan,
			KeepPulledWithin:        c.KeepPulledWithin,
			KeepSigned:              c.KeepSigned,
		}
		if p.Name == "" {
			p.Name = fmt.Sprintf("retention[%d]", i)
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("config: retention policy %s: %s", p.Name, fmt.Sprintf(format, args...))
		}
		var err error
		if len(c.Repositories) == 0 {
			return nil, bad("repositories must name at least one pattern")
		}
		if p.Repositories, err = pattern.Repositories(c.Repositories); err != nil {
			return nil, bad("%v", err)
		}
		if k := c.KeepTags; k != nil {
			if len(k.Match) == 0 || k.Last < 1 {
				return nil, bad("keep-tags needs match (tag patterns) and last (how many to keep, at least 1)")
			}
			if p.KeepTags, err = pattern.Tags(k.Match); err != nil {
				return nil, bad("keep-tags: %v", err)
			}
			p.KeepLast = k.Last
			switch p.Order = registry.TagOrder(k.Order); p.Order {
			case "":
				p.Order = registry.ByPush
			case registry.ByPush, registry.BySemver:
			default:
				return nil, bad("keep-tags.order must be %s or %s, not %q", registry.ByPush, registry.BySemver, k.Order)
			}
		}
		for name, d := range map[string]time.Duration{"delete-tags-older-than": c.DeleteTagsOlderThan,
			"delete-untagged-older-than": c.DeleteUntaggedOlderThan, "keep-pulled-within": c.KeepPulledWithin} {
			if d < 0 {
				return nil, bad("%s must not be negative", name)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// ImmutableTags compiles the immutable tags of cfg.
func ImmutableTags(cfg *config.Config) ([]registry.ImmutableTags, error) {
	if cfg.ImmutableTags == nil {
		return nil, nil
	}
	var out []registry.ImmutableTags
	for i, c := range *cfg.ImmutableTags {
		var (
			it  registry.ImmutableTags
			err error
		)
		if len(c.Repositories) == 0 || len(c.Tags) == 0 {
			return nil, fmt.Errorf("config: immutable-tags[%d]: repositories and tags must each name at least one pattern", i)
		}
		if it.Repositories, err = pattern.Repositories(c.Repositories); err != nil {
			return nil, fmt.Errorf("config: immutable-tags[%d]: %w", i, err)
		}
		if it.Tags, err = pattern.Tags(c.Tags); err != nil {
			return nil, fmt.Errorf("config: immutable-tags[%d]: %w", i, err)
		}
		out = append(out, it)
	}
	return out, nil
}

// GCOptions are the garbage collection settings of cfg.
func GCOptions(cfg *config.Config) registry.GCOptions {
	return registry.GCOptions{Delay: cfg.GC.Delay, KeepOrphanReferrers: cfg.GC.OrphanReferrers == "keep"}
}

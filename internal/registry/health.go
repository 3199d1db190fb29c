package registry

import (
	"context"
	"errors"
	"time"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/metastore"
)

// The parts of the registry a readiness check names.
const (
	PartMetadata = "metadata"
	PartBlobs    = "blobs"
)

// Failure is a part of the registry that does not answer.
type Failure struct {
	Part string
	Err  error
}

// pingTimeout bounds each store's answer to Ready: a probe that waits longer than its
// own timeout learns nothing.
const pingTimeout = 5 * time.Second

// Ready asks each store whether it answers, with the cheap call it has for that
// (metastore.Pinger, blobstore.Pinger), and returns the parts that do not.
func (r *Registry) Ready(ctx context.Context) []Failure {
	var failed []Failure
	check := func(part string, ping func(context.Context) error) {
		ctx, cancel := context.WithTimeout(ctx, pingTimeout)
		defer cancel()
		if err := ping(ctx); err != nil {
			failed = append(failed, Failure{Part: part, Err: err})
		}
	}
	check(PartMetadata, func(ctx context.Context) error {
		if p, ok := r.meta.(metastore.Pinger); ok {
			return p.Ping(ctx)
		}
		// any store answers a lookup of a repository no name can be
		_, err := r.meta.RepositoryAttributes(ctx, "")
		if errors.Is(err, metastore.ErrNotFound) {
			return nil
		}
		return err
	})
	check(PartBlobs, func(ctx context.Context) error {
		if p, ok := r.blobs.(blobstore.Pinger); ok {
			return p.Ping(ctx)
		}
		return nil
	})
	return failed
}

// Package registry is the registry service: the rules of the OCI distribution spec
// (what is valid, what a repository may read, how manifests, tags and referrers relate)
// written once against a blobstore.Store and a metastore.Store.
//
// Every error a method returns is an *errcode.Error, or an internal error that the HTTP
// layer reports without its text.
package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// Options are the registry's settings.
type Options struct {
	// Cascade makes deleting a manifest delete its referrers and the children only it
	// uses, recursively.
	Cascade bool
	// UploadTTL is how long an upload session may go unwritten before it is reclaimed.
	UploadTTL time.Duration
	// EmptyUploadTTL is how long an upload session that holds no bytes is kept; 0
	// means an hour. No longer than UploadTTL counts.
	EmptyUploadTTL time.Duration
	// UploadsPerRepository and UploadsPerCaller bound the upload sessions open at once
	// in one repository and by one caller (an owner StartUpload is given); 0 is no
	// bound.
	UploadsPerRepository, UploadsPerCaller int
	// Redirect answers blob pulls with a URL of the blob store, when it has them
	// (blobstore.Redirector), instead of the bytes.
	Redirect bool
	// TrackPulls keeps when each manifest and tag was last pulled (RecordPull).
	TrackPulls bool
	// Retention are the retention policies garbage collection applies, the first that
	// matches a repository.
	Retention []RetentionPolicy
	// ImmutableTags are the tags no push may move and no delete remove.
	ImmutableTags []ImmutableTags
	// ReadOnly, when set, says why clients may not change repo, or "" when they may:
	// the repositories of a pull-through mirror take only what the mirror fetches
	// (Filler). Garbage collection and retention apply to them as to any.
	ReadOnly func(repo string) string
	// Events writes every change to the outbox of the metadata store, in the change's
	// transaction, for the consumers that follow it (webhooks, replication): manifests
	// pushed and deleted, tags moved and deleted, by clients, cascades, garbage
	// collection and retention. Off, nothing is written there.
	Events bool
	// Published, when set, is told that a change which wrote events has committed, so
	// that this process delivers them at once rather than at its next look.
	Published func()
	Logger    *slog.Logger
}

// Registry is the registry service.
type Registry struct {
	blobs blobstore.Store
	meta  metastore.Store
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	gcm   *gcMetrics
	pulls pulls
	// platforms are the platforms of image configs read before (platform).
	platforms platformCache
	// gcPaused, when set, runs between a collection's mark and its sweep of each phase
	// (manifests, links, blobs), so that tests can race it deterministically.
	gcPaused func(phase, repo string)
}

// New returns a registry over blobs and meta.
func New(blobs blobstore.Store, meta metastore.Store, opts Options) *Registry {
	if opts.UploadTTL <= 0 {
		opts.UploadTTL = 24 * time.Hour
	}
	if opts.EmptyUploadTTL <= 0 {
		opts.EmptyUploadTTL = time.Hour
	}
	opts.EmptyUploadTTL = min(opts.EmptyUploadTTL, opts.UploadTTL)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{blobs: blobs, meta: meta, opts: opts, log: log, now: time.Now, gcm: newGCMetrics()}
}

// Pagination limits of the listing endpoints.
const (
	// MaxPage is the most entries one page of a listing holds, whatever n asks.
	MaxPage = 10000
	// ReferrersPage is the page size of the referrers API.
	ReferrersPage = 1000
)

func checkName(name string) error {
	if !reference.ValidName(name) {
		return errcode.New(errcode.NameInvalid, "invalid repository name")
	}
	return nil
}

func parseDigest(s string) (digest.Digest, error) {
	d, err := reference.ParseDigest(s)
	if err != nil {
		return "", errcode.New(errcode.DigestInvalid, "invalid digest %q", clip(s))
	}
	return d, nil
}

// clip bounds what of a client's input an error message repeats.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// internal wraps an error of a store with what the registry was doing; its text is
// logged, never shown to the client.
func internal(what string, err error) error {
	var e *errcode.Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Package blobstore defines where a registry keeps the bytes of blobs: a content-addressed
// store in which a blob appears only once it is complete and verified, and the upload
// sessions that create blobs.
//
// Implementations live in subpackages (fs: a local directory; s3: a bucket of an
// S3-compatible store); storetest is the contract test suite every implementation passes.
package blobstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrNotFound is returned for a blob or upload that does not exist.
	ErrNotFound = errors.New("blobstore: not found")
	// ErrDigestMismatch is returned by Commit when the content does not hash to the
	// digest it was committed as. The upload is left as it was.
	ErrDigestMismatch = errors.New("blobstore: content does not match the digest")
	// ErrInvalidID is returned for an upload ID the store never issues.
	ErrInvalidID = errors.New("blobstore: invalid upload ID")
	// ErrUnavailable is in the chain of an error met reaching the store's server (a
	// connection refused, reset or silent past a timeout, or the server's own 5xx),
	// rather than an answer about the blob: a request that meets it may succeed
	// later, unchanged.
	ErrUnavailable = errors.New("blobstore: the blob store is unavailable")
)

// Store holds blobs by digest, each once, and the uploads that create them.
type Store interface {
	Reader
	Uploader
	// Delete removes the blob d. Blobs are shared by every repository: only a garbage
	// collector that knows no repository uses d calls it.
	Delete(ctx context.Context, d digest.Digest) error
	// Walk calls fn for every blob, in no particular order, until fn returns an error.
	Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error
	Close() error
}

// Reader reads blobs.
type Reader interface {
	// Stat returns the size of blob d, or ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open opens blob d for reading, or returns ErrNotFound.
	Open(ctx context.Context, d digest.Digest) (*Blob, error)
}

// Blob is an open blob.
type Blob struct {
	io.ReadSeekCloser
	Size int64
}

// Uploader creates blobs through upload sessions. A session survives a restart of the
// process; while one caller has it open, others wait for it (Resume blocks).
type Uploader interface {
	// NewUpload starts an empty upload session and opens it.
	NewUpload(ctx context.Context) (Upload, error)
	// Resume opens the existing session id, waiting for whoever has it open until ctx
	// ends; it returns ErrNotFound for an unknown session and ErrInvalidID for an ID
	// this store would never issue.
	Resume(ctx context.Context, id string) (Upload, error)
	// Uploads calls fn with the ID and the time of the last write of every session,
	// so that stale ones can be cancelled.
	Uploads(ctx context.Context, fn func(id string, modified time.Time) error) error
}

// Upload is an open upload session. Commit, Cancel or Close ends the caller's use of it;
// Close after Commit or Cancel does nothing, so `defer u.Close()` is always right.
type Upload interface {
	// ID names the session for Resume.
	ID() string
	// Size is the number of bytes written so far.
	Size() int64
	// Append writes everything r yields at the end of the upload. It is all or
	// nothing: when reading r or writing fails, the upload keeps its former size.
	Append(ctx context.Context, r io.Reader) (int64, error)
	// Commit checks that the content hashes to d and makes it the blob d, durably,
	// then removes the session. A blob d that already exists is kept and the upload
	// discarded. On ErrDigestMismatch the session is left open for Cancel or Close.
	Commit(ctx context.Context, d digest.Digest) (int64, error)
	// Cancel discards the session and its bytes.
	Cancel(ctx context.Context) error
	// Close releases the session, which stays resumable.
	Close() error
}

// Putter is a Store that can write a blob whose digest is known before its bytes in one
// pass, with no upload session to copy from: an object store streams it straight to
// where it stays.
type Putter interface {
	// Put stores what r yields as blob d. It checks the digest before the blob becomes
	// visible and returns ErrDigestMismatch, storing nothing, when it does not match.
	// A blob d that already exists is kept.
	Put(ctx context.Context, d digest.Digest, r io.Reader) (int64, error)
}

// Redirector is a Store whose blobs clients may fetch from elsewhere, by a URL that
// works for a while without credentials.
type Redirector interface {
	// URL returns where blob d may be fetched for ttl.
	URL(ctx context.Context, d digest.Digest, ttl time.Duration) (string, error)
}

// Pinger is a Store that can tell cheaply whether it answers: a readiness probe asks it
// every few seconds.
type Pinger interface {
	// Ping returns an error when the store does not answer.
	Ping(ctx context.Context) error
}

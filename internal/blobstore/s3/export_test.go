package s3

import (
	"context"
	"net/http"
	"time"

	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/graft-registry/graft/internal/blobstore"
)

// OpenWithHTTPClient opens a store whose requests go through hc.
func OpenWithHTTPClient(ctx context.Context, o Options, hc *http.Client) (*Store, error) {
	return open(ctx, o, hc)
}

// OpenWithoutRetries opens a store whose requests go through hc and are never retried:
// a request that fails is the end of the operation, as a crash would be.
func OpenWithoutRetries(ctx context.Context, o Options, hc *http.Client) (*Store, error) {
	return open(ctx, o, hc, func(so *s3api.Options) { so.RetryMaxAttempts = 1 })
}

// Client is the store's S3 client, to look at the bucket behind its back.
func Client(s *Store) *s3api.Client { return s.c }

// SetLeaseTTL shortens the lease, so that a takeover happens within a test.
func SetLeaseTTL(s *Store, d time.Duration) { s.leaseTTL = d }

// SetCopyLimit makes the store copy objects over limit bytes in parts of part bytes.
func SetCopyLimit(s *Store, limit, part int64) { s.copyLimit, s.copyPartSize = limit, part }

// StopRenewal stops renewing the lease of u, as if its process had frozen.
func StopRenewal(u blobstore.Upload) { u.(*upload).stopRenewal() }

// CompleteOnly completes the multipart upload of u and stops there, as a commit that
// crashed before recording it would.
func CompleteOnly(ctx context.Context, up blobstore.Upload) error {
	u := up.(*upload)
	return u.complete(ctx, u.state())
}

// MaxTail is how many tail objects a session keeps before merging them.
const MaxTail = maxTail

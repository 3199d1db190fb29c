// Package s3 is a blobstore.Store in a bucket of any S3-compatible object store, shared
// by every replica of a scale-out deployment.
//
// Layout under the prefix (no key is a directory-prefix of another, which file-backed
// servers such as Versity's POSIX gateway cannot hold):
//
//	blobs/<algorithm>/<hex>         a blob: its bytes, or an empty pointer to its data object
//	data/<id>                       the bytes of a blob that upload session <id> made
//	uploads/<id>/state              an upload session: its size, hash state, parts, lease
//	uploads/<id>/tail-<hex>         bytes not yet in a part, in the order the state lists
//
// A session keeps everything in the bucket, so a PATCH may land on any replica. Bytes
// stream into a multipart upload at data/<id>, one part (Options.PartSize) at a time,
// hashed on the way; what does not fill a part waits in tail objects until it does. An
// upload holds two part buffers at most (one is read from the client while the other is
// sent), whatever the blob's size. The state object is the session's single point of
// truth: an append sends its parts and tail first and rewrites the state last, so an
// append that fails leaves the session as it was, and the parts it sent, which no state
// records, are overwritten by the next append under the same numbers. A blob has at most
// 10,000 parts: 156 GiB with the default part size; an append that ends with 5 MiB or
// more left over sends it as a shorter part rather than rewrite it as tail, so a client
// that pushes chunks of 5 MiB to a part's size gets parts of its chunk size, and that
// many times 10,000 bytes at most.
//
// # Sessions across processes
//
// The state object doubles as a lease. Opening a session writes the holder's token into
// it with a conditional PUT (If-Match on the ETag read), and every later write of the
// state is conditional too, so two processes never both believe they hold a session: a
// second process waits, as Resume does in one process, until the holder closes it. A
// holder renews the lease in the background; a holder that died stops renewing, and its
// lease is taken over once the state has not been written for the lease time (30s), as
// measured by the server's own clock (its Date header against the object's
// Last-Modified), so clock skew between replicas does not matter. A holder stops sending
// parts once its last renewal is older than 5/6 of the lease time; one that was frozen
// past that finds its next state write refused and fails, and a part it sent meanwhile
// is caught by CompleteMultipartUpload, which refuses parts whose ETags differ from
// those the state recorded. All this needs conditional PUTs (If-Match, If-None-Match),
// which AWS S3 and Versity support; on a server that ignores them, two processes may use
// one session at once unnoticed.
//
// # Commits
//
// A commit verifies the digest from the saved sha256 state (other algorithms read the
// content back), then makes the blob without copying it: a session still all in its tail
// is copied or put in place with no multipart upload (it is smaller than a part); a
// larger one completes its multipart upload where it was written, at data/<id>, records
// the digest in its state, and writes a pointer at the blob's key: an empty object whose
// metadata (graft-data, graft-size) names the data object and its size. The pointer is
// written only if the key is free (If-None-Match), and last, so the blob appears whole
// and verified or not at all. Reads, stats, deletes, walks and presigned URLs follow the
// pointer; a blob whose digest is known up front (Put, a monolithic push) is written
// straight into a multipart upload at its own key, completed only once the digest
// matched. Either way a push writes its bytes once.
//
// A session whose state records a digest is done but for its pointer: it refuses
// appends, and whatever ends it (the commit again, a cancel, the janitor) writes the
// pointer before it removes the session, for its bytes are whole and verified and a
// pointer may still be on its way from a holder that was cut off. Its data object is
// removed only when the blob is found stored otherwise; any other session's with it.
// Deleting a pointer's blob removes the pointer first, then the data object; a crash
// between the two leaves the data object unreferenced and unread.
//
// A session completed to read its content back, for a digest it then did not match, is
// turned back into parts by UploadPartCopy if it is appended to. Sessions that stores
// before this layout began (state version 1) have their multipart upload at
// uploads/<id>/data; their commit still copies the completed object to the blob's key,
// by UploadPartCopy beyond CopyObject's 5 GiB.
//
// A multipart upload orphaned by a crash (between its creation and the state write that
// records it, or in the middle of a Put) is invisible and never read; a bucket lifecycle
// rule that aborts incomplete multipart uploads after a day reclaims its space.
package s3

import (
	"bytes"
	"context"
	_ "crypto/sha512" // sha384 and sha512 digests
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
)

const (
	// DefaultPartSize is the part size when Options.PartSize is 0.
	DefaultPartSize = 16 << 20
	// MinPartSize is the smallest part S3 accepts before the last one.
	MinPartSize = 5 << 20
	// maxPartSize is the largest part S3 accepts.
	maxPartSize = 5 << 30
	// maxParts is the most parts one multipart upload may have.
	maxParts = 10_000
)

// Options say where the store is.
type Options struct {
	// Endpoint is the URL of an S3-compatible server; empty means AWS.
	Endpoint string
	// Region defaults to the AWS configuration's (AWS_REGION), and to us-east-1 for an
	// Endpoint, which S3-compatible servers mostly ignore.
	Region string
	Bucket string
	// Prefix is put before every key, so that several registries may share a bucket.
	Prefix string
	// ForcePathStyle addresses the bucket in the URL path instead of the host name, as
	// MinIO, Versity and Ceph need.
	ForcePathStyle bool
	// AccessKey and SecretKey, when set, replace the AWS default credential chain.
	AccessKey, SecretKey string
	// PartSize is the size of the parts of multipart uploads, and how much memory an
	// upload holds at most (twice that: one part is read while the one before is sent).
	// 0 means DefaultPartSize; it must be at least MinPartSize.
	PartSize int64
}

// Store is a blobstore.Store in an S3 bucket.
type Store struct {
	c        *s3api.Client
	presign  *s3api.PresignClient
	bucket   string
	prefix   string
	partSize int64
	// leaseTTL is how long a session stays held without a renewal of its lease.
	leaseTTL time.Duration
	locks    sessionLocks
	bufs     sync.Pool // *[]byte of partSize
	// copyLimit is the largest object CopyObject copies; larger ones are copied in
	// parts of copyPartSize (or more, to stay within maxParts).
	copyLimit, copyPartSize int64
}

var (
	_ blobstore.Store      = (*Store)(nil)
	_ blobstore.Putter     = (*Store)(nil)
	_ blobstore.Redirector = (*Store)(nil)
)

// defaultLeaseTTL bounds how long a session whose holder died stays blocked; the holder
// renews three times as often.
const defaultLeaseTTL = 30 * time.Second

// cleanupTimeout bounds the requests that tidy up after an operation whose context may
// have ended: aborting a multipart upload, removing a session.
const cleanupTimeout = time.Minute

// Open opens the store o describes and checks that its bucket is reachable with the
// credentials at hand.
func Open(ctx context.Context, o Options) (*Store, error) {
	return open(ctx, o, nil)
}

// open opens the store o describes; tests send its requests through hc, and change its
// client's options with more.
func open(ctx context.Context, o Options, hc *http.Client, more ...func(*s3api.Options)) (*Store, error) {
	if o.Bucket == "" {
		return nil, errors.New("blobstore: s3: no bucket given")
	}
	partSize := o.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < MinPartSize || partSize > maxPartSize {
		return nil, fmt.Errorf("blobstore: s3: part size %d is outside [%d, %d], the sizes S3 accepts", partSize, MinPartSize, maxPartSize)
	}
	if (o.AccessKey == "") != (o.SecretKey == "") {
		return nil, errors.New("blobstore: s3: an access key needs its secret key, and the other way round")
	}
	var lo []func(*config.LoadOptions) error
	if o.Region != "" {
		lo = append(lo, config.WithRegion(o.Region))
	}
	if o.AccessKey != "" {
		lo = append(lo, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, "")))
	}
	lo = append(lo, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		// All requests go to one endpoint: keep a connection for each upload and read
		// in flight instead of the SDK's 10, beyond which every request dials anew.
		tr.MaxIdleConnsPerHost = 256
		boundTransport(tr)
	})))
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("blobstore: s3: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if o.Endpoint == "" {
			return nil, errors.New("blobstore: s3: no region: set the region or AWS_REGION")
		}
		cfg.Region = "us-east-1"
	}
	c := s3api.NewFromConfig(cfg, func(so *s3api.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.ForcePathStyle
		if hc != nil {
			so.HTTPClient = hc
		}
		so.Retryer = retryer()
		so.APIOptions = append(so.APIOptions, markUnavailable)
		// Checksums only where an operation requires one: many S3-compatible servers
		// reject the CRC headers the SDK sends by default. Bodies are still covered by
		// the SigV4 payload hash over HTTP and by TLS otherwise, and every blob by its
		// digest.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		for _, f := range more {
			f(so)
		}
	})
	s := &Store{
		c:            c,
		presign:      s3api.NewPresignClient(c),
		bucket:       o.Bucket,
		prefix:       normalizePrefix(o.Prefix),
		partSize:     partSize,
		leaseTTL:     defaultLeaseTTL,
		copyLimit:    5 << 30,
		copyPartSize: 512 << 20,
	}
	s.bufs.New = func() any { b := make([]byte, s.partSize); return &b }
	if err := s.checkBucket(ctx, o.Endpoint, cfg.Region); err != nil {
		return nil, err
	}
	return s, nil
}

func normalizePrefix(p string) string {
	p = strings.TrimLeft(p, "/")
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// Ping implements blobstore.Pinger: the bucket answers a HEAD.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.c.HeadBucket(ctx, &s3api.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		return fmt.Errorf("blobstore: s3: bucket %s: %w", s.bucket, err)
	}
	return nil
}

var _ blobstore.Pinger = (*Store)(nil)

// checkBucket says, in terms an operator can act on, why the bucket cannot be used.
func (s *Store) checkBucket(ctx context.Context, endpoint, region string) error {
	_, err := s.c.HeadBucket(ctx, &s3api.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	where := endpoint
	if where == "" {
		where = "AWS region " + region
	}
	switch status(err) {
	case http.StatusNotFound:
		return fmt.Errorf("blobstore: s3: bucket %q does not exist at %s: %w", s.bucket, where, err)
	case http.StatusForbidden:
		return fmt.Errorf("blobstore: s3: access to bucket %q at %s denied; check the credentials and the bucket policy: %w", s.bucket, where, err)
	case http.StatusMovedPermanently:
		return fmt.Errorf("blobstore: s3: bucket %q is not in region %s: %w", s.bucket, region, err)
	case 0:
		return fmt.Errorf("blobstore: s3: cannot reach bucket %q at %s: %w", s.bucket, where, err)
	}
	return fmt.Errorf("blobstore: s3: bucket %q at %s: %w", s.bucket, where, err)
}

// Close implements blobstore.Store. The client holds nothing that needs closing, and
// sessions still open stay resumable.
func (s *Store) Close() error { return nil }

func (s *Store) blobKey(d digest.Digest) string {
	return s.prefix + "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func (s *Store) blobsPrefix() string { return s.prefix + "blobs/" }

func (s *Store) uploadsPrefix() string { return s.prefix + "uploads/" }

func (s *Store) sessionPrefix(id string) string { return s.uploadsPrefix() + id + "/" }

func (s *Store) stateKey(id string) string { return s.sessionPrefix(id) + "state" }

// dataKey is where session id's multipart upload is, and the blob it makes stays.
func (s *Store) dataKey(id string) string { return s.prefix + "data/" + id }

// legacyDataKey is where the multipart upload of a session of state version 1 is.
func (s *Store) legacyDataKey(id string) string { return s.sessionPrefix(id) + "data" }

func (s *Store) tailKey(id, name string) string { return s.sessionPrefix(id) + "tail-" + name }

// copySource names key of the bucket as CopyObject and UploadPartCopy want it.
func (s *Store) copySource(key string) *string {
	parts := strings.Split(s.bucket+"/"+key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return aws.String(strings.Join(parts, "/"))
}

// The metadata of a pointer: the ID of the session whose data object holds the blob, and
// the blob's size. S3 hands user metadata back with lowercase names.
const (
	metaData = "graft-data"
	metaSize = "graft-size"
)

// location is where the bytes of a blob are: at its own key, or at the data object its
// pointer names.
type location struct {
	key     string
	size    int64
	pointer bool
}

// locate finds blob d with one HEAD of its key.
func (s *Store) locate(ctx context.Context, d digest.Digest) (location, error) {
	if d.Validate() != nil {
		return location{}, blobstore.ErrNotFound
	}
	key := s.blobKey(d)
	out, err := s.c.HeadObject(ctx, &s3api.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return location{}, wrap(err, "stat blob %s", d)
	}
	return s.resolve(d, key, aws.ToInt64(out.ContentLength), out.Metadata)
}

// resolve reads the object at key, of size bytes with metadata md, as blob d.
func (s *Store) resolve(d digest.Digest, key string, size int64, md map[string]string) (location, error) {
	id, ok := md[metaData]
	if !ok {
		return location{key: key, size: size}, nil
	}
	n, err := strconv.ParseInt(md[metaSize], 10, 64)
	if err != nil || n < 0 || size != 0 || !validID(id) {
		return location{}, fmt.Errorf("blobstore: s3: blob %s: a pointer this store did not write (%s=%q, %s=%q, %d bytes)",
			d, metaData, id, metaSize, md[metaSize], size)
	}
	return location{key: s.dataKey(id), size: n, pointer: true}, nil
}

// link writes the pointer that makes the data object of session id, size bytes, blob d,
// if d's key is free. It reports whether d is that data object now: false when the blob
// was stored otherwise.
func (s *Store) link(ctx context.Context, d digest.Digest, id string, size int64) (bool, error) {
	key := s.blobKey(d)
	for range 3 {
		_, err := s.c.PutObject(ctx, &s3api.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(nil), ContentLength: aws.Int64(0),
			Metadata:    map[string]string{metaData: id, metaSize: strconv.FormatInt(size, 10)},
			IfNoneMatch: aws.String("*"),
		})
		if err == nil {
			return true, nil
		}
		if !isConflict(err) {
			return false, wrap(err, "link blob %s", d)
		}
		// Stored meanwhile, or by a retry of this very write, whose answer was lost.
		loc, err := s.locate(ctx, d)
		switch {
		case err == nil:
			return loc.pointer && loc.key == s.dataKey(id), nil
		case !errors.Is(err, blobstore.ErrNotFound):
			return false, err
		}
		// deleted meanwhile: try again
	}
	return false, fmt.Errorf("blobstore: s3: link blob %s: its key keeps changing", d)
}

// Stat implements blobstore.Reader.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	loc, err := s.locate(ctx, d)
	return loc.size, err
}

// Open implements blobstore.Reader. The blob is fetched by ranged GETs as it is read,
// under ctx: a Seek costs nothing until the next Read, and what is not read is not
// downloaded.
func (s *Store) Open(ctx context.Context, d digest.Digest) (*blobstore.Blob, error) {
	loc, err := s.locate(ctx, d)
	if err != nil {
		return nil, err
	}
	return &blobstore.Blob{ReadSeekCloser: &reader{ctx: ctx, s: s, key: loc.key, size: loc.size}, Size: loc.size}, nil
}

// URL implements blobstore.Redirector: a presigned GET of the object that holds the
// blob's bytes, found with a HEAD. A blob that is missing gets the URL of its own key,
// which answers 404.
func (s *Store) URL(ctx context.Context, d digest.Digest, ttl time.Duration) (string, error) {
	loc, err := s.locate(ctx, d)
	switch {
	case errors.Is(err, blobstore.ErrNotFound) && d.Validate() == nil:
		loc.key = s.blobKey(d)
	case err != nil:
		return "", err
	}
	req, err := s.presign.PresignGetObject(ctx, &s3api.GetObjectInput{Bucket: &s.bucket, Key: &loc.key},
		s3api.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("blobstore: s3: presign %s: %w", d, err)
	}
	return req.URL, nil
}

// Delete implements blobstore.Store: the blob's key first, so that it is gone at once,
// then the data object a pointer named.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	// S3 deletes a missing key without complaint: ask first.
	loc, err := s.locate(ctx, d)
	if err != nil {
		return err
	}
	if _, err := s.c.DeleteObject(ctx, &s3api.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.blobKey(d))}); err != nil {
		return wrap(err, "delete blob %s", d)
	}
	if loc.pointer {
		_, err := s.c.DeleteObject(ctx, &s3api.DeleteObjectInput{Bucket: &s.bucket, Key: &loc.key})
		return wrap(err, "delete the data of blob %s", d)
	}
	return nil
}

// Walk implements blobstore.Store. A listing does not show metadata: an empty object,
// which may be a pointer, is looked at with a HEAD for its blob's size.
func (s *Store) Walk(ctx context.Context, fn func(digest.Digest, int64) error) error {
	prefix := s.blobsPrefix()
	pages := s3api.NewListObjectsV2Paginator(s.c, &s3api.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return wrap(err, "list blobs")
		}
		for _, o := range page.Contents {
			alg, enc, ok := strings.Cut(strings.TrimPrefix(aws.ToString(o.Key), prefix), "/")
			if !ok {
				continue
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
			if d.Validate() != nil {
				continue // not a blob
			}
			size := aws.ToInt64(o.Size)
			if size == 0 {
				loc, err := s.locate(ctx, d)
				if errors.Is(err, blobstore.ErrNotFound) {
					continue // deleted meanwhile
				}
				if err != nil {
					return err
				}
				size = loc.size
			}
			if err := fn(d, size); err != nil {
				return err
			}
		}
	}
	return nil
}

// wrap maps the not-found errors of S3 to blobstore.ErrNotFound and adds context to the
// others; it returns nil for a nil err.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if isNotFound(err) {
		return blobstore.ErrNotFound
	}
	return fmt.Errorf("blobstore: s3: %s: %w", fmt.Sprintf(format, args...), err)
}

// isNotFound is true for a missing key or multipart upload, not for a missing bucket: a
// bucket that went away is an outage, not an answer.
func isNotFound(err error) bool {
	switch code(err) {
	case "NoSuchKey", "NoSuchUpload", "NotFound":
		return true
	case "NoSuchBucket":
		return false
	}
	return status(err) == http.StatusNotFound && code(err) == ""
}

// isConflict is true when a conditional write lost to another writer.
func isConflict(err error) bool {
	switch code(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	}
	return status(err) == http.StatusPreconditionFailed
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// status is the HTTP status of the response err came from, or 0 if none came.
func status(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/blobstore/s3"
	"github.com/graft-registry/graft/internal/blobstore/storetest"
)

const mib = 1 << 20

// options returns the test server's options with a fresh prefix, so that no two tests
// (nor two runs) see each other's objects, and removes what the test left under it.
func options(tb testing.TB, partSize int64) s3.Options {
	tb.Helper()
	endpoint := requireServer(tb)
	bucket := os.Getenv("GRAFT_TEST_S3_BUCKET")
	if bucket == "" {
		bucket = "graft"
	}
	o := s3.Options{
		Endpoint:       endpoint,
		Region:         os.Getenv("GRAFT_TEST_S3_REGION"),
		Bucket:         bucket,
		Prefix:         "graft-test/" + randomHex(8) + "/",
		ForcePathStyle: true,
		PartSize:       partSize,
	}
	tb.Cleanup(func() { removePrefix(tb, o) })
	return o
}

// requireServer returns the test server's endpoint, or skips the test without one.
func requireServer(tb testing.TB) string {
	tb.Helper()
	endpoint := os.Getenv("GRAFT_TEST_S3_ENDPOINT")
	if endpoint == "" {
		tb.Skip(`GRAFT_TEST_S3_ENDPOINT is not set; start the test server with: eval "$(/work/shared/services/s3.sh start)"`)
	}
	return endpoint
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func open(tb testing.TB, o s3.Options) *s3.Store {
	tb.Helper()
	s, err := s3.Open(context.Background(), o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// removePrefix deletes every object and multipart upload under the test's prefix.
func removePrefix(tb testing.TB, o s3.Options) {
	ctx := context.Background()
	s, err := s3.Open(ctx, o)
	if err != nil {
		tb.Errorf("cleanup: %v", err)
		return
	}
	c := s3.Client(s)
	for _, u := range multipartUploads(tb, c, o) {
		c.AbortMultipartUpload(ctx, &s3api.AbortMultipartUploadInput{Bucket: &o.Bucket, Key: u.Key, UploadId: u.UploadId})
	}
	for _, k := range objects(tb, c, o, "") {
		if _, err := c.DeleteObject(ctx, &s3api.DeleteObjectInput{Bucket: &o.Bucket, Key: aws.String(o.Prefix + k)}); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	}
	if left := objects(tb, c, o, ""); len(left) > 0 {
		tb.Errorf("cleanup: %d objects left under %s", len(left), o.Prefix)
	}
}

// objects lists the keys under the prefix of o and then under, without the prefix.
func objects(tb testing.TB, c *s3api.Client, o s3.Options, under string) []string {
	tb.Helper()
	var keys []string
	pages := s3api.NewListObjectsV2Paginator(c, &s3api.ListObjectsV2Input{Bucket: &o.Bucket, Prefix: aws.String(o.Prefix + under)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			tb.Fatalf("ListObjectsV2: %v", err)
		}
		for _, obj := range page.Contents {
			keys = append(keys, strings.TrimPrefix(aws.ToString(obj.Key), o.Prefix))
		}
	}
	return keys
}

// pointsTo returns the key, without the prefix, of the data object blob d's pointer
// names, or "" when d is no pointer.
func pointsTo(t *testing.T, s *s3.Store, o s3.Options, d digest.Digest) string {
	t.Helper()
	out, err := s3.Client(s).HeadObject(t.Context(), &s3api.HeadObjectInput{Bucket: &o.Bucket,
		Key: aws.String(o.Prefix + "blobs/" + string(d.Algorithm()) + "/" + d.Encoded())})
	if err != nil {
		t.Fatalf("HEAD of blob %s: %v", d, err)
	}
	if id := out.Metadata["graft-data"]; id != "" {
		return "data/" + id
	}
	return ""
}

func multipartUploads(tb testing.TB, c *s3api.Client, o s3.Options) []types.MultipartUpload {
	tb.Helper()
	out, err := c.ListMultipartUploads(context.Background(), &s3api.ListMultipartUploadsInput{Bucket: &o.Bucket, Prefix: &o.Prefix})
	if err != nil {
		tb.Fatalf("ListMultipartUploads: %v", err)
	}
	return out.Uploads
}

// checkClean fails unless the prefix holds exactly the blobs want, each with the data
// object its pointer names if it has one, and nothing else of any upload: no session
// object, no multipart upload.
func checkClean(t *testing.T, s *s3.Store, o s3.Options, want ...digest.Digest) {
	t.Helper()
	c := s3.Client(s)
	got := map[string]bool{}
	for _, k := range objects(t, c, o, "") {
		got[k] = true
	}
	for _, d := range want {
		k := "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
		if !got[k] {
			t.Errorf("blob %s is not at %s", d, k)
		}
		delete(got, k)
		if data := pointsTo(t, s, o, d); data != "" {
			if !got[data] {
				t.Errorf("blob %s points to %s, which is missing", d, data)
			}
			delete(got, data)
		}
	}
	for k := range got {
		t.Errorf("left in the bucket: %s", k)
	}
	for _, u := range multipartUploads(t, c, o) {
		t.Errorf("multipart upload left: %s (%s)", aws.ToString(u.Key), aws.ToString(u.UploadId))
	}
}

func TestStore(t *testing.T) {
	requireServer(t)
	// The smallest part size S3 allows, so that the suite's larger uploads span parts.
	storetest.Run(t, func(t *testing.T) blobstore.Store { return open(t, options(t, s3.MinPartSize)) })
}

func content(seed uint64, n int) []byte {
	b := make([]byte, n)
	chacha(seed).Read(b)
	return b
}

func chacha(seed uint64) *mrand.ChaCha8 {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return mrand.NewChaCha8(s)
}

func appendBytes(t *testing.T, u blobstore.Upload, b []byte) {
	t.Helper()
	before := u.Size()
	n, err := u.Append(t.Context(), bytes.NewReader(b))
	if err != nil || n != int64(len(b)) {
		t.Fatalf("Append(%d bytes) = %d, %v", len(b), n, err)
	}
	if u.Size() != before+n {
		t.Fatalf("Size after Append(%d bytes) to %d = %d", n, before, u.Size())
	}
}

func resume(t *testing.T, s *s3.Store, id string) blobstore.Upload {
	t.Helper()
	u, err := s.Resume(t.Context(), id)
	if err != nil {
		t.Fatalf("Resume(%s): %v", id, err)
	}
	return u
}

func checkBlob(t *testing.T, s *s3.Store, d digest.Digest, want []byte) {
	t.Helper()
	b, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	defer b.Close()
	if b.Size != int64(len(want)) {
		t.Errorf("Open(%s).Size = %d, want %d", d, b.Size, len(want))
	}
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("reading %s: %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("blob %s: read %d bytes that differ from the %d written", d, len(got), len(want))
	}
	if v := d.Algorithm().FromBytes(got); v != d {
		t.Errorf("blob %s reads back as %s", d, v)
	}
}

// TestResumeAcrossStores appends to a session through one store, then more and the
// commit through another, as two replicas behind a load balancer would.
func TestResumeAcrossStores(t *testing.T) {
	o := options(t, s3.MinPartSize)
	a, b := open(t, o), open(t, o)
	data := content(1, 7*mib+123)
	first := 6*mib + 1 // a whole part and a tail

	u, err := a.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	appendBytes(t, u, data[:first])
	id := u.ID()
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	u = resume(t, b, id)
	if u.Size() != int64(first) {
		t.Fatalf("Size after Resume in the other store = %d, want %d", u.Size(), first)
	}
	appendBytes(t, u, data[first:])
	d := digest.FromBytes(data)
	if n, err := u.Commit(t.Context(), d); err != nil || n != int64(len(data)) {
		t.Fatalf("Commit = %d, %v", n, err)
	}
	checkBlob(t, a, d, data)
	checkClean(t, a, o, d)
}

// TestResumeWaitsForOtherStore: a session one process holds is waited for by another.
func TestResumeWaitsForOtherStore(t *testing.T) {
	o := options(t, s3.MinPartSize)
	a, b := open(t, o), open(t, o)
	u, err := a.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	appendBytes(t, u, []byte("held by a,"))

	type result struct {
		u   blobstore.Upload
		err error
	}
	c := make(chan result, 1)
	go func() {
		u, err := b.Resume(t.Context(), u.ID())
		c <- result{u, err}
	}()
	// a goes on writing while b waits.
	appendBytes(t, u, []byte("still held,"))
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-c:
		t.Fatalf("Resume in another store returned (%v) while the session was held", r.err)
	default:
	}
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var r result
	select {
	case r = <-c:
	case <-time.After(time.Minute): // a bound against waiting forever, not a speed
		t.Fatal("Resume in another store still waits a minute after the holder closed the session")
	}
	if r.err != nil {
		t.Fatalf("Resume: %v", r.err)
	}
	want := []byte("held by a,still held,")
	if r.u.Size() != int64(len(want)) {
		t.Fatalf("Size seen by the other store = %d, want %d", r.u.Size(), len(want))
	}
	if _, err := r.u.Commit(t.Context(), digest.FromBytes(want)); err != nil {
		t.Fatalf("Commit: %v", err)
	}

	// A waiter whose context ends gives up.
	u, err = a.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	defer u.Cancel(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if w, err := b.Resume(ctx, u.ID()); err == nil {
		w.Close()
		t.Fatal("Resume with a context that ended opened a session another store holds")
	}
}

// TestLeaseTakeover: a holder that stops renewing its lease (a process that froze or
// died) loses the session to a waiter once the lease runs out, and can no longer write.
func TestLeaseTakeover(t *testing.T) {
	// Long enough that a loaded machine still renews it every third of it.
	const ttl = 3 * time.Second
	o := options(t, s3.MinPartSize)
	a, b := open(t, o), open(t, o)
	s3.SetLeaseTTL(a, ttl)
	s3.SetLeaseTTL(b, ttl)

	u, err := a.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	appendBytes(t, u, []byte("before the freeze,"))
	// A holder that renews keeps the session past the lease time.
	ctx, cancel := context.WithTimeout(t.Context(), 3*ttl/2)
	if w, err := b.Resume(ctx, u.ID()); err == nil {
		w.Close()
		t.Fatal("another store took over a session whose holder renews its lease")
	}
	cancel()

	s3.StopRenewal(u)
	start := time.Now()
	w := resume(t, b, u.ID())
	if waited := time.Since(start); waited > 20*ttl { // a bound against waiting forever, not a speed
		t.Errorf("took the session over after %v, lease %v", waited, ttl)
	}

	if _, err := u.Append(t.Context(), strings.NewReader("written by the frozen holder")); err == nil {
		t.Error("the holder that lost the lease could still append")
	}
	if err := u.Close(); err != nil {
		t.Errorf("Close by the holder that lost the lease: %v", err)
	}
	appendBytes(t, w, []byte("after the takeover"))
	want := []byte("before the freeze,after the takeover")
	if w.Size() != int64(len(want)) {
		t.Fatalf("Size = %d, want %d", w.Size(), len(want))
	}
	d := digest.FromBytes(want)
	if _, err := w.Commit(t.Context(), d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(t, a, d, want)
	checkClean(t, a, o, d)
}

// TestChunksAcrossParts appends chunks that straddle part boundaries, fill one exactly,
// and are tiny, with a Resume between some of them, then checks the blob's bytes and
// that nothing of the session is left.
func TestChunksAcrossParts(t *testing.T) {
	o := options(t, s3.MinPartSize)
	s := open(t, o)
	const part = s3.MinPartSize
	sizes := []int{
		1, 17, part - 18, // exactly one part, from three appends
		3, part, // a whole part straddling a boundary
		1, 1, part - 5, 2 * part, // ending exactly on a boundary, then two parts at once
		7, 100, 1, // tiny ones at the end
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	data := content(2, total)
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	off := 0
	for i, n := range sizes {
		appendBytes(t, u, data[off:off+n])
		off += n
		if i%3 == 2 {
			id := u.ID()
			if err := u.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			u = resume(t, s, id)
			if u.Size() != int64(off) {
				t.Fatalf("Size after Resume = %d, want %d", u.Size(), off)
			}
		}
	}
	d := digest.FromBytes(data)
	if _, err := u.Commit(t.Context(), digest.FromBytes(data[:len(data)-1])); !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Fatalf("Commit of a wrong digest: %v, want ErrDigestMismatch", err)
	}
	if n, err := u.Commit(t.Context(), d); err != nil || n != int64(total) {
		t.Fatalf("Commit = %d, %v; want %d", n, err, total)
	}
	checkBlob(t, s, d, data)
	checkClean(t, s, o, d)
}

// TestChunksAsParts: chunks big enough for parts, if smaller than the part size, go
// straight to parts of their own, never through tail objects.
func TestChunksAsParts(t *testing.T) {
	o := options(t, 8*mib)
	s := open(t, o)
	data := content(15, 3*6*mib+mib)
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	for off := 0; off < len(data); off += 6 * mib {
		appendBytes(t, u, data[off:min(off+6*mib, len(data))])
		var tails []string
		for _, k := range objects(t, s3.Client(s), o, "uploads/"+u.ID()+"/") {
			if strings.Contains(k, "/tail-") {
				tails = append(tails, k)
			}
		}
		if off+6*mib < len(data) && len(tails) > 0 {
			t.Errorf("after %d MiB in 6 MiB chunks: tail objects %q", (off+6*mib)/mib, tails)
		}
	}
	d := digest.FromBytes(data)
	if _, err := u.Commit(t.Context(), d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(t, s, d, data)
	checkClean(t, s, o, d)
}

// TestFailedAppendAfterParts: an append that fails after it sent parts leaves the
// session as it was, and the next append sends its own parts under the same numbers.
func TestFailedAppendAfterParts(t *testing.T) {
	o := options(t, s3.MinPartSize)
	s := open(t, o)
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	before, after := content(10, mib), content(11, 11*mib)
	appendBytes(t, u, before)
	errBroken := errors.New("connection broken")
	failing := io.MultiReader(bytes.NewReader(content(12, 12*mib)), iotestErr{errBroken})
	if n, err := u.Append(t.Context(), failing); !errors.Is(err, errBroken) {
		t.Fatalf("Append from a body that breaks after two parts = %d, %v; want %v", n, err, errBroken)
	}
	if u.Size() != int64(len(before)) {
		t.Fatalf("Size after a failed Append = %d, want %d", u.Size(), len(before))
	}
	appendBytes(t, u, after)
	want := append(bytes.Clone(before), after...)
	d := digest.FromBytes(want)
	if _, err := u.Commit(t.Context(), d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(t, s, d, want)
	checkClean(t, s, o, d)
}

// TestManySmallAppends: each small append adds a tail object, and their number stays
// bounded: past the limit an append merges them.
func TestManySmallAppends(t *testing.T) {
	o := options(t, s3.MinPartSize)
	s := open(t, o)
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	data := content(13, (2*s3.MaxTail+3)*1000)
	most := 0
	for off := 0; off < len(data); off += 1000 {
		appendBytes(t, u, data[off:off+1000])
		n := 0
		for _, k := range objects(t, s3.Client(s), o, "uploads/"+u.ID()+"/") {
			if strings.Contains(k, "/tail-") {
				n++
			}
		}
		most = max(most, n)
	}
	if most > s3.MaxTail {
		t.Errorf("the session had %d tail objects, more than %d", most, s3.MaxTail)
	}
	d := digest.FromBytes(data)
	if _, err := u.Commit(t.Context(), d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(t, s, d, data)
	checkClean(t, s, o, d)
}

// TestCommitAfterCrash: a commit that completed the multipart upload and stopped before
// recording it is finished by the next commit.
func TestCommitAfterCrash(t *testing.T) {
	o := options(t, s3.MinPartSize)
	s := open(t, o)
	data := content(14, 6*mib+3) // a part and a tail
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	appendBytes(t, u, data)
	if err := s3.CompleteOnly(t.Context(), u); err != nil {
		t.Fatalf("completing the upload: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	u = resume(t, s, u.ID())
	d := digest.FromBytes(data)
	if n, err := u.Commit(t.Context(), d); err != nil || n != int64(len(data)) {
		t.Fatalf("Commit after the crash = %d, %v", n, err)
	}
	checkBlob(t, s, d, data)
	checkClean(t, s, o, d)
}

// TestOtherDigestAcrossParts commits a multipart session as sha512, which the saved
// sha256 state cannot check: the content is read back, a mismatch leaves the session
// usable, and appends go on after it.
func TestOtherDigestAcrossParts(t *testing.T) {
	o := options(t, s3.MinPartSize)
	s := open(t, o)
	data := content(3, 11*mib+5)
	sha512Of := func(b []byte) digest.Digest {
		sum := sha512.Sum512(b)
		return digest.NewDigestFromBytes(digest.SHA512, sum[:])
	}
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	first := 10*mib + 3
	appendBytes(t, u, data[:first])
	if _, err := u.Commit(t.Context(), sha512Of(data)); !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Fatalf("Commit of the sha512 of more than was written: %v, want ErrDigestMismatch", err)
	}
	if u.Size() != int64(first) {
		t.Fatalf("Size after a refused Commit = %d, want %d", u.Size(), first)
	}
	id := u.ID()
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	u = resume(t, s, id)
	appendBytes(t, u, data[first:])
	d := sha512Of(data)
	if n, err := u.Commit(t.Context(), d); err != nil || n != int64(len(data)) {
		t.Fatalf("Commit(%s) = %d, %v", d, n, err)
	}
	checkBlob(t, s, d, data)
	checkClean(t, s, o, d)
}

func TestPut(t *testing.T) {
	o := options(t, s3.MinPartSize)
	s := open(t, o)
	var want []digest.Digest
	for _, n := range []int{0, 1000, s3.MinPartSize - 1, s3.MinPartSize, 2 * s3.MinPartSize, 12*mib + 7} {
		data := content(uint64(n), n)
		d := digest.FromBytes(data)
		if got, err := s.Put(t.Context(), d, bytes.NewReader(data)); err != nil || got != int64(n) {
			t.Fatalf("Put(%d bytes) = %d, %v", n, got, err)
		}
		checkBlob(t, s, d, data)
		// Again: the blob is kept, and the body still checked.
		if got, err := s.Put(t.Context(), d, bytes.NewReader(data)); err != nil || got != int64(n) {
			t.Fatalf("Put(%d bytes) again = %d, %v", n, got, err)
		}
		if _, err := s.Put(t.Context(), d, bytes.NewReader(append(bytes.Clone(data), 'x'))); !errors.Is(err, blobstore.ErrDigestMismatch) {
			t.Fatalf("Put of other bytes as an existing blob: %v, want ErrDigestMismatch", err)
		}
		want = append(want, d)
	}
	checkClean(t, s, o, want...)
}

// TestPutWrongDigest: a Put whose bytes do not match leaves no blob and no multipart
// upload, whether it fails on the digest or on the body.
func TestPutWrongDigest(t *testing.T) {
	o := options(t, s3.MinPartSize)
	s := open(t, o)
	for _, n := range []int{10, 12*mib + 3} {
		data := content(5, n)
		wrong := digest.FromBytes(data[1:])
		if _, err := s.Put(t.Context(), wrong, bytes.NewReader(data)); !errors.Is(err, blobstore.ErrDigestMismatch) {
			t.Fatalf("Put(%d bytes) with a wrong digest: %v, want ErrDigestMismatch", n, err)
		}
		if _, err := s.Stat(t.Context(), wrong); !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("Stat after a refused Put: %v, want ErrNotFound", err)
		}
		errBroken := errors.New("connection broken")
		r := io.MultiReader(bytes.NewReader(data), iotestErr{errBroken})
		if _, err := s.Put(t.Context(), digest.FromBytes(data), r); !errors.Is(err, errBroken) {
			t.Fatalf("Put(%d bytes) from a failing body: %v, want %v", n, err, errBroken)
		}
		if _, err := s.Stat(t.Context(), digest.FromBytes(data)); !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("Stat after a failed Put: %v, want ErrNotFound", err)
		}
	}
	checkClean(t, s, o)
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// counting records the GETs a store sends and the body bytes it reads.
type counting struct {
	mu     sync.Mutex
	ranges []string // Range of each GET of a blob, "" for none
	read   atomic.Int64
}

func (c *counting) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
		c.mu.Lock()
		c.ranges = append(c.ranges, req.Header.Get("Range"))
		c.mu.Unlock()
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && req.Method == http.MethodGet {
		resp.Body = &countingBody{resp.Body, &c.read}
	}
	return resp, err
}

func (c *counting) gets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ranges...)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// TestRangedReads: a Seek costs no request, a Read after it asks for the bytes from
// there on, and only what is read is downloaded.
func TestRangedReads(t *testing.T) {
	o := options(t, s3.MinPartSize)
	c := &counting{}
	s, err := s3.OpenWithHTTPClient(t.Context(), o, &http.Client{Transport: c})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	data := content(6, 12*mib)
	d := digest.FromBytes(data)
	if _, err := s.Put(t.Context(), d, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	b, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()
	if got := c.gets(); len(got) != 0 {
		t.Fatalf("Open sent GETs %q, want none before a Read", got)
	}
	read0 := c.read.Load()
	steps := []struct{ off, n int64 }{{10 * mib, 100}, {10*mib + 100, 50}, {5, 10}, {12*mib - 1, 1}}
	for _, st := range steps {
		if _, err := b.Seek(st.off, io.SeekStart); err != nil {
			t.Fatalf("Seek(%d): %v", st.off, err)
		}
		got := make([]byte, st.n)
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatalf("reading %d bytes at %d: %v", st.n, st.off, err)
		}
		if !bytes.Equal(got, data[st.off:st.off+st.n]) {
			t.Errorf("%d bytes at %d differ from the blob's", st.n, st.off)
		}
	}
	// The second read continued the first GET; the others each needed one.
	want := []string{"bytes=10485760-", "bytes=5-", "bytes=12582911-"}
	if got := c.gets(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("GETs sent: %q, want %q", got, want)
	}
	if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want 0, EOF", n, err)
	}
	// Reading 161 bytes may pull in what the connection had buffered, not the 12 MiB.
	if n := c.read.Load() - read0; n > 2*mib {
		t.Errorf("reading 161 bytes downloaded %d bytes", n)
	}
}

// TestMemoryBounded appends, then puts, a blob many times the part size from a reader
// that makes its bytes as it goes: the heap must grow by a few parts at most.
func TestMemoryBounded(t *testing.T) {
	const size = 64 * mib
	const part = s3.MinPartSize
	const limit = 4 * part // two buffers, and the client's and the GC's slack
	o := options(t, part)
	s := open(t, o)
	defer debug.SetGCPercent(debug.SetGCPercent(20))

	d, err := digest.FromReader(io.LimitReader(chacha(7), size))
	if err != nil {
		t.Fatal(err)
	}
	measure := func(name string, f func() error) {
		t.Helper()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var peak atomic.Uint64
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(2 * time.Millisecond)
			defer t.Stop()
			for {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		})
		err := f()
		close(done)
		wg.Wait()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		growth := int64(peak.Load()) - int64(base)
		t.Logf("%s of %d MiB with %d MiB parts: heap grew by %.1f MiB at most", name, size/mib, part/mib, float64(growth)/mib)
		if growth > limit {
			t.Errorf("%s of %d MiB: the heap grew by %d MiB, more than %d MiB", name, size/mib, growth/mib, limit/mib)
		}
	}

	var u blobstore.Upload
	measure("Append", func() error {
		var err error
		if u, err = s.NewUpload(t.Context()); err != nil {
			return err
		}
		_, err = u.Append(t.Context(), io.LimitReader(chacha(7), size))
		return err
	})
	if _, err := u.Commit(t.Context(), d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := s.Delete(t.Context(), d); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	measure("Put", func() error {
		_, err := s.Put(t.Context(), d, io.LimitReader(chacha(7), size))
		return err
	})
	b, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()
	if got, err := digest.FromReader(b); err != nil || got != d {
		t.Errorf("the blob reads back as %s (%v), want %s", got, err, d)
	}
}

func TestURL(t *testing.T) {
	o := options(t, s3.MinPartSize)
	s := open(t, o)
	data := []byte("fetched without credentials")
	d := digest.FromBytes(data)
	if _, err := s.Put(t.Context(), d, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	u, err := s.URL(t.Context(), d, time.Minute)
	if err != nil {
		t.Fatalf("URL: %v", err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("GET of the URL = %d %q, want 200 %q", resp.StatusCode, got, data)
	}
}

func TestOpenErrors(t *testing.T) {
	o := options(t, 0)
	tests := []struct {
		name string
		edit func(o *s3.Options)
		want string
	}{
		{"missing bucket", func(o *s3.Options) { o.Bucket = "no-such-bucket-" + randomHex(4) }, "does not exist"},
		{"wrong secret", func(o *s3.Options) { o.AccessKey, o.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), "wrong" }, "denied"},
		{"nothing listening", func(o *s3.Options) { o.Endpoint = "http://127.0.0.1:1" }, "cannot reach"},
		{"part too small", func(o *s3.Options) { o.PartSize = s3.MinPartSize - 1 }, "part size"},
		{"no bucket", func(o *s3.Options) { o.Bucket = "" }, "no bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := o
			tt.edit(&o)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			s, err := s3.Open(ctx, o)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

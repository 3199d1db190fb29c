package s3_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/blobstore/s3"
)

// faulty is a transport that records the requests a store sends once armed, and fails
// the fail-th of them (counting from 1): before it reaches the server, or, with after,
// once the server has done it and before its answer arrives.
type faulty struct {
	mu    sync.Mutex
	armed bool
	fail  int
	after bool
	log   []request
}

type request struct {
	step string // method and key, with IDs and digests replaced by <id> and <hex>
	copy bool   // a server-side copy: CopyObject or UploadPartCopy
}

var errCrash = errors.New("the process died here")

func (f *faulty) arm(fail int, after bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed, f.fail, f.after, f.log = true, fail, after, nil
}

// disarm returns the requests sent since arm.
func (f *faulty) disarm() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = false
	return f.log
}

var ids = regexp.MustCompile(`[0-9a-f]{64,128}|[0-9a-f]{32}|[0-9a-f]{16}`)

func (f *faulty) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	fail := false
	if f.armed {
		path := req.URL.Path
		if i := strings.Index(path, "/graft-test/"); i >= 0 {
			path = path[i+len("/graft-test/")+17:] // the test's prefix
		}
		var q []string
		for k := range req.URL.Query() {
			if k != "x-id" {
				q = append(q, k)
			}
		}
		step := req.Method + " " + ids.ReplaceAllStringFunc(path, func(m string) string {
			if len(m) >= 64 {
				return "<hex>"
			}
			return "<id>"
		})
		if len(q) > 0 {
			step += "?" + strings.Join(q, "&")
		}
		f.log = append(f.log, request{step: step, copy: req.Header.Get("X-Amz-Copy-Source") != ""})
		fail = len(f.log) == f.fail
	}
	after := f.after
	f.mu.Unlock()
	if fail && !after {
		return nil, errCrash
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if fail && err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errCrash
	}
	return resp, err
}

// TestCommitWithoutCopy: a session in parts commits without copying its bytes: the
// blob's key gets a pointer to where they were written, and reads, stats, walks,
// presigned URLs and the delete all follow it.
func TestCommitWithoutCopy(t *testing.T) {
	o := options(t, s3.MinPartSize)
	f := &faulty{}
	s, err := s3.OpenWithHTTPClient(t.Context(), o, &http.Client{Transport: f})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	data := content(17, 3*s3.MinPartSize+77)
	d := digest.FromBytes(data)
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	appendBytes(t, u, data[:s3.MinPartSize+5])
	appendBytes(t, u, data[s3.MinPartSize+5:])
	f.arm(0, false)
	if n, err := u.Commit(t.Context(), d); err != nil || n != int64(len(data)) {
		t.Fatalf("Commit = %d, %v", n, err)
	}
	for _, r := range f.disarm() {
		if r.copy {
			t.Errorf("the commit copied in the server: %s", r.step)
		}
	}
	if pointsTo(t, s, o, d) == "" {
		t.Errorf("blob %s is not a pointer to the bytes the upload wrote", d)
	}
	checkBlob(t, s, d, data)
	checkClean(t, s, o, d)
	if n, err := s.Stat(t.Context(), d); err != nil || n != int64(len(data)) {
		t.Errorf("Stat = %d, %v; want %d", n, err, len(data))
	}
	var walked []string
	err = s.Walk(t.Context(), func(got digest.Digest, size int64) error {
		walked = append(walked, fmt.Sprintf("%s %d", got, size))
		return nil
	})
	if want := fmt.Sprintf("%s %d", d, len(data)); err != nil || len(walked) != 1 || walked[0] != want {
		t.Errorf("Walk = %q, %v; want %q", walked, err, want)
	}
	url, err := s.URL(t.Context(), d, time.Minute)
	if err != nil {
		t.Fatalf("URL: %v", err)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("GET of the URL = %d with %d bytes, want 200 with the blob's %d", resp.StatusCode, len(got), len(data))
	}
	if err := s.Delete(t.Context(), d); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkMissing(t, s, d)
	checkClean(t, s, o)
}

// TestCommitCrashes stops a commit at each of its requests, before the server gets it
// and after the server did it, as a process that dies there would. Whatever it left,
// blob d is either missing or whole; then another process takes the session over once
// the lease runs out and commits it, or cancels it, and the bucket holds the blob (or,
// cancelled before its content was verified, nothing) and nothing of the session.
func TestCommitCrashes(t *testing.T) {
	requireServer(t)
	data := content(18, s3.MinPartSize+100) // a part and a tail
	sha512Of := func(b []byte) digest.Digest {
		sum := sha512.Sum512(b)
		return digest.NewDigestFromBytes(digest.SHA512, sum[:])
	}
	for _, d := range []digest.Digest{digest.FromBytes(data), sha512Of(data)} {
		t.Run(string(d.Algorithm()), func(t *testing.T) {
			// The requests of a commit that goes through.
			_, steps := crashAt(t, d, data, 0, false)
			if len(steps) < 5 {
				t.Fatalf("the commit sent %d requests: %v", len(steps), steps)
			}
			for i, step := range steps {
				for _, after := range []bool{false, true} {
					for _, end := range []string{"commit", "cancel"} {
						when := "before"
						if after {
							when = "after"
						}
						name := fmt.Sprintf("%02d %s %s/%s", i+1, when, step.step, end)
						t.Run(name, func(t *testing.T) {
							t.Parallel()
							checkAfterCrash(t, d, data, i+1, after, end)
						})
					}
				}
			}
		})
	}
}

// crashAt pushes data as a session in parts through a fresh store whose requests are
// never retried, commits it as d, stopping at request fail (0: none), and returns what
// the crash left and the commit's requests. A failure the commit goes through (a tail
// object it could not remove, which the end of the session removes) is no crash:
// crashed.id is empty then.
func crashAt(t *testing.T, d digest.Digest, data []byte, fail int, after bool) (crashed, []request) {
	t.Helper()
	o := options(t, s3.MinPartSize)
	f := &faulty{}
	s, err := s3.OpenWithoutRetries(t.Context(), o, &http.Client{Transport: f})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	appendBytes(t, u, data)
	f.arm(fail, after)
	_, err = u.Commit(t.Context(), d)
	steps := f.disarm()
	switch {
	case fail > len(steps):
		t.Fatalf("the commit stopped after %d requests, before request %d: %v", len(steps), fail, err)
	case err == nil:
		checkBlob(t, s, d, data)
		checkClean(t, s, o, d)
		return crashed{o: o, s: s}, steps
	case fail == 0:
		t.Fatalf("Commit: %v", err)
	}
	// The process died: nothing more comes from it, and its lease runs out.
	s3.StopRenewal(u)
	return crashed{o, s, u.ID()}, steps
}

type crashed struct {
	o  s3.Options
	s  *s3.Store
	id string
}

func checkAfterCrash(t *testing.T, d digest.Digest, data []byte, fail int, after bool, end string) {
	c, _ := crashAt(t, d, data, fail, after)
	if c.id == "" {
		return // went through
	}
	wholeOrMissing(t, c.s, d, data)

	s := open(t, c.o)
	s3.SetLeaseTTL(s, time.Second)
	u, err := s.Resume(t.Context(), c.id)
	if errors.Is(err, blobstore.ErrNotFound) {
		// Gone: the crash came at the very end of the commit.
		checkBlob(t, s, d, data)
		checkClean(t, s, c.o, d)
		return
	}
	if err != nil {
		t.Fatalf("Resume after the crash: %v", err)
	}
	if end == "commit" {
		if n, err := u.Commit(t.Context(), d); err != nil || n != int64(len(data)) {
			t.Fatalf("Commit after the crash = %d, %v", n, err)
		}
		checkBlob(t, s, d, data)
		checkClean(t, s, c.o, d)
		return
	}
	if err := u.Cancel(t.Context()); err != nil {
		t.Fatalf("Cancel after the crash: %v", err)
	}
	if wholeOrMissing(t, s, d, data) {
		checkClean(t, s, c.o, d)
	} else {
		checkClean(t, s, c.o)
	}
}

// wholeOrMissing fails unless blob d is missing or reads back as data, and reports
// whether it is there.
func wholeOrMissing(t *testing.T, s *s3.Store, d digest.Digest, data []byte) bool {
	t.Helper()
	_, err := s.Stat(t.Context(), d)
	if errors.Is(err, blobstore.ErrNotFound) {
		checkMissing(t, s, d)
		return false
	}
	if err != nil {
		t.Fatalf("Stat(%s): %v", d, err)
	}
	checkBlob(t, s, d, data)
	return true
}

func checkMissing(t *testing.T, s *s3.Store, d digest.Digest) {
	t.Helper()
	if _, err := s.Stat(t.Context(), d); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("Stat(%s) = %v, want ErrNotFound", d, err)
	}
	if b, err := s.Open(t.Context(), d); !errors.Is(err, blobstore.ErrNotFound) {
		if err == nil {
			b.Close()
		}
		t.Errorf("Open(%s) = %v, want ErrNotFound", d, err)
	}
}

// TestLegacySession: a session that a store of state version 1 began, with its multipart
// upload under the session's prefix, is appended to and committed by this store, which
// copies it to the blob's key, in parts beyond the copy limit (lowered here from
// CopyObject's 5 GiB).
func TestLegacySession(t *testing.T) {
	const part = s3.MinPartSize
	o := options(t, part)
	s := open(t, o)
	s3.SetCopyLimit(s, 6*mib, part)
	c := s3.Client(s)
	ctx := t.Context()
	data := content(4, 13*mib+1)
	first := 2*part + 1000 // two parts and a tail

	id := randomHex(16)
	key := aws.String(o.Prefix + "uploads/" + id + "/data")
	up, err := c.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{Bucket: &o.Bucket, Key: key})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", err)
	}
	type jsonPart struct {
		N    int32  `json:"n"`
		ETag string `json:"etag"`
		Size int64  `json:"size"`
	}
	var parts []jsonPart
	for n := int32(1); n <= 2; n++ {
		b := data[int(n-1)*part : int(n)*part]
		out, err := c.UploadPart(ctx, &s3api.UploadPartInput{Bucket: &o.Bucket, Key: key, UploadId: up.UploadId,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b)))})
		if err != nil {
			t.Fatalf("UploadPart: %v", err)
		}
		parts = append(parts, jsonPart{n, aws.ToString(out.ETag), int64(len(b))})
	}
	tail := randomHex(8)
	if _, err := c.PutObject(ctx, &s3api.PutObjectInput{Bucket: &o.Bucket, Key: aws.String(o.Prefix + "uploads/" + id + "/tail-" + tail),
		Body: bytes.NewReader(data[2*part : first])}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	h := sha256.New()
	h.Write(data[:first])
	hs, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	st, _ := json.Marshal(map[string]any{
		"version": 1, "partSize": part, "size": first, "sha256": hs, "uploadId": aws.ToString(up.UploadId),
		"parts": parts, "tail": []map[string]any{{"name": tail, "size": first - 2*part}}, "beat": 1,
	})
	if _, err := c.PutObject(ctx, &s3api.PutObjectInput{Bucket: &o.Bucket, Key: aws.String(o.Prefix + "uploads/" + id + "/state"),
		Body: bytes.NewReader(st)}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}

	u := resume(t, s, id)
	if u.Size() != int64(first) {
		t.Fatalf("Size of the session = %d, want %d", u.Size(), first)
	}
	appendBytes(t, u, data[first:])
	d := digest.FromBytes(data)
	if _, err := u.Commit(ctx, d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkBlob(t, s, d, data)
	if p := pointsTo(t, s, o, d); p != "" {
		t.Errorf("blob %s points to %s; a session of version 1 copies it to its key", d, p)
	}
	checkClean(t, s, o, d)
}

package s3

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/opencontainers/go-digest"
)

// stateVersion is the format of the state objects this store writes. It reads those of
// version 1 too, whose multipart upload is at legacyDataKey, and refuses any other.
const stateVersion = 2

// state is what the state object of a session holds, as JSON. The session's content is,
// in order: the object at its data key when Staged, else the parts of the multipart
// upload UploadID; then the tail objects.
type state struct {
	Version int `json:"version"`
	// PartSize is the session's part size, whichever replica appends to it.
	PartSize int64 `json:"partSize"`
	Size     int64 `json:"size"`
	// SHA256 is crypto/sha256's marshaled state after the Size bytes, or nil when
	// the bytes have not all been hashed.
	SHA256 []byte `json:"sha256,omitempty"`
	// UploadID is the multipart upload at dataKey, created with the first whole part.
	UploadID string    `json:"uploadId,omitempty"`
	Parts    []part    `json:"parts,omitempty"`
	Tail     []segment `json:"tail,omitempty"`
	// Staged is true once the multipart upload was completed into the object at the
	// data key (by a commit, or by one that had to read the content back, then failed
	// to match).
	Staged bool `json:"staged,omitempty"`
	// Blob is the digest a commit verified the staged content as: the session is done
	// but for the pointer that makes its data object that blob.
	Blob digest.Digest `json:"blob,omitempty"`
	// Holder is the token of whoever has the session open, or empty.
	Holder string `json:"holder,omitempty"`
	// Beat changes with every write, so that no two writes leave the same ETag.
	Beat int64 `json:"beat"`
}

type part struct {
	Number int32  `json:"n"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
}

// segment is a tail object: tailKey(id, Name).
type segment struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

func (st *state) clone() *state {
	c := *st
	c.SHA256 = bytes.Clone(st.SHA256)
	c.Parts = append([]part(nil), st.Parts...)
	c.Tail = append([]segment(nil), st.Tail...)
	return &c
}

func (st *state) tailSize() int64 {
	var n int64
	for _, s := range st.Tail {
		n += s.Size
	}
	return n
}

func (st *state) nextPart() int32 {
	if len(st.Parts) == 0 {
		return 1
	}
	return st.Parts[len(st.Parts)-1].Number + 1
}

// check refuses a state this store could not have written: a session is never used on
// the strength of a state whose sizes do not add up.
func (st *state) check() error {
	if st.Version != stateVersion && st.Version != 1 {
		return fmt.Errorf("state version %d, not %d", st.Version, stateVersion)
	}
	if st.Blob != "" && (st.Version == 1 || !st.Staged || st.Blob.Validate() != nil) {
		return fmt.Errorf("blob %q recorded in a state of version %d, staged %v", st.Blob, st.Version, st.Staged)
	}
	if st.PartSize < MinPartSize || st.PartSize > maxPartSize {
		return fmt.Errorf("part size %d", st.PartSize)
	}
	if st.Staged && (st.UploadID != "" || len(st.Parts) > 0 || len(st.Tail) > 0) {
		return fmt.Errorf("staged with parts or tail")
	}
	if len(st.Parts) > 0 && st.UploadID == "" {
		return fmt.Errorf("parts without a multipart upload")
	}
	var n int64
	prev := int32(0)
	for _, p := range st.Parts {
		if p.Number <= prev || p.Number > maxParts || p.Size < MinPartSize {
			return fmt.Errorf("part %d of %d bytes after part %d", p.Number, p.Size, prev)
		}
		prev = p.Number
		n += p.Size
	}
	for _, s := range st.Tail {
		if s.Size <= 0 || !validName(s.Name) {
			return fmt.Errorf("tail object %q of %d bytes", s.Name, s.Size)
		}
	}
	if t := st.tailSize(); t >= st.PartSize {
		return fmt.Errorf("tail of %d bytes, a whole part", t)
	}
	if !st.Staged && n+st.tailSize() != st.Size {
		return fmt.Errorf("parts and tail hold %d bytes, not %d", n+st.tailSize(), st.Size)
	}
	return nil
}

// hashCovers reports whether a marshaled sha256 state has hashed exactly size bytes.
// crypto/sha256 ends its marshaled state with the length hashed, big endian; a state
// in any other form is not trusted, and the commit then reads the content back.
func hashCovers(h []byte, size int64) bool {
	const marshaledSize = 4 + 8*4 + 64 + 8 // magic, h[8], block, length
	return len(h) == marshaledSize && binary.BigEndian.Uint64(h[len(h)-8:]) == uint64(size)
}

// stored is a state as read, with what a conditional write and the lease need.
type stored struct {
	st   *state
	etag string
	// idle is how long the state has not been written, by the server's clock.
	idle time.Duration
}

// loadState reads the state of session id, or returns ErrNotFound.
func (s *Store) loadState(ctx context.Context, id string) (*stored, error) {
	out, err := s.c.GetObject(ctx, &s3api.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.stateKey(id))})
	if err != nil {
		return nil, wrap(err, "read upload state %s", id)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("blobstore: s3: read upload state %s: %w", id, unreachable(ctx, err))
	}
	st := &state{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("blobstore: s3: upload state %s: %w", id, err)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("blobstore: s3: upload state %s is inconsistent: %v", id, err)
	}
	now := serverTime(out.ResultMetadata)
	return &stored{st: st, etag: aws.ToString(out.ETag), idle: now.Sub(aws.ToTime(out.LastModified))}, nil
}

// serverTime is the time the server answered at, by its Date header, or by this
// machine's clock if it sent none.
func serverTime(md middleware.Metadata) time.Time {
	if resp, ok := awsmw.GetRawResponse(md).(*smithyhttp.Response); ok {
		if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			return t
		}
	}
	return time.Now()
}

// putState writes st as the state of session id: only if its current ETag is etag, or,
// with etag empty, only if there is none. It returns the new ETag.
func (s *Store) putState(ctx context.Context, id string, st *state, etag string) (string, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("blobstore: s3: encode upload state: %w", err)
	}
	in := &s3api.PutObjectInput{
		Bucket: &s.bucket, Key: aws.String(s.stateKey(id)),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))),
		ContentType: aws.String("application/json"),
	}
	if etag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(etag)
	}
	out, err := s.c.PutObject(ctx, in)
	if err != nil {
		return "", err // the callers tell a lost race from a failure
	}
	return aws.ToString(out.ETag), nil
}

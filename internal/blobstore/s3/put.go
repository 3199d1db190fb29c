package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
)

// Put implements blobstore.Putter. A blob smaller than a part is hashed in memory and
// written with one PUT; a larger one streams into a multipart upload at its final key,
// which is completed only once the digest matched, and aborted otherwise. Both writes
// are conditional on the key being free (If-None-Match), so a blob that exists is never
// rewritten; one found before the upload is not uploaded at all, though r is still read
// and checked.
func (s *Store) Put(ctx context.Context, d digest.Digest, r io.Reader) (int64, error) {
	if d.Validate() != nil {
		return 0, blobstore.ErrDigestMismatch
	}
	key := s.blobKey(d)
	h := d.Algorithm().Hash()
	exists, err := s.exists(ctx, key)
	if err != nil {
		return 0, err
	}
	if exists {
		n, err := io.Copy(h, r)
		if err != nil {
			return 0, fmt.Errorf("blobstore: s3: put %s: %w", d, err)
		}
		if digest.NewDigest(d.Algorithm(), h) != d {
			return 0, blobstore.ErrDigestMismatch
		}
		return n, nil
	}

	buf := s.buffer(s.partSize)
	defer func() { s.release(buf) }()
	k, err := fill(r, buf)
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("blobstore: s3: put %s: %w", d, err)
	}
	h.Write(buf[:k])
	if k < len(buf) {
		if digest.NewDigest(d.Algorithm(), h) != d {
			return 0, blobstore.ErrDigestMismatch
		}
		_, err := s.c.PutObject(ctx, &s3api.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(buf[:k]), ContentLength: aws.Int64(int64(k)),
			IfNoneMatch: aws.String("*"),
		})
		if err != nil && !isConflict(err) { // a conflict: stored meanwhile
			return 0, wrap(err, "put %s", d)
		}
		return int64(k), nil
	}

	out, err := s.c.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return 0, wrap(err, "put %s", d)
	}
	id := aws.ToString(out.UploadId)
	n, parts, err := s.putParts(ctx, key, id, h, r, &buf)
	if err == nil && digest.NewDigest(d.Algorithm(), h) != d {
		err = blobstore.ErrDigestMismatch
	}
	if err == nil {
		_, err = s.c.CompleteMultipartUpload(ctx, &s3api.CompleteMultipartUploadInput{
			Bucket: &s.bucket, Key: &key, UploadId: &id, MultipartUpload: completed(parts),
			IfNoneMatch: aws.String("*"),
		})
		if err == nil {
			return n, nil
		}
		if isConflict(err) {
			err = nil // stored meanwhile: this upload is not needed
		} else {
			err = wrap(err, "put %s", d)
		}
	}
	if aerr := s.abort(ctx, key, id); aerr != nil && err == nil {
		return 0, aerr
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// putParts sends *buf, which is full, and what else r yields, hashing it, as the parts of
// multipart upload id at key, and returns how many bytes they hold. *buf is the buffer
// the caller releases afterwards.
func (s *Store) putParts(ctx context.Context, key, id string, h io.Writer, r io.Reader, buf *[]byte) (int64, []part, error) {
	p := s.newPipe(ctx, key, id, *buf, nil)
	n := int64(len(*buf))
	num := int32(1)
	b, err := p.send(num, *buf)
	for err == nil {
		num++
		var k int
		var rerr error
		k, rerr = fill(r, b)
		if rerr != nil && rerr != io.EOF {
			err = fmt.Errorf("blobstore: s3: put %s: %w", key, rerr)
			break
		}
		h.Write(b[:k])
		n += int64(k)
		if k == 0 {
			break
		}
		if k < len(b) || rerr == io.EOF {
			err = p.sendLast(num, b[:k])
			b = nil
			break
		}
		b, err = p.send(num, b)
	}
	*buf = b
	parts, perr := p.wait()
	if err == nil {
		err = perr
	}
	return n, parts, err
}

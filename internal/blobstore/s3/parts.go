package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// pipe sends the parts of one multipart upload from a goroutine, one at a time and in
// order, so that the caller reads the next part from its client while one is sent. It
// owns at most two buffers: the caller fills one while the other is on the wire.
type pipe struct {
	s        *Store
	key, id  string
	size     int64         // the buffers' size
	check    func() error  // asked before each part whether to go on
	jobs     chan partJob  // to the sender
	free     chan []byte   // buffers back from the sender
	failed   chan struct{} // closed on the first error, after err is set
	finished chan struct{} // closed when the sender is done
	err      error
	parts    []part
	nbufs    int
}

type partJob struct {
	num int32
	b   []byte
}

// newPipe starts sending parts of upload id at key; first is the buffer the caller
// already fills, which the pipe now owns.
func (s *Store) newPipe(ctx context.Context, key, id string, first []byte, check func() error) *pipe {
	p := &pipe{
		s: s, key: key, id: id, size: int64(len(first)), check: check,
		jobs: make(chan partJob, 1), free: make(chan []byte, 2),
		failed: make(chan struct{}), finished: make(chan struct{}), nbufs: 1,
	}
	go p.run(ctx)
	return p
}

func (p *pipe) run(ctx context.Context) {
	defer close(p.finished)
	for j := range p.jobs {
		if p.err == nil {
			if err := p.upload(ctx, j); err != nil {
				p.err = err
				close(p.failed)
			}
		}
		p.free <- j.b[:cap(j.b)]
	}
}

func (p *pipe) upload(ctx context.Context, j partJob) error {
	if p.check != nil {
		if err := p.check(); err != nil {
			return err
		}
	}
	out, err := p.s.c.UploadPart(ctx, &s3api.UploadPartInput{
		Bucket: &p.s.bucket, Key: &p.key, UploadId: &p.id, PartNumber: aws.Int32(j.num),
		Body: bytes.NewReader(j.b), ContentLength: aws.Int64(int64(len(j.b))),
	})
	if err != nil {
		return wrap(err, "upload part %d of %s", j.num, p.key)
	}
	p.parts = append(p.parts, part{Number: j.num, ETag: aws.ToString(out.ETag), Size: int64(len(j.b))})
	return nil
}

// send queues b as part num and returns the buffer to fill next.
func (p *pipe) send(num int32, b []byte) ([]byte, error) {
	if num > maxParts {
		return b, fmt.Errorf("blobstore: s3: %s would need more than %d parts of %d bytes", p.key, maxParts, p.size)
	}
	select {
	case <-p.failed:
		return b, p.err
	case p.jobs <- partJob{num, b}:
	}
	if p.nbufs < 2 {
		p.nbufs++
		return p.s.buffer(p.size), nil
	}
	select {
	case <-p.failed:
		return nil, p.err
	case b := <-p.free:
		return b, nil
	}
}

// sendLast queues b as part num, the last one: no buffer is needed after it.
func (p *pipe) sendLast(num int32, b []byte) error {
	if num > maxParts {
		p.s.release(b)
		return fmt.Errorf("blobstore: s3: %s would need more than %d parts of %d bytes", p.key, maxParts, p.size)
	}
	select {
	case <-p.failed:
		p.s.release(b)
		return p.err
	case p.jobs <- partJob{num, b}:
		return nil
	}
}

// wait waits for the parts queued, and returns them, or the first error, and the
// buffers to the store.
func (p *pipe) wait() ([]part, error) {
	close(p.jobs)
	<-p.finished
	for len(p.free) > 0 {
		p.s.release(<-p.free)
	}
	return p.parts, p.err
}

// buffer returns a buffer of n bytes: the store's pooled ones for its part size.
func (s *Store) buffer(n int64) []byte {
	if n == s.partSize {
		return *s.bufs.Get().(*[]byte)
	}
	return make([]byte, n)
}

func (s *Store) release(b []byte) {
	if b != nil && int64(cap(b)) == s.partSize {
		b = b[:cap(b)]
		s.bufs.Put(&b)
	}
}

// fill reads from r into b until b is full or r ends. Only r's own io.EOF ends it
// well: io.ReadFull would also take an io.ErrUnexpectedEOF from r (a client that went
// away mid-body) for a clean end.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// completed lists parts as CompleteMultipartUpload wants them.
func completed(parts []part) *types.CompletedMultipartUpload {
	c := &types.CompletedMultipartUpload{Parts: make([]types.CompletedPart, len(parts))}
	for i, p := range parts {
		c.Parts[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
	}
	return c
}

// abort aborts multipart upload id at key, even when ctx has ended: an upload left
// behind holds storage until a lifecycle rule finds it.
func (s *Store) abort(ctx context.Context, key, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, err := s.c.AbortMultipartUpload(ctx, &s3api.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: &id})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("blobstore: s3: abort multipart upload of %s: %w", key, err)
	}
	return nil
}

// copyObject copies src to dst in the server: in one request up to the size S3 copies
// at once, else part by part.
func (s *Store) copyObject(ctx context.Context, src, dst string, size int64) error {
	if size <= s.copyLimit {
		_, err := s.c.CopyObject(ctx, &s3api.CopyObjectInput{Bucket: &s.bucket, Key: &dst, CopySource: s.copySource(src)})
		return wrap(err, "copy %s to %s", src, dst)
	}
	out, err := s.c.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &dst})
	if err != nil {
		return wrap(err, "copy %s to %s", src, dst)
	}
	id := aws.ToString(out.UploadId)
	parts, err := s.copyParts(ctx, src, dst, id, size, max(s.copyPartSize, (size+maxParts-1)/maxParts), 1)
	if err == nil {
		_, err = s.c.CompleteMultipartUpload(ctx, &s3api.CompleteMultipartUploadInput{
			Bucket: &s.bucket, Key: &dst, UploadId: &id, MultipartUpload: completed(parts)})
		err = wrap(err, "copy %s to %s", src, dst)
	}
	if err != nil {
		s.abort(ctx, dst, id)
		return err
	}
	return nil
}

// copyParts copies the size bytes of src into multipart upload id at dst as parts of
// partSize bytes, numbered from first; a remainder too small for a part of its own
// goes into the last.
func (s *Store) copyParts(ctx context.Context, src, dst, id string, size, partSize int64, first int32) ([]part, error) {
	var parts []part
	num := first
	for off := int64(0); off < size; num++ {
		end := min(off+partSize, size)
		if size-end < MinPartSize {
			end = size
		}
		if num > maxParts {
			return nil, fmt.Errorf("blobstore: s3: copying %s would need more than %d parts", src, maxParts)
		}
		out, err := s.c.UploadPartCopy(ctx, &s3api.UploadPartCopyInput{
			Bucket: &s.bucket, Key: &dst, UploadId: &id, PartNumber: aws.Int32(num),
			CopySource: s.copySource(src), CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end-1)),
		})
		if err != nil {
			return nil, wrap(err, "copy part %d of %s", num, src)
		}
		etag := ""
		if out.CopyPartResult != nil {
			etag = aws.ToString(out.CopyPartResult.ETag)
		}
		parts = append(parts, part{Number: num, ETag: etag, Size: end - off})
		off = end
	}
	return parts, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

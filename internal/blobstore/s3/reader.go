package s3

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
)

// reader reads a blob through one GET that starts where the reader is and runs to the
// end, opened at the first Read after Open or a Seek that moved: a client that reads a
// range and hangs up costs only the bytes it read (and what was in flight).
type reader struct {
	ctx  context.Context
	s    *Store
	key  string
	size int64
	pos  int64
	body io.ReadCloser // at pos when not nil
}

func (r *reader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.body == nil {
		in := &s3api.GetObjectInput{Bucket: &r.s.bucket, Key: &r.key}
		if r.pos > 0 {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", r.pos))
		}
		out, err := r.s.c.GetObject(r.ctx, in)
		if err != nil {
			return 0, wrap(err, "read %s at %d", r.key, r.pos)
		}
		r.body = out.Body
	}
	n, err := r.body.Read(p)
	r.pos += int64(n)
	switch {
	case err == io.EOF && r.pos < r.size:
		r.closeBody()
		return n, fmt.Errorf("blobstore: s3: read %s: the object ended at %d of %d bytes: %w", r.key, r.pos, r.size, io.ErrUnexpectedEOF)
	case err == io.EOF:
		r.closeBody()
		if n > 0 {
			return n, nil // the next Read says EOF, without a request
		}
		return 0, io.EOF
	case err != nil:
		r.closeBody()
		return n, fmt.Errorf("blobstore: s3: read %s: %w", r.key, err)
	}
	return n, nil
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	pos := offset
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		pos += r.pos
	case io.SeekEnd:
		pos += r.size
	default:
		return r.pos, errors.New("blobstore: s3: seek: invalid whence")
	}
	if pos < 0 {
		return r.pos, errors.New("blobstore: s3: seek before the start of the blob")
	}
	if pos != r.pos {
		r.closeBody()
		r.pos = pos
	}
	return pos, nil
}

func (r *reader) Close() error {
	r.closeBody()
	return nil
}

func (r *reader) closeBody() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

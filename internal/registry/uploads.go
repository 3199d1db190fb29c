package registry

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
)

// Chunk is a part of an upload as a request delivers it.
type Chunk struct {
	Body io.Reader
	// Start is the offset the client says the chunk starts at (Content-Range), or -1
	// when it did not say: the chunk then goes at the end.
	Start int64
	// Length is the chunk's size when the client declared it, else -1. Content-Range
	// and Content-Length must agree.
	Length int64
}

func errUploadUnknown() error {
	return errcode.New(errcode.BlobUploadUnknown, "upload session unknown")
}

// StartUpload opens an upload session in repo and returns its ID.
func (r *Registry) StartUpload(ctx context.Context, repo string) (string, error) {
	if err := checkName(repo); err != nil {
		return "", err
	}
	if err := checkRepoWrite(ctx, r.meta, repo); err != nil {
		return "", internal("start upload", err)
	}
	u, err := r.blobs.NewUpload(ctx)
	if err != nil {
		return "", internal("start upload", err)
	}
	defer u.Close()
	now := r.now()
	err = r.meta.Update(ctx, func(tx metastore.Tx) error {
		return tx.CreateUpload(ctx, &metastore.Upload{ID: u.ID(), Repo: repo, Created: now, Modified: now})
	})
	if err != nil {
		return "", internal("start upload", err)
	}
	return u.ID(), nil
}

// resume opens upload id of repo; to write to it when write is set, which a write lock
// on repo refuses.
func (r *Registry) resume(ctx context.Context, repo, id string, write bool) (blobstore.Upload, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	if write {
		if err := checkRepoWrite(ctx, r.meta, repo); err != nil {
			return nil, internal("resume upload", err)
		}
	}
	rec, err := r.meta.Upload(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) || err == nil && rec.Repo != repo {
		return nil, errUploadUnknown()
	}
	if err != nil {
		return nil, internal("resume upload", err)
	}
	u, err := r.blobs.Resume(ctx, id)
	if errors.Is(err, blobstore.ErrNotFound) || errors.Is(err, blobstore.ErrInvalidID) {
		return nil, errUploadUnknown()
	}
	if err != nil {
		return nil, internal("resume upload", err)
	}
	return u, nil
}

// UploadStatus returns the number of bytes upload id of repo holds.
func (r *Registry) UploadStatus(ctx context.Context, repo, id string) (int64, error) {
	u, err := r.resume(ctx, repo, id, false)
	if err != nil {
		return 0, err
	}
	defer u.Close()
	return u.Size(), nil
}

// AppendUpload adds c to upload id of repo and returns the upload's size.
func (r *Registry) AppendUpload(ctx context.Context, repo, id string, c Chunk) (int64, error) {
	u, err := r.resume(ctx, repo, id, true)
	if err != nil {
		return 0, err
	}
	defer u.Close()
	if err := r.append(ctx, u, c); err != nil {
		return 0, err
	}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.TouchUpload(ctx, id, r.now()) })
	if err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return 0, internal("append upload", err)
	}
	return u.Size(), nil
}

func (r *Registry) append(ctx context.Context, u blobstore.Upload, c Chunk) error {
	if c.Start >= 0 && c.Start != u.Size() {
		return errcode.New(errcode.BlobUploadInvalid, "chunk starts at %d, the upload holds %d bytes", c.Start, u.Size()).
			RangeNotSatisfiable()
	}
	src := &sourceReader{r: c.Body}
	var body io.Reader = src
	if c.Length >= 0 {
		// Checked while reading, so that a wrong length fails the append, which
		// then keeps nothing of the chunk.
		body = &exactReader{r: src, left: c.Length}
	}
	_, err := u.Append(ctx, body)
	var le *lengthError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &le):
		return errcode.New(errcode.SizeInvalid, "the chunk does not hold the %d bytes declared; nothing of it was kept", c.Length)
	case src.err != nil:
		return errcode.New(errcode.BlobUploadInvalid, "reading the chunk failed; nothing of it was kept")
	default:
		// The body was read well: the blob store failed to keep it (a full disk).
		// That is the server's failure; the upload keeps what it had, to resume.
		return internal("append upload", err)
	}
}

// sourceReader remembers the error reading a request body met, other than its end,
// so that a failed append can tell the client's failure from the store's.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// exactReader yields what r does, failing when r holds more or fewer than left bytes.
type exactReader struct {
	r    io.Reader
	left int64
}

type lengthError struct{}

func (*lengthError) Error() string { return "the body's length is not the declared one" }

func (e *exactReader) Read(p []byte) (int, error) {
	if int64(len(p)) > e.left+1 {
		p = p[:e.left+1] // one byte more than allowed shows a body too long
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left < 0:
		return 0, &lengthError{}
	case err == io.EOF && e.left > 0:
		return n, &lengthError{}
	}
	return n, err
}

// FinishUpload adds the last chunk c, which may be empty, to upload id of repo, checks
// that the content is blob ref, and makes it readable in repo.
func (r *Registry) FinishUpload(ctx context.Context, repo, id, ref string, c Chunk) (digest.Digest, error) {
	d, err := parseDigest(ref)
	if err != nil {
		return "", err
	}
	u, err := r.resume(ctx, repo, id, true)
	if err != nil {
		return "", err
	}
	defer u.Close()
	if p, ok := r.blobs.(blobstore.Putter); ok && u.Size() == 0 && c.Start <= 0 {
		// The whole blob comes in this request: write it once, where it stays.
		if err := r.put(ctx, p, repo, d, c, id); err != nil {
			return "", err
		}
		u.Cancel(ctx)
		return d, nil
	}
	if err := r.append(ctx, u, c); err != nil {
		return "", err
	}
	return d, r.commit(ctx, u, repo, d, id)
}

// PutBlob stores body as blob ref of repo in one request (a monolithic upload).
func (r *Registry) PutBlob(ctx context.Context, repo, ref string, c Chunk) (digest.Digest, error) {
	if err := checkName(repo); err != nil {
		return "", err
	}
	d, err := parseDigest(ref)
	if err != nil {
		return "", err
	}
	if err := checkRepoWrite(ctx, r.meta, repo); err != nil {
		return "", internal("put blob", err)
	}
	if p, ok := r.blobs.(blobstore.Putter); ok {
		return d, r.put(ctx, p, repo, d, c, "")
	}
	u, err := r.blobs.NewUpload(ctx)
	if err != nil {
		return "", internal("put blob", err)
	}
	defer u.Close()
	if err := r.append(ctx, u, c); err != nil {
		u.Cancel(ctx)
		return "", err
	}
	return d, r.commit(ctx, u, repo, d, "")
}

// put stores what c holds as blob d of repo in one pass, and forgets session id (if
// any). A wrong digest stores nothing.
func (r *Registry) put(ctx context.Context, p blobstore.Putter, repo string, d digest.Digest, c Chunk, id string) error {
	src := &sourceReader{r: c.Body}
	var body io.Reader = src
	if c.Length >= 0 {
		body = &exactReader{r: src, left: c.Length}
	}
	if err := r.claim(ctx, d, max(c.Length, 0)); err != nil {
		return err
	}
	size, err := p.Put(ctx, d, body)
	var le *lengthError
	switch {
	case err == nil:
	case errors.Is(err, blobstore.ErrDigestMismatch):
		r.forgetUpload(ctx, id)
		return errcode.New(errcode.DigestInvalid, "the uploaded content does not match digest %s", d)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &le):
		return errcode.New(errcode.SizeInvalid, "the body does not hold the %d bytes declared; nothing of it was kept", c.Length)
	case src.err != nil:
		return errcode.New(errcode.BlobUploadInvalid, "reading the body failed; nothing of it was kept")
	default:
		return internal("put blob", err)
	}
	return r.link(ctx, repo, d, size, id)
}

// claim tells a garbage collector that blob d is about to be committed, so that it
// does not remove the bytes between the commit and the link.
func (r *Registry) claim(ctx context.Context, d digest.Digest, size int64) error {
	err := r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.ClaimBlob(ctx, d, size) })
	if err != nil {
		return internal("claim blob", err)
	}
	return nil
}

func (r *Registry) forgetUpload(ctx context.Context, id string) {
	if id != "" {
		r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteUpload(ctx, id) })
	}
}

// link lets repo read blob d, now in the blob store, and forgets session id (if any).
func (r *Registry) link(ctx context.Context, repo string, d digest.Digest, size int64, id string) error {
	err := r.meta.Update(ctx, func(tx metastore.Tx) error {
		if err := checkRepoWrite(ctx, tx, repo); err != nil {
			return err
		}
		if id != "" {
			if err := tx.DeleteUpload(ctx, id); err != nil && !errors.Is(err, metastore.ErrNotFound) {
				return err
			}
		}
		return tx.LinkBlob(ctx, repo, d, size)
	})
	if err != nil {
		return internal("commit upload", err)
	}
	return nil
}

// commit makes u blob d of repo and forgets session id (if any). A wrong digest
// discards the upload: nothing of it is stored.
func (r *Registry) commit(ctx context.Context, u blobstore.Upload, repo string, d digest.Digest, id string) error {
	if err := r.claim(ctx, d, u.Size()); err != nil {
		return err
	}
	size, err := u.Commit(ctx, d)
	if errors.Is(err, blobstore.ErrDigestMismatch) {
		u.Cancel(ctx)
		r.forgetUpload(ctx, id)
		return errcode.New(errcode.DigestInvalid, "the uploaded content does not match digest %s", d)
	}
	if err != nil {
		return internal("commit upload", err)
	}
	return r.link(ctx, repo, d, size, id)
}

// CancelUpload discards upload id of repo.
func (r *Registry) CancelUpload(ctx context.Context, repo, id string) error {
	u, err := r.resume(ctx, repo, id, false) // discarding bytes writes nothing
	if err != nil {
		return err
	}
	if err := u.Cancel(ctx); err != nil {
		return internal("cancel upload", err)
	}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteUpload(ctx, id) })
	if err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return internal("cancel upload", err)
	}
	return nil
}

// ExpireUploads reclaims the upload sessions nobody wrote to for the upload TTL, and
// the bytes of sessions the metadata store does not know (a crash between the two
// stores), and returns how many it reclaimed.
func (r *Registry) ExpireUploads(ctx context.Context) (int, error) {
	cutoff := r.now().Add(-r.opts.UploadTTL)
	n := 0
	for {
		stale, err := r.meta.StaleUploads(ctx, cutoff, 100)
		if err != nil {
			return n, internal("expire uploads", err)
		}
		for _, s := range stale {
			expired, err := r.expire(ctx, s.ID, cutoff)
			if err != nil {
				return n, internal("expire uploads", err)
			}
			if expired {
				n++
			}
		}
		if len(stale) < 100 {
			break
		}
	}
	err := r.blobs.Uploads(ctx, func(id string, modified time.Time) error {
		if modified.After(cutoff) {
			return nil
		}
		if _, err := r.meta.Upload(ctx, id); !errors.Is(err, metastore.ErrNotFound) {
			return nil
		}
		if u, err := r.blobs.Resume(ctx, id); err == nil {
			u.Cancel(ctx)
			n++
		}
		return nil
	})
	if err != nil {
		return n, internal("expire uploads", err)
	}
	return n, nil
}

// expire cancels upload id unless it was written after cutoff. The session is
// looked at again once its lock is held: a PATCH that held it while the stale list was
// made has written to it since.
func (r *Registry) expire(ctx context.Context, id string, cutoff time.Time) (bool, error) {
	u, err := r.blobs.Resume(ctx, id)
	if err == nil {
		defer u.Close()
		rec, err := r.meta.Upload(ctx, id)
		if err == nil && rec.Modified.After(cutoff) {
			return false, nil
		}
		if err != nil && !errors.Is(err, metastore.ErrNotFound) {
			return false, err
		}
		u.Cancel(ctx)
	} else if !errors.Is(err, blobstore.ErrNotFound) && !errors.Is(err, blobstore.ErrInvalidID) {
		return false, err
	}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteUpload(ctx, id) })
	if err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return false, err
	}
	return true, nil
}

// RunJanitor expires stale uploads every interval until ctx ends.
func (r *Registry) RunJanitor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := r.ExpireUploads(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("expiring uploads", "err", err)
		} else if n > 0 {
			r.log.Info("expired stale uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

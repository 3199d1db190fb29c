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

// StartUpload opens an upload session in repo for owner (who asks: a user, a token,
// an address) and returns its ID. Past the sessions a repository or an owner may hold
// open (Options.UploadsPerRepository, UploadsPerCaller) it is TOOMANYREQUESTS.
func (r *Registry) StartUpload(ctx context.Context, repo, owner string) (string, error) {
	if err := checkName(repo); err != nil {
		return "", err
	}
	if err := r.checkClientChange(repo); err != nil {
		return "", err
	}
	if err := checkRepoWrite(ctx, r.meta, repo); err != nil {
		return "", internal("start upload", err)
	}
	if err := r.checkOpenUploads(ctx, repo, owner); err != nil {
		return "", err
	}
	u, err := r.blobs.NewUpload(ctx)
	if err != nil {
		return "", internal("start upload", err)
	}
	defer u.Close()
	now := r.now()
	err = r.meta.Update(ctx, func(tx metastore.Tx) error {
		return tx.CreateUpload(ctx, &metastore.Upload{ID: u.ID(), Repo: repo, Owner: owner, Created: now, Modified: now})
	})
	if err != nil {
		u.Cancel(context.WithoutCancel(ctx)) // a session the metadata does not know would wait for the TTL
		return "", internal("start upload", err)
	}
	return u.ID(), nil
}

// checkOpenUploads refuses a new session in repo for owner when either holds as many
// open as it may. The count is read before the session is created, not in its
// transaction: concurrent sessions of one repository would all conflict over the one
// count in a serializable transaction. So starts racing each other may pass a bound by
// as many as race; what a client holds stays bounded.
func (r *Registry) checkOpenUploads(ctx context.Context, repo, owner string) error {
	perRepo, perOwner := r.opts.UploadsPerRepository, r.opts.UploadsPerCaller
	if perRepo <= 0 && perOwner <= 0 {
		return nil
	}
	ofRepo, ofOwner, err := r.meta.OpenUploads(ctx, repo, owner, max(perRepo, perOwner))
	if err != nil {
		return internal("count uploads", err)
	}
	switch {
	case perRepo > 0 && ofRepo >= perRepo:
		return errcode.New(errcode.TooManyRequests,
			"repository %s has %d upload sessions open, the most it may; finish or cancel one, or wait until unused ones are reclaimed", repo, ofRepo)
	case perOwner > 0 && ofOwner >= perOwner:
		return errcode.New(errcode.TooManyRequests,
			"you have %d upload sessions open, the most one caller may; finish or cancel one, or wait until unused ones are reclaimed", ofOwner)
	}
	return nil
}

// resume opens upload id of repo; to write to it when write is set, which a write lock
// on repo refuses.
func (r *Registry) resume(ctx context.Context, repo, id string, write bool) (blobstore.Upload, error) {
	u, _, err := r.resumeRecord(ctx, repo, id, write)
	return u, err
}

// resumeRecord is resume, returning the session's record too.
func (r *Registry) resumeRecord(ctx context.Context, repo, id string, write bool) (blobstore.Upload, *metastore.Upload, error) {
	if err := checkName(repo); err != nil {
		return nil, nil, err
	}
	if write {
		if err := r.checkClientChange(repo); err != nil {
			return nil, nil, err
		}
		if err := checkRepoWrite(ctx, r.meta, repo); err != nil {
			return nil, nil, internal("resume upload", err)
		}
	}
	rec, err := r.meta.Upload(ctx, id)
	if errors.Is(err, metastore.ErrNotFound) || err == nil && rec.Repo != repo {
		return nil, nil, errUploadUnknown()
	}
	if err != nil {
		return nil, nil, internal("resume upload", err)
	}
	u, err := r.blobs.Resume(ctx, id)
	if errors.Is(err, blobstore.ErrNotFound) || errors.Is(err, blobstore.ErrInvalidID) {
		return nil, nil, errUploadUnknown()
	}
	if err != nil {
		return nil, nil, internal("resume upload", err)
	}
	return u, rec, nil
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
	u, rec, err := r.resumeRecord(ctx, repo, id, true)
	if err != nil {
		return 0, err
	}
	defer u.Close()
	if err := r.append(ctx, u, c); err != nil {
		return 0, err
	}
	if u.Size() == 0 {
		return 0, nil // no write: an empty session stays one, and is reclaimed as one
	}
	now := r.now()
	if now.Sub(rec.Modified) < r.opts.UploadTTL/touchSlack {
		// Recorded as written lately enough: a chunked push would otherwise commit a
		// write to the metadata store with each of its chunks.
		return u.Size(), nil
	}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.TouchUpload(ctx, id, now) })
	if err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return 0, internal("append upload", err)
	}
	return u.Size(), nil
}

// touchSlack: a session's record of its last write may lag behind it by a touchSlack-th
// of the upload TTL (15 minutes of the default 24 hours), so that an abandoned session
// is reclaimed once it went unwritten for between 99% and 100% of the TTL.
const touchSlack = 100

func (r *Registry) append(ctx context.Context, u blobstore.Upload, c Chunk) error {
	if c.Start >= 0 && c.Start != u.Size() {
		return errcode.New(errcode.BlobUploadInvalid, "chunk starts at %d, the upload holds %d bytes", c.Start, u.Size()).
			RangeNotSatisfiable()
	}
	body := &readFailure{r: c.Body}
	var in io.Reader = body
	if c.Length >= 0 {
		// Checked while reading, so that a wrong length fails the append, which
		// then keeps nothing of the chunk.
		in = &exactReader{r: body, left: c.Length}
	}
	_, err := u.Append(ctx, in)
	var le *lengthError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &le):
		return errcode.New(errcode.SizeInvalid, "the chunk does not hold the %d bytes declared; nothing of it was kept", c.Length)
	case body.err != nil:
		return errcode.New(errcode.BlobUploadInvalid, "reading the chunk failed; nothing of it was kept")
	default:
		// The body was read well: the blob store failed to keep it (a full disk).
		// That is the server's failure; the upload keeps what it had, to resume.
		return internal("append upload", err)
	}
}

// readFailure reads r and remembers the error reading it met, other than its end: a
// failed append is the client's doing when the body failed, the store's otherwise.
type readFailure struct {
	r   io.Reader
	err error
}

func (f *readFailure) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF && f.err == nil {
		f.err = err
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
	if err := r.checkClientChange(repo); err != nil {
		return "", err
	}
	d, err := parseDigest(ref)
	if err != nil {
		return "", err
	}
	if err := checkRepoWrite(ctx, r.meta, repo); err != nil {
		return "", internal("put blob", err)
	}
	return d, r.store(ctx, repo, d, c)
}

// store writes what c holds as blob d of repo, in one pass, and links it.
func (r *Registry) store(ctx context.Context, repo string, d digest.Digest, c Chunk) error {
	if p, ok := r.blobs.(blobstore.Putter); ok {
		return r.put(ctx, p, repo, d, c, "")
	}
	u, err := r.blobs.NewUpload(ctx)
	if err != nil {
		return internal("put blob", err)
	}
	defer u.Close()
	if err := r.append(ctx, u, c); err != nil {
		u.Cancel(ctx)
		return err
	}
	return r.commit(ctx, u, repo, d, "")
}

// put stores what c holds as blob d of repo in one pass, and forgets session id (if
// any). A wrong digest stores nothing.
func (r *Registry) put(ctx context.Context, p blobstore.Putter, repo string, d digest.Digest, c Chunk, id string) error {
	src := &readFailure{r: c.Body}
	var body io.Reader = src
	if c.Length >= 0 {
		body = &exactReader{r: src, left: c.Length}
	}
	claimed, err := r.claim(ctx, d, max(c.Length, 0))
	if err != nil {
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
	return pushAgain(d, r.link(ctx, repo, d, size, id, claimed))
}

// claim tells a garbage collector that blob d is about to be committed, so that it
// does not remove the bytes between the commit and the link, and returns the time of
// the claim.
func (r *Registry) claim(ctx context.Context, d digest.Digest, size int64) (time.Time, error) {
	var claimed time.Time
	err := r.meta.Update(ctx, func(tx metastore.Tx) error {
		var err error
		claimed, err = tx.ClaimBlob(ctx, d, size)
		return err
	})
	if err != nil {
		return time.Time{}, internal("claim blob", err)
	}
	return claimed, nil
}

func (r *Registry) forgetUpload(ctx context.Context, id string) {
	if id != "" {
		r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteUpload(ctx, id) })
	}
}

// link lets repo read blob d, now in the blob store under the claim made at claimed,
// and forgets session id (if any). A claim that a collection may have outlived (see
// metastore.BlobWriter.ClaimHeld) is made again, and the bytes looked for under it:
// found, they are linked; gone, the push fails, and the client pushes again.
func (r *Registry) link(ctx context.Context, repo string, d digest.Digest, size int64, id string, claimed time.Time) error {
	for range maxReclaims {
		err := r.meta.Update(ctx, func(tx metastore.Tx) error {
			if err := checkRepoWrite(ctx, tx, repo); err != nil {
				return err
			}
			held, err := tx.ClaimHeld(ctx, d, claimed)
			if err != nil {
				return err
			}
			if !held {
				return errClaimLost
			}
			if id != "" {
				if err := tx.DeleteUpload(ctx, id); err != nil && !errors.Is(err, metastore.ErrNotFound) {
					return err
				}
			}
			return tx.LinkBlob(ctx, repo, d, size)
		})
		if !errors.Is(err, errClaimLost) {
			if err != nil {
				return internal("commit upload", err)
			}
			return nil
		}
		r.log.Warn("a blob's claim may have been collected before its link; looking for its bytes again",
			"repository", repo, "digest", d, "claimed", claimed)
		if claimed, err = r.claim(ctx, d, size); err != nil {
			return err
		}
		stored, err := r.blobs.Stat(ctx, d)
		if errors.Is(err, blobstore.ErrNotFound) || err == nil && stored != size {
			r.forgetUpload(ctx, id)
			return errCollected
		}
		if err != nil {
			return internal("commit upload", err)
		}
	}
	return errCollected
}

var (
	// errClaimLost ends a link whose claim a collection may have outlived.
	errClaimLost = errors.New("registry: the claim may have been collected")
	// errCollected is link's when the bytes it was to link are gone.
	errCollected = errors.New("registry: collected before its link")
)

// pushAgain is err, or for errCollected, the error that asks the client to push blob d
// again: the server lost it, so it is the server's error, and a client retries those.
func pushAgain(d digest.Digest, err error) error {
	if errors.Is(err, errCollected) {
		return errcode.New(errcode.Unavailable, "blob %s was collected while it was being stored; push it again", d)
	}
	return err
}

// maxReclaims bounds the claims a commit makes: past the first, each follows a
// collection that overtook the one before, which only a grace period near zero allows.
const maxReclaims = 3

// commit makes u blob d of repo and forgets session id (if any). A wrong digest
// discards the upload: nothing of it is stored.
func (r *Registry) commit(ctx context.Context, u blobstore.Upload, repo string, d digest.Digest, id string) error {
	claimed, err := r.claim(ctx, d, u.Size())
	if err != nil {
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
	return pushAgain(d, r.link(ctx, repo, d, size, id, claimed))
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

// ExpireUploads reclaims the upload sessions nobody wrote to for the upload TTL, those
// that hold no bytes after the shorter TTL of empty sessions, and the bytes of sessions
// the metadata store does not know (a crash between the two stores), and returns how
// many it reclaimed.
func (r *Registry) ExpireUploads(ctx context.Context) (int, error) {
	now := r.now()
	cutoff := now.Add(-r.opts.UploadTTL)
	n := 0
	for _, c := range []struct {
		list func(context.Context, time.Time, int) ([]metastore.Upload, error)
		// keep reports whether a session, looked at again once held, is no longer
		// what the list found.
		keep   func(rec *metastore.Upload, u blobstore.Upload) bool
		cutoff time.Time
	}{
		{r.meta.StaleUploads, func(rec *metastore.Upload, _ blobstore.Upload) bool { return rec.Modified.After(cutoff) }, cutoff},
		{r.meta.EmptyUploads, func(rec *metastore.Upload, u blobstore.Upload) bool {
			return !rec.Modified.Equal(rec.Created) || u.Size() > 0
		}, now.Add(-r.opts.EmptyUploadTTL)},
	} {
		skip := map[string]bool{} // sessions in use or changed, which a list may return again
		for {
			want := len(skip) + 100
			found, err := c.list(ctx, c.cutoff, want)
			if err != nil {
				return n, internal("expire uploads", err)
			}
			fresh := 0
			for _, s := range found {
				if skip[s.ID] {
					continue
				}
				fresh++
				expired, err := r.expire(ctx, s.ID, c.keep)
				if err != nil {
					return n, internal("expire uploads", err)
				}
				if expired {
					n++
				} else {
					skip[s.ID] = true
				}
			}
			if fresh == 0 || len(found) < want {
				break
			}
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

// expire cancels upload id unless keep says it changed since it was listed. The session
// is looked at again once its lock is held: a PATCH that held it while the list was
// made has written to it since. A session held longer than a moment is in use, and
// left alone.
func (r *Registry) expire(ctx context.Context, id string, keep func(*metastore.Upload, blobstore.Upload) bool) (bool, error) {
	held, cancel := context.WithTimeout(ctx, expireWait)
	u, err := r.blobs.Resume(held, id)
	cancel()
	if err == nil {
		defer u.Close()
		rec, err := r.meta.Upload(ctx, id)
		if err == nil && keep(rec, u) {
			return false, nil
		}
		if err != nil && !errors.Is(err, metastore.ErrNotFound) {
			return false, err
		}
		u.Cancel(ctx)
	} else if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return false, nil // in use
	} else if !errors.Is(err, blobstore.ErrNotFound) && !errors.Is(err, blobstore.ErrInvalidID) {
		return false, err
	}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteUpload(ctx, id) })
	if err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return false, err
	}
	return true, nil
}

// expireWait is how long the janitor waits for a session someone holds before it
// leaves it for its next run.
const expireWait = 5 * time.Second

// JanitorInterval is how often RunJanitor should run for the TTLs of opts: a quarter
// of the shorter, an hour at most.
func JanitorInterval(opts Options) time.Duration {
	ttl := opts.UploadTTL
	if opts.EmptyUploadTTL > 0 {
		ttl = min(ttl, opts.EmptyUploadTTL)
	}
	return min(ttl/4, time.Hour)
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

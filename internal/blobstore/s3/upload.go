package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
)

// Upload IDs are 32 lowercase hex digits, and so are tail object names' 16: nothing
// else ever reaches a key.
const idLen = 32

func validID(id string) bool { return len(id) == idLen && isHex(id) }

func validName(name string) bool { return len(name) == 16 && isHex(name) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxTail is how many tail objects a session keeps before an append merges them: each
// small append adds one object instead of rewriting the whole tail, and the merge, which
// does rewrite it, comes once in that many appends.
const maxTail = 32

// errLost is returned when the session was ended by another process or taken over once
// this holder's lease had run out.
var errLost = errors.New("taken over or ended by another process")

// sessionLocks are the sessions this store has open: a second caller waits here, not
// in the bucket, for a holder in the same process.
type sessionLocks struct {
	mu sync.Mutex
	m  map[string]*sessionLock
}

type sessionLock struct {
	held chan struct{} // one slot: full while held
	refs int
}

func (l *sessionLocks) lock(ctx context.Context, id string) error {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*sessionLock{}
	}
	e := l.m[id]
	if e == nil {
		e = &sessionLock{held: make(chan struct{}, 1)}
		l.m[id] = e
	}
	e.refs++
	l.mu.Unlock()
	select {
	case e.held <- struct{}{}:
		return nil
	case <-ctx.Done():
		l.drop(id, e)
		return ctx.Err()
	}
}

func (l *sessionLocks) unlock(id string) {
	l.mu.Lock()
	e := l.m[id]
	l.mu.Unlock()
	<-e.held
	l.drop(id, e)
}

func (l *sessionLocks) drop(id string, e *sessionLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(l.m, id)
	}
}

// NewUpload implements blobstore.Uploader.
func (s *Store) NewUpload(ctx context.Context) (blobstore.Upload, error) {
	id := randomHex(idLen / 2)
	if err := s.locks.lock(ctx, id); err != nil {
		return nil, err
	}
	h := sha256.New()
	hs, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	token := randomHex(16)
	st := &state{Version: stateVersion, PartSize: s.partSize, SHA256: hs, Holder: token, Beat: 1}
	sent := time.Now()
	etag, err := s.putState(ctx, id, st, "")
	if err != nil && isConflict(err) {
		// A retry by the SDK of the write that created it, refused as the key exists.
		if cur, lerr := s.loadState(ctx, id); lerr == nil && cur.st.Holder == token {
			etag, err = cur.etag, nil
		}
	}
	if err != nil {
		s.locks.unlock(id)
		return nil, wrap(err, "new upload")
	}
	return s.opened(id, token, st, etag, sent), nil
}

// Resume implements blobstore.Uploader. A session held by another process is waited
// for, by polling its state, until that process closes it or its lease runs out.
func (s *Store) Resume(ctx context.Context, id string) (blobstore.Upload, error) {
	if !validID(id) {
		return nil, blobstore.ErrInvalidID
	}
	if err := s.locks.lock(ctx, id); err != nil {
		return nil, err
	}
	u, err := s.acquire(ctx, id)
	if err != nil {
		s.locks.unlock(id)
		return nil, err
	}
	return u, nil
}

func (s *Store) acquire(ctx context.Context, id string) (*upload, error) {
	token := randomHex(16)
	poll := 10 * time.Millisecond
	for {
		cur, err := s.loadState(ctx, id)
		if err != nil {
			return nil, err
		}
		if cur.st.Holder == token {
			// The SDK retried a write that had gone through, and was refused.
			return s.opened(id, token, cur.st, cur.etag, time.Now().Add(-cur.idle)), nil
		}
		if cur.st.Holder == "" || cur.idle > s.leaseTTL {
			next := cur.st.clone()
			next.Holder, next.Beat = token, cur.st.Beat+1
			sent := time.Now()
			etag, err := s.putState(ctx, id, next, cur.etag)
			switch {
			case err == nil:
				return s.opened(id, token, next, etag, sent), nil
			case isConflict(err):
				continue // another writer came first: look again
			default:
				return nil, wrap(err, "resume upload %s", id)
			}
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		poll = min(2*poll, 500*time.Millisecond)
	}
}

// opened returns the open session id, held with token since sent.
func (s *Store) opened(id, token string, st *state, etag string, sent time.Time) *upload {
	u := &upload{s: s, id: id, token: token, h: sha256.New(), st: st, etag: etag,
		epoch: time.Now(), stop: make(chan struct{}), stopped: make(chan struct{})}
	if hashCovers(st.SHA256, st.Size) {
		u.hashed = u.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.SHA256) == nil
	}
	u.setRenewed(sent)
	go u.renew()
	return u
}

// Uploads implements blobstore.Uploader. A session's time is that of the last write of
// its state: an append, and also opening and closing it, and the lease's renewals
// while it is open.
func (s *Store) Uploads(ctx context.Context, fn func(string, time.Time) error) error {
	prefix := s.uploadsPrefix()
	pages := s3api.NewListObjectsV2Paginator(s.c, &s3api.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return wrap(err, "list uploads")
		}
		for _, o := range page.Contents {
			id, ok := strings.CutSuffix(strings.TrimPrefix(aws.ToString(o.Key), prefix), "/state")
			if !ok || !validID(id) {
				continue
			}
			if err := fn(id, aws.ToTime(o.LastModified)); err != nil {
				return err
			}
		}
	}
	return nil
}

type upload struct {
	s     *Store
	id    string
	token string // this holder's, in the state's Holder while open
	// h is the sha256 of the content when hashed is true.
	h      hash.Hash
	hashed bool
	done   bool // committed, cancelled or closed

	// mu guards st and etag, which the lease's renewals rewrite too. A state is never
	// changed once written: a new one replaces it.
	mu   sync.Mutex
	st   *state
	etag string
	lost atomic.Bool
	// renewed is when the last write of the state that succeeded was sent, as a
	// monotonic offset from epoch.
	epoch   time.Time
	renewed atomic.Int64

	stop    chan struct{} // tells renew to end
	stopped chan struct{} // closed when it has
}

func (u *upload) ID() string { return u.id }

func (u *upload) Size() int64 { return u.state().Size }

func (u *upload) state() *state {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.st
}

// dataKey is where the session's multipart upload is, and its completed object.
func (u *upload) dataKey() string {
	if u.state().Version == 1 {
		return u.s.legacyDataKey(u.id)
	}
	return u.s.dataKey(u.id)
}

func (u *upload) setRenewed(t time.Time) { u.renewed.Store(int64(t.Sub(u.epoch))) }

// leaseHeld reports whether this holder may still write: its lease was renewed recently
// enough that nobody else can have taken it over. It guards the writes a conditional
// PUT cannot: parts and tail objects.
func (u *upload) leaseHeld() error {
	if u.lost.Load() {
		return u.lostErr()
	}
	if since := time.Since(u.epoch) - time.Duration(u.renewed.Load()); since > u.s.leaseTTL*5/6 {
		return fmt.Errorf("blobstore: s3: upload %s: the lease was last renewed %v ago; another process may hold it now", u.id, since.Round(time.Millisecond))
	}
	return nil
}

func (u *upload) lostErr() error {
	return fmt.Errorf("blobstore: s3: upload %s: %w", u.id, errLost)
}

func (u *upload) usable() error {
	if u.done {
		return errors.New("blobstore: s3: upload is closed")
	}
	return u.leaseHeld()
}

// renew rewrites the state every third of the lease time while the session is open,
// so that other processes keep waiting for it.
func (u *upload) renew() {
	defer close(u.stopped)
	t := time.NewTicker(u.s.leaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-t.C:
		}
		// Up to half the lease: a slow server still gets a renewal through in time.
		ctx, cancel := context.WithTimeout(context.Background(), u.s.leaseTTL/2)
		u.mu.Lock()
		err := u.saveLocked(ctx, u.st.clone())
		u.mu.Unlock()
		cancel()
		if errors.Is(err, errLost) {
			return
		}
		// Another failure is retried at the next tick; leaseHeld stops the writes
		// of this holder if too many fail.
	}
}

func (u *upload) stopRenewal() {
	select {
	case <-u.stop:
	default:
		close(u.stop)
	}
	<-u.stopped
}

// save writes next as the state, if the state is still the one this holder wrote last.
// next is a clone of the last, so it names this holder, unless a Close cleared it.
func (u *upload) save(ctx context.Context, next *state) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.saveLocked(ctx, next)
}

func (u *upload) saveLocked(ctx context.Context, next *state) error {
	if u.lost.Load() {
		return u.lostErr()
	}
	next.Beat = u.st.Beat + 1
	sent := time.Now()
	etag, err := u.s.putState(ctx, u.id, next, u.etag)
	if err != nil && isConflict(err) {
		// The SDK retries a write whose answer was lost, and the retry is refused
		// as if another holder had written: see whose state is there.
		if cur, lerr := u.s.loadState(ctx, u.id); lerr == nil && cur.st.Holder == next.Holder && cur.st.Beat == next.Beat {
			etag, err = cur.etag, nil
		}
	}
	switch {
	case err == nil:
		u.st, u.etag = next, etag
		u.setRenewed(sent)
		return nil
	case isConflict(err) || isNotFound(err):
		u.lost.Store(true)
		return u.lostErr()
	}
	return fmt.Errorf("blobstore: s3: write upload state %s: %w", u.id, err)
}

// Append implements blobstore.Upload. The bytes go through a buffer of one part: when
// it fills, it is sent as the next part of the multipart upload (the first one also
// carries the tail); what is left when r ends is sent as a shorter part if S3 allows one
// that small, else it becomes a new tail object. The state, written last, makes all of
// it the session's at once.
func (u *upload) Append(ctx context.Context, r io.Reader) (int64, error) {
	if err := u.usable(); err != nil {
		return 0, err
	}
	st := u.state()
	if st.Blob != "" {
		return 0, fmt.Errorf("blobstore: s3: upload %s was committed as %s: only the end of the session is left", u.id, st.Blob)
	}
	var saved []byte
	if u.hashed {
		saved, _ = u.h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	tail := st.tailSize()
	buf := u.s.buffer(st.PartSize)
	var (
		p     *pipe
		num   int32
		n     int64
		off   = tail // the first buffer keeps room for the tail, fetched once it fills
		end   int64
		err   error
		parts []part
	)
	for {
		var k int
		var rerr error
		k, rerr = fill(r, buf[off:])
		if rerr != nil && rerr != io.EOF {
			err = fmt.Errorf("blobstore: s3: append to upload %s: %w", u.id, rerr)
			break
		}
		if u.hashed {
			u.h.Write(buf[off : off+int64(k)])
		}
		n += int64(k)
		end = off + int64(k)
		last := end < int64(len(buf)) // r ended within this part
		if last && (end < MinPartSize || n == 0) {
			break // too small for a part, or nothing new: the tail keeps it
		}
		if p == nil {
			if tail > 0 {
				if err = u.readTail(ctx, st.Tail, buf[:tail]); err != nil {
					break
				}
			}
			if err = u.ensureMultipart(ctx); err != nil {
				break
			}
			cur := u.state()
			num = cur.nextPart()
			p = u.s.newPipe(ctx, u.dataKey(), cur.UploadID, buf, u.leaseHeld)
		}
		if last {
			// Big enough to be a part of its own, shorter than the others: chunks of
			// a few MiB each go straight to parts instead of through tail objects.
			err = p.sendLast(num, buf[:end])
			buf, off, end = nil, 0, 0
			break
		}
		if buf, err = p.send(num, buf); err != nil {
			break
		}
		num++
		off, end = 0, 0
		if rerr == io.EOF {
			break
		}
	}
	if p != nil {
		var perr error
		parts, perr = p.wait()
		if err == nil {
			err = perr
		}
	}
	if err == nil && n > 0 {
		err = u.commitAppend(ctx, n, parts, buf, tail, end, p != nil)
	}
	u.s.release(buf)
	if err != nil {
		// all or nothing: the state was not written, nor is the hash moved on
		if u.hashed {
			u.hashed = u.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(saved) == nil
		}
		return 0, err
	}
	return n, nil
}

// commitAppend makes an append of n bytes the session's: the parts it sent, and the
// rest of its bytes, buf[:end], as a new tail object. When it sent no part, buf is the
// first buffer, whose first oldTail bytes are left for the old tail.
func (u *upload) commitAppend(ctx context.Context, n int64, parts []part, buf []byte, oldTail, end int64, sent bool) error {
	if u.state().Staged {
		// Bytes after a staged object need it back in a multipart upload.
		if err := u.ensureMultipart(ctx); err != nil {
			return err
		}
	}
	cur := u.state()
	next := cur.clone()
	next.Size += n
	next.Parts = append(next.Parts, parts...)
	next.SHA256 = nil
	if u.hashed {
		next.SHA256, _ = u.h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	var obsolete []segment
	var from int64
	switch {
	case sent:
		obsolete, next.Tail = cur.Tail, nil
	case len(cur.Tail) >= maxTail:
		// Merge: the old tail joins the new bytes in one object.
		if err := u.readTail(ctx, cur.Tail, buf[:oldTail]); err != nil {
			return err
		}
		obsolete, next.Tail = cur.Tail, nil
	default:
		from = oldTail
	}
	var added *segment
	if end > from {
		if err := u.leaseHeld(); err != nil {
			return err
		}
		seg := segment{Name: randomHex(8), Size: end - from}
		_, err := u.s.c.PutObject(ctx, &s3api.PutObjectInput{
			Bucket: &u.s.bucket, Key: aws.String(u.s.tailKey(u.id, seg.Name)),
			Body: bytes.NewReader(buf[from:end]), ContentLength: aws.Int64(seg.Size),
		})
		if err != nil {
			return wrap(err, "write tail of upload %s", u.id)
		}
		next.Tail = append(next.Tail, seg)
		added = &seg
	}
	if err := u.save(ctx, next); err != nil {
		if added != nil {
			u.s.deleteKeys(ctx, []string{u.s.tailKey(u.id, added.Name)})
		}
		return err
	}
	u.deleteTail(ctx, obsolete)
	return nil
}

// readTail reads the tail objects segs into b, which is their total size.
func (u *upload) readTail(ctx context.Context, segs []segment, b []byte) error {
	for _, seg := range segs {
		out, err := u.s.c.GetObject(ctx, &s3api.GetObjectInput{Bucket: &u.s.bucket, Key: aws.String(u.s.tailKey(u.id, seg.Name))})
		if err != nil {
			return wrap(err, "read tail of upload %s", u.id)
		}
		_, err = io.ReadFull(out.Body, b[:seg.Size])
		out.Body.Close()
		if err != nil {
			return fmt.Errorf("blobstore: s3: read tail of upload %s: %w", u.id, unreachable(ctx, err))
		}
		b = b[seg.Size:]
	}
	return nil
}

// deleteTail removes tail objects no state refers to any more. A failure only leaves
// garbage, which the end of the session removes.
func (u *upload) deleteTail(ctx context.Context, segs []segment) {
	keys := make([]string, len(segs))
	for i, seg := range segs {
		keys[i] = u.s.tailKey(u.id, seg.Name)
	}
	u.s.deleteKeys(ctx, keys)
}

// ensureMultipart makes the session's content a multipart upload that parts can be
// added to: it creates one, or turns a staged object back into one, and records it
// before any part is sent, so that no upload goes unrecorded.
func (u *upload) ensureMultipart(ctx context.Context) error {
	cur := u.state()
	if cur.UploadID != "" {
		return nil
	}
	if err := u.leaseHeld(); err != nil {
		return err
	}
	key := u.dataKey()
	out, err := u.s.c.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{Bucket: &u.s.bucket, Key: &key})
	if err != nil {
		return wrap(err, "start multipart upload of %s", u.id)
	}
	next := cur.clone()
	next.UploadID = aws.ToString(out.UploadId)
	if cur.Staged {
		// The staged object comes back part by part, copied in the server.
		next.Staged = false
		next.Parts, err = u.s.copyParts(ctx, key, key, next.UploadID, cur.Size, cur.PartSize, 1)
	}
	if err == nil {
		err = u.save(ctx, next)
	}
	if err != nil {
		u.s.abort(ctx, key, next.UploadID)
		return err
	}
	if cur.Staged {
		// Not needed any more; a later commit completes the upload over it anyway.
		u.s.deleteKeys(ctx, []string{key})
	}
	return nil
}

// stage completes the session's multipart upload, with the tail as its last part, into
// the object at its data key, and records blob as the digest it was verified as, if it
// was: to be linked as that blob, or read back to check a digest other than sha256.
func (u *upload) stage(ctx context.Context, blob digest.Digest) error {
	cur := u.state()
	if err := u.complete(ctx, cur); err != nil {
		return err
	}
	next := cur.clone()
	next.Staged, next.UploadID, next.Parts, next.Tail, next.Blob = true, "", nil, nil, blob
	if err := u.save(ctx, next); err != nil {
		return err
	}
	u.deleteTail(ctx, cur.Tail)
	return nil
}

// complete completes the multipart upload of cur, with its tail as the last part. An
// upload that is gone was completed already, by a commit that stopped before its state
// said so, if the object at the data key has the session's size: nothing else writes
// there.
func (u *upload) complete(ctx context.Context, cur *state) error {
	if err := u.leaseHeld(); err != nil {
		return err
	}
	key := u.dataKey()
	parts := cur.Parts
	if tail := cur.tailSize(); tail > 0 {
		buf := u.s.buffer(cur.PartSize)
		defer u.s.release(buf)
		if err := u.readTail(ctx, cur.Tail, buf[:tail]); err != nil {
			return err
		}
		out, err := u.s.c.UploadPart(ctx, &s3api.UploadPartInput{
			Bucket: &u.s.bucket, Key: &key, UploadId: &cur.UploadID, PartNumber: aws.Int32(cur.nextPart()),
			Body: bytes.NewReader(buf[:tail]), ContentLength: aws.Int64(tail),
		})
		if err != nil && !isNotFound(err) {
			return wrap(err, "upload the tail of %s", u.id)
		}
		if err == nil {
			parts = append(parts[:len(parts):len(parts)], part{Number: cur.nextPart(), ETag: aws.ToString(out.ETag), Size: tail})
		}
	}
	_, err := u.s.c.CompleteMultipartUpload(ctx, &s3api.CompleteMultipartUploadInput{
		Bucket: &u.s.bucket, Key: &key, UploadId: &cur.UploadID, MultipartUpload: completed(parts),
	})
	if err != nil && isNotFound(err) {
		h, herr := u.s.c.HeadObject(ctx, &s3api.HeadObjectInput{Bucket: &u.s.bucket, Key: &key})
		if herr == nil && aws.ToInt64(h.ContentLength) == cur.Size {
			return nil
		}
	}
	return wrap(err, "complete upload %s", u.id)
}

// Commit implements blobstore.Upload. A session in parts ends where its bytes are: its
// multipart upload is completed at its data key, and a pointer at the blob's key names
// it (see end).
func (u *upload) Commit(ctx context.Context, d digest.Digest) (int64, error) {
	if err := u.usable(); err != nil {
		return 0, err
	}
	if d.Validate() != nil {
		return 0, blobstore.ErrDigestMismatch
	}
	cur := u.state()
	if cur.Blob != "" {
		// A commit verified the content as cur.Blob and stopped before its end.
		if d != cur.Blob {
			return 0, blobstore.ErrDigestMismatch
		}
		return u.endCommit(ctx, cur.Size, nil)
	}
	verified := false
	if d.Algorithm() == digest.SHA256 && u.hashed {
		if digest.NewDigest(digest.SHA256, u.h) != d {
			return 0, blobstore.ErrDigestMismatch
		}
		verified = true
	}
	if !cur.Staged && len(cur.Parts) == 0 {
		return u.commitTail(ctx, d, verified)
	}
	if cur.Version == 1 {
		return u.commitCopy(ctx, d, verified)
	}
	if verified {
		if exists, err := u.s.exists(ctx, u.s.blobKey(d)); err != nil || exists {
			return u.endCommit(ctx, cur.Size, err) // stored once: this upload is not needed
		}
	}
	if !cur.Staged {
		var blob digest.Digest
		if verified {
			blob = d
		}
		if err := u.stage(ctx, blob); err != nil {
			return 0, err
		}
	}
	if !verified {
		if err := u.s.checkObject(ctx, u.dataKey(), d); err != nil {
			return 0, err
		}
		next := u.state().clone()
		next.Blob = d
		if err := u.save(ctx, next); err != nil {
			return 0, err
		}
	}
	return u.endCommit(ctx, cur.Size, nil)
}

// commitCopy commits a session of state version 1, whose bytes are under the session's
// prefix, by copying them to the blob's key in the server.
func (u *upload) commitCopy(ctx context.Context, d digest.Digest, verified bool) (int64, error) {
	cur := u.state()
	if !cur.Staged {
		if err := u.stage(ctx, ""); err != nil {
			return 0, err
		}
	}
	key := u.dataKey()
	if !verified {
		if err := u.s.checkObject(ctx, key, d); err != nil {
			return 0, err
		}
	}
	dst := u.s.blobKey(d)
	if exists, err := u.s.exists(ctx, dst); err != nil || exists {
		return u.endCommit(ctx, cur.Size, err)
	}
	if err := u.leaseHeld(); err != nil {
		return 0, err
	}
	return u.endCommit(ctx, cur.Size, u.s.copyObject(ctx, key, dst, cur.Size))
}

// commitTail commits a session that is all tail, smaller than a part: it needs no
// multipart upload.
func (u *upload) commitTail(ctx context.Context, d digest.Digest, verified bool) (int64, error) {
	cur := u.state()
	var buf []byte
	if !verified || len(cur.Tail) > 1 {
		buf = u.s.buffer(cur.PartSize)
		defer u.s.release(buf)
		buf = buf[:cur.Size]
		if err := u.readTail(ctx, cur.Tail, buf); err != nil {
			return 0, err
		}
	}
	if !verified {
		h := d.Algorithm().Hash()
		h.Write(buf)
		if digest.NewDigest(d.Algorithm(), h) != d {
			return 0, blobstore.ErrDigestMismatch
		}
	}
	dst := u.s.blobKey(d)
	if exists, err := u.s.exists(ctx, dst); err != nil || exists {
		return u.endCommit(ctx, cur.Size, err)
	}
	if err := u.leaseHeld(); err != nil {
		return 0, err
	}
	var err error
	if len(cur.Tail) == 1 {
		err = u.s.copyObject(ctx, u.s.tailKey(u.id, cur.Tail[0].Name), dst, cur.Size)
	} else {
		_, err = u.s.c.PutObject(ctx, &s3api.PutObjectInput{
			Bucket: &u.s.bucket, Key: &dst, Body: bytes.NewReader(buf), ContentLength: aws.Int64(cur.Size)})
		err = wrap(err, "write blob %s", d)
	}
	return u.endCommit(ctx, cur.Size, err)
}

// endCommit ends the session once its blob is in place, or returns err.
func (u *upload) endCommit(ctx context.Context, size int64, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return size, u.end(ctx)
}

// Cancel implements blobstore.Upload.
func (u *upload) Cancel(ctx context.Context) error {
	if u.done {
		return nil
	}
	if err := u.leaseHeld(); err != nil {
		u.finish()
		return err
	}
	return u.end(ctx)
}

// end removes the session: its multipart upload, its data object unless it became a
// blob, every object under its prefix (those of failed appends too), and the state last,
// so that a session half removed is still listed and resumable, and removed again.
func (u *upload) end(ctx context.Context) error {
	u.stopRenewal()
	defer u.finish()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := u.settle(ctx); err != nil {
		u.release(ctx)
		return err
	}
	var keys []string
	prefix := u.s.sessionPrefix(u.id)
	pages := s3api.NewListObjectsV2Paginator(u.s.c, &s3api.ListObjectsV2Input{Bucket: &u.s.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			u.release(ctx)
			return wrap(err, "list upload %s", u.id)
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); k != u.s.stateKey(u.id) {
				keys = append(keys, k)
			}
		}
	}
	if err := u.s.deleteKeys(ctx, keys); err != nil {
		u.release(ctx)
		return err
	}
	_, err := u.s.c.DeleteObject(ctx, &s3api.DeleteObjectInput{Bucket: &u.s.bucket, Key: aws.String(u.s.stateKey(u.id))})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("blobstore: s3: remove upload %s: %w", u.id, err)
	}
	return nil
}

// settle decides what becomes of the session's bytes outside its prefix as it ends. Its
// multipart upload is aborted. A data object verified as a blob is linked as that blob,
// whether a commit or a cancel ends the session: it is whole and checked, and a holder
// cut off after its check may yet have its pointer in flight; it goes only when the blob
// turns out stored otherwise. Any other data object goes (one a commit completed before
// it could record so, too).
func (u *upload) settle(ctx context.Context) error {
	cur := u.state()
	key := u.dataKey()
	if cur.UploadID != "" {
		if err := u.s.abort(ctx, key, cur.UploadID); err != nil {
			return err
		}
	}
	if cur.Version == 1 {
		return nil // under the session's prefix: removed with it
	}
	if cur.Blob != "" {
		if err := u.leaseHeld(); err != nil {
			return err
		}
		linked, err := u.s.link(ctx, cur.Blob, u.id, cur.Size)
		if err != nil || linked {
			return err
		}
	}
	if cur.UploadID == "" && !cur.Staged {
		return nil // no multipart upload was ever recorded: no data object either
	}
	return u.s.deleteKeys(ctx, []string{key})
}

// Close implements blobstore.Upload: the state is written without a holder, so that
// whoever waits for the session takes it at once.
func (u *upload) Close() error {
	if u.done {
		return nil
	}
	u.stopRenewal()
	defer u.finish()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	return u.release(ctx)
}

// release writes the state without a holder, unless it is not this holder's any more.
func (u *upload) release(ctx context.Context) error {
	next := u.state().clone()
	next.Holder = ""
	if err := u.save(ctx, next); err != nil && !errors.Is(err, errLost) {
		return err
	}
	return nil
}

// finish ends the caller's use of the session in this process.
func (u *upload) finish() {
	if u.done {
		return
	}
	u.done = true
	u.stopRenewal()
	u.s.locks.unlock(u.id)
}

// checkObject returns ErrDigestMismatch unless the object at key hashes to d.
func (s *Store) checkObject(ctx context.Context, key string, d digest.Digest) error {
	out, err := s.c.GetObject(ctx, &s3api.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return wrap(err, "read %s back", key)
	}
	defer out.Body.Close()
	h := d.Algorithm().Hash()
	if _, err := io.Copy(h, out.Body); err != nil {
		return fmt.Errorf("blobstore: s3: read %s back: %w", key, unreachable(ctx, err))
	}
	if digest.NewDigest(d.Algorithm(), h) != d {
		return blobstore.ErrDigestMismatch
	}
	return nil
}

func (s *Store) exists(ctx context.Context, key string) (bool, error) {
	_, err := s.c.HeadObject(ctx, &s3api.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, wrap(err, "stat %s", key)
	}
	return true, nil
}

// deleteKeys deletes keys, a thousand at a time as DeleteObjects allows.
func (s *Store) deleteKeys(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 1000)]
		keys = keys[len(batch):]
		objs := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			objs[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := s.c.DeleteObjects(ctx, &s3api.DeleteObjectsInput{Bucket: &s.bucket, Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
		if err != nil {
			return wrap(err, "delete %d objects", len(batch))
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("blobstore: s3: delete %s: %s: %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	return nil
}

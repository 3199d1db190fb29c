package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
)

// stall runs fn once, when a blob store's commit of a blob's bytes returned: the moment
// of a push that stalls between the commit and the link, for longer than the grace
// period of the collections that run meanwhile.
type stall struct{ fn func() }

func (s *stall) run(err error) {
	if err == nil && s.fn != nil {
		fn := s.fn
		s.fn = nil
		fn()
	}
}

// stallingStore is a deployment's blob store whose commits stall.
type stallingStore struct {
	blobstore.Store
	*stall
}

func (s stallingStore) NewUpload(ctx context.Context) (blobstore.Upload, error) {
	u, err := s.Store.NewUpload(ctx)
	if err != nil {
		return nil, err
	}
	return stallingUpload{u, s.stall}, nil
}

type stallingUpload struct {
	blobstore.Upload
	*stall
}

func (u stallingUpload) Commit(ctx context.Context, d digest.Digest) (int64, error) {
	n, err := u.Upload.Commit(ctx, d)
	u.run(err)
	return n, err
}

// stallingPutter is a stallingStore that writes a blob in one pass, as its store does.
type stallingPutter struct{ stallingStore }

func (s stallingPutter) Put(ctx context.Context, d digest.Digest, r io.Reader) (int64, error) {
	n, err := s.Store.(blobstore.Putter).Put(ctx, d, r)
	s.run(err)
	return n, err
}

// TestCommitOutlivedByCollection: a push whose claim a collection outlived, between
// the commit of its bytes and their link, never links bytes that are gone. When the
// collection took them, the push fails with a server error, which clients retry, and
// the next push stores them; when it did not, the push links them as if nothing
// happened.
func TestCommitOutlivedByCollection(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			for _, taken := range []bool{true, false} {
				name := map[bool]string{true: "bytes-taken", false: "bytes-kept"}[taken]
				t.Run(name, func(t *testing.T) { testCommitOutlived(t, dep.open(t), taken) })
			}
		})
	}
}

func testCommitOutlived(t *testing.T, r *Registry, taken bool) {
	ctx := t.Context()
	content := []byte("a layer pushed twice")
	d := digest.FromBytes(content)
	push := func(repo string) error {
		_, err := r.PutBlob(ctx, repo, d.String(), Chunk{Body: bytes.NewReader(content), Start: -1, Length: int64(len(content))})
		return err
	}
	// Taken: the blob's bytes, stored and linked nowhere now, are a collection's
	// candidate once the claim is older than the grace period. Kept: an image names
	// them, and a stray blob is the collection's candidate instead.
	if taken {
		if err := push("first"); err != nil {
			t.Fatal(err)
		}
		if err := r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.UnlinkBlob(ctx, "first", d) }); err != nil {
			t.Fatal(err)
		}
	} else {
		g := &graph{t: t, r: r, ctx: ctx}
		g.image("first", "v1", nil, "", string(content))
		stray := g.blob("stray", "stray")
		if err := r.meta.Update(ctx, func(tx metastore.Tx) error { return tx.UnlinkBlob(ctx, "stray", stray.Digest) }); err != nil {
			t.Fatal(err)
		}
	}

	pause := &stall{}
	if _, ok := r.blobs.(blobstore.Putter); ok {
		r.blobs = stallingPutter{stallingStore{r.blobs, pause}}
	} else {
		r.blobs = stallingStore{r.blobs, pause}
	}
	collected := false
	pause.fn = func() {
		// Two hours pass, for the collection: the claim the push made before its
		// commit is older than the grace period.
		later(r, 2*time.Hour)
		defer func() { r.now = time.Now }()
		rep, err := r.GC(ctx, GCOptions{Delay: time.Hour})
		if err != nil {
			t.Errorf("GC: %v", err)
			return
		}
		for _, b := range rep.Blobs {
			collected = collected || b == d
		}
	}
	err := push("second")
	if collected != taken {
		t.Fatalf("the collection during the push took the blob: %v, want %v", collected, taken)
	}
	if taken {
		var e *errcode.Error
		if !errors.As(err, &e) || e.Code != errcode.Unavailable {
			t.Fatalf("a push whose bytes a collection took meanwhile returned %v, want %s", err, errcode.Unavailable.Name)
		}
		if _, _, err := r.StatBlob(ctx, "second", d.String()); err == nil {
			t.Fatal("the repository lists a blob whose bytes are gone")
		}
		// The client pushes again.
		if err := push("second"); err != nil {
			t.Fatalf("the push again: %v", err)
		}
	} else if err != nil {
		t.Fatalf("a push whose bytes a collection left returned %v", err)
	}
	b, err := r.OpenBlob(ctx, "second", d.String())
	if err != nil {
		t.Fatalf("the pushed blob: %v", err)
	}
	defer b.Close()
	if got, err := io.ReadAll(b); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the pushed blob reads %q, %v", got, err)
	}
}

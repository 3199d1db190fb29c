package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
)

// Blob is a blob opened for reading through a repository.
type Blob struct {
	*blobstore.Blob
	Digest digest.Digest
	// URL, when set, is where the client fetches the blob instead (Options.Redirect);
	// Blob is nil then.
	URL string
}

func errBlobUnknown(d string) error {
	return errcode.New(errcode.BlobUnknown, "blob %s is not in the repository", clip(d))
}

// StatBlob returns the digest and size of blob ref as repo sees it.
func (r *Registry) StatBlob(ctx context.Context, repo, ref string) (digest.Digest, int64, error) {
	if err := checkName(repo); err != nil {
		return "", 0, err
	}
	d, err := parseDigest(ref)
	if err != nil {
		return "", 0, err
	}
	if err := checkRepoRead(ctx, r.meta, repo); err != nil {
		return "", 0, internal("stat blob", err)
	}
	size, err := r.meta.Blob(ctx, repo, d)
	if errors.Is(err, metastore.ErrNotFound) {
		// A manifest is a blob of its repository too, as clients that fetch one
		// through the blob endpoint expect.
		m, merr := r.meta.Content(ctx, repo, d)
		if merr == nil {
			if err := checkManifestRead(repo, m); err != nil {
				return "", 0, err
			}
			return d, m.Size, nil
		}
		if errors.Is(merr, metastore.ErrNotFound) {
			return "", 0, errBlobUnknown(ref)
		}
		err = merr
	}
	if err != nil {
		return "", 0, internal("stat blob", err)
	}
	return d, size, nil
}

// OpenBlob opens blob ref for reading through repo.
func (r *Registry) OpenBlob(ctx context.Context, repo, ref string) (*Blob, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	d, err := parseDigest(ref)
	if err != nil {
		return nil, err
	}
	if err := checkRepoRead(ctx, r.meta, repo); err != nil {
		return nil, internal("open blob", err)
	}
	_, err = r.meta.Blob(ctx, repo, d)
	if errors.Is(err, metastore.ErrNotFound) {
		m, merr := r.meta.Content(ctx, repo, d)
		if merr == nil {
			if err := checkManifestRead(repo, m); err != nil {
				return nil, err
			}
			return &Blob{Digest: d, Blob: &blobstore.Blob{
				ReadSeekCloser: nopCloser{bytes.NewReader(m.Bytes)}, Size: m.Size}}, nil
		}
		if errors.Is(merr, metastore.ErrNotFound) {
			return nil, errBlobUnknown(ref)
		}
		err = merr
	}
	if err != nil {
		return nil, internal("open blob", err)
	}
	if rd, ok := r.blobs.(blobstore.Redirector); ok && r.opts.Redirect {
		u, err := rd.URL(ctx, d, redirectTTL)
		if err != nil {
			return nil, internal("blob URL", err)
		}
		return &Blob{Digest: d, URL: u}, nil
	}
	b, err := r.blobs.Open(ctx, d)
	if errors.Is(err, blobstore.ErrNotFound) {
		r.log.Error("blob linked in a repository is missing from the blob store", "repo", repo, "digest", d)
		return nil, errBlobUnknown(ref)
	}
	if err != nil {
		return nil, internal("open blob", err)
	}
	return &Blob{Blob: b, Digest: d}, nil
}

// redirectTTL is how long a redirect to a blob stays valid: long enough for a slow
// client to start the download, short enough that a leaked URL soon stops working.
const redirectTTL = 15 * time.Minute

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// DeleteBlob takes blob ref from repo. The bytes stay while other repositories use
// them; garbage collection reclaims them once none does. A lock protects what it
// locks: a blob that a manifest of repo locked against deletes names stays.
func (r *Registry) DeleteBlob(ctx context.Context, repo, ref string) error {
	if err := checkName(repo); err != nil {
		return err
	}
	if err := r.checkClientChange(repo); err != nil {
		return err
	}
	d, err := parseDigest(ref)
	if err != nil {
		return err
	}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error {
		if err := checkRepoDelete(ctx, tx, repo); err != nil {
			return err
		}
		m, err := tx.LockingManifest(ctx, repo, d)
		switch {
		case err == nil:
			return errDenied("blob %s is named by manifest %s, which is locked against deletes", d, m)
		case !errors.Is(err, metastore.ErrNotFound):
			return err
		}
		return tx.UnlinkBlob(ctx, repo, d)
	})
	if errors.Is(err, metastore.ErrNotFound) {
		return errBlobUnknown(ref)
	}
	if err != nil {
		return internal("delete blob", err)
	}
	return nil
}

// MountBlob makes blob ref of repository from readable in repo, and reports whether it
// did: false when from does not have it or may not be read. With from empty, any
// repository that has the blob serves.
func (r *Registry) MountBlob(ctx context.Context, repo, from, ref string) (digest.Digest, bool, error) {
	if err := checkName(repo); err != nil {
		return "", false, err
	}
	if err := r.checkClientChange(repo); err != nil {
		return "", false, err
	}
	d, err := parseDigest(ref)
	if err != nil {
		return "", false, err
	}
	if err := checkRepoWrite(ctx, r.meta, repo); err != nil {
		return "", false, internal("mount blob", err)
	}
	if from == "" {
		from, err = r.meta.BlobRepository(ctx, d)
		if errors.Is(err, metastore.ErrNotFound) {
			return d, false, nil
		}
		if err != nil {
			return "", false, internal("mount blob", err)
		}
	} else if checkName(from) != nil {
		return d, false, nil
	}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error {
		if err := checkRepoWrite(ctx, tx, repo); err != nil {
			return err
		}
		if checkRepoRead(ctx, tx, from) != nil {
			return metastore.ErrNotFound // nothing readable to mount
		}
		size, err := tx.Blob(ctx, from, d)
		if err != nil {
			return err
		}
		return tx.LinkBlob(ctx, repo, d, size)
	})
	if errors.Is(err, metastore.ErrNotFound) {
		return d, false, nil
	}
	if err != nil {
		return "", false, internal("mount blob", err)
	}
	return d, true, nil
}

package registry

import (
	"context"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// A Filler writes to repositories what a pull-through mirror fetched from its upstream
// registry: the writes clients may not make to a mirror's repositories (Options.ReadOnly).
// Locks and immutable tags hold as for a push.
//
// A mirrored manifest is stored before its blobs and child manifests are: the mirror
// fetches each when it is first pulled, so that a pull costs the upstream what it
// reads and no more. Such a manifest names blobs its repository may not read yet; a
// repository may read a blob only once the blob store holds it, verified, so garbage
// collection and cross-repository mounts see nothing else than after a push. A
// mirrored manifest stays as any does: while a tag (the one the mirror fetched it by),
// an index that stays or a live subject keeps it.
type Filler struct{ r *Registry }

// Filler returns the registry's Filler.
func (r *Registry) Filler() *Filler { return &Filler{r: r} }

// PutManifest stores body, manifest d with media type mediaType as the upstream served
// it, in repo and, unless tag is "", points tag at it. The body must hash to d, and
// parse as a manifest of a type the registry stores.
func (f *Filler) PutManifest(ctx context.Context, repo, tag, mediaType string, body []byte, d digest.Digest) error {
	r := f.r
	if err := checkName(repo); err != nil {
		return err
	}
	if tag != "" && !reference.ValidTag(tag) {
		return errcode.New(errcode.ManifestInvalid, "invalid tag %q", clip(tag))
	}
	if len(body) > manifest.MaxSize {
		return errcode.New(errcode.ManifestInvalid, "manifest larger than %d bytes", manifest.MaxSize)
	}
	if err := d.Validate(); err != nil || d.Algorithm().FromBytes(body) != d {
		return errcode.New(errcode.DigestInvalid, "the manifest's content does not match digest %s", d)
	}
	parsed, err := manifest.Parse(mediaType, body)
	if err != nil {
		var me *manifest.Error
		if errors.As(err, &me) {
			return errcode.New(errcode.ManifestInvalid, "%s", me.Reason)
		}
		return internal("parse manifest", err)
	}
	m := record(repo, d, body, parsed)
	if parsed.Config != nil {
		m.Platform = r.platform(ctx, parsed.Config)
	}
	err = r.meta.Update(ctx, func(tx metastore.Tx) error {
		if err := checkRepoWrite(ctx, tx, repo); err != nil {
			return err
		}
		if err := tx.PutManifest(ctx, m); err != nil {
			return err
		}
		var tags []string
		previous := map[string]digest.Digest{}
		if tag != "" {
			mv, err := tx.MoveTag(ctx, repo, tag, d)
			if err != nil {
				return err
			}
			if err := r.checkTagMove(repo, tag, d, mv); err != nil {
				return err
			}
			if mv.Previous != "" {
				previous[tag] = mv.Previous
			}
			tags = []string{tag}
		}
		// What a mirror fetched changes the registry as a push does: its consumers
		// see it the same way.
		return r.publishPush(ctx, tx, m, tags, previous)
	})
	if err != nil {
		return internal("put mirrored manifest", err)
	}
	r.published()
	return nil
}

// PutBlob stores what body yields, size bytes that must hash to d, as blob d of repo.
// Nothing of it is visible before the digest is verified; a wrong digest or size
// stores nothing.
func (f *Filler) PutBlob(ctx context.Context, repo string, d digest.Digest, size int64, body io.Reader) error {
	r := f.r
	if err := checkName(repo); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return errcode.New(errcode.DigestInvalid, "invalid digest %q", clip(d.String()))
	}
	if err := checkRepoWrite(ctx, r.meta, repo); err != nil {
		return internal("put mirrored blob", err)
	}
	return r.store(ctx, repo, d, Chunk{Body: body, Start: -1, Length: size})
}

// LinkBlob lets repo read blob d when the blob store holds it already (another
// repository has it), and reports whether it did.
func (f *Filler) LinkBlob(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	r := f.r
	if err := checkName(repo); err != nil {
		return false, err
	}
	// The claim keeps a garbage collection that finds d linked nowhere from removing
	// the bytes between the look and the link, as an upload's claim does.
	claimed, err := r.claim(ctx, d, 0)
	if err != nil {
		return false, err
	}
	size, err := r.blobs.Stat(ctx, d)
	if errors.Is(err, blobstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal("stat blob", err)
	}
	err = r.link(ctx, repo, d, size, "", claimed)
	if errors.Is(err, errCollected) {
		return false, nil // fetched again, as if never there
	}
	return err == nil, err
}

// HasBlob reports whether the blob store holds blob d, in whatever repository.
func (f *Filler) HasBlob(ctx context.Context, d digest.Digest) (bool, error) {
	_, err := f.r.blobs.Stat(ctx, d)
	if errors.Is(err, blobstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal("stat blob", err)
	}
	return true, nil
}

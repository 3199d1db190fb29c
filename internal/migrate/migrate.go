// Package migrate copies a registry from one pair of stores to another: from the
// embedded deployment to the scale-out one, or back. Blob bytes are copied once each,
// straight from store to store; every manifest goes through the registry's own push,
// so the destination checks it as it would a client's, and indexes its referrers.
//
// A copy can be run again: what the destination has already is skipped, so an
// interrupted copy resumes.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/registry"
)

// Stores are one side of a copy.
type Stores struct {
	Blobs blobstore.Store
	Meta  metastore.Store
}

// Report counts what a copy did.
type Report struct {
	Blobs        int   `json:"blobs"`        // blobs whose bytes were copied
	Bytes        int64 `json:"bytes"`        // their size
	Repositories int   `json:"repositories"` // repositories copied
	Manifests    int   `json:"manifests"`
	Tags         int   `json:"tags"`
	Tokens       int   `json:"tokens"`
}

// Copy copies everything src holds to dst: blobs, repositories with their links,
// manifests, tags, attributes and access tokens. Upload sessions in progress are not
// copied. It checks at the end that every repository has as many manifests and tags
// in dst as in src.
func Copy(ctx context.Context, src, dst Stores, log *slog.Logger) (*Report, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := &Report{}
	reg := registry.New(dst.Blobs, dst.Meta, registry.Options{Logger: log})
	if err := copyBlobs(ctx, src, dst, rep); err != nil {
		return rep, err
	}
	log.Info("blobs copied", "count", rep.Blobs, "bytes", rep.Bytes)
	for r, err := range metastore.All(ctx, src.Meta.RepositoryList, metastore.Repository.Key) {
		if err != nil {
			return rep, fmt.Errorf("list repositories: %w", err)
		}
		if err := copyRepository(ctx, src, dst, reg, r, rep); err != nil {
			return rep, fmt.Errorf("repository %s: %w", r.Name, err)
		}
		rep.Repositories++
		log.Info("repository copied", "repo", r.Name, "manifests", r.ManifestCount, "tags", r.TagCount)
	}
	if err := copyTokens(ctx, src, dst, rep); err != nil {
		return rep, err
	}
	return rep, verify(ctx, src, dst)
}

func copyBlobs(ctx context.Context, src, dst Stores, rep *Report) error {
	var ds []digest.Digest
	if err := src.Blobs.Walk(ctx, func(d digest.Digest, _ int64) error {
		ds = append(ds, d)
		return nil
	}); err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, d := range ds {
		if _, err := dst.Blobs.Stat(ctx, d); err == nil {
			continue
		} else if !errors.Is(err, blobstore.ErrNotFound) {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		n, err := copyBlob(ctx, src, dst, d)
		if err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		rep.Blobs++
		rep.Bytes += n
	}
	return nil
}

func copyBlob(ctx context.Context, src, dst Stores, d digest.Digest) (int64, error) {
	b, err := src.Blobs.Open(ctx, d)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	// Claimed first, so that a collector running on the destination leaves the bytes
	// alone until the repositories link them.
	err = dst.Meta.Update(ctx, func(tx metastore.Tx) error {
		_, err := tx.ClaimBlob(ctx, d, b.Size)
		return err
	})
	if err != nil {
		return 0, err
	}
	if p, ok := dst.Blobs.(blobstore.Putter); ok {
		return p.Put(ctx, d, b)
	}
	u, err := dst.Blobs.NewUpload(ctx)
	if err != nil {
		return 0, err
	}
	defer u.Close()
	if _, err := u.Append(ctx, b); err != nil {
		u.Cancel(ctx)
		return 0, err
	}
	return u.Commit(ctx, d)
}

func copyRepository(ctx context.Context, src, dst Stores, reg *registry.Registry, r metastore.Repository, rep *Report) error {
	// Every manifest, with the blobs it names: the repository's links are those and
	// the blobs no manifest names.
	list := func(ctx context.Context, after digest.Digest, n int) ([]metastore.Node, error) {
		return src.Meta.Nodes(ctx, r.Name, after, n)
	}
	var nodes []metastore.Node
	links := map[digest.Digest]bool{}
	manifests := map[digest.Digest]*metastore.Manifest{}
	for n, err := range metastore.All(ctx, list, metastore.Node.Key) {
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		m, err := src.Meta.Manifest(ctx, r.Name, n.Digest)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", n.Digest, err)
		}
		parsed, err := manifest.Parse(m.MediaType, m.Content)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", n.Digest, err)
		}
		for _, b := range parsed.Blobs {
			links[b.Digest] = true
		}
		manifests[n.Digest] = m
	}
	forever := time.Now().Add(100 * 365 * 24 * time.Hour)
	unreferenced := func(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error) {
		return src.Meta.UnreferencedBlobs(ctx, r.Name, forever, after, n)
	}
	for d, err := range metastore.All(ctx, unreferenced, metastore.Itself) {
		if err != nil {
			return err
		}
		links[d] = true
	}
	err := dst.Meta.Update(ctx, func(tx metastore.Tx) error {
		for d := range links {
			size, err := src.Meta.Blob(ctx, r.Name, d)
			if errors.Is(err, metastore.ErrNotFound) {
				continue // a layer never pushed (non-distributable)
			}
			if err != nil {
				return err
			}
			if err := tx.LinkBlob(ctx, r.Name, d, size); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("link blobs: %w", err)
	}

	// Children before the indexes that list them: the push checks they are there.
	done := map[digest.Digest]bool{}
	byDigest := map[digest.Digest]metastore.Node{}
	for _, n := range nodes {
		byDigest[n.Digest] = n
	}
	var push func(d digest.Digest) error
	push = func(d digest.Digest) error {
		if done[d] {
			return nil
		}
		done[d] = true
		for _, c := range byDigest[d].Children {
			if _, ok := byDigest[c]; ok {
				if err := push(c); err != nil {
					return err
				}
			}
		}
		m := manifests[d]
		tags, err := src.Meta.TagsOf(ctx, r.Name, d)
		if err != nil {
			return err
		}
		if _, err := reg.PutManifest(ctx, r.Name, d.String(), m.MediaType, m.Content, tags); err != nil {
			return fmt.Errorf("manifest %s: %w", d, err)
		}
		rep.Manifests++
		rep.Tags += len(tags)
		return nil
	}
	for _, n := range nodes {
		if err := push(n.Digest); err != nil {
			return err
		}
	}

	// Locks last: a locked manifest or repository refuses the writes above.
	return dst.Meta.Update(ctx, func(tx metastore.Tx) error {
		for d, m := range manifests {
			if m.Attributes != metastore.Enabled {
				if err := tx.SetManifestAttributes(ctx, r.Name, d, m.Attributes); err != nil {
					return err
				}
			}
		}
		if r.Attributes != metastore.Enabled {
			return tx.SetRepositoryAttributes(ctx, r.Name, r.Attributes)
		}
		return nil
	})
}

func copyTokens(ctx context.Context, src, dst Stores, rep *Report) error {
	toks, err := src.Meta.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	return dst.Meta.Update(ctx, func(tx metastore.Tx) error {
		rep.Tokens = 0
		for _, t := range toks {
			err := tx.CreateToken(ctx, &t)
			if errors.Is(err, metastore.ErrExists) {
				continue
			}
			if err != nil {
				return fmt.Errorf("token %s: %w", t.Name, err)
			}
			rep.Tokens++
		}
		return nil
	})
}

// verify checks that every repository of src has as many manifests and tags in dst.
func verify(ctx context.Context, src, dst Stores) error {
	for r, err := range metastore.All(ctx, src.Meta.RepositoryList, metastore.Repository.Key) {
		if err != nil {
			return err
		}
		d, err := dst.Meta.Repository(ctx, r.Name)
		if err != nil {
			return fmt.Errorf("verify %s: %w", r.Name, err)
		}
		if d.ManifestCount < r.ManifestCount || d.TagCount < r.TagCount {
			return fmt.Errorf("verify %s: the destination has %d manifests and %d tags, the source %d and %d",
				r.Name, d.ManifestCount, d.TagCount, r.ManifestCount, r.TagCount)
		}
	}
	return nil
}

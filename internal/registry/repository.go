package registry

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/metastore"
)

// RepositoryDeleted is what DeleteRepository removed.
type RepositoryDeleted struct {
	Name      string `json:"name"`
	Manifests int64  `json:"manifests"`
	Tags      int64  `json:"tags"`
	// Size is the bytes of blobs and manifests the repository held; blobs no other
	// repository may read are left for garbage collection.
	Size int64 `json:"size"`
}

// DeleteRepository removes repo with every graph in it: its manifests, tags and links
// to blobs. It refuses while the repository or any manifest of it is locked against
// deletes or writes: a lock is there to keep what it locks. The repository is then
// gone from the catalog and the metadata API; a push to its name creates it anew.
func (r *Registry) DeleteRepository(ctx context.Context, repo string) (*RepositoryDeleted, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	var deleted *RepositoryDeleted
	err := r.meta.Update(ctx, func(tx metastore.Tx) error {
		rp, err := tx.Repository(ctx, repo)
		if errors.Is(err, metastore.ErrNotFound) {
			return errNameUnknown(repo)
		}
		if err != nil {
			return err
		}
		if !deletable(rp.Attributes) {
			return errDenied("repository %s is locked; unlock it to delete it", repo)
		}
		list := func(ctx context.Context, after digest.Digest, n int) ([]metastore.Manifest, error) {
			return tx.Manifests(ctx, repo, metastore.Filter{}, after, n)
		}
		for m, err := range metastore.All(ctx, list, metastore.Manifest.Key) {
			if err != nil {
				return err
			}
			if !deletable(m.Attributes) {
				return errDenied("manifest %s of %s is locked; unlock it to delete the repository", m.Digest, repo)
			}
		}
		deleted = &RepositoryDeleted{Name: repo, Manifests: rp.ManifestCount, Tags: rp.TagCount, Size: rp.Size}
		if err := tx.DeleteRepository(ctx, repo); err != nil {
			return err
		}
		return r.publish(ctx, tx, events.RepositoryDeleted, repo, events.Repository{Repository: repo})
	})
	if err != nil {
		return nil, internal("delete repository", err)
	}
	r.published()
	r.log.Info("repository deleted", "repo", repo, "manifests", deleted.Manifests, "tags", deleted.Tags)
	return deleted, nil
}

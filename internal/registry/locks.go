package registry

import (
	"context"
	"errors"

	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
)

// Locks follow ACR's changeable attributes: writeEnabled false refuses tag moves,
// overwrites and pushes, and, as in ACR, deletes too; deleteEnabled false refuses
// deletes only; readEnabled false refuses pulls; listEnabled false hides a repository
// from the catalog and a manifest's tags from the tag list.

func errDenied(format string, args ...any) error {
	return errcode.New(errcode.Denied, format, args...)
}

// deletable reports whether attributes allow a delete.
func deletable(a metastore.Attributes) bool { return a.DeleteEnabled && a.WriteEnabled }

// repoAttributes returns the attributes of repo, or Enabled for a repository that does
// not exist yet.
func repoAttributes(ctx context.Context, rd metastore.RepositoryReader, repo string) (metastore.Attributes, error) {
	a, err := rd.RepositoryAttributes(ctx, repo)
	if errors.Is(err, metastore.ErrNotFound) {
		return metastore.Enabled, nil
	}
	return a, err
}

// checkClientChange refuses a client's push or delete in repo when the repository is
// read-only to clients (Options.ReadOnly).
func (r *Registry) checkClientChange(repo string) error {
	if r.opts.ReadOnly == nil {
		return nil
	}
	if why := r.opts.ReadOnly(repo); why != "" {
		return errDenied("%s", why)
	}
	return nil
}

func checkRepoWrite(ctx context.Context, rd metastore.RepositoryReader, repo string) error {
	a, err := repoAttributes(ctx, rd, repo)
	if err != nil {
		return err
	}
	if !a.WriteEnabled {
		return errDenied("repository %s is locked for writes", repo)
	}
	return nil
}

func checkRepoRead(ctx context.Context, rd metastore.RepositoryReader, repo string) error {
	a, err := repoAttributes(ctx, rd, repo)
	if err != nil {
		return err
	}
	if !a.ReadEnabled {
		return errDenied("repository %s is locked for reads", repo)
	}
	return nil
}

func checkRepoDelete(ctx context.Context, rd metastore.RepositoryReader, repo string) error {
	a, err := repoAttributes(ctx, rd, repo)
	if err != nil {
		return err
	}
	if !deletable(a) {
		return errDenied("repository %s is locked against deletes", repo)
	}
	return nil
}

// checkManifestRead refuses a pull of c, of repository repo, when it or the
// repository is read-locked.
func checkManifestRead(repo string, c *metastore.Content) error {
	if !c.RepoReadEnabled {
		return errDenied("repository %s is locked for reads", repo)
	}
	if !c.ReadEnabled {
		return errDenied("manifest %s is locked for reads", c.Digest)
	}
	return nil
}

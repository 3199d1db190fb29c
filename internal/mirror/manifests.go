package mirror

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// Manifest returns manifest ref (a tag or a digest) of repo, a repository of a mirror,
// as a pull serves it: as the registry holds it, after fetching it from upstream when
// the registry lacks it or holds a tag upstream has not confirmed for a TTL. When the
// upstream cannot be asked, what the registry holds is served as it is.
//
// Concurrent pulls of one manifest make one request upstream.
func (s *Set) Manifest(ctx context.Context, repo, ref string) (*metastore.Content, error) {
	up, _, ok := s.route(repo)
	if !ok {
		return s.reg.GetManifest(ctx, repo, ref)
	}
	m, err := s.reg.GetManifest(ctx, repo, ref)
	switch {
	case err == nil && (reference.IsDigest(ref) || up.tags.fresh(key(repo, ref), s.now())):
		return m, nil
	case err != nil && !errcode.Is(err, errcode.ManifestUnknown):
		return nil, err // a lock, a bad name: nothing upstream changes that
	case !reference.IsDigest(ref) && !reference.ValidTag(ref):
		return nil, err
	}
	_, err = wait(ctx, s.manifests.DoChan(key(repo, ref), func() (any, error) {
		ctx, cancel := s.detached(fetchTimeout)
		defer cancel()
		return nil, s.refreshManifest(ctx, up, repo, ref)
	}))
	if err != nil {
		return nil, err
	}
	return s.reg.GetManifest(ctx, repo, ref)
}

// refreshManifest makes the registry hold manifest ref of repo as upstream has it now:
// it fetches a manifest the registry lacks, and checks a tag it holds, fetching the
// manifest the tag names upstream when it moved. It fails only when the registry holds
// nothing to serve.
func (s *Set) refreshManifest(ctx context.Context, up *upstream, repo, ref string) error {
	// Looked at again: a refresh that ended just before this one began may have done
	// the work.
	held, err := s.reg.GetManifest(ctx, repo, ref)
	if err == nil && (reference.IsDigest(ref) || up.tags.fresh(key(repo, ref), s.now())) {
		return nil
	}
	name := repo[len(up.Prefix):]
	what := fmt.Sprintf("manifest %s:%s", name, ref)
	if reference.IsDigest(ref) {
		what = fmt.Sprintf("manifest %s@%s", name, ref)
	}
	r, err := up.repository(name)
	if err != nil {
		return s.failed(up, err, errcode.ManifestUnknown, what)
	}
	at := s.now()
	fetch := ref
	if held != nil {
		// A HEAD says whether the tag moved; rate limits (Docker Hub's) count GETs.
		desc, err := r.Resolve(ctx, ref)
		s.metrics.upstream.WithLabelValues(up.Prefix, "tag", outcome(err)).Inc()
		if err != nil {
			s.serveHeld(up, "tag", repo, ref, err)
			return nil
		}
		if desc.Digest == held.Digest {
			up.tags.confirm(key(repo, ref), at)
			return nil
		}
		if c, err := s.reg.GetManifest(ctx, repo, desc.Digest.String()); err == nil {
			// moved to a manifest the registry holds: only the tag changes
			if err := s.fill.PutManifest(ctx, repo, ref, c.MediaType, c.Bytes, c.Digest); err != nil {
				s.log.Info("mirror: the tag moved upstream, but may not move here", "mirror", up.Prefix, "repo", repo,
					"tag", ref, "upstream", desc.Digest, "held", held.Digest, "err", err)
			}
			up.tags.confirm(key(repo, ref), at)
			return nil
		}
		fetch = desc.Digest.String()
	}
	desc, body, err := r.FetchReference(ctx, fetch)
	s.metrics.upstream.WithLabelValues(up.Prefix, "manifest", outcome(err)).Inc()
	if err != nil {
		if held != nil {
			s.serveHeld(up, "tag", repo, ref, err)
			return nil
		}
		return s.failed(up, err, errcode.ManifestUnknown, what)
	}
	defer body.Close()
	if desc.Size > manifest.MaxSize {
		return errcode.New(errcode.Unavailable, "upstream %s of mirror %s serves %s larger than the %d bytes a manifest may have",
			up.Upstream, up.Prefix, what, manifest.MaxSize).WithStatus(http.StatusBadGateway)
	}
	b, err := io.ReadAll(io.LimitReader(body, desc.Size))
	if err == nil && int64(len(b)) != desc.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		if held != nil {
			s.serveHeld(up, "tag", repo, ref, err)
			return nil
		}
		return s.failed(up, err, errcode.ManifestUnknown, what)
	}
	tag := ""
	if !reference.IsDigest(ref) {
		tag = ref
	}
	if err := s.fill.PutManifest(ctx, repo, tag, desc.MediaType, b, desc.Digest); err != nil {
		if held != nil && errcode.Is(err, errcode.Denied) {
			// a lock or an immutable tag holds the tag where it is
			s.log.Info("mirror: the tag moved upstream, but may not move here", "mirror", up.Prefix, "repo", repo, "tag", ref,
				"upstream", desc.Digest, "held", held.Digest, "err", err)
			up.tags.confirm(key(repo, ref), at)
			return nil
		}
		return s.unstorable(up, err, what)
	}
	if tag != "" {
		up.tags.confirm(key(repo, ref), at)
	}
	s.log.Debug("mirror: fetched a manifest", "mirror", up.Prefix, "repo", repo, "ref", ref, "digest", desc.Digest)
	return nil
}

// serveHeld logs that what the registry holds of repo (a tag, the referrers of a
// manifest: kind) is served as it is, the upstream having failed with err.
func (s *Set) serveHeld(up *upstream, kind, repo, ref string, err error) {
	s.metrics.stale.WithLabelValues(up.Prefix, kind).Inc()
	s.log.Warn("mirror: serving what it holds, unconfirmed: the upstream failed", "mirror", up.Prefix, "upstream", up.Upstream,
		"repo", repo, "ref", ref, "err", err)
}

// unstorable is the error of a manifest the upstream served that the registry would
// not store: a wrong digest, a type the registry does not know.
func (s *Set) unstorable(up *upstream, err error, what string) error {
	switch {
	case errcode.Is(err, errcode.DigestInvalid):
		s.log.Warn("mirror: the upstream served a manifest that does not match its digest", "mirror", up.Prefix, "what", what, "err", err)
		return errcode.New(errcode.Unavailable, "upstream %s of mirror %s served %s with content that does not match its digest",
			up.Upstream, up.Prefix, what).WithStatus(http.StatusBadGateway)
	case errcode.Is(err, errcode.ManifestInvalid):
		return errcode.New(errcode.Unavailable, "upstream %s of mirror %s served %s, which graft does not store: %s",
			up.Upstream, up.Prefix, what, errcode.As(err).Message).WithStatus(http.StatusBadGateway)
	}
	return err
}

// storeManifest stores manifest d of repo, fetched from upstream, unless the
// registry has it.
func (s *Set) storeManifest(ctx context.Context, up *upstream, repo string, d digest.Digest) error {
	if _, err := s.reg.GetManifest(ctx, repo, d.String()); err == nil {
		return nil
	}
	return s.refreshManifest(ctx, up, repo, d.String())
}

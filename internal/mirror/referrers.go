package mirror

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/errcode"
)

// Referrers makes the registry hold the referrers of manifest subject of repo, a
// repository of a mirror, that upstream lists, unless upstream listed them less than a
// TTL ago: it asks upstream's referrers API, or its referrers tag when it has no such
// API (oras-go picks), and stores each referrer it lacks. The registry's referrers API
// then answers from what it holds. When the upstream cannot be asked, what the registry
// holds is served; if it holds none, the error says so rather than answer "none".
//
// Referrers a later answer no longer lists stay until garbage collection or retention
// removes them with their subject: a mirror adds what upstream adds, and removes
// nothing on its own.
func (s *Set) Referrers(ctx context.Context, repo, subject string) error {
	up, _, ok := s.route(repo)
	if !ok {
		return nil
	}
	d, err := digest.Parse(subject)
	if err != nil {
		return nil // the registry answers DIGEST_INVALID
	}
	k := key(repo, subject)
	if up.referrers.fresh(k, s.now()) {
		return nil
	}
	_, err = wait(ctx, s.referrers.DoChan(k, func() (any, error) {
		if up.referrers.fresh(k, s.now()) {
			return nil, nil
		}
		ctx, cancel := s.detached(fetchTimeout)
		defer cancel()
		return nil, s.refreshReferrers(ctx, up, repo, d)
	}))
	if err == nil || ctx.Err() != nil {
		return err
	}
	held, lerr := s.reg.Referrers(ctx, repo, subject, "", "", 1)
	if lerr == nil && len(held.Index.Manifests) > 0 {
		s.serveHeld(up, "referrers", repo, subject, err)
		return nil
	}
	return s.failed(up, err, errcode.ManifestUnknown, fmt.Sprintf("the referrers of %s@%s", repo[len(up.Prefix):], subject))
}

// refreshReferrers stores the referrers of manifest d of repo that upstream lists now.
func (s *Set) refreshReferrers(ctx context.Context, up *upstream, repo string, d digest.Digest) error {
	name := repo[len(up.Prefix):]
	r, err := up.repository(name)
	if err != nil {
		return err
	}
	at := s.now()
	var listed []ocispec.Descriptor
	err = r.Referrers(ctx, ocispec.Descriptor{Digest: d}, "", func(page []ocispec.Descriptor) error {
		listed = append(listed, page...)
		return nil
	})
	s.metrics.upstream.WithLabelValues(up.Prefix, "referrers", outcome(err)).Inc()
	if err != nil {
		return err
	}
	for _, desc := range listed {
		if err := s.storeManifest(ctx, up, repo, desc.Digest); err != nil {
			return err
		}
	}
	up.referrers.confirm(key(repo, d.String()), at)
	s.log.Debug("mirror: fetched referrers", "mirror", up.Prefix, "repo", repo, "subject", d, "count", len(listed))
	return nil
}

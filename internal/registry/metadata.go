package registry

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// ManifestInfo is a manifest's metadata, as the metadata API shows it.
type ManifestInfo struct {
	metastore.Manifest
	Tags []string
	// Artifacts counts the artifacts hanging under the manifest (referrers and
	// tag-schema artifacts), by kind.
	Artifacts map[string]int64
}

// Edge says how a manifest is known to be an artifact of another.
type Edge string

const (
	// EdgeSubject is the subject field of the manifest, as the referrers API has it.
	EdgeSubject Edge = "subject"
	// EdgeTag is a tag of the referrers tag schema: the manifest is tagged
	// "sha256-<hex>.<suffix>" after its subject (cosign), or listed by the index tagged
	// "sha256-<hex>" (the spec's fallback).
	EdgeTag Edge = "tag"
)

// ArtifactOf returns the manifest m is an artifact of and how that is known: its subject
// field, else a tag-schema edge (the key of its subject, which is the subject's digest
// but for digests longer than a tag holds); "" when it is no artifact.
func (m *ManifestInfo) ArtifactOf() (string, Edge) {
	switch {
	case m.Manifest.Subject != "":
		return m.Manifest.Subject.String(), EdgeSubject
	case m.TagSubject != "":
		return m.TagSubject, EdgeTag
	}
	return "", ""
}

// Signed reports whether a signature hangs under the manifest.
func (m *ManifestInfo) Signed() bool { return m.Artifacts[string(artifact.Signature)] > 0 }

// AttributesPatch changes the attributes that are set and keeps the others.
type AttributesPatch struct {
	DeleteEnabled *bool `json:"deleteEnabled,omitempty"`
	WriteEnabled  *bool `json:"writeEnabled,omitempty"`
	ReadEnabled   *bool `json:"readEnabled,omitempty"`
	ListEnabled   *bool `json:"listEnabled,omitempty"`
}

func (p AttributesPatch) apply(a metastore.Attributes) metastore.Attributes {
	for _, f := range []struct {
		v   *bool
		dst *bool
	}{{p.DeleteEnabled, &a.DeleteEnabled}, {p.WriteEnabled, &a.WriteEnabled}, {p.ReadEnabled, &a.ReadEnabled}, {p.ListEnabled, &a.ListEnabled}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	return a
}

func errNameUnknown(repo string) error {
	return errcode.New(errcode.NameUnknown, "repository %s is not known", clip(repo))
}

// Repository returns repo with its counts, sizes and attributes.
func (r *Registry) Repository(ctx context.Context, repo string) (*metastore.Repository, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	rp, err := r.meta.Repository(ctx, repo)
	if errors.Is(err, metastore.ErrNotFound) {
		return nil, errNameUnknown(repo)
	}
	if err != nil {
		return nil, internal("repository", err)
	}
	return rp, nil
}

// RepositoryList lists every repository after last, listed or not, n at most; more is
// set when others follow.
func (r *Registry) RepositoryList(ctx context.Context, last string, n int) (repos []metastore.Repository, more bool, err error) {
	if n == 0 {
		return []metastore.Repository{}, false, nil
	}
	repos, err = r.meta.RepositoryList(ctx, last, n+1)
	if err != nil {
		return nil, false, internal("list repositories", err)
	}
	if len(repos) > n {
		return repos[:n], true, nil
	}
	return repos, false, nil
}

// ManifestList lists the manifests of repo that pass f, in digest order after last, n
// at most, each with its tags.
func (r *Registry) ManifestList(ctx context.Context, repo string, f metastore.Filter, last string, n int) (ms []ManifestInfo, more bool, err error) {
	if _, err := r.Repository(ctx, repo); err != nil {
		return nil, false, err
	}
	var after digest.Digest
	if last != "" {
		if after, err = parseDigest(last); err != nil {
			return nil, false, err
		}
	}
	if n == 0 {
		return []ManifestInfo{}, false, nil
	}
	list, err := r.meta.Manifests(ctx, repo, f, after, n+1)
	if err != nil {
		return nil, false, internal("list manifests", err)
	}
	if len(list) > n {
		list, more = list[:n], true
	}
	ms = make([]ManifestInfo, len(list))
	digests := make([]digest.Digest, len(list))
	for i := range list {
		ms[i].Manifest = list[i]
		digests[i] = list[i].Digest
		if list[i].TagCount > 0 {
			if ms[i].Tags, err = r.meta.TagsOf(ctx, repo, list[i].Digest); err != nil {
				return nil, false, internal("list manifests", err)
			}
		}
	}
	counts, err := r.meta.KindCounts(ctx, repo, digests)
	if err != nil {
		return nil, false, internal("list manifests", err)
	}
	for i := range ms {
		ms[i].Artifacts = counts[ms[i].Digest]
	}
	return ms, more, nil
}

// ManifestInfo returns the metadata of manifest ref (a tag or digest) of repo.
func (r *Registry) ManifestInfo(ctx context.Context, repo, ref string) (*ManifestInfo, error) {
	if _, err := r.Repository(ctx, repo); err != nil {
		return nil, err
	}
	d, err := r.resolve(ctx, r.meta, repo, ref)
	if err != nil {
		return nil, err
	}
	m, err := r.meta.Manifest(ctx, repo, d)
	if err != nil {
		return nil, manifestErr(ref, err)
	}
	m.Content = nil
	info := &ManifestInfo{Manifest: *m}
	if info.Tags, err = r.meta.TagsOf(ctx, repo, d); err != nil {
		return nil, internal("manifest metadata", err)
	}
	counts, err := r.meta.KindCounts(ctx, repo, []digest.Digest{d})
	if err != nil {
		return nil, internal("manifest metadata", err)
	}
	info.Artifacts = counts[d]
	return info, nil
}

// resolve returns the digest ref names in repo.
func (r *Registry) resolve(ctx context.Context, rd metastore.ManifestReader, repo, ref string) (digest.Digest, error) {
	if err := checkName(repo); err != nil {
		return "", err
	}
	if reference.IsDigest(ref) {
		return parseDigest(ref)
	}
	if !reference.ValidTag(ref) {
		return "", errManifestUnknown(ref)
	}
	m, err := rd.Tag(ctx, repo, ref)
	if err != nil {
		return "", manifestErr(ref, err)
	}
	return m.Digest, nil
}

func manifestErr(ref string, err error) error {
	if errors.Is(err, metastore.ErrNotFound) {
		return errManifestUnknown(ref)
	}
	return internal("manifest metadata", err)
}

// UpdateRepository changes the attributes of repo.
func (r *Registry) UpdateRepository(ctx context.Context, repo string, p AttributesPatch) (*metastore.Repository, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	err := r.meta.Update(ctx, func(tx metastore.Tx) error {
		rp, err := tx.Repository(ctx, repo)
		if err != nil {
			return err
		}
		return tx.SetRepositoryAttributes(ctx, repo, p.apply(rp.Attributes))
	})
	if errors.Is(err, metastore.ErrNotFound) {
		return nil, errNameUnknown(repo)
	}
	if err != nil {
		return nil, internal("update repository", err)
	}
	return r.Repository(ctx, repo)
}

// UpdateManifest changes the attributes of manifest ref (a tag or digest) of repo.
func (r *Registry) UpdateManifest(ctx context.Context, repo, ref string, p AttributesPatch) (*ManifestInfo, error) {
	if _, err := r.Repository(ctx, repo); err != nil {
		return nil, err
	}
	var d digest.Digest
	err := r.meta.Update(ctx, func(tx metastore.Tx) error {
		var err error
		if d, err = r.resolve(ctx, tx, repo, ref); err != nil {
			return err
		}
		m, err := tx.Manifest(ctx, repo, d)
		if err != nil {
			return err
		}
		return tx.SetManifestAttributes(ctx, repo, d, p.apply(m.Attributes))
	})
	if err != nil {
		return nil, manifestErr(ref, err)
	}
	return r.ManifestInfo(ctx, repo, d.String())
}

// TagArtifacts returns the digests of the manifests of repo that the referrers tag
// schema attaches to manifest d, in digest order after `after`, n at most: those tagged
// "<alg>-<hex>.<suffix>" after it (cosign's .sig, .att and .sbom), its fallback index
// tagged "<alg>-<hex>", and what that lists. More is set when others follow.
func (r *Registry) TagArtifacts(ctx context.Context, repo string, d digest.Digest, after digest.Digest, n int) (ds []digest.Digest, more bool, err error) {
	if err := checkName(repo); err != nil {
		return nil, false, err
	}
	if n <= 0 || n > MaxPage {
		n = MaxPage
	}
	ds, err = r.meta.TagArtifacts(ctx, repo, reference.SchemaKeyOf(d), after, n+1)
	if err != nil {
		return nil, false, internal("tag-schema artifacts", err)
	}
	if len(ds) > n {
		return ds[:n], true, nil
	}
	return ds, false, nil
}

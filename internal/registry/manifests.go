package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// maxConfigRead bounds the image config the registry reads to learn a platform.
const maxConfigRead = 1 << 20

func errManifestUnknown(ref string) error {
	return errcode.New(errcode.ManifestUnknown, "manifest %s is not in the repository", clip(ref))
}

// GetManifest returns manifest ref (a tag or a digest) of repo as a pull serves it.
func (r *Registry) GetManifest(ctx context.Context, repo, ref string) (*metastore.Content, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	var (
		m   *metastore.Content
		err error
	)
	if reference.IsDigest(ref) {
		d, perr := parseDigest(ref)
		if perr != nil {
			return nil, perr
		}
		m, err = r.meta.Content(ctx, repo, d)
	} else {
		if !reference.ValidTag(ref) {
			return nil, errManifestUnknown(ref)
		}
		m, err = r.meta.TaggedContent(ctx, repo, ref)
	}
	if errors.Is(err, metastore.ErrNotFound) {
		return nil, errManifestUnknown(ref)
	}
	if err != nil {
		return nil, internal("get manifest", err)
	}
	if err := checkManifestRead(repo, m); err != nil {
		return nil, err
	}
	return m, nil
}

// Pushed is the outcome of a manifest push.
type Pushed struct {
	Digest digest.Digest
	// Subject is the digest of the manifest's subject, or "".
	Subject digest.Digest
	// Tags are the tags that now name the manifest.
	Tags []string
}

// PutManifest stores body, sent with Content-Type contentType, as manifest ref of repo:
// under tag ref, or as digest ref, which body must match. The manifest is also tagged
// with each of tags. Everything it references must be in repo already, except its
// subject.
func (r *Registry) PutManifest(ctx context.Context, repo, ref, contentType string, body []byte, tags []string) (*Pushed, error) {
	return r.PutManifestIf(ctx, repo, ref, contentType, body, tags, Always)
}

// A Precondition is what a tag must name for a conditional push to move it, as HTTP's
// If-Match and If-None-Match say it: the digest it names, Always, or Absent. A client
// that reads an index, changes it and pushes it back under its tag (the referrers tag
// schema's fallback index) so loses no concurrent change.
type Precondition struct {
	// Digest is the manifest the tag must name; "" for none in particular.
	Digest digest.Digest
	// Absent requires the tag to name nothing yet.
	Absent bool
}

// Always is no precondition.
var Always = Precondition{}

func (p Precondition) check(tag string, cur digest.Digest, tagged bool) error {
	switch {
	case p.Absent && tagged:
		return errcode.New(errcode.PreconditionFailed, "tag %s names %s already", tag, cur)
	case p.Digest != "" && (!tagged || cur != p.Digest):
		return errcode.New(errcode.PreconditionFailed, "tag %s does not name %s", tag, p.Digest)
	}
	return nil
}

// PutManifestIf is PutManifest when the tag ref meets cond; a push by digest has no tag
// to meet it, and meets only Always.
func (r *Registry) PutManifestIf(ctx context.Context, repo, ref, contentType string, body []byte, tags []string, cond Precondition) (*Pushed, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	if err := r.checkClientChange(repo); err != nil {
		return nil, err
	}
	if len(body) > manifest.MaxSize {
		return nil, errcode.New(errcode.ManifestInvalid, "manifest larger than %d bytes", manifest.MaxSize).TooLarge()
	}
	var d digest.Digest
	if reference.IsDigest(ref) {
		want, err := parseDigest(ref)
		if err != nil {
			return nil, err
		}
		if d = want.Algorithm().FromBytes(body); d != want {
			return nil, errcode.New(errcode.DigestInvalid, "the manifest's digest is %s, not %s", d, want)
		}
	} else {
		tags = append([]string{ref}, tags...)
		d = digest.FromBytes(body)
	}
	if cond != Always && reference.IsDigest(ref) {
		return nil, errcode.New(errcode.PreconditionFailed, "a push by digest moves no tag, and meets no condition on one")
	}
	for _, t := range tags {
		if !reference.ValidTag(t) {
			return nil, errcode.New(errcode.ManifestInvalid, "invalid tag %q", clip(t))
		}
	}

	parsed, err := manifest.Parse(contentType, body)
	if err != nil {
		var me *manifest.Error
		if errors.As(err, &me) {
			return nil, errcode.New(errcode.ManifestInvalid, "%s", me.Reason)
		}
		return nil, internal("parse manifest", err)
	}
	m := record(repo, d, body, parsed)
	if parsed.Config != nil {
		m.Platform = r.platform(ctx, parsed.Config)
	}

	err = r.meta.Update(ctx, func(tx metastore.Tx) error {
		if err := checkRepoWrite(ctx, tx, repo); err != nil {
			return err
		}
		if cond != Always {
			// A conditional push is a compare-and-swap of its tag, which clients race
			// for (the fallback index of a subject): one that lost fails here, before
			// it writes. The move checks again.
			cur, err := tx.Tag(ctx, repo, tags[0])
			tagged := err == nil
			if err != nil && !errors.Is(err, metastore.ErrNotFound) {
				return err
			}
			var at digest.Digest
			if tagged {
				at = cur.Digest
			}
			if err := cond.check(tags[0], at, tagged); err != nil {
				return err
			}
		}
		if err := checkReferences(ctx, tx, m); err != nil {
			return err
		}
		if err := tx.PutManifest(ctx, m); err != nil {
			return err
		}
		// The tags are checked as they move, against what each named: a read of them
		// before would conflict with every concurrent push of a neighbouring tag.
		previous := map[string]digest.Digest{}
		for i, t := range tags {
			mv, err := tx.MoveTag(ctx, repo, t, d)
			if err != nil {
				return err
			}
			if err := r.checkTagMove(repo, t, d, mv); err != nil {
				return err
			}
			if i == 0 && cond != Always {
				if err := cond.check(t, mv.Previous, mv.Previous != ""); err != nil {
					return err
				}
			}
			if mv.Previous != "" {
				previous[t] = mv.Previous
			}
		}
		return r.publishPush(ctx, tx, m, tags, previous)
	})
	if err != nil {
		return nil, internal("put manifest", err)
	}
	r.published()
	return &Pushed{Digest: d, Subject: m.Subject, Tags: tags}, nil
}

// checkTagMove refuses a move of tag off a manifest locked for writes, or off any
// manifest when the tag is immutable.
func (r *Registry) checkTagMove(repo, tag string, d digest.Digest, mv metastore.TagMove) error {
	if mv.Previous == "" || mv.Previous == d {
		return nil
	}
	if !mv.Attributes.WriteEnabled {
		return errDenied("tag %s names manifest %s, which is locked for writes", tag, mv.Previous)
	}
	if r.immutable(repo, tag) {
		return errDenied("tag %s is immutable: it names manifest %s", tag, mv.Previous)
	}
	return nil
}

// sizeReader looks up what a manifest names, with sizes.
type sizeReader interface {
	BlobSizes(ctx context.Context, repo string, ds []digest.Digest) (map[digest.Digest]int64, error)
	ManifestSizes(ctx context.Context, repo string, ds []digest.Digest) (map[digest.Digest]int64, error)
}

// checkReferences checks that every blob and child manifest m names is in its
// repository (MANIFEST_BLOB_UNKNOWN) and is the size its descriptor says
// (MANIFEST_INVALID): a client that reads the manifest must be able to trust the sizes,
// and a size the registry took unchecked would mislead every total built on it. A
// subject is no reference (it may not exist yet); non-distributable layers, which no
// client pushes, are none either.
func checkReferences(ctx context.Context, rd sizeReader, m *metastore.Manifest) error {
	var blobs, children []digest.Digest
	for _, ref := range m.References {
		if ref.Manifest {
			children = append(children, ref.Digest)
		} else {
			blobs = append(blobs, ref.Digest)
		}
	}
	for _, kind := range []struct {
		what string
		ds   []digest.Digest
		look func(context.Context, string, []digest.Digest) (map[digest.Digest]int64, error)
	}{{"blob", blobs, rd.BlobSizes}, {"manifest", children, rd.ManifestSizes}} {
		if len(kind.ds) == 0 {
			continue
		}
		sizes, err := kind.look(ctx, m.Repo, kind.ds)
		if err != nil {
			return err
		}
		var missing []digest.Digest
		for _, d := range kind.ds {
			if _, ok := sizes[d]; !ok {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			return errcode.New(errcode.ManifestBlobUnknown, "%s %s is not in the repository", kind.what, missing[0]).
				WithDetail(missing)
		}
		for _, ref := range m.References {
			if stored, ok := sizes[ref.Digest]; ok && ref.Manifest == (kind.what == "manifest") && stored != ref.Size {
				return errcode.New(errcode.ManifestInvalid, "%s %s is %d bytes, not %d as the manifest says",
					kind.what, ref.Digest, stored, ref.Size).WithDetail(sizeMismatch{ref.Digest, ref.Size, stored})
			}
		}
	}
	return nil
}

// sizeMismatch is the detail of a descriptor whose size is not its content's.
type sizeMismatch struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
	Stored int64         `json:"stored"`
}

// record is the manifest body, parsed, of digest d as repo stores it, but for the
// platform its config may name.
func record(repo string, d digest.Digest, body []byte, parsed *manifest.Manifest) *metastore.Manifest {
	m := &metastore.Manifest{
		Repo:         repo,
		Digest:       d,
		MediaType:    parsed.MediaType,
		Size:         int64(len(body)),
		Content:      body,
		ArtifactType: parsed.ArtifactType,
		Annotations:  parsed.Annotations,
		Kind:         string(artifact.Classify(parsed)),
	}
	if parsed.Subject != nil {
		m.Subject = parsed.Subject.Digest
	}
	if parsed.Config != nil {
		m.ConfigMediaType = parsed.Config.MediaType
	}
	for _, b := range parsed.Blobs {
		m.References = append(m.References, metastore.Reference{Digest: b.Digest, Size: b.Size})
	}
	for _, c := range parsed.Manifests {
		m.References = append(m.References, metastore.Reference{Digest: c.Digest, Size: c.Size, Manifest: true})
	}
	return m
}

// platform reads the platform an image config names; it returns nil when the config
// is not an image config or cannot be read (the push then fails its blob check, or the
// platform is simply not known).
func (r *Registry) platform(ctx context.Context, config *ocispec.Descriptor) *ocispec.Platform {
	switch config.MediaType {
	case ocispec.MediaTypeImageConfig, manifest.MediaTypeDockerConfig:
	default:
		return nil
	}
	if config.Size > maxConfigRead {
		return nil
	}
	if p, ok := r.platforms.get(config.Digest); ok {
		return p
	}
	b, err := r.blobs.Open(ctx, config.Digest)
	if err != nil {
		return nil
	}
	defer b.Close()
	// An image config names its platform with the fields and JSON keys of a platform.
	var p ocispec.Platform
	if err := json.NewDecoder(io.LimitReader(b, maxConfigRead)).Decode(&p); err != nil {
		return nil
	}
	if p.OS == "" && p.Architecture == "" {
		r.platforms.put(config.Digest, nil)
		return nil
	}
	r.platforms.put(config.Digest, &p)
	return &p
}

// platformCache remembers the platforms of the image configs the registry read: a
// config is named by its digest, so what it says never changes, and the pushes of one
// image under many tags, or of many images on one config, read it from the blob store
// (an S3 request in the scale-out deployment) once.
type platformCache struct {
	mu sync.Mutex
	m  map[digest.Digest]*ocispec.Platform
}

// maxPlatforms bounds the cache; a full cache starts again empty.
const maxPlatforms = 4096

func (c *platformCache) get(d digest.Digest) (*ocispec.Platform, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[d]
	if p != nil {
		cp := *p // the caller's to keep: a manifest record holds it
		p = &cp
	}
	return p, ok
}

func (c *platformCache) put(d digest.Digest, p *ocispec.Platform) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxPlatforms {
		c.m = map[digest.Digest]*ocispec.Platform{}
	}
	if p != nil {
		cp := *p
		p = &cp
	}
	c.m[d] = p
}

// Page is a page of a listing.
type Page struct {
	Items []string
	// More is set when entries follow the last of Items.
	More bool
}

// PageSize checks a client's n: "" asks for the default, which is the largest page;
// a larger n is clamped to it.
func PageSize(n string) (int, error) {
	if n == "" {
		return MaxPage, nil
	}
	v, err := strconv.ParseUint(n, 10, 63)
	if errors.Is(err, strconv.ErrRange) {
		return MaxPage, nil
	}
	if err != nil {
		return 0, errcode.New(errcode.PaginationNumberInvalid, "n must be a non-negative integer")
	}
	return int(min(v, MaxPage)), nil
}

// Tags lists the tags of repo after last, n at most.
func (r *Registry) Tags(ctx context.Context, repo, last string, n int) (*Page, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	if _, err := r.Repository(ctx, repo); err != nil {
		return nil, err
	}
	if n == 0 {
		return &Page{Items: []string{}}, nil
	}
	tags, err := r.meta.Tags(ctx, repo, last, n+1)
	if err != nil {
		return nil, internal("list tags", err)
	}
	return page(tags, n), nil
}

// Catalog lists the repositories after last, n at most.
func (r *Registry) Catalog(ctx context.Context, last string, n int) (*Page, error) {
	if n == 0 {
		return &Page{Items: []string{}}, nil
	}
	repos, err := r.meta.Repositories(ctx, last, n+1)
	if err != nil {
		return nil, internal("list repositories", err)
	}
	return page(repos, n), nil
}

// page cuts a list fetched with one entry more than n.
func page(items []string, n int) *Page {
	if len(items) > n {
		return &Page{Items: items[:n], More: true}
	}
	return &Page{Items: items}
}

// Referrers is a page of the referrers API's answer.
type Referrers struct {
	Index ocispec.Index
	// Next is the digest to continue after, or "" on the last page.
	Next digest.Digest
}

// Referrers returns the descriptors of the manifests of repo whose subject is ref, of
// artifact type artifactType unless it is empty, in digest order after `after`.
func (r *Registry) Referrers(ctx context.Context, repo, ref, artifactType string, after string, n int) (*Referrers, error) {
	if err := checkName(repo); err != nil {
		return nil, err
	}
	d, err := parseDigest(ref)
	if err != nil {
		return nil, err
	}
	var from digest.Digest
	if after != "" {
		if from, err = parseDigest(after); err != nil {
			return nil, err
		}
	}
	if n <= 0 || n > ReferrersPage { // 0: the client did not ask
		n = ReferrersPage
	}
	descs, err := r.meta.Referrers(ctx, repo, d, strings.TrimSpace(artifactType), from, n+1)
	if err != nil {
		return nil, internal("list referrers", err)
	}
	out := &Referrers{Index: ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}}
	out.Index.SchemaVersion = 2
	if len(descs) > n {
		out.Index.Manifests = descs[:n]
		out.Next = descs[n-1].Digest
	}
	return out, nil
}

package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// reader implements metastore.Reader: on the read pool, or in a transaction.
type reader struct {
	d *Dialect
	q Querier
}

// scanManifest scans a row of a manifest's columns (see Queries), with the content last
// when withContent is set.
func scanManifest(repo string, s Row, withContent bool) (*metastore.Manifest, error) {
	var (
		m                 = &metastore.Manifest{Repo: repo}
		subject, annots   *string
		tagSubject        *string
		lastPulled        *time.Time
		os, arch, variant string
		osVersion         string
		osFeatures        []string
		a, ra             = &m.Attributes, &m.RepoAttributes
	)
	dest := []any{&m.Digest, &m.MediaType, &m.Size, &m.TotalSize, &m.TagCount, &m.ArtifactType,
		&m.ConfigMediaType, &subject, &annots, &os, &arch, &variant, &osVersion, &osFeatures, &m.Created, &m.Updated,
		&a.DeleteEnabled, &a.WriteEnabled, &a.ReadEnabled, &a.ListEnabled,
		&ra.DeleteEnabled, &ra.WriteEnabled, &ra.ReadEnabled, &ra.ListEnabled, &m.Kind, &lastPulled, &tagSubject}
	if withContent {
		dest = append(dest, &m.Content)
	}
	if err := s.Scan(dest...); err != nil {
		return nil, notFound("read manifest", err)
	}
	if subject != nil {
		m.Subject = digest.Digest(*subject)
	}
	if tagSubject != nil {
		m.TagSubject = *tagSubject
	}
	if lastPulled != nil {
		m.LastPulled = lastPulled.UTC()
	}
	if err := unmarshalAnnotations(annots, &m.Annotations); err != nil {
		return nil, fmt.Errorf("metastore: annotations of %s: %w", m.Digest, err)
	}
	if os != "" || arch != "" {
		m.Platform = &ocispec.Platform{OS: os, Architecture: arch, Variant: variant, OSVersion: osVersion}
		if len(osFeatures) > 0 {
			m.Platform.OSFeatures = osFeatures
		}
	}
	m.Created, m.Updated = m.Created.UTC(), m.Updated.UTC()
	return m, nil
}

func unmarshalAnnotations(s *string, into *map[string]string) error {
	if s == nil {
		return nil
	}
	return json.Unmarshal([]byte(*s), into)
}

func marshalAnnotations(a map[string]string) (*string, error) {
	if len(a) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

func (r reader) Manifest(ctx context.Context, repo string, d digest.Digest) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.QueryRow(ctx, r.d.Manifest, repo, d.String()), true)
}

func (r reader) TaggedManifest(ctx context.Context, repo, tag string) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.QueryRow(ctx, r.d.TaggedManifest, repo, tag), true)
}

func (r reader) Tag(ctx context.Context, repo, tag string) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.QueryRow(ctx, r.d.Tag, repo, tag), false)
}

func scanContent(s Row) (*metastore.Content, error) {
	var c metastore.Content
	if err := s.Scan(&c.Digest, &c.MediaType, &c.Size, &c.ReadEnabled, &c.RepoReadEnabled, &c.Bytes); err != nil {
		return nil, notFound("read manifest", err)
	}
	return &c, nil
}

func (r reader) Content(ctx context.Context, repo string, d digest.Digest) (*metastore.Content, error) {
	return scanContent(r.q.QueryRow(ctx, r.d.Content, repo, d.String()))
}

func (r reader) TaggedContent(ctx context.Context, repo, tag string) (*metastore.Content, error) {
	return scanContent(r.q.QueryRow(ctx, r.d.TaggedContent, repo, tag))
}

func (r reader) Manifests(ctx context.Context, repo string, f metastore.Filter, after digest.Digest, n int) ([]metastore.Manifest, error) {
	mq := &r.d.Manifests
	q := mq.Select
	args := []any{repo, after.String(), n}
	arg := func(cond string, v any) { // a condition that takes the next argument
		args = append(args, v)
		q += fmt.Sprintf(cond, r.d.Placeholder(len(args)))
	}
	if f.ArtifactType != "" {
		arg(condArtifactType, f.ArtifactType)
	}
	if f.Kind != "" {
		arg(condKind, f.Kind)
	}
	if f.HasSubject != nil {
		q += choose(*f.HasSubject, condWithSubject, condNoSubject)
	}
	if f.Tagged != nil {
		q += choose(*f.Tagged, condTagged, condUntagged)
	}
	if f.TagEdge {
		q += condTagEdge
	}
	return collect(ctx, r.q, "list manifests", q+mq.Order, args, func(rows Row) (metastore.Manifest, error) {
		m, err := scanManifest(repo, rows, false)
		if err != nil {
			return metastore.Manifest{}, err
		}
		return *m, nil
	})
}

func choose(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// collect runs a query and scans each of its rows with scan.
func collect[T any](ctx context.Context, q Querier, what, sql string, args []any, scan func(Row) (T, error)) ([]T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrap(what, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, wrap(what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(what, err)
	}
	return out, nil
}

// scanOne scans a row of one column.
func scanOne[T any](rows Row) (T, error) {
	var v T
	err := rows.Scan(&v)
	return v, err
}

func (r reader) strings(ctx context.Context, what, sql string, args ...any) ([]string, error) {
	return collect(ctx, r.q, what, sql, args, scanOne[string])
}

func (r reader) digests(ctx context.Context, what, sql string, args ...any) ([]digest.Digest, error) {
	return collect(ctx, r.q, what, sql, args, scanOne[digest.Digest])
}

func scanRepository(s Row) (*metastore.Repository, error) {
	var rp metastore.Repository
	a := &rp.Attributes
	err := s.Scan(&rp.Name, &rp.ManifestCount, &rp.TagCount, &rp.Size, &rp.Created, &rp.Updated,
		&a.DeleteEnabled, &a.WriteEnabled, &a.ReadEnabled, &a.ListEnabled)
	if err != nil {
		return nil, notFound("read repository", err)
	}
	rp.Created, rp.Updated = rp.Created.UTC(), rp.Updated.UTC()
	return &rp, nil
}

func (r reader) Repository(ctx context.Context, repo string) (*metastore.Repository, error) {
	return scanRepository(r.q.QueryRow(ctx, r.d.Repository, repo))
}

func (r reader) RepositoryList(ctx context.Context, after string, n int) ([]metastore.Repository, error) {
	return collect(ctx, r.q, "list repositories", r.d.RepositoryList, []any{after, n}, func(rows Row) (metastore.Repository, error) {
		rp, err := scanRepository(rows)
		if err != nil {
			return metastore.Repository{}, err
		}
		return *rp, nil
	})
}

func (r reader) RepositoryAttributes(ctx context.Context, repo string) (metastore.Attributes, error) {
	var a metastore.Attributes
	err := r.q.QueryRow(ctx, r.d.RepositoryAttributes, repo).
		Scan(&a.DeleteEnabled, &a.WriteEnabled, &a.ReadEnabled, &a.ListEnabled)
	return a, notFound("read repository", err)
}

func (r reader) Repositories(ctx context.Context, after string, n int) ([]string, error) {
	return r.strings(ctx, "list repositories", r.d.Repositories, after, n)
}

func (r reader) Tags(ctx context.Context, repo, after string, n int) ([]string, error) {
	return r.strings(ctx, "list tags", r.d.Tags, repo, after, n)
}

func (r reader) TagList(ctx context.Context, repo, after string, n int) ([]metastore.TagInfo, error) {
	return collect(ctx, r.q, "list tags", r.d.TagList, []any{repo, after, n}, func(row Row) (metastore.TagInfo, error) {
		var (
			t          metastore.TagInfo
			lastPulled *time.Time
		)
		if err := row.Scan(&t.Name, &t.Digest, &t.Updated, &lastPulled); err != nil {
			return t, err
		}
		t.Updated = t.Updated.UTC()
		if lastPulled != nil {
			t.LastPulled = lastPulled.UTC()
		}
		return t, nil
	})
}

func (r reader) TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	return r.strings(ctx, "tags of "+d.String(), r.d.TagsOf, repo, d.String())
}

func (r reader) Parents(ctx context.Context, repo string, d digest.Digest) ([]digest.Digest, error) {
	return r.digests(ctx, "parents of "+d.String(), r.d.Parents, repo, d.String())
}

func (r reader) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string, after digest.Digest, n int) ([]ocispec.Descriptor, error) {
	q, args := r.d.Referrers, []any{repo, subject.String(), after.String(), n}
	if artifactType != "" {
		q, args = r.d.ReferrersOfType, append(args, artifactType)
	}
	return collect(ctx, r.q, "referrers", q, args, func(rows Row) (ocispec.Descriptor, error) {
		var (
			d      ocispec.Descriptor
			annots *string
		)
		if err := rows.Scan(&d.MediaType, &d.Digest, &d.Size, &d.ArtifactType, &annots); err != nil {
			return d, err
		}
		if err := unmarshalAnnotations(annots, &d.Annotations); err != nil {
			return d, fmt.Errorf("annotations of %s: %w", d.Digest, err)
		}
		return d, nil
	})
}

func (r reader) TagArtifacts(ctx context.Context, repo, key string, after digest.Digest, n int) ([]digest.Digest, error) {
	return r.digests(ctx, "tag-schema artifacts of "+key, r.d.TagArtifacts, repo, key, after.String(), n)
}

func (r reader) KindCounts(ctx context.Context, repo string, subjects []digest.Digest) (map[digest.Digest]map[string]int64, error) {
	out := map[digest.Digest]map[string]int64{}
	if len(subjects) == 0 {
		return out, nil
	}
	of := make(map[string]digest.Digest, 2*len(subjects)) // subject digests and keys
	keys := make([]string, len(subjects))
	for i, d := range subjects {
		keys[i] = reference.SchemaKeyOf(d)
		of[d.String()], of[keys[i]] = d, d
	}
	type edge struct{ subject, artifact, kind string }
	edges, err := collect(ctx, r.q, "artifacts", r.d.Artifacts, []any{repo, digestStrings(subjects), keys}, func(row Row) (edge, error) {
		var e edge
		return e, row.Scan(&e.subject, &e.artifact, &e.kind)
	})
	if err != nil {
		return nil, err
	}
	// An artifact may be both a referrer and a tag-schema artifact of a subject (a
	// notation signature listed in the fallback index): it counts once.
	seen := map[[2]string]bool{}
	for _, e := range edges {
		d, ok := of[e.subject]
		if !ok || seen[[2]string{d.String(), e.artifact}] {
			continue
		}
		seen[[2]string{d.String(), e.artifact}] = true
		if out[d] == nil {
			out[d] = map[string]int64{}
		}
		out[d][e.kind]++
	}
	return out, nil
}

func (r reader) Blob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := r.q.QueryRow(ctx, r.d.Blob, repo, d.String()).Scan(&size)
	return size, notFound("read blob", err)
}

func (r reader) BlobRepository(ctx context.Context, d digest.Digest) (string, error) {
	var name string
	err := r.q.QueryRow(ctx, r.d.BlobRepository, d.String()).Scan(&name)
	return name, notFound("read blob", err)
}

func (r reader) LockingManifest(ctx context.Context, repo string, d digest.Digest) (digest.Digest, error) {
	var m digest.Digest
	err := r.q.QueryRow(ctx, r.d.LockingManifest, repo, d.String()).Scan(&m)
	return m, notFound("manifests naming "+d.String(), err)
}

func (r reader) MissingBlobs(ctx context.Context, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	return r.missing(ctx, r.d.BlobSizes, repo, ds)
}

func (r reader) MissingManifests(ctx context.Context, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	return r.missing(ctx, r.d.ManifestSizes, repo, ds)
}

func (r reader) BlobSizes(ctx context.Context, repo string, ds []digest.Digest) (map[digest.Digest]int64, error) {
	return r.sizes(ctx, r.d.BlobSizes, repo, ds)
}

func (r reader) ManifestSizes(ctx context.Context, repo string, ds []digest.Digest) (map[digest.Digest]int64, error) {
	return r.sizes(ctx, r.d.ManifestSizes, repo, ds)
}

// sizes returns the sizes query, given repo and ds, finds for those of ds it finds.
func (r reader) sizes(ctx context.Context, query, repo string, ds []digest.Digest) (map[digest.Digest]int64, error) {
	out := make(map[digest.Digest]int64, len(ds))
	if len(ds) == 0 {
		return out, nil
	}
	type found struct {
		d    digest.Digest
		size int64
	}
	rows, err := collect(ctx, r.q, "look up references", query, []any{repo, digestStrings(ds)}, func(row Row) (found, error) {
		var f found
		return f, row.Scan(&f.d, &f.size)
	})
	if err != nil {
		return nil, err
	}
	for _, f := range rows {
		out[f.d] = f.size
	}
	return out, nil
}

// missing returns those of ds that query (see sizes) does not find.
func (r reader) missing(ctx context.Context, query, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	have, err := r.sizes(ctx, query, repo, ds)
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for _, d := range ds {
		if _, ok := have[d]; !ok {
			out = append(out, d)
		}
	}
	return out, nil
}

func digestStrings(ds []digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func scanUpload(s Row, u *metastore.Upload, withID bool) error {
	dest := []any{&u.Repo, &u.Owner, &u.Created, &u.Modified}
	if withID {
		dest = append([]any{&u.ID}, dest...)
	}
	if err := s.Scan(dest...); err != nil {
		return err
	}
	u.Created, u.Modified = u.Created.UTC(), u.Modified.UTC()
	return nil
}

func (r reader) Upload(ctx context.Context, id string) (*metastore.Upload, error) {
	u := &metastore.Upload{ID: id}
	if err := scanUpload(r.q.QueryRow(ctx, r.d.Upload, id), u, false); err != nil {
		return nil, notFound("read upload", err)
	}
	return u, nil
}

func (r reader) StaleUploads(ctx context.Context, t time.Time, n int) ([]metastore.Upload, error) {
	return r.uploads(ctx, "stale uploads", r.d.StaleUploads, t, n)
}

func (r reader) EmptyUploads(ctx context.Context, t time.Time, n int) ([]metastore.Upload, error) {
	return r.uploads(ctx, "empty uploads", r.d.EmptyUploads, t, n)
}

func (r reader) uploads(ctx context.Context, what, query string, t time.Time, n int) ([]metastore.Upload, error) {
	return collect(ctx, r.q, what, query, []any{t, n}, func(rows Row) (metastore.Upload, error) {
		var u metastore.Upload
		return u, scanUpload(rows, &u, true)
	})
}

func (r reader) OpenUploads(ctx context.Context, repo, owner string, upTo int) (ofRepo, ofOwner int, err error) {
	err = r.q.QueryRow(ctx, r.d.OpenUploads, repo, owner, upTo).Scan(&ofRepo, &ofOwner)
	return ofRepo, ofOwner, wrap("count uploads", err)
}

func (r reader) Nodes(ctx context.Context, repo string, after digest.Digest, n int) ([]metastore.Node, error) {
	return collect(ctx, r.q, "nodes", r.d.Nodes, []any{repo, after.String(), n}, func(rows Row) (metastore.Node, error) {
		var (
			nd         metastore.Node
			subject    *string
			lastPulled *time.Time
			children   []string
		)
		if err := rows.Scan(&nd.Digest, &subject, &nd.Tagged, &nd.DeleteEnabled, &nd.Updated, &nd.Kind, &lastPulled,
			&nd.Size, &children, &nd.TagSubjects); err != nil {
			return nd, err
		}
		if lastPulled != nil {
			nd.LastPulled = lastPulled.UTC()
		}
		if subject != nil {
			nd.Subject = digest.Digest(*subject)
		}
		nd.Updated = nd.Updated.UTC()
		if len(nd.TagSubjects) == 0 {
			nd.TagSubjects = nil
		}
		for _, c := range children {
			nd.Children = append(nd.Children, digest.Digest(c))
		}
		return nd, nil
	})
}

func (r reader) UnreferencedBlobs(ctx context.Context, repo string, t time.Time, after digest.Digest, n int) ([]digest.Digest, error) {
	return r.digests(ctx, "unreferenced blobs", r.d.UnreferencedBlobs, repo, after.String(), t, n)
}

func (r reader) UnlinkedBlobs(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error) {
	return r.digests(ctx, "unlinked blobs", r.d.UnlinkedBlobs, after.String(), n)
}

func (r reader) Stats(ctx context.Context) (*metastore.Stats, error) {
	type counter struct {
		name  string
		value int64
	}
	counters, err := collect(ctx, r.q, "stats", r.d.Stats, nil, func(row Row) (counter, error) {
		var c counter
		return c, row.Scan(&c.name, &c.value)
	})
	if err != nil {
		return nil, err
	}
	st := &metastore.Stats{Manifests: map[string]int64{}}
	for _, c := range counters {
		switch c.name {
		case statRepositories:
			st.Repositories = c.value
		case statTags:
			st.Tags = c.value
		case statSize:
			st.Size = c.value
		case statUploads:
			st.Uploads = c.value
		default:
			if kind, ok := strings.CutPrefix(c.name, statManifests); ok && c.value != 0 {
				st.Manifests[kind] = c.value
			}
		}
	}
	return st, nil
}

func (r reader) BlobState(ctx context.Context, d digest.Digest) (bool, time.Time, error) {
	var (
		linked  bool
		claimed *time.Time
	)
	err := r.q.QueryRow(ctx, r.d.BlobState, d.String()).Scan(&linked, &claimed)
	if errors.Is(err, ErrNoRows) {
		return false, time.Time{}, nil
	}
	if err != nil || claimed == nil {
		return linked, time.Time{}, wrap("state of blob "+d.String(), err)
	}
	return linked, claimed.UTC(), nil
}

func scanToken(s Row) (metastore.Token, error) {
	var (
		tok     metastore.Token
		expires *time.Time
	)
	if err := s.Scan(&tok.Name, &tok.Hash, &tok.Repositories, &tok.Actions, &tok.Created, &expires); err != nil {
		return tok, err
	}
	tok.Created = tok.Created.UTC()
	if expires != nil {
		tok.Expires = expires.UTC()
	}
	return tok, nil
}

func (r reader) Token(ctx context.Context, name string) (*metastore.Token, error) {
	tok, err := scanToken(r.q.QueryRow(ctx, r.d.Token, name))
	if err != nil {
		return nil, notFound("read token", err)
	}
	return &tok, nil
}

func (r reader) Tokens(ctx context.Context) ([]metastore.Token, error) {
	return collect(ctx, r.q, "list tokens", r.d.Tokens, nil, scanToken)
}

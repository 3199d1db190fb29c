package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/metastore"
)

// querier runs a query: the read pool, or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// reader implements metastore.Reader.
type reader struct {
	q querier
}

// repoID is the id of the repository named by a query's first parameter: an index
// lookup, planned once as an InitPlan.
const repoID = `(SELECT id FROM repos WHERE name = $1)`

// metaColumns are a manifest's columns but its content, with the attributes of its
// repository (joined as r).
const metaColumns = `m.digest, m.media_type, m.size, m.total_size, m.tag_count, m.artifact_type,
	m.config_media_type, m.subject, m.annotations, m.platform_os, m.platform_architecture,
	m.platform_variant, m.platform_os_version, m.platform_os_features, m.created, m.updated,
	m.delete_enabled, m.write_enabled, m.read_enabled, m.list_enabled,
	r.delete_enabled, r.write_enabled, r.read_enabled, r.list_enabled`

const manifestColumns = metaColumns + `, m.content`

func scanManifest(repo string, s pgx.Row, withContent bool) (*metastore.Manifest, error) {
	var (
		m                 = &metastore.Manifest{Repo: repo}
		subject, annots   *string
		os, arch, variant string
		osVersion         string
		osFeatures        []string
		a, ra             = &m.Attributes, &m.RepoAttributes
	)
	dest := []any{&m.Digest, &m.MediaType, &m.Size, &m.TotalSize, &m.TagCount, &m.ArtifactType,
		&m.ConfigMediaType, &subject, &annots, &os, &arch, &variant, &osVersion, &osFeatures, &m.Created, &m.Updated,
		&a.DeleteEnabled, &a.WriteEnabled, &a.ReadEnabled, &a.ListEnabled,
		&ra.DeleteEnabled, &ra.WriteEnabled, &ra.ReadEnabled, &ra.ListEnabled}
	if withContent {
		dest = append(dest, &m.Content)
	}
	if err := s.Scan(dest...); err != nil {
		return nil, notFound(err)
	}
	if subject != nil {
		m.Subject = digest.Digest(*subject)
	}
	if err := unmarshalAnnotations(annots, &m.Annotations); err != nil {
		return nil, fmt.Errorf("metastore: annotations of %s: %w", m.Digest, err)
	}
	if os != "" || arch != "" {
		m.Platform = &ocispec.Platform{OS: os, Architecture: arch, Variant: variant, OSVersion: osVersion, OSFeatures: osFeatures}
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

func notFound(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return metastore.ErrNotFound
	}
	return fmt.Errorf("metastore: %w", err)
}

// The point lookups of a manifest, by digest and by tag. A tag is looked up first, as an
// InitPlan, so that the manifest is then found by its key: as a join, a planner without
// statistics may go the other way, through every manifest of the repository.
const (
	manifestQuery = `SELECT ` + manifestColumns + `
		FROM repos r JOIN manifests m ON m.repo_id = r.id
		WHERE r.name = $1 AND m.digest = $2`
	taggedManifestQuery = `SELECT ` + manifestColumns + `
		FROM repos r JOIN manifests m ON m.repo_id = r.id
		WHERE r.name = $1 AND m.digest = ` + tagged
	tagQuery = `SELECT ` + metaColumns + `
		FROM repos r JOIN manifests m ON m.repo_id = r.id
		WHERE r.name = $1 AND m.digest = ` + tagged
	tagged = `(SELECT manifest FROM tags WHERE repo_id = ` + repoID + ` AND name = $2)`
)

func (r reader) Manifest(ctx context.Context, repo string, d digest.Digest) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.QueryRow(ctx, manifestQuery, repo, d.String()), true)
}

func (r reader) TaggedManifest(ctx context.Context, repo, tag string) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.QueryRow(ctx, taggedManifestQuery, repo, tag), true)
}

func (r reader) Tag(ctx context.Context, repo, tag string) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.QueryRow(ctx, tagQuery, repo, tag), false)
}

// contentColumns are what a pull reads.
const contentColumns = `m.digest, m.media_type, m.size, m.read_enabled, r.read_enabled, m.content`

func scanContent(s pgx.Row) (*metastore.Content, error) {
	var c metastore.Content
	if err := s.Scan(&c.Digest, &c.MediaType, &c.Size, &c.ReadEnabled, &c.RepoReadEnabled, &c.Bytes); err != nil {
		return nil, notFound(err)
	}
	return &c, nil
}

func (r reader) Content(ctx context.Context, repo string, d digest.Digest) (*metastore.Content, error) {
	return scanContent(r.q.QueryRow(ctx, `SELECT `+contentColumns+`
		FROM repos r JOIN manifests m ON m.repo_id = r.id
		WHERE r.name = $1 AND m.digest = $2`, repo, d.String()))
}

func (r reader) TaggedContent(ctx context.Context, repo, tag string) (*metastore.Content, error) {
	return scanContent(r.q.QueryRow(ctx, `SELECT `+contentColumns+`
		FROM repos r JOIN manifests m ON m.repo_id = r.id
		WHERE r.name = $1 AND m.digest = `+tagged, repo, tag))
}

// manifestsQuery is the manifest listing with the conditions of a filter: each filter
// has an index that yields the manifests in digest order, so the query is a range scan
// whose length follows the answer.
func manifestsQuery(f metastore.Filter) string {
	q := `SELECT ` + metaColumns + ` FROM repos r JOIN manifests m ON m.repo_id = r.id
		WHERE r.name = $1 AND m.digest > $2`
	if f.ArtifactType != "" {
		q += ` AND m.artifact_type = $4`
	}
	if f.HasSubject != nil {
		q += map[bool]string{true: ` AND m.subject IS NOT NULL`, false: ` AND m.subject IS NULL`}[*f.HasSubject]
	}
	if f.Tagged != nil {
		q += map[bool]string{true: ` AND m.tag_count > 0`, false: ` AND m.tag_count = 0`}[*f.Tagged]
	}
	return q + ` ORDER BY m.digest LIMIT $3`
}

func (r reader) Manifests(ctx context.Context, repo string, f metastore.Filter, after digest.Digest, n int) ([]metastore.Manifest, error) {
	args := []any{repo, after.String(), n}
	if f.ArtifactType != "" {
		args = append(args, f.ArtifactType)
	}
	rows, err := r.q.Query(ctx, manifestsQuery(f), args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list manifests: %w", err)
	}
	defer rows.Close()
	out := []metastore.Manifest{}
	for rows.Next() {
		m, err := scanManifest(repo, rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list manifests: %w", err)
	}
	return out, nil
}

// repoColumns are a repository's, with its counters summed over their slots (joined as
// s, a lateral subquery).
const repoColumns = `r.name, s.manifests, s.tags, s.size, r.created, GREATEST(r.created, s.updated),
	r.delete_enabled, r.write_enabled, r.read_enabled, r.list_enabled`

const repoStats = `LEFT JOIN LATERAL (SELECT COALESCE(sum(manifests), 0)::bigint AS manifests,
	COALESCE(sum(tags), 0)::bigint AS tags, COALESCE(sum(size), 0)::bigint AS size, max(updated) AS updated
	FROM repo_stats WHERE repo_id = r.id) s ON true`

func scanRepository(s pgx.Row) (*metastore.Repository, error) {
	var rp metastore.Repository
	a := &rp.Attributes
	err := s.Scan(&rp.Name, &rp.ManifestCount, &rp.TagCount, &rp.Size, &rp.Created, &rp.Updated,
		&a.DeleteEnabled, &a.WriteEnabled, &a.ReadEnabled, &a.ListEnabled)
	if err != nil {
		return nil, notFound(err)
	}
	rp.Created, rp.Updated = rp.Created.UTC(), rp.Updated.UTC()
	return &rp, nil
}

func (r reader) Repository(ctx context.Context, repo string) (*metastore.Repository, error) {
	return scanRepository(r.q.QueryRow(ctx, `SELECT `+repoColumns+` FROM repos r `+repoStats+` WHERE r.name = $1`, repo))
}

func (r reader) RepositoryAttributes(ctx context.Context, repo string) (metastore.Attributes, error) {
	var a metastore.Attributes
	err := r.q.QueryRow(ctx, `SELECT delete_enabled, write_enabled, read_enabled, list_enabled
		FROM repos WHERE name = $1`, repo).Scan(&a.DeleteEnabled, &a.WriteEnabled, &a.ReadEnabled, &a.ListEnabled)
	return a, notFound(err)
}

func (r reader) RepositoryList(ctx context.Context, after string, n int) ([]metastore.Repository, error) {
	rows, err := r.q.Query(ctx, `SELECT `+repoColumns+` FROM repos r `+repoStats+`
		WHERE r.name > $1 ORDER BY r.name LIMIT $2`, after, n)
	if err != nil {
		return nil, fmt.Errorf("metastore: list repositories: %w", err)
	}
	defer rows.Close()
	out := []metastore.Repository{}
	for rows.Next() {
		rp, err := scanRepository(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *rp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list repositories: %w", err)
	}
	return out, nil
}

func (r reader) Blob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := r.q.QueryRow(ctx, `SELECT b.size FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest
		WHERE rb.repo_id = `+repoID+` AND rb.digest = $2`, repo, d.String()).Scan(&size)
	return size, notFound(err)
}

func (r reader) BlobRepository(ctx context.Context, d digest.Digest) (string, error) {
	var name string
	err := r.q.QueryRow(ctx, `SELECT r.name FROM repo_blobs rb JOIN repos r ON r.id = rb.repo_id
		WHERE rb.digest = $1 LIMIT 1`, d.String()).Scan(&name)
	return name, notFound(err)
}

// What a push checks: which of its blobs and child manifests the repository has.
const (
	missingBlobsQuery     = `SELECT digest FROM repo_blobs WHERE repo_id = ` + repoID + ` AND digest = ANY($2)`
	missingManifestsQuery = `SELECT digest FROM manifests WHERE repo_id = ` + repoID + ` AND digest = ANY($2)`
)

func (r reader) MissingBlobs(ctx context.Context, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	return r.missing(ctx, missingBlobsQuery, repo, ds)
}

func (r reader) MissingManifests(ctx context.Context, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	return r.missing(ctx, missingManifestsQuery, repo, ds)
}

// missing returns those of ds that query, given repo and ds, does not find.
func (r reader) missing(ctx context.Context, query, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	found, err := r.digests(ctx, query, repo, digestStrings(ds))
	if err != nil {
		return nil, err
	}
	have := make(map[digest.Digest]bool, len(found))
	for _, d := range found {
		have[d] = true
	}
	var out []digest.Digest
	for _, d := range ds {
		if !have[d] {
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

func (r reader) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := r.q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	return out, nil
}

func (r reader) digests(ctx context.Context, query string, args ...any) ([]digest.Digest, error) {
	names, err := r.strings(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, len(names))
	for i, s := range names {
		out[i] = digest.Digest(s)
	}
	return out, nil
}

func (r reader) Repositories(ctx context.Context, after string, n int) ([]string, error) {
	return r.strings(ctx, `SELECT name FROM repos WHERE name > $1 AND list_enabled ORDER BY name LIMIT $2`, after, n)
}

// The listings of tags and parents, each a range of an index in the order it returns.
const (
	tagsQuery = `SELECT t.name FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.manifest
		WHERE t.repo_id = ` + repoID + ` AND t.name > $2 AND m.list_enabled
		ORDER BY t.name LIMIT $3`
	tagsOfQuery  = `SELECT name FROM tags WHERE repo_id = ` + repoID + ` AND manifest = $2 ORDER BY name`
	parentsQuery = `SELECT manifest FROM manifest_refs
		WHERE repo_id = ` + repoID + ` AND digest = $2 AND is_manifest ORDER BY manifest`
)

func (r reader) Tags(ctx context.Context, repo, after string, n int) ([]string, error) {
	return r.strings(ctx, tagsQuery, repo, after, n)
}

func (r reader) TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	return r.strings(ctx, tagsOfQuery, repo, d.String())
}

func (r reader) Parents(ctx context.Context, repo string, d digest.Digest) ([]digest.Digest, error) {
	return r.digests(ctx, parentsQuery, repo, d.String())
}

// The referrers queries: two indexes serve them, (repo, subject, digest) and (repo,
// subject, artifact type, digest), each a range scan in digest order.
const (
	referrersQuery = `SELECT media_type, digest, size, artifact_type, annotations FROM manifests
		WHERE repo_id = ` + repoID + ` AND subject = $2 AND digest > $3
		ORDER BY digest LIMIT $4`
	referrersOfTypeQuery = `SELECT media_type, digest, size, artifact_type, annotations FROM manifests
		WHERE repo_id = ` + repoID + ` AND subject = $2 AND artifact_type = $5 AND digest > $3
		ORDER BY digest LIMIT $4`
)

func (r reader) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string, after digest.Digest, n int) ([]ocispec.Descriptor, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if artifactType == "" {
		rows, err = r.q.Query(ctx, referrersQuery, repo, subject.String(), after.String(), n)
	} else {
		rows, err = r.q.Query(ctx, referrersOfTypeQuery, repo, subject.String(), after.String(), n, artifactType)
	}
	if err != nil {
		return nil, fmt.Errorf("metastore: referrers: %w", err)
	}
	defer rows.Close()
	out := []ocispec.Descriptor{}
	for rows.Next() {
		var (
			d      ocispec.Descriptor
			annots *string
		)
		if err := rows.Scan(&d.MediaType, &d.Digest, &d.Size, &d.ArtifactType, &annots); err != nil {
			return nil, fmt.Errorf("metastore: referrers: %w", err)
		}
		if err := unmarshalAnnotations(annots, &d.Annotations); err != nil {
			return nil, fmt.Errorf("metastore: annotations of %s: %w", d.Digest, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: referrers: %w", err)
	}
	return out, nil
}

func (r reader) Upload(ctx context.Context, id string) (*metastore.Upload, error) {
	u := &metastore.Upload{ID: id}
	err := r.q.QueryRow(ctx, `SELECT repo, created, modified FROM uploads WHERE id = $1`, id).
		Scan(&u.Repo, &u.Created, &u.Modified)
	if err != nil {
		return nil, notFound(err)
	}
	u.Created, u.Modified = u.Created.UTC(), u.Modified.UTC()
	return u, nil
}

func (r reader) StaleUploads(ctx context.Context, t time.Time, n int) ([]metastore.Upload, error) {
	rows, err := r.q.Query(ctx, `SELECT id, repo, created, modified FROM uploads
		WHERE modified < $1 ORDER BY modified LIMIT $2`, t, n)
	if err != nil {
		return nil, fmt.Errorf("metastore: stale uploads: %w", err)
	}
	defer rows.Close()
	var out []metastore.Upload
	for rows.Next() {
		var u metastore.Upload
		if err := rows.Scan(&u.ID, &u.Repo, &u.Created, &u.Modified); err != nil {
			return nil, fmt.Errorf("metastore: stale uploads: %w", err)
		}
		u.Created, u.Modified = u.Created.UTC(), u.Modified.UTC()
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: stale uploads: %w", err)
	}
	return out, nil
}

func (r reader) Nodes(ctx context.Context, repo string, after digest.Digest, n int) ([]metastore.Node, error) {
	rows, err := r.q.Query(ctx, `SELECT m.digest, m.subject, m.tag_count > 0, m.delete_enabled, m.updated,
			ARRAY(SELECT mr.digest FROM manifest_refs mr
			      WHERE mr.repo_id = m.repo_id AND mr.manifest = m.digest AND mr.is_manifest ORDER BY mr.digest)
		FROM manifests m WHERE m.repo_id = `+repoID+` AND m.digest > $2
		ORDER BY m.digest LIMIT $3`, repo, after.String(), n)
	if err != nil {
		return nil, fmt.Errorf("metastore: nodes: %w", err)
	}
	defer rows.Close()
	out := []metastore.Node{}
	for rows.Next() {
		var (
			nd      metastore.Node
			subject *string
			kids    []string
		)
		if err := rows.Scan(&nd.Digest, &subject, &nd.Tagged, &nd.DeleteEnabled, &nd.Updated, &kids); err != nil {
			return nil, fmt.Errorf("metastore: nodes: %w", err)
		}
		if subject != nil {
			nd.Subject = digest.Digest(*subject)
		}
		nd.Updated = nd.Updated.UTC()
		for _, k := range kids {
			nd.Children = append(nd.Children, digest.Digest(k))
		}
		out = append(out, nd)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: nodes: %w", err)
	}
	return out, nil
}

// unreferenced is the condition on a repo_blobs row rb that no manifest of its
// repository names the blob.
const unreferenced = `NOT EXISTS (SELECT 1 FROM manifest_refs mr
	WHERE mr.repo_id = rb.repo_id AND mr.digest = rb.digest AND NOT mr.is_manifest)`

func (r reader) UnreferencedBlobs(ctx context.Context, repo string, t time.Time, after digest.Digest, n int) ([]digest.Digest, error) {
	return r.digests(ctx, `SELECT rb.digest FROM repo_blobs rb
		WHERE rb.repo_id = `+repoID+` AND rb.digest > $2 AND rb.created < $3 AND `+unreferenced+`
		ORDER BY rb.digest LIMIT $4`, repo, after.String(), t, n)
}

func (r reader) UnlinkedBlobs(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error) {
	return r.digests(ctx, `SELECT b.digest FROM blobs b WHERE b.digest > $1
		AND NOT EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.digest = b.digest)
		ORDER BY b.digest LIMIT $2`, after.String(), n)
}

const tokenColumns = `name, hash, repositories, actions, created, expires`

func scanToken(s pgx.Row) (*metastore.Token, error) {
	var (
		tok     metastore.Token
		expires *time.Time
	)
	if err := s.Scan(&tok.Name, &tok.Hash, &tok.Repositories, &tok.Actions, &tok.Created, &expires); err != nil {
		return nil, err
	}
	tok.Created = tok.Created.UTC()
	if expires != nil {
		tok.Expires = expires.UTC()
	}
	return &tok, nil
}

func (r reader) Token(ctx context.Context, name string) (*metastore.Token, error) {
	tok, err := scanToken(r.q.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE name = $1`, name))
	return tok, notFound(err)
}

func (r reader) Tokens(ctx context.Context) ([]metastore.Token, error) {
	rows, err := r.q.Query(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("metastore: tokens: %w", err)
	}
	defer rows.Close()
	out := []metastore.Token{}
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("metastore: tokens: %w", err)
		}
		out = append(out, *tok)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: tokens: %w", err)
	}
	return out, nil
}

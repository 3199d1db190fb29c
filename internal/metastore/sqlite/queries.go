package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/metastore"
)

// reader implements metastore.Reader on a conn: the read pool, or a transaction.
type reader struct {
	q *conn
}

const manifestColumns = `m.digest, m.media_type, m.size, m.artifact_type, m.config_media_type,
	m.subject, m.annotations, m.platform_os, m.platform_architecture, m.platform_variant,
	m.created, m.updated, m.content`

func scanManifest(repo string, s interface{ Scan(...any) error }) (*metastore.Manifest, error) {
	var (
		m                 = &metastore.Manifest{Repo: repo}
		subject, annots   sql.NullString
		os, arch, variant string
		created, updated  int64
	)
	err := s.Scan(&m.Digest, &m.MediaType, &m.Size, &m.ArtifactType, &m.ConfigMediaType,
		&subject, &annots, &os, &arch, &variant, &created, &updated, &m.Content)
	if err != nil {
		return nil, notFound(err)
	}
	m.Subject = digest.Digest(subject.String)
	if annots.Valid {
		if err := json.Unmarshal([]byte(annots.String), &m.Annotations); err != nil {
			return nil, fmt.Errorf("metastore: annotations of %s: %w", m.Digest, err)
		}
	}
	if os != "" || arch != "" {
		m.Platform = &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}
	}
	m.Created = time.Unix(0, created).UTC()
	m.Updated = time.Unix(0, updated).UTC()
	return m, nil
}

func notFound(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return metastore.ErrNotFound
	}
	return fmt.Errorf("metastore: %w", err)
}

func (r reader) Manifest(ctx context.Context, repo string, d digest.Digest) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.queryRow(ctx, `SELECT `+manifestColumns+`
		FROM manifests m JOIN repos r ON r.id = m.repo_id
		WHERE r.name = ? AND m.digest = ?`, repo, d.String()))
}

func (r reader) TaggedManifest(ctx context.Context, repo, tag string) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.queryRow(ctx, `SELECT `+manifestColumns+`
		FROM repos r JOIN tags t ON t.repo_id = r.id JOIN manifests m ON m.id = t.manifest_id
		WHERE r.name = ? AND t.name = ?`, repo, tag))
}

func (r reader) Blob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size int64
	err := r.q.queryRow(ctx, `SELECT b.size FROM repos r
		JOIN repo_blobs rb ON rb.repo_id = r.id JOIN blobs b ON b.digest = rb.digest
		WHERE r.name = ? AND rb.digest = ?`, repo, d.String()).Scan(&size)
	return size, notFound(err)
}

func (r reader) BlobRepository(ctx context.Context, d digest.Digest) (string, error) {
	var name string
	err := r.q.queryRow(ctx, `SELECT r.name FROM repo_blobs rb JOIN repos r ON r.id = rb.repo_id
		WHERE rb.digest = ? LIMIT 1`, d.String()).Scan(&name)
	return name, notFound(err)
}

func (r reader) MissingBlobs(ctx context.Context, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	return r.missing(ctx, `SELECT 1 FROM repo_blobs
		WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND digest = ?`, repo, ds)
}

func (r reader) MissingManifests(ctx context.Context, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	return r.missing(ctx, `SELECT 1 FROM manifests
		WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND digest = ?`, repo, ds)
}

// missing runs the point query for each digest: in-process lookups cost microseconds,
// and one prepared statement serves every list length.
func (r reader) missing(ctx context.Context, query, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	var out []digest.Digest
	for _, d := range ds {
		var one int
		switch err := r.q.queryRow(ctx, query, repo, d.String()).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			out = append(out, d)
		case err != nil:
			return nil, fmt.Errorf("metastore: %w", err)
		}
	}
	return out, nil
}

func (r reader) RepositoryExists(ctx context.Context, repo string) (bool, error) {
	var one int
	err := r.q.queryRow(ctx, `SELECT 1 FROM repos WHERE name = ?`, repo).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("metastore: %w", err)
	}
	return true, nil
}

func (r reader) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := r.q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("metastore: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	return out, nil
}

func (r reader) Repositories(ctx context.Context, after string, n int) ([]string, error) {
	return r.strings(ctx, `SELECT name FROM repos WHERE name > ? ORDER BY name LIMIT ?`, after, n)
}

func (r reader) Tags(ctx context.Context, repo, after string, n int) ([]string, error) {
	return r.strings(ctx, `SELECT name FROM tags
		WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND name > ? ORDER BY name LIMIT ?`, repo, after, n)
}

func (r reader) TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	return r.strings(ctx, `SELECT t.name FROM repos r
		JOIN manifests m ON m.repo_id = r.id JOIN tags t ON t.manifest_id = m.id
		WHERE r.name = ? AND m.digest = ? ORDER BY t.name`, repo, d.String())
}

func (r reader) Parents(ctx context.Context, repo string, d digest.Digest) ([]digest.Digest, error) {
	names, err := r.strings(ctx, `SELECT m.digest FROM manifest_refs mr
		JOIN manifests m ON m.id = mr.manifest_id
		WHERE mr.digest = ? AND mr.is_manifest = 1
		  AND m.repo_id = (SELECT id FROM repos WHERE name = ?) ORDER BY m.digest`, d.String(), repo)
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, len(names))
	for i, s := range names {
		out[i] = digest.Digest(s)
	}
	return out, nil
}

func (r reader) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string, after digest.Digest, n int) ([]ocispec.Descriptor, error) {
	var (
		rows *sql.Rows
		err  error
	)
	// Two indexes serve the two queries: (repo, subject, digest) and
	// (repo, subject, artifact_type, digest).
	if artifactType == "" {
		rows, err = r.q.query(ctx, `SELECT media_type, digest, size, artifact_type, annotations FROM manifests
			WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND subject = ? AND digest > ?
			ORDER BY digest LIMIT ?`, repo, subject.String(), after.String(), n)
	} else {
		rows, err = r.q.query(ctx, `SELECT media_type, digest, size, artifact_type, annotations FROM manifests
			WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND subject = ? AND artifact_type = ? AND digest > ?
			ORDER BY digest LIMIT ?`, repo, subject.String(), artifactType, after.String(), n)
	}
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	defer rows.Close()
	out := []ocispec.Descriptor{}
	for rows.Next() {
		var (
			d      ocispec.Descriptor
			annots sql.NullString
		)
		if err := rows.Scan(&d.MediaType, &d.Digest, &d.Size, &d.ArtifactType, &annots); err != nil {
			return nil, fmt.Errorf("metastore: %w", err)
		}
		if annots.Valid {
			if err := json.Unmarshal([]byte(annots.String), &d.Annotations); err != nil {
				return nil, fmt.Errorf("metastore: annotations of %s: %w", d.Digest, err)
			}
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	return out, nil
}

func (r reader) Upload(ctx context.Context, id string) (*metastore.Upload, error) {
	u := &metastore.Upload{ID: id}
	var created, modified int64
	err := r.q.queryRow(ctx, `SELECT repo, created, modified FROM uploads WHERE id = ?`, id).
		Scan(&u.Repo, &created, &modified)
	if err != nil {
		return nil, notFound(err)
	}
	u.Created, u.Modified = time.Unix(0, created).UTC(), time.Unix(0, modified).UTC()
	return u, nil
}

func (r reader) StaleUploads(ctx context.Context, t time.Time, n int) ([]metastore.Upload, error) {
	rows, err := r.q.query(ctx, `SELECT id, repo, created, modified FROM uploads
		WHERE modified < ? ORDER BY modified LIMIT ?`, t.UnixNano(), n)
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	defer rows.Close()
	var out []metastore.Upload
	for rows.Next() {
		var (
			u                 metastore.Upload
			created, modified int64
		)
		if err := rows.Scan(&u.ID, &u.Repo, &created, &modified); err != nil {
			return nil, fmt.Errorf("metastore: %w", err)
		}
		u.Created, u.Modified = time.Unix(0, created).UTC(), time.Unix(0, modified).UTC()
		out = append(out, u)
	}
	return out, rows.Err()
}

// txn implements metastore.Tx inside the writer's transaction.
type txn struct {
	reader
}

var _ metastore.Tx = (*txn)(nil)

// repoID returns the id of repo, creating the repository when create is set.
func (t *txn) repoID(ctx context.Context, repo string, create bool) (int64, error) {
	var id int64
	err := t.q.queryRow(ctx, `SELECT id FROM repos WHERE name = ?`, repo).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) && create {
		err = t.q.queryRow(ctx, `INSERT INTO repos (name, created) VALUES (?, ?) RETURNING id`,
			repo, time.Now().UnixNano()).Scan(&id)
	}
	return id, notFound(err)
}

func (t *txn) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	id, err := t.repoID(ctx, repo, true)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	if _, err := t.q.exec(ctx, `INSERT INTO blobs (digest, size, created) VALUES (?, ?, ?)
		ON CONFLICT (digest) DO NOTHING`, d.String(), size, now); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	if _, err := t.q.exec(ctx, `INSERT INTO repo_blobs (repo_id, digest, created) VALUES (?, ?, ?)
		ON CONFLICT (repo_id, digest) DO NOTHING`, id, d.String(), now); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	return nil
}

func (t *txn) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	res, err := t.q.exec(ctx, `DELETE FROM repo_blobs
		WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND digest = ?`, repo, d.String())
	return affected(res, err)
}

func affected(res sql.Result, err error) error {
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("metastore: %w", err)
	} else if n == 0 {
		return metastore.ErrNotFound
	}
	return nil
}

func (t *txn) PutManifest(ctx context.Context, m *metastore.Manifest) error {
	repo, err := t.repoID(ctx, m.Repo, true)
	if err != nil {
		return err
	}
	now := time.Now()
	if !m.Updated.IsZero() {
		now = m.Updated
	}
	var id int64
	err = t.q.queryRow(ctx, `SELECT id FROM manifests WHERE repo_id = ? AND digest = ?`, repo, m.Digest.String()).Scan(&id)
	if err == nil {
		_, err = t.q.exec(ctx, `UPDATE manifests SET updated = ? WHERE id = ?`, now.UnixNano(), id)
		return notFound(err)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return notFound(err)
	}
	var subject, annots sql.NullString
	if m.Subject != "" {
		subject = sql.NullString{String: m.Subject.String(), Valid: true}
	}
	if len(m.Annotations) > 0 {
		b, err := json.Marshal(m.Annotations)
		if err != nil {
			return fmt.Errorf("metastore: %w", err)
		}
		annots = sql.NullString{String: string(b), Valid: true}
	}
	var p ocispec.Platform
	if m.Platform != nil {
		p = *m.Platform
	}
	created := now
	if !m.Created.IsZero() {
		created = m.Created
	}
	err = t.q.queryRow(ctx, `INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type,
		config_media_type, subject, annotations, platform_os, platform_architecture, platform_variant,
		created, updated, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		repo, m.Digest.String(), m.MediaType, m.Size, m.ArtifactType, m.ConfigMediaType, subject, annots,
		p.OS, p.Architecture, p.Variant, created.UnixNano(), now.UnixNano(), m.Content).Scan(&id)
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	for _, ref := range m.References {
		if _, err := t.q.exec(ctx, `INSERT INTO manifest_refs (manifest_id, digest, size, is_manifest)
			VALUES (?, ?, ?, ?) ON CONFLICT (manifest_id, digest) DO NOTHING`,
			id, ref.Digest.String(), ref.Size, ref.Manifest); err != nil {
			return fmt.Errorf("metastore: %w", err)
		}
	}
	return nil
}

func (t *txn) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	var id int64
	err := t.q.queryRow(ctx, `SELECT m.id FROM manifests m JOIN repos r ON r.id = m.repo_id
		WHERE r.name = ? AND m.digest = ?`, repo, d.String()).Scan(&id)
	if err != nil {
		return notFound(err)
	}
	for _, q := range []string{
		`DELETE FROM tags WHERE manifest_id = ?`,
		`DELETE FROM manifest_refs WHERE manifest_id = ?`,
		`DELETE FROM manifests WHERE id = ?`,
	} {
		if _, err := t.q.exec(ctx, q, id); err != nil {
			return fmt.Errorf("metastore: %w", err)
		}
	}
	return nil
}

func (t *txn) SetTag(ctx context.Context, repo, tag string, d digest.Digest) error {
	var repoID, id int64
	err := t.q.queryRow(ctx, `SELECT r.id, m.id FROM manifests m JOIN repos r ON r.id = m.repo_id
		WHERE r.name = ? AND m.digest = ?`, repo, d.String()).Scan(&repoID, &id)
	if err != nil {
		return notFound(err)
	}
	_, err = t.q.exec(ctx, `INSERT INTO tags (repo_id, name, manifest_id, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (repo_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, updated = excluded.updated
		WHERE tags.manifest_id <> excluded.manifest_id`, repoID, tag, id, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	return nil
}

func (t *txn) DeleteTag(ctx context.Context, repo, tag string) error {
	res, err := t.q.exec(ctx, `DELETE FROM tags
		WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND name = ?`, repo, tag)
	return affected(res, err)
}

func (t *txn) CreateUpload(ctx context.Context, u *metastore.Upload) error {
	_, err := t.q.exec(ctx, `INSERT INTO uploads (id, repo, created, modified) VALUES (?, ?, ?, ?)`,
		u.ID, u.Repo, u.Created.UnixNano(), u.Modified.UnixNano())
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	return nil
}

func (t *txn) TouchUpload(ctx context.Context, id string, tm time.Time) error {
	res, err := t.q.exec(ctx, `UPDATE uploads SET modified = ? WHERE id = ?`, tm.UnixNano(), id)
	return affected(res, err)
}

func (t *txn) DeleteUpload(ctx context.Context, id string) error {
	res, err := t.q.exec(ctx, `DELETE FROM uploads WHERE id = ?`, id)
	return affected(res, err)
}

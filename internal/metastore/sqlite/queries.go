package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/metastore"
)

// reader implements metastore.Reader on a conn: the read pool, or a transaction.
type reader struct {
	q *conn
}

// metaColumns are a manifest's columns but its content, with the attributes of its
// repository (joined as r).
const metaColumns = `m.digest, m.media_type, m.size, m.total_size, m.tag_count, m.artifact_type,
	m.config_media_type, m.subject, m.annotations, m.platform_os, m.platform_architecture,
	m.platform_variant, m.platform_os_version, m.platform_os_features, m.created, m.updated,
	m.delete_enabled, m.write_enabled, m.read_enabled, m.list_enabled,
	r.delete_enabled, r.write_enabled, r.read_enabled, r.list_enabled`

// manifestColumns are metaColumns and the content, last.
const manifestColumns = metaColumns + `, m.content`

// scanManifest scans a row of metaColumns, and of the content when withContent is set.
func scanManifest(repo string, s interface{ Scan(...any) error }, withContent bool) (*metastore.Manifest, error) {
	var (
		m                 = &metastore.Manifest{Repo: repo}
		subject, annots   sql.NullString
		os, arch, variant string
		osVersion         string
		osFeatures        sql.NullString
		created, updated  int64
		a, ra             = &m.Attributes, &m.RepoAttributes
	)
	dest := []any{&m.Digest, &m.MediaType, &m.Size, &m.TotalSize, &m.TagCount, &m.ArtifactType,
		&m.ConfigMediaType, &subject, &annots, &os, &arch, &variant, &osVersion, &osFeatures, &created, &updated,
		&a.DeleteEnabled, &a.WriteEnabled, &a.ReadEnabled, &a.ListEnabled,
		&ra.DeleteEnabled, &ra.WriteEnabled, &ra.ReadEnabled, &ra.ListEnabled}
	if withContent {
		dest = append(dest, &m.Content)
	}
	if err := s.Scan(dest...); err != nil {
		return nil, notFound(err)
	}
	m.Subject = digest.Digest(subject.String)
	if annots.Valid {
		if err := json.Unmarshal([]byte(annots.String), &m.Annotations); err != nil {
			return nil, fmt.Errorf("metastore: annotations of %s: %w", m.Digest, err)
		}
	}
	if os != "" || arch != "" {
		m.Platform = &ocispec.Platform{OS: os, Architecture: arch, Variant: variant, OSVersion: osVersion}
		if osFeatures.Valid {
			if err := json.Unmarshal([]byte(osFeatures.String), &m.Platform.OSFeatures); err != nil {
				return nil, fmt.Errorf("metastore: platform of %s: %w", m.Digest, err)
			}
		}
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
		WHERE r.name = ? AND m.digest = ?`, repo, d.String()), true)
}

func (r reader) TaggedManifest(ctx context.Context, repo, tag string) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.queryRow(ctx, `SELECT `+manifestColumns+`
		FROM repos r JOIN tags t ON t.repo_id = r.id JOIN manifests m ON m.id = t.manifest_id
		WHERE r.name = ? AND t.name = ?`, repo, tag), true)
}

// contentColumns are what a pull reads: a few columns, the content last.
const contentColumns = `m.digest, m.media_type, m.size, m.read_enabled, r.read_enabled, m.content`

func scanContent(s interface{ Scan(...any) error }) (*metastore.Content, error) {
	var c metastore.Content
	if err := s.Scan(&c.Digest, &c.MediaType, &c.Size, &c.ReadEnabled, &c.RepoReadEnabled, &c.Bytes); err != nil {
		return nil, notFound(err)
	}
	return &c, nil
}

func (r reader) Content(ctx context.Context, repo string, d digest.Digest) (*metastore.Content, error) {
	return scanContent(r.q.queryRow(ctx, `SELECT `+contentColumns+`
		FROM manifests m JOIN repos r ON r.id = m.repo_id
		WHERE r.name = ? AND m.digest = ?`, repo, d.String()))
}

func (r reader) TaggedContent(ctx context.Context, repo, tag string) (*metastore.Content, error) {
	return scanContent(r.q.queryRow(ctx, `SELECT `+contentColumns+`
		FROM repos r JOIN tags t ON t.repo_id = r.id JOIN manifests m ON m.id = t.manifest_id
		WHERE r.name = ? AND t.name = ?`, repo, tag))
}

func (r reader) Tag(ctx context.Context, repo, tag string) (*metastore.Manifest, error) {
	return scanManifest(repo, r.q.queryRow(ctx, `SELECT `+metaColumns+`
		FROM repos r JOIN tags t ON t.repo_id = r.id JOIN manifests m ON m.id = t.manifest_id
		WHERE r.name = ? AND t.name = ?`, repo, tag), false)
}

func (r reader) Manifests(ctx context.Context, repo string, f metastore.Filter, after digest.Digest, n int) ([]metastore.Manifest, error) {
	// Each filter has an index that yields the manifests in digest order: the query is
	// a range scan whose length follows the answer.
	q := `SELECT ` + metaColumns + ` FROM repos r JOIN manifests m ON m.repo_id = r.id
		WHERE r.name = ? AND m.digest > ?`
	args := []any{repo, after.String()}
	if f.ArtifactType != "" {
		q += ` AND m.artifact_type = ?`
		args = append(args, f.ArtifactType)
	}
	if f.HasSubject != nil {
		q += map[bool]string{true: ` AND m.subject IS NOT NULL`, false: ` AND m.subject IS NULL`}[*f.HasSubject]
	}
	if f.Tagged != nil {
		q += map[bool]string{true: ` AND m.tag_count > 0`, false: ` AND m.tag_count = 0`}[*f.Tagged]
	}
	q += ` ORDER BY m.digest LIMIT ?`
	args = append(args, n)
	rows, err := r.q.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
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
	return out, rows.Err()
}

const repoColumns = `name, manifest_count, tag_count, size, created, updated,
	delete_enabled, write_enabled, read_enabled, list_enabled`

func scanRepository(s interface{ Scan(...any) error }) (*metastore.Repository, error) {
	var (
		rp               metastore.Repository
		created, updated int64
		a                = &rp.Attributes
	)
	err := s.Scan(&rp.Name, &rp.ManifestCount, &rp.TagCount, &rp.Size, &created, &updated,
		&a.DeleteEnabled, &a.WriteEnabled, &a.ReadEnabled, &a.ListEnabled)
	if err != nil {
		return nil, notFound(err)
	}
	rp.Created, rp.Updated = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return &rp, nil
}

func (r reader) Repository(ctx context.Context, repo string) (*metastore.Repository, error) {
	return scanRepository(r.q.queryRow(ctx, `SELECT `+repoColumns+` FROM repos WHERE name = ?`, repo))
}

func (r reader) RepositoryList(ctx context.Context, after string, n int) ([]metastore.Repository, error) {
	rows, err := r.q.query(ctx, `SELECT `+repoColumns+` FROM repos WHERE name > ? ORDER BY name LIMIT ?`, after, n)
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
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
	return out, rows.Err()
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
	return r.missing(ctx, `SELECT digest FROM repo_blobs
		WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND digest IN `, repo, ds)
}

func (r reader) MissingManifests(ctx context.Context, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	return r.missing(ctx, `SELECT digest FROM manifests
		WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND digest IN `, repo, ds)
}

// missing returns those of ds that query, completed with an IN list, does not find.
func (r reader) missing(ctx context.Context, query, repo string, ds []digest.Digest) ([]digest.Digest, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	found := map[digest.Digest]bool{}
	err := inChunks(ds, func(chunk []digest.Digest) error {
		args := append([]any{repo}, digestArgs(chunk)...)
		rows, err := r.q.query(ctx, query+placeholders(len(chunk)), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d digest.Digest
			if err := rows.Scan(&d); err != nil {
				return err
			}
			found[d] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", err)
	}
	var out []digest.Digest
	for _, d := range ds {
		if !found[d] {
			out = append(out, d)
		}
	}
	return out, nil
}

// maxIn bounds the length of an IN list, and so the number of distinct statements
// the cache holds for one query.
const maxIn = 64

// inChunks calls fn with successive parts of ds of at most maxIn digests.
func inChunks(ds []digest.Digest, fn func([]digest.Digest) error) error {
	for len(ds) > 0 {
		n := min(len(ds), maxIn)
		if err := fn(ds[:n]); err != nil {
			return err
		}
		ds = ds[n:]
	}
	return nil
}

// placeholders returns "(?, ?, …)" with n question marks.
func placeholders(n int) string {
	return "(?" + strings.Repeat(", ?", n-1) + ")"
}

func digestArgs(ds []digest.Digest) []any {
	args := make([]any, len(ds))
	for i, d := range ds {
		args[i] = d.String()
	}
	return args
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
	return r.strings(ctx, `SELECT name FROM repos WHERE name > ? AND list_enabled = 1 ORDER BY name LIMIT ?`, after, n)
}

func (r reader) Tags(ctx context.Context, repo, after string, n int) ([]string, error) {
	return r.strings(ctx, `SELECT t.name FROM tags t JOIN manifests m ON m.id = t.manifest_id
		WHERE t.repo_id = (SELECT id FROM repos WHERE name = ?) AND t.name > ? AND m.list_enabled = 1
		ORDER BY t.name LIMIT ?`, repo, after, n)
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
	// pending are the changes of the current op to repository counters, written once
	// by flush when the op succeeds.
	pending map[int64]*repoDelta
}

type repoDelta struct{ manifests, tags, size int64 }

var _ metastore.Tx = (*txn)(nil)

// repoID returns the id of repo, creating the repository when create is set.
func (t *txn) repoID(ctx context.Context, repo string, create bool) (int64, error) {
	var id int64
	err := t.q.queryRow(ctx, `SELECT id FROM repos WHERE name = ?`, repo).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) && create {
		now := time.Now().UnixNano()
		err = t.q.queryRow(ctx, `INSERT INTO repos (name, created, updated) VALUES (?, ?, ?) RETURNING id`,
			repo, now, now).Scan(&id)
	}
	return id, notFound(err)
}

// addToRepo adds to the counters of repository id, and marks it updated, when the
// op succeeds.
func (t *txn) addToRepo(id, manifests, tags, size int64) {
	if t.pending == nil {
		t.pending = map[int64]*repoDelta{}
	}
	d := t.pending[id]
	if d == nil {
		d = &repoDelta{}
		t.pending[id] = d
	}
	d.manifests += manifests
	d.tags += tags
	d.size += size
}

// flush writes the pending counter changes: one statement per repository the op
// touched, however many rows it wrote.
func (t *txn) flush(ctx context.Context) error {
	now := time.Now().UnixNano()
	for id, d := range t.pending {
		_, err := t.q.exec(ctx, `UPDATE repos SET manifest_count = manifest_count + ?, tag_count = tag_count + ?,
			size = size + ?, updated = ? WHERE id = ?`, d.manifests, d.tags, d.size, now, id)
		if err != nil {
			return fmt.Errorf("metastore: %w", err)
		}
	}
	return nil
}

func (t *txn) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	id, err := t.repoID(ctx, repo, true)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	// A claim may have recorded a size the upload did not know yet.
	if _, err := t.q.exec(ctx, `INSERT INTO blobs (digest, size, created) VALUES (?, ?, ?)
		ON CONFLICT (digest) DO UPDATE SET size = excluded.size`, d.String(), size, now); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	// Linking again restarts the link's grace period.
	res, err := t.q.exec(ctx, `UPDATE repo_blobs SET created = ? WHERE repo_id = ? AND digest = ?`, now, id, d.String())
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if _, err := t.q.exec(ctx, `INSERT INTO repo_blobs (repo_id, digest, created) VALUES (?, ?, ?)`,
		id, d.String(), now); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	t.addToRepo(id, 0, 0, size)
	return nil
}

func (t *txn) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	var id, size int64
	err := t.q.queryRow(ctx, `SELECT r.id, b.size FROM repos r
		JOIN repo_blobs rb ON rb.repo_id = r.id JOIN blobs b ON b.digest = rb.digest
		WHERE r.name = ? AND rb.digest = ?`, repo, d.String()).Scan(&id, &size)
	if err != nil {
		return notFound(err)
	}
	if _, err := t.q.exec(ctx, `DELETE FROM repo_blobs WHERE repo_id = ? AND digest = ?`, id, d.String()); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	t.addToRepo(id, 0, 0, -size)
	return nil
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
	created := now
	if !m.Created.IsZero() {
		created = m.Created
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
	var osFeatures sql.NullString
	if m.Platform != nil {
		p = *m.Platform
		if len(p.OSFeatures) > 0 {
			b, err := json.Marshal(p.OSFeatures)
			if err != nil {
				return fmt.Errorf("metastore: %w", err)
			}
			osFeatures = sql.NullString{String: string(b), Valid: true}
		}
	}
	total, err := t.totalSize(ctx, repo, m)
	if err != nil {
		return err
	}
	var id int64
	err = t.q.queryRow(ctx, `INSERT INTO manifests (repo_id, digest, media_type, size, total_size, artifact_type,
		config_media_type, subject, annotations, platform_os, platform_architecture, platform_variant,
		platform_os_version, platform_os_features, created, updated, content)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (repo_id, digest) DO NOTHING RETURNING id`,
		repo, m.Digest.String(), m.MediaType, m.Size, total, m.ArtifactType, m.ConfigMediaType, subject, annots,
		p.OS, p.Architecture, p.Variant, p.OSVersion, osFeatures, created.UnixNano(), now.UnixNano(), m.Content).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) { // stored already: only the time moves
		_, err = t.q.exec(ctx, `UPDATE manifests SET updated = ? WHERE repo_id = ? AND digest = ?`,
			now.UnixNano(), repo, m.Digest.String())
		if err != nil {
			return fmt.Errorf("metastore: %w", err)
		}
		t.addToRepo(repo, 0, 0, 0)
		return nil
	}
	if err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	t.addToRepo(repo, 1, 0, m.Size)
	refs := m.References
	for len(refs) > 0 {
		n := min(len(refs), maxIn)
		args := make([]any, 0, 4*n)
		for _, ref := range refs[:n] {
			args = append(args, id, ref.Digest.String(), ref.Size, ref.Manifest)
		}
		_, err := t.q.exec(ctx, `INSERT INTO manifest_refs (manifest_id, digest, size, is_manifest) VALUES `+
			strings.Repeat("(?, ?, ?, ?), ", n-1)+`(?, ?, ?, ?) ON CONFLICT (manifest_id, digest) DO NOTHING`, args...)
		if err != nil {
			return fmt.Errorf("metastore: %w", err)
		}
		refs = refs[n:]
	}
	return nil
}

// totalSize is m's size plus the stored sizes of the blobs it names and the total
// sizes of its children in repository repo.
func (t *txn) totalSize(ctx context.Context, repo int64, m *metastore.Manifest) (int64, error) {
	var blobs, children []digest.Digest
	declared := map[digest.Digest]int64{}
	for _, ref := range m.References {
		if ref.Manifest {
			children = append(children, ref.Digest)
		} else {
			blobs = append(blobs, ref.Digest)
		}
		declared[ref.Digest] = ref.Size
	}
	sizes := map[digest.Digest]int64{}
	scan := func(query string, args []any) error {
		rows, err := t.q.query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d digest.Digest
			var size int64
			if err := rows.Scan(&d, &size); err != nil {
				return err
			}
			sizes[d] = size
		}
		return rows.Err()
	}
	err := inChunks(blobs, func(c []digest.Digest) error {
		return scan(`SELECT digest, size FROM blobs WHERE digest IN `+placeholders(len(c)), digestArgs(c))
	})
	if err == nil {
		err = inChunks(children, func(c []digest.Digest) error {
			return scan(`SELECT digest, total_size FROM manifests WHERE repo_id = ? AND digest IN `+placeholders(len(c)),
				append([]any{repo}, digestArgs(c)...))
		})
	}
	if err != nil {
		return 0, fmt.Errorf("metastore: %w", err)
	}
	total := m.Size
	for d, size := range declared {
		if s, ok := sizes[d]; ok {
			size = s // what is stored, not what the manifest claims
		}
		total += size // a blob never pushed (non-distributable) counts as declared
	}
	return total, nil
}

func (t *txn) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	var id, repoID, size, tags int64
	err := t.q.queryRow(ctx, `SELECT m.id, r.id, m.size, m.tag_count FROM manifests m JOIN repos r ON r.id = m.repo_id
		WHERE r.name = ? AND m.digest = ?`, repo, d.String()).Scan(&id, &repoID, &size, &tags)
	if err != nil {
		return notFound(err)
	}
	t.addToRepo(repoID, -1, -tags, -size)
	// The blobs d named lose a reference: a collector gives them a new grace period, so
	// that a client that saw them in the repository may still push a manifest naming them.
	if _, err := t.q.exec(ctx, `UPDATE repo_blobs SET created = ? WHERE repo_id = ? AND digest IN
		(SELECT digest FROM manifest_refs WHERE manifest_id = ? AND is_manifest = 0)`,
		time.Now().UnixNano(), repoID, id); err != nil {
		return fmt.Errorf("metastore: %w", err)
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
	var old sql.NullInt64
	err := t.q.queryRow(ctx, `SELECT m.repo_id, m.id,
		(SELECT t.manifest_id FROM tags t WHERE t.repo_id = m.repo_id AND t.name = ?)
		FROM repos r JOIN manifests m ON m.repo_id = r.id WHERE r.name = ? AND m.digest = ?`,
		tag, repo, d.String()).Scan(&repoID, &id, &old)
	if err != nil {
		return notFound(err)
	}
	if old.Valid && old.Int64 == id {
		return nil
	}
	now := time.Now().UnixNano()
	if _, err := t.q.exec(ctx, `INSERT INTO tags (repo_id, name, manifest_id, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (repo_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, updated = excluded.updated`,
		repoID, tag, id, now); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	// The new target gains a tag; a moved tag's old target loses one. Both count as
	// updated.
	if _, err := t.q.exec(ctx, `UPDATE manifests SET tag_count = tag_count + IIF(id = ?, 1, -1), updated = ?
		WHERE id IN (?, ?)`, id, now, id, old.Int64); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	if old.Valid {
		t.addToRepo(repoID, 0, 0, 0)
	} else {
		t.addToRepo(repoID, 0, 1, 0)
	}
	return nil
}

func (t *txn) DeleteTag(ctx context.Context, repo, tag string) error {
	var repoID, id int64
	err := t.q.queryRow(ctx, `SELECT r.id, t.manifest_id FROM repos r JOIN tags t ON t.repo_id = r.id
		WHERE r.name = ? AND t.name = ?`, repo, tag).Scan(&repoID, &id)
	if err != nil {
		return notFound(err)
	}
	if _, err := t.q.exec(ctx, `DELETE FROM tags WHERE repo_id = ? AND name = ?`, repoID, tag); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	if _, err := t.q.exec(ctx, `UPDATE manifests SET tag_count = tag_count - 1, updated = ? WHERE id = ?`,
		time.Now().UnixNano(), id); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	t.addToRepo(repoID, 0, -1, 0)
	return nil
}

func (t *txn) SetRepositoryAttributes(ctx context.Context, repo string, a metastore.Attributes) error {
	res, err := t.q.exec(ctx, `UPDATE repos SET delete_enabled = ?, write_enabled = ?, read_enabled = ?,
		list_enabled = ? WHERE name = ?`, a.DeleteEnabled, a.WriteEnabled, a.ReadEnabled, a.ListEnabled, repo)
	return affected(res, err)
}

func (t *txn) SetManifestAttributes(ctx context.Context, repo string, d digest.Digest, a metastore.Attributes) error {
	res, err := t.q.exec(ctx, `UPDATE manifests SET delete_enabled = ?, write_enabled = ?, read_enabled = ?,
		list_enabled = ? WHERE repo_id = (SELECT id FROM repos WHERE name = ?) AND digest = ?`,
		a.DeleteEnabled, a.WriteEnabled, a.ReadEnabled, a.ListEnabled, repo, d.String())
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

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlstore"
)

// writes are sqlstore.Writes in a few statements each: SQLite has no data-modifying
// common table expressions. They run on the writer's one connection, alone, so a read
// followed by a write sees no other writer in between.
type writes struct{}

var _ sqlstore.Writes = writes{}

func (writes) RepositoryID(ctx context.Context, q sqlstore.TxQuerier, name string, create bool, now time.Time) (int64, bool, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT id FROM repos WHERE name = ?1`, name).Scan(&id)
	if !create || !errors.Is(err, sqlstore.ErrNoRows) {
		return id, false, err
	}
	err = q.QueryRow(ctx, `INSERT INTO repos (name, created, updated) VALUES (?1, ?2, ?2) RETURNING id`, name, now).Scan(&id)
	return id, err == nil, err
}

func (writes) LinkBlob(ctx context.Context, q sqlstore.TxQuerier, repo int64, d string, size int64, now time.Time) (bool, error) {
	// A claim may have recorded a size the upload did not know yet.
	if _, err := q.Exec(ctx, `INSERT INTO blobs (digest, size, created) VALUES (?1, ?2, ?3)
		ON CONFLICT (digest) DO UPDATE SET size = excluded.size`, d, size, now); err != nil {
		return false, err
	}
	// Linking again restarts the link's grace period.
	n, err := q.Exec(ctx, `UPDATE repo_blobs SET created = ?3 WHERE repo_id = ?1 AND digest = ?2`, repo, d, now)
	if err != nil || n == 1 {
		return false, err
	}
	_, err = q.Exec(ctx, `INSERT INTO repo_blobs (repo_id, digest, created) VALUES (?1, ?2, ?3)`, repo, d, now)
	return err == nil, err
}

// The references arrive as JSON lists of one length, joined by position. The total size
// is the manifest's, plus each reference's stored size (a blob's size, a child's total)
// or else the size declared for it.
const (
	insertManifest = `INSERT INTO manifests (repo_id, digest, media_type, size, total_size, artifact_type,
		config_media_type, subject, annotations, platform_os, platform_architecture, platform_variant,
		platform_os_version, platform_os_features, created, updated, content, kind)
		VALUES (?1, ?2, ?3, ?4, ?4 + COALESCE((SELECT sum(COALESCE(CASE WHEN k.value
				THEN (SELECT c.total_size FROM manifests c WHERE c.repo_id = ?1 AND c.digest = d.value)
				ELSE (SELECT b.size FROM blobs b WHERE b.digest = d.value) END, dc.value))
			FROM json_each(?17) d JOIN json_each(?18) dc ON dc.key = d.key JOIN json_each(?19) k ON k.key = d.key), 0),
			?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?20)
		ON CONFLICT (repo_id, digest) DO NOTHING RETURNING id`
	insertReferences = `INSERT INTO manifest_refs (manifest_id, digest, size, is_manifest)
		SELECT ?1, d.value, s.value, k.value
		FROM json_each(?2) d JOIN json_each(?3) s ON s.key = d.key JOIN json_each(?4) k ON k.key = d.key`
)

func (writes) PutManifest(ctx context.Context, q sqlstore.TxQuerier, m *sqlstore.ManifestRow) (bool, any, error) {
	var id int64
	err := q.QueryRow(ctx, insertManifest,
		m.Repo, m.Digest, m.MediaType, m.Size, m.ArtifactType, m.ConfigMediaType, m.Subject, m.Annotations,
		m.OS, m.Architecture, m.Variant, m.OSVersion, m.OSFeatures, m.Created, m.Updated, m.Content,
		m.RefDigests, m.RefDeclared, m.RefManifest, m.Kind).Scan(&id)
	if errors.Is(err, sqlstore.ErrNoRows) { // stored already: only the time moves
		_, err = q.Exec(ctx, `UPDATE manifests SET updated = ?3 WHERE repo_id = ?1 AND digest = ?2`, m.Repo, m.Digest, m.Updated)
		return false, nil, err
	}
	if err != nil || len(m.RefDigests) == 0 {
		return err == nil, nil, err
	}
	_, err = q.Exec(ctx, insertReferences, id, m.RefDigests, m.RefSizes, m.RefManifest)
	return err == nil, nil, err
}

func (writes) DeleteManifest(ctx context.Context, q sqlstore.TxQuerier, name, d string, now time.Time) (sqlstore.Deleted, error) {
	var (
		id  int64
		del sqlstore.Deleted
	)
	err := q.QueryRow(ctx, `SELECT m.id, r.id, m.size, m.tag_count, m.kind FROM manifests m JOIN repos r ON r.id = m.repo_id
		WHERE r.name = ?1 AND m.digest = ?2`, name, d).Scan(&id, &del.Repo, &del.Size, &del.Tags, &del.Kind)
	if err != nil {
		return del, err
	}
	// The blobs d named lose a reference: a collector gives them a new grace period, so
	// that a client that saw them in the repository may still push a manifest naming them.
	if _, err := q.Exec(ctx, `UPDATE repo_blobs SET created = ?3 WHERE repo_id = ?2 AND digest IN
		(SELECT digest FROM manifest_refs WHERE manifest_id = ?1 AND is_manifest = 0)`, id, del.Repo, now); err != nil {
		return del, err
	}
	// The edges of its tags, and those that make it an artifact.
	if _, err := q.Exec(ctx, `DELETE FROM tag_edges WHERE repo_id = ?2 AND (artifact = ?3
		OR tag IN (SELECT name FROM tags WHERE manifest_id = ?1))`, id, del.Repo, d); err != nil {
		return del, err
	}
	for _, s := range []string{
		`DELETE FROM tags WHERE manifest_id = ?1`,
		`DELETE FROM manifest_refs WHERE manifest_id = ?1`,
		`DELETE FROM manifests WHERE id = ?1`,
	} {
		if _, err := q.Exec(ctx, s, id); err != nil {
			return del, err
		}
	}
	return del, nil
}

// DeleteRepository reads the repository's whole range of each table: what it deletes.
func (writes) DeleteRepository(ctx context.Context, q sqlstore.TxQuerier, id int64) (map[string]int64, error) {
	kinds, err := sqlstore.Counts(q.Query(ctx, `SELECT kind, count(*) FROM manifests WHERE repo_id = ?1 GROUP BY kind`, id))
	if err != nil {
		return nil, err
	}
	for _, s := range []string{
		`DELETE FROM manifest_refs WHERE manifest_id IN (SELECT id FROM manifests WHERE repo_id = ?1)`,
		`DELETE FROM tags WHERE repo_id = ?1`,
		`DELETE FROM tag_edges WHERE repo_id = ?1`,
		`DELETE FROM manifests WHERE repo_id = ?1`,
		`DELETE FROM repo_blobs WHERE repo_id = ?1`,
		`UPDATE repos SET hidden = 1, manifest_count = 0, tag_count = 0, size = 0, delete_enabled = 1,
			write_enabled = 1, read_enabled = 1, list_enabled = 1 WHERE id = ?1`,
	} {
		if _, err := q.Exec(ctx, s, id); err != nil {
			return nil, err
		}
	}
	return kinds, nil
}

// RecountStats counts every row it counts: once, after the migration that added the
// counters.
func (writes) RecountStats(ctx context.Context, q sqlstore.TxQuerier) error {
	_, err := q.Exec(ctx, `DELETE FROM stats`)
	if err == nil {
		_, err = q.Exec(ctx, `INSERT INTO stats (key, slot, value)
			SELECT 'repositories', 0, count(*) FROM repos WHERE hidden = 0
			UNION ALL SELECT 'tags', 0, count(*) FROM tags
			UNION ALL SELECT 'size', 0, COALESCE(sum(size), 0) FROM repos WHERE hidden = 0
			UNION ALL SELECT 'uploads', 0, count(*) FROM uploads
			UNION ALL SELECT 'manifests/' || kind, 0, count(*) FROM manifests GROUP BY kind`)
	}
	return err
}

// PutTagged writes the manifest, then the tag: SQLite has no round trips to save.
func (w writes) PutTagged(ctx context.Context, q sqlstore.TxQuerier, m *sqlstore.ManifestRow, tag string, now time.Time) (bool, sqlstore.TagMove, error) {
	inserted, at, err := w.PutManifest(ctx, q, m)
	if err != nil {
		return false, sqlstore.TagMove{}, err
	}
	mv, err := w.SetTag(ctx, q, m.Repo, tag, m.Digest, at, now)
	return inserted, mv, err
}

func (writes) SetTag(ctx context.Context, q sqlstore.TxQuerier, repo int64, tag, d string, _ any, now time.Time) (sqlstore.TagMove, error) {
	var (
		mv                     sqlstore.TagMove
		id                     int64
		old                    sql.NullInt64
		prev                   sql.NullString
		del, write, read, list sql.NullBool
	)
	// SQLite's one writer at a time has no conflicts to avoid: the tag is read first.
	err := q.QueryRow(ctx, `SELECT m.id, t.manifest_id, o.digest,
			o.delete_enabled, o.write_enabled, o.read_enabled, o.list_enabled
		FROM manifests m
		LEFT JOIN tags t ON t.repo_id = ?1 AND t.name = ?3
		LEFT JOIN manifests o ON o.id = t.manifest_id
		WHERE m.repo_id = ?1 AND m.digest = ?2`, repo, d, tag).Scan(&id, &old, &prev, &del, &write, &read, &list)
	if errors.Is(err, sqlstore.ErrNoRows) {
		return mv, nil
	}
	if err != nil {
		return mv, err
	}
	mv.Found = true
	if old.Valid && old.Int64 == id {
		return mv, nil
	}
	if old.Valid {
		mv.Previous = prev.String
		mv.Attributes = metastore.Attributes{DeleteEnabled: del.Bool, WriteEnabled: write.Bool,
			ReadEnabled: read.Bool, ListEnabled: list.Bool}
	}
	if _, err := q.Exec(ctx, `INSERT INTO tags (repo_id, name, manifest_id, updated) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (repo_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, updated = excluded.updated`,
		repo, tag, id, now); err != nil {
		return mv, err
	}
	// The new target gains a tag; a moved tag's old target loses one. Both count as
	// updated.
	if _, err := q.Exec(ctx, `UPDATE manifests SET tag_count = tag_count + IIF(id = ?1, 1, -1), updated = ?3
		WHERE id IN (?1, ?2)`, id, old.Int64, now); err != nil {
		return mv, err
	}
	mv.Changed, mv.Moved = true, old.Valid
	return mv, nil
}

func (writes) DeleteTag(ctx context.Context, q sqlstore.TxQuerier, name, tag string, now time.Time) (int64, error) {
	var repo, id int64
	err := q.QueryRow(ctx, `SELECT r.id, t.manifest_id FROM repos r JOIN tags t ON t.repo_id = r.id
		WHERE r.name = ?1 AND t.name = ?2`, name, tag).Scan(&repo, &id)
	if err != nil {
		return 0, err
	}
	if _, err := q.Exec(ctx, `DELETE FROM tags WHERE repo_id = ?1 AND name = ?2`, repo, tag); err != nil {
		return 0, err
	}
	if _, err := q.Exec(ctx, `UPDATE manifests SET tag_count = tag_count - 1, updated = ?2 WHERE id = ?1`, id, now); err != nil {
		return 0, err
	}
	return repo, nil
}

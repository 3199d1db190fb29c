package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlstore"
)

// writes are sqlstore.Writes, each one statement: one round trip, and writes that learn
// what they replace from the write itself rather than from a read before it, which in a
// serializable transaction would lock what it read against concurrent pushes.
type writes struct{}

var _ sqlstore.Writes = writes{}

// errSwept is a conflict PostgreSQL cannot see: a sweep, which runs at READ COMMITTED,
// removed a blob after this transaction's snapshot was taken.
var errSwept = errors.New("metastore: a blob was swept while the transaction ran")

func (writes) RepositoryID(ctx context.Context, q sqlstore.TxQuerier, name string, create bool, now time.Time) (id int64, created bool, err error) {
	if create {
		err = q.QueryRow(ctx, `WITH found AS (SELECT id FROM repos WHERE name = $1),
			ins AS (INSERT INTO repos (name, created) SELECT $1, $2::timestamptz WHERE NOT EXISTS (SELECT 1 FROM found)
				ON CONFLICT (name) DO NOTHING RETURNING id)
			SELECT id, false FROM found UNION ALL SELECT id, true FROM ins`, name, now).Scan(&id, &created)
	} else {
		err = q.QueryRow(ctx, `SELECT id, false FROM repos WHERE name = $1`, name).Scan(&id, &created)
	}
	return id, created, err
}

// LinkBlob corrects the size a claim may have guessed by an update that matches no row
// when the size is right, and so locks none (an upsert would lock the row of every blob
// linked, against every concurrent link of it).
func (writes) LinkBlob(ctx context.Context, q sqlstore.TxQuerier, repo int64, d string, size int64, now time.Time) (bool, error) {
	var linked, swept bool
	err := q.QueryRow(ctx, `WITH
		b AS (INSERT INTO blobs (digest, size, created) VALUES ($2, $3, $4) ON CONFLICT (digest) DO NOTHING RETURNING 1),
		sized AS (UPDATE blobs SET size = $3 WHERE digest = $2 AND size <> $3 AND NOT EXISTS (SELECT 1 FROM b)),
		up AS (UPDATE repo_blobs SET created = $4 WHERE repo_id = $1 AND digest = $2 RETURNING 1),
		ins AS (INSERT INTO repo_blobs (repo_id, digest, created) SELECT $1, $2, $4 WHERE NOT EXISTS (SELECT 1 FROM up)
			ON CONFLICT DO NOTHING RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM ins), EXISTS (SELECT 1 FROM b) AND EXISTS (SELECT 1 FROM blobs WHERE digest = $2)`,
		repo, d, size, now).Scan(&linked, &swept)
	if err != nil {
		return false, err
	}
	if swept {
		// The snapshot still sees the row a sweep deleted, beside the one just
		// inserted: start again from a snapshot after the sweep.
		q.(*txConn).conflict = true
		return false, errSwept
	}
	return linked, nil
}

// putManifest stores a manifest and its references in one statement. A manifest stored
// already only has its updated time moved: the insert does nothing, and the update runs
// only then (its condition is a one-time filter on the insert's result). The total size
// is computed from what is stored: a blob's recorded size, a child's total, else the
// size the manifest declares.
const putManifest = `WITH
	refs AS (SELECT * FROM unnest($18::text[], $19::bigint[], $20::bigint[], $21::boolean[])
		AS r(digest, size, declared, is_manifest)),
	ins AS (INSERT INTO manifests (repo_id, digest, media_type, size, total_size, artifact_type,
			config_media_type, subject, annotations, platform_os, platform_architecture, platform_variant,
			platform_os_version, platform_os_features, created, updated, content, kind)
		VALUES ($1, $2, $3, $4, $4::bigint + COALESCE((SELECT sum(COALESCE(CASE WHEN r.is_manifest
				THEN (SELECT c.total_size FROM manifests c WHERE c.repo_id = $1 AND c.digest = r.digest)
				ELSE (SELECT b.size FROM blobs b WHERE b.digest = r.digest LIMIT 1) END, r.declared)) FROM refs r), 0)::bigint,
			$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $22)
		ON CONFLICT (repo_id, digest) DO NOTHING
		RETURNING ctid),
	ins_refs AS (INSERT INTO manifest_refs (repo_id, manifest, digest, size, is_manifest)
		SELECT $1, $2, r.digest, r.size, r.is_manifest FROM refs r WHERE EXISTS (SELECT 1 FROM ins)),
	again AS (UPDATE manifests SET updated = $17 WHERE repo_id = $1 AND digest = $2 AND NOT EXISTS (SELECT 1 FROM ins)
		RETURNING ctid)
SELECT EXISTS (SELECT 1 FROM ins), COALESCE((SELECT ctid FROM ins), (SELECT ctid FROM again))`

// PutManifest locates the row by its tuple id.
func (writes) PutManifest(ctx context.Context, q sqlstore.TxQuerier, m *sqlstore.ManifestRow) (bool, any, error) {
	var (
		inserted bool
		tid      pgtype.TID
	)
	err := q.QueryRow(ctx, putManifest,
		m.Repo, m.Digest, m.MediaType, m.Size, m.ArtifactType, m.ConfigMediaType, m.Subject, m.Annotations,
		m.OS, m.Architecture, m.Variant, m.OSVersion, m.OSFeatures, m.Created, m.Updated, m.Content, m.Updated,
		m.RefDigests, m.RefSizes, m.RefDeclared, m.RefManifest, m.Kind).Scan(&inserted, &tid)
	if err != nil {
		return false, nil, err
	}
	return inserted, located(tid), nil
}

// putTagged is putManifest and setTag in one statement, for a push: tag $23 of
// repository $1 is pointed at the manifest at $24, and the manifest's row, inserted or
// found, takes the tag's count and time in the same write (a row cannot be written twice
// in one statement). The tag's upsert goes first: the manifest's write reads its result.
const putTagged = `WITH
	refs AS (SELECT * FROM unnest($18::text[], $19::bigint[], $20::bigint[], $21::boolean[])
		AS r(digest, size, declared, is_manifest)),
	up AS (INSERT INTO tags AS t (repo_id, name, manifest, prev, updated) VALUES ($1, $23, $2, NULL, $24)
		ON CONFLICT (repo_id, name) DO UPDATE SET manifest = excluded.manifest, prev = t.manifest, updated = excluded.updated
		WHERE t.manifest <> excluded.manifest
		RETURNING prev),
	ins AS (INSERT INTO manifests (repo_id, digest, media_type, size, total_size, artifact_type,
			config_media_type, subject, annotations, platform_os, platform_architecture, platform_variant,
			platform_os_version, platform_os_features, created, updated, content, kind, tag_count)
		VALUES ($1, $2, $3, $4, $4::bigint + COALESCE((SELECT sum(COALESCE(CASE WHEN r.is_manifest
				THEN (SELECT c.total_size FROM manifests c WHERE c.repo_id = $1 AND c.digest = r.digest)
				ELSE (SELECT b.size FROM blobs b WHERE b.digest = r.digest LIMIT 1) END, r.declared)) FROM refs r), 0)::bigint,
			$5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
			CASE WHEN EXISTS (SELECT 1 FROM up) THEN $24 ELSE $15 END, $16, $22,
			(SELECT count(*) FROM up))
		ON CONFLICT (repo_id, digest) DO NOTHING
		RETURNING ctid),
	ins_refs AS (INSERT INTO manifest_refs (repo_id, manifest, digest, size, is_manifest)
		SELECT $1, $2, r.digest, r.size, r.is_manifest FROM refs r WHERE EXISTS (SELECT 1 FROM ins)),
	again AS (UPDATE manifests SET updated = CASE WHEN EXISTS (SELECT 1 FROM up) THEN $24 ELSE $17 END,
			tag_count = tag_count + (SELECT count(*) FROM up)
		WHERE repo_id = $1 AND digest = $2 AND NOT EXISTS (SELECT 1 FROM ins)
		RETURNING ctid),
	released AS (UPDATE manifests m SET tag_count = m.tag_count - 1, updated = $24
		WHERE m.repo_id = $1 AND m.digest = (SELECT prev FROM up)
		RETURNING delete_enabled, write_enabled, read_enabled, list_enabled)
SELECT EXISTS (SELECT 1 FROM ins), COALESCE((SELECT ctid FROM ins), (SELECT ctid FROM again)),
	EXISTS (SELECT 1 FROM up), (SELECT prev FROM up), ` + releasedAttributes + `
FROM (SELECT 1) one LEFT JOIN released ON true`

// PutTagged locates the row by its tuple id.
func (writes) PutTagged(ctx context.Context, q sqlstore.TxQuerier, m *sqlstore.ManifestRow, tag string, now time.Time) (bool, sqlstore.TagMove, error) {
	var (
		inserted               bool
		mv                     = sqlstore.TagMove{Found: true}
		tid                    pgtype.TID
		prev                   *string
		del, write, read, list *bool
	)
	err := q.QueryRow(ctx, putTagged,
		m.Repo, m.Digest, m.MediaType, m.Size, m.ArtifactType, m.ConfigMediaType, m.Subject, m.Annotations,
		m.OS, m.Architecture, m.Variant, m.OSVersion, m.OSFeatures, m.Created, m.Updated, m.Content, m.Updated,
		m.RefDigests, m.RefSizes, m.RefDeclared, m.RefManifest, m.Kind, tag, now).
		Scan(&inserted, &tid, &mv.Changed, &prev, &del, &write, &read, &list)
	if err != nil {
		return false, mv, err
	}
	mv.At = located(tid)
	moved(&mv, prev, del, write, read, list)
	return inserted, mv, nil
}

// moved records in mv the manifest a tag left, prev, with its attributes, when it left
// one.
func moved(mv *sqlstore.TagMove, prev *string, del, write, read, list *bool) {
	if prev == nil {
		return
	}
	mv.Moved, mv.Previous, mv.Attributes = true, *prev, metastore.Enabled
	if del != nil {
		mv.Attributes = metastore.Attributes{DeleteEnabled: *del, WriteEnabled: *write, ReadEnabled: *read, ListEnabled: *list}
	}
}

// located is tid as a locator: nil when not valid.
func located(tid pgtype.TID) any {
	if !tid.Valid {
		return nil
	}
	return tid
}

// deleteManifest removes a manifest, its tags, its references and its tag-schema edges,
// and restarts the grace period of the links of the blobs it named.
const deleteManifest = `WITH
	m AS (DELETE FROM manifests WHERE repo_id = ` + repoID + ` AND digest = $2 RETURNING repo_id, size, kind),
	tg AS (DELETE FROM tags t USING m WHERE t.repo_id = m.repo_id AND t.manifest = $2 RETURNING t.name),
	tag_edges_of AS (DELETE FROM tag_edges e USING m, tg WHERE e.repo_id = m.repo_id AND e.tag = tg.name),
	tag_edges_to AS (DELETE FROM tag_edges e USING m WHERE e.artifact = $2 AND e.repo_id = m.repo_id),
	refs AS (DELETE FROM manifest_refs mr USING m WHERE mr.repo_id = m.repo_id AND mr.manifest = $2
		RETURNING mr.repo_id, mr.digest, mr.is_manifest),
	released AS (UPDATE repo_blobs rb SET created = $3 FROM refs
		WHERE rb.repo_id = refs.repo_id AND rb.digest = refs.digest AND NOT refs.is_manifest)
SELECT repo_id, size, (SELECT count(*) FROM tg), kind FROM m`

func (writes) DeleteManifest(ctx context.Context, q sqlstore.TxQuerier, name, d string, now time.Time) (sqlstore.Deleted, error) {
	var del sqlstore.Deleted
	err := q.QueryRow(ctx, deleteManifest, name, d, now).Scan(&del.Repo, &del.Size, &del.Tags, &del.Kind)
	return del, err
}

// deleteRepository deletes everything of repository $1 and marks it deleted, in one
// statement that reads the repository's whole range of each table: what it deletes.
// Its counters go with their rows; it returns how many manifests of each kind it had.
const deleteRepository = `WITH
	m AS (DELETE FROM manifests WHERE repo_id = $1 RETURNING kind),
	refs AS (DELETE FROM manifest_refs WHERE repo_id = $1),
	tg AS (DELETE FROM tags WHERE repo_id = $1),
	edges AS (DELETE FROM tag_edges WHERE repo_id = $1),
	links AS (DELETE FROM repo_blobs WHERE repo_id = $1),
	counters AS (DELETE FROM repo_stats WHERE repo_id = $1),
	hide AS (UPDATE repos SET hidden = true, delete_enabled = true, write_enabled = true, read_enabled = true,
		list_enabled = true WHERE id = $1)
SELECT kind, count(*) FROM m GROUP BY kind`

func (writes) DeleteRepository(ctx context.Context, q sqlstore.TxQuerier, id int64) (map[string]int64, error) {
	return sqlstore.Counts(q.Query(ctx, deleteRepository, id))
}

// RecountStats counts every row it counts, into slot 0: once, after the migration that
// added the counters.
func (writes) RecountStats(ctx context.Context, q sqlstore.TxQuerier) error {
	if _, err := q.Exec(ctx, `DELETE FROM stats`); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `INSERT INTO stats (key, slot, value)
		SELECT 'repositories', 0, count(*) FROM repos WHERE NOT hidden
		UNION ALL SELECT 'tags', 0, count(*) FROM tags
		UNION ALL SELECT 'size', 0, COALESCE(sum(size), 0)::bigint FROM repo_stats
		UNION ALL SELECT 'uploads', 0, count(*) FROM uploads
		UNION ALL SELECT 'manifests/' || kind, 0, count(*) FROM manifests GROUP BY kind`)
	return err
}

// setTag points tag $3 of repository $1 at manifest $2, which must exist. The upsert
// reports what it replaced (the previous target kept in prev, NULL for a new tag, no row
// for a tag already there), so the tag is not read first: a read would lock its index
// page against every concurrent push of a neighbouring tag. The targets' tag counts move
// in the same statement.
const setTag = `WITH
	target AS (SELECT digest FROM manifests WHERE repo_id = $1 AND digest = $2),
	up AS (` + upsertTag + `),
	counts AS (UPDATE manifests m SET tag_count = m.tag_count + 1, updated = $4
		WHERE m.repo_id = $1 AND m.digest = $2 AND EXISTS (SELECT 1 FROM up)
		RETURNING ctid),
	` + releaseTag + `
SELECT EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM up), (SELECT prev FROM up),
	(SELECT ctid FROM counts), ` + releasedAttributes + ` FROM (SELECT 1) one LEFT JOIN released ON true`

// setTagWritten is setTag for a manifest this transaction wrote, at tuple id $5: a
// push's own manifest. It is reached by its tuple id, which locks that tuple only (none
// at all, as the transaction's own), where a lookup by digest would lock an index page
// of manifests into which concurrent pushes insert.
const setTagWritten = `WITH
	target AS (SELECT digest FROM manifests WHERE ctid = $5::tid AND repo_id = $1 AND digest = $2),
	up AS (` + upsertTag + `),
	counts AS (UPDATE manifests m SET tag_count = m.tag_count + 1, updated = $4
		WHERE m.ctid = $5::tid AND m.repo_id = $1 AND m.digest = $2 AND EXISTS (SELECT 1 FROM up)
		RETURNING ctid),
	` + releaseTag + `
SELECT EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM up), (SELECT prev FROM up),
	(SELECT ctid FROM counts), ` + releasedAttributes + ` FROM (SELECT 1) one LEFT JOIN released ON true`

const (
	upsertTag = `INSERT INTO tags AS t (repo_id, name, manifest, prev, updated)
		SELECT $1, $3, digest, NULL, $4 FROM target
		ON CONFLICT (repo_id, name) DO UPDATE SET manifest = excluded.manifest, prev = t.manifest, updated = excluded.updated
		WHERE t.manifest <> excluded.manifest
		RETURNING prev`
	// releaseTag takes the moved tag from its previous target. With no previous target
	// the condition compares with NULL, and the index is not even read.
	releaseTag = `released AS (UPDATE manifests m SET tag_count = m.tag_count - 1, updated = $4
		WHERE m.repo_id = $1 AND m.digest = (SELECT prev FROM up)
		RETURNING delete_enabled, write_enabled, read_enabled, list_enabled)`
	// releasedAttributes are the attributes of the manifest the tag left, NULL when it
	// left none.
	releasedAttributes = `released.delete_enabled, released.write_enabled, released.read_enabled, released.list_enabled`
)

func (writes) SetTag(ctx context.Context, q sqlstore.TxQuerier, repo int64, tag, d string, at any, now time.Time) (sqlstore.TagMove, error) {
	var (
		mv                     sqlstore.TagMove
		tid                    pgtype.TID
		prev                   *string
		del, write, read, list *bool
	)
	scan := func(r sqlstore.Row) error {
		return r.Scan(&mv.Found, &mv.Changed, &prev, &tid, &del, &write, &read, &list)
	}
	if at != nil {
		if err := scan(q.QueryRow(ctx, setTagWritten, repo, d, tag, now, at)); err != nil {
			return mv, err
		}
	}
	if !mv.Found { // not written here, or no longer at that tuple id
		if err := scan(q.QueryRow(ctx, setTag, repo, d, tag, now)); err != nil {
			return mv, err
		}
	}
	mv.At = located(tid)
	moved(&mv, prev, del, write, read, list)
	return mv, nil
}

func (writes) DeleteTag(ctx context.Context, q sqlstore.TxQuerier, name, tag string, now time.Time) (int64, error) {
	var repo int64
	err := q.QueryRow(ctx, `WITH
		gone AS (DELETE FROM tags WHERE repo_id = `+repoID+` AND name = $2 RETURNING repo_id, manifest),
		counts AS (UPDATE manifests m SET tag_count = m.tag_count - 1, updated = $3 FROM gone
			WHERE m.repo_id = gone.repo_id AND m.digest = gone.manifest)
		SELECT repo_id FROM gone`, name, tag, now).Scan(&repo)
	return repo, err
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
)

// txn implements metastore.Tx: one attempt of an Update.
type txn struct {
	reader
	s  *Store
	tc *txConn
	// pending are the changes to repository counters, added to the session's slot of
	// each repository (see schema.go) by one statement sent with COMMIT.
	pending map[int64]*repoDelta
	// created are the repositories this attempt created, known to the Store once it
	// commits.
	created map[string]int64
	// written are the tuple ids of the manifest rows this attempt wrote last, which
	// SetTag addresses directly (see setTagWritten).
	written map[manifestKey]pgtype.TID
}

type manifestKey struct {
	repo   int64
	digest string
}

// wrote records the tuple id of a manifest row this attempt wrote, or forgets it when
// tid is not valid: after a write that does not return it.
func (t *txn) wrote(repo int64, d string, tid pgtype.TID) {
	k := manifestKey{repo, d}
	if !tid.Valid {
		delete(t.written, k)
		return
	}
	if t.written == nil {
		t.written = map[manifestKey]pgtype.TID{}
	}
	t.written[k] = tid
}

type repoDelta struct{ manifests, tags, size int64 }

var _ metastore.Tx = (*txn)(nil)

// errSwept is a conflict PostgreSQL cannot see: a SweepBlob, which runs at READ
// COMMITTED, removed a blob after this transaction's snapshot was taken.
var errSwept = errors.New("metastore: a blob was swept while the transaction ran")

// addToRepo adds to the counters of repository id, and marks it updated, at commit.
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

// flushCounters is the statement that writes the pending counter changes, or nil.
// Repositories go in id order, so that two transactions whose sessions share a slot
// lock its rows in the same order.
func (t *txn) flushCounters() []stmt {
	if len(t.pending) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(t.pending))
	var ms, ts, ss []int64
	for _, id := range ids {
		d := t.pending[id]
		ms, ts, ss = append(ms, d.manifests), append(ts, d.tags), append(ss, d.size)
	}
	t.pending = nil
	return []stmt{{sql: `INSERT INTO repo_stats (repo_id, slot, manifests, tags, size, updated)
		SELECT u.repo_id, pg_backend_pid() % 64, u.manifests, u.tags, u.size, $5
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS u(repo_id, manifests, tags, size)
		ON CONFLICT (repo_id, slot) DO UPDATE SET manifests = repo_stats.manifests + excluded.manifests,
			tags = repo_stats.tags + excluded.tags, size = repo_stats.size + excluded.size, updated = excluded.updated`,
		args: []any{ids, ms, ts, ss, time.Now()}}}
}

func (t *txn) commit(ctx context.Context) error {
	return t.tc.commit(ctx, t.flushCounters())
}

// Repository reads the counters with this transaction's changes: those pending are
// written first, in the same round trip.
func (t *txn) Repository(ctx context.Context, repo string) (*metastore.Repository, error) {
	return scanRepository(t.tc.queryRow(ctx, t.flushCounters(),
		`SELECT `+repoColumns+` FROM repos r `+repoStats+` WHERE r.name = $1`, repo))
}

// RepositoryList reads the counters with this transaction's changes, as Repository.
func (t *txn) RepositoryList(ctx context.Context, after string, n int) ([]metastore.Repository, error) {
	if pre := t.flushCounters(); pre != nil {
		if _, err := t.tc.exec(ctx, pre, `SELECT 1`); err != nil {
			return nil, fmt.Errorf("metastore: list repositories: %w", err)
		}
	}
	return t.reader.RepositoryList(ctx, after, n)
}

// repoID returns the id of repo, creating the repository when create is set, or
// ErrNotFound.
func (t *txn) repoID(ctx context.Context, repo string, create bool) (int64, error) {
	if id, ok := t.s.repos.Load(repo); ok {
		return id.(int64), nil
	}
	if id, ok := t.created[repo]; ok {
		return id, nil
	}
	var (
		id  int64
		new bool
	)
	var err error
	if create {
		err = t.tc.QueryRow(ctx, `WITH found AS (SELECT id FROM repos WHERE name = $1),
			ins AS (INSERT INTO repos (name, created) SELECT $1, $2::timestamptz WHERE NOT EXISTS (SELECT 1 FROM found)
				ON CONFLICT (name) DO NOTHING RETURNING id)
			SELECT id, false FROM found UNION ALL SELECT id, true FROM ins`, repo, time.Now()).Scan(&id, &new)
	} else {
		err = t.tc.QueryRow(ctx, `SELECT id, false FROM repos WHERE name = $1`, repo).Scan(&id, &new)
	}
	if err != nil {
		return 0, notFound(err)
	}
	if new {
		if t.created == nil {
			t.created = map[string]int64{}
		}
		t.created[repo] = id
	} else {
		// Visible and not created here: committed, for good.
		t.s.repos.Store(repo, id)
	}
	return id, nil
}

func (t *txn) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	id, err := t.repoID(ctx, repo, true)
	if err != nil {
		return err
	}
	// The size is the real one: a claim may have recorded a guess. It is corrected by an
	// update that matches no row when the size is right, and so locks none (an upsert
	// would lock the row of every blob linked, against every concurrent link of it).
	// Linking again restarts the link's grace period.
	var linked, swept bool
	err = t.tc.queryRow(ctx, []stmt{{sql: lockDigestShared, args: []any{d.String()}}}, `WITH
		b AS (INSERT INTO blobs (digest, size, created) VALUES ($2, $3, $4) ON CONFLICT (digest) DO NOTHING RETURNING 1),
		sized AS (UPDATE blobs SET size = $3 WHERE digest = $2 AND size <> $3 AND NOT EXISTS (SELECT 1 FROM b)),
		up AS (UPDATE repo_blobs SET created = $4 WHERE repo_id = $1 AND digest = $2 RETURNING 1),
		ins AS (INSERT INTO repo_blobs (repo_id, digest, created) SELECT $1, $2, $4 WHERE NOT EXISTS (SELECT 1 FROM up)
			ON CONFLICT DO NOTHING RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM ins), EXISTS (SELECT 1 FROM b) AND EXISTS (SELECT 1 FROM blobs WHERE digest = $2)`,
		id, d.String(), size, time.Now()).Scan(&linked, &swept)
	if err != nil {
		return fmt.Errorf("metastore: link %s to %s: %w", d, repo, err)
	}
	if swept {
		// The snapshot still sees the row a sweep deleted, beside the one just
		// inserted: start again from a snapshot after the sweep.
		t.tc.conflict = true
		return fmt.Errorf("metastore: link %s to %s: %w", d, repo, errSwept)
	}
	if linked {
		t.addToRepo(id, 0, 0, size)
	}
	return nil
}

func (t *txn) ClaimBlob(ctx context.Context, d digest.Digest, size int64) error {
	// Update, else insert: an update of a row that a sweep deleted after this
	// transaction's snapshot fails as a serialization failure, and the claim is retried.
	_, err := t.tc.exec(ctx, []stmt{{sql: lockDigestShared, args: []any{d.String()}}}, `WITH
		up AS (UPDATE blobs SET created = $3 WHERE digest = $1 RETURNING 1)
		INSERT INTO blobs (digest, size, created) SELECT $1, $2::bigint, $3 WHERE NOT EXISTS (SELECT 1 FROM up)
		ON CONFLICT (digest) DO NOTHING`, d.String(), size, time.Now())
	if err != nil {
		return fmt.Errorf("metastore: claim %s: %w", d, err)
	}
	return nil
}

func (t *txn) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	var id, size int64
	err := t.tc.QueryRow(ctx, `WITH
		gone AS (DELETE FROM repo_blobs WHERE repo_id = `+repoID+` AND digest = $2 RETURNING repo_id)
		SELECT repo_id, COALESCE((SELECT size FROM blobs WHERE digest = $2 LIMIT 1), 0) FROM gone`,
		repo, d.String()).Scan(&id, &size)
	if err != nil {
		return notFound(err)
	}
	t.addToRepo(id, 0, 0, -size)
	return nil
}

func (t *txn) UnlinkUnreferenced(ctx context.Context, repo string, d digest.Digest, tm time.Time) (bool, error) {
	var id, size int64
	err := t.tc.QueryRow(ctx, `WITH
		gone AS (DELETE FROM repo_blobs rb WHERE rb.repo_id = `+repoID+` AND rb.digest = $2 AND rb.created < $3
			AND `+unreferenced+` RETURNING repo_id)
		SELECT repo_id, COALESCE((SELECT size FROM blobs WHERE digest = $2 LIMIT 1), 0) FROM gone`,
		repo, d.String(), tm).Scan(&id, &size)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("metastore: unlink %s from %s: %w", d, repo, err)
	}
	t.addToRepo(id, 0, 0, -size)
	return true, nil
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
			platform_os_version, platform_os_features, created, updated, content)
		VALUES ($1, $2, $3, $4, $4::bigint + COALESCE((SELECT sum(COALESCE(CASE WHEN r.is_manifest
				THEN (SELECT c.total_size FROM manifests c WHERE c.repo_id = $1 AND c.digest = r.digest)
				ELSE (SELECT b.size FROM blobs b WHERE b.digest = r.digest LIMIT 1) END, r.declared)) FROM refs r), 0)::bigint,
			$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
		ON CONFLICT (repo_id, digest) DO NOTHING
		RETURNING ctid),
	ins_refs AS (INSERT INTO manifest_refs (repo_id, manifest, digest, size, is_manifest)
		SELECT $1, $2, r.digest, r.size, r.is_manifest FROM refs r WHERE EXISTS (SELECT 1 FROM ins)),
	again AS (UPDATE manifests SET updated = $17 WHERE repo_id = $1 AND digest = $2 AND NOT EXISTS (SELECT 1 FROM ins)
		RETURNING ctid)
SELECT EXISTS (SELECT 1 FROM ins), COALESCE((SELECT ctid FROM ins), (SELECT ctid FROM again))`

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
	var subject *string
	if m.Subject != "" {
		s := m.Subject.String()
		subject = &s
	}
	annots, err := marshalAnnotations(m.Annotations)
	if err != nil {
		return fmt.Errorf("metastore: annotations of %s: %w", m.Digest, err)
	}
	var p struct {
		os, arch, variant, osVersion string
		osFeatures                   []string
	}
	if m.Platform != nil {
		p.os, p.arch, p.variant, p.osVersion = m.Platform.OS, m.Platform.Architecture, m.Platform.Variant, m.Platform.OSVersion
		if len(m.Platform.OSFeatures) > 0 {
			p.osFeatures = m.Platform.OSFeatures
		}
	}
	// A digest named twice is one reference: its first kind and size are recorded, and
	// the total counts it once, at the size last declared.
	var (
		digests  []string
		sizes    []int64
		declared []int64
		kinds    []bool
		at       = map[digest.Digest]int{}
	)
	for _, ref := range m.References {
		if i, ok := at[ref.Digest]; ok {
			declared[i] = ref.Size
			continue
		}
		at[ref.Digest] = len(digests)
		digests = append(digests, ref.Digest.String())
		sizes = append(sizes, ref.Size)
		declared = append(declared, ref.Size)
		kinds = append(kinds, ref.Manifest)
	}
	var (
		inserted bool
		tid      pgtype.TID
	)
	err = t.tc.QueryRow(ctx, putManifest,
		repo, m.Digest.String(), m.MediaType, m.Size, m.ArtifactType, m.ConfigMediaType, subject, annots,
		p.os, p.arch, p.variant, p.osVersion, p.osFeatures, created, now, m.Content, now,
		digests, sizes, declared, kinds).Scan(&inserted, &tid)
	if err != nil {
		return fmt.Errorf("metastore: put manifest %s in %s: %w", m.Digest, m.Repo, err)
	}
	t.wrote(repo, m.Digest.String(), tid)
	if inserted {
		t.addToRepo(repo, 1, 0, m.Size)
	} else {
		t.addToRepo(repo, 0, 0, 0)
	}
	return nil
}

// deleteManifest removes a manifest, its tags and its references, and restarts the grace
// period of the links of the blobs it named.
const deleteManifest = `WITH
	m AS (DELETE FROM manifests WHERE repo_id = ` + repoID + ` AND digest = $2 RETURNING repo_id, size),
	tg AS (DELETE FROM tags t USING m WHERE t.repo_id = m.repo_id AND t.manifest = $2 RETURNING 1),
	refs AS (DELETE FROM manifest_refs mr USING m WHERE mr.repo_id = m.repo_id AND mr.manifest = $2
		RETURNING mr.repo_id, mr.digest, mr.is_manifest),
	released AS (UPDATE repo_blobs rb SET created = $3 FROM refs
		WHERE rb.repo_id = refs.repo_id AND rb.digest = refs.digest AND NOT refs.is_manifest)
SELECT repo_id, size, (SELECT count(*) FROM tg) FROM m`

func (t *txn) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	var id, size, tags int64
	err := t.tc.QueryRow(ctx, deleteManifest, repo, d.String(), time.Now()).Scan(&id, &size, &tags)
	if err != nil {
		return notFound(err)
	}
	t.wrote(id, d.String(), pgtype.TID{})
	t.addToRepo(id, -1, -tags, -size)
	return nil
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
SELECT EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM up), EXISTS (SELECT 1 FROM up WHERE prev IS NULL),
	(SELECT prev FROM up), (SELECT ctid FROM counts)`

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
SELECT EXISTS (SELECT 1 FROM target), EXISTS (SELECT 1 FROM up), EXISTS (SELECT 1 FROM up WHERE prev IS NULL),
	(SELECT prev FROM up), (SELECT ctid FROM counts)`

const (
	upsertTag = `INSERT INTO tags AS t (repo_id, name, manifest, prev, updated)
		SELECT $1, $3, digest, NULL, $4 FROM target
		ON CONFLICT (repo_id, name) DO UPDATE SET manifest = excluded.manifest, prev = t.manifest, updated = excluded.updated
		WHERE t.manifest <> excluded.manifest
		RETURNING prev`
	// releaseTag takes the moved tag from its previous target. With no previous target
	// the condition compares with NULL, and the index is not even read.
	releaseTag = `released AS (UPDATE manifests m SET tag_count = m.tag_count - 1, updated = $4
		WHERE m.repo_id = $1 AND m.digest = (SELECT prev FROM up))`
)

func (t *txn) SetTag(ctx context.Context, repo, tag string, d digest.Digest) error {
	id, err := t.repoID(ctx, repo, false)
	if err != nil {
		return err
	}
	var (
		exists, changed, added bool
		prev                   *string
		tid                    pgtype.TID
		now                    = time.Now()
	)
	if at, ok := t.written[manifestKey{id, d.String()}]; ok {
		err = t.tc.QueryRow(ctx, setTagWritten, id, d.String(), tag, now, at).Scan(&exists, &changed, &added, &prev, &tid)
		if err != nil {
			return fmt.Errorf("metastore: tag %s:%s: %w", repo, tag, err)
		}
	}
	if !exists { // not written here, or no longer at that tuple id
		err = t.tc.QueryRow(ctx, setTag, id, d.String(), tag, now).Scan(&exists, &changed, &added, &prev, &tid)
		if err != nil {
			return fmt.Errorf("metastore: tag %s:%s: %w", repo, tag, err)
		}
	}
	switch {
	case !exists:
		return metastore.ErrNotFound
	case !changed:
		return nil
	}
	t.wrote(id, d.String(), tid)
	if prev != nil {
		t.wrote(id, *prev, pgtype.TID{})
		t.addToRepo(id, 0, 0, 0)
	} else {
		t.addToRepo(id, 0, 1, 0)
	}
	return nil
}

func (t *txn) DeleteTag(ctx context.Context, repo, tag string) error {
	var (
		id       int64
		manifest string
	)
	err := t.tc.QueryRow(ctx, `WITH
		gone AS (DELETE FROM tags WHERE repo_id = `+repoID+` AND name = $2 RETURNING repo_id, manifest),
		counts AS (UPDATE manifests m SET tag_count = m.tag_count - 1, updated = $3 FROM gone
			WHERE m.repo_id = gone.repo_id AND m.digest = gone.manifest)
		SELECT repo_id, manifest FROM gone`, repo, tag, time.Now()).Scan(&id, &manifest)
	if err != nil {
		return notFound(err)
	}
	t.wrote(id, manifest, pgtype.TID{})
	t.addToRepo(id, 0, -1, 0)
	return nil
}

func (t *txn) SetRepositoryAttributes(ctx context.Context, repo string, a metastore.Attributes) error {
	tag, err := t.tc.exec(ctx, nil, `UPDATE repos SET delete_enabled = $2, write_enabled = $3, read_enabled = $4,
		list_enabled = $5 WHERE name = $1`, repo, a.DeleteEnabled, a.WriteEnabled, a.ReadEnabled, a.ListEnabled)
	return affected("set attributes of "+repo, tag, err)
}

func (t *txn) SetManifestAttributes(ctx context.Context, repo string, d digest.Digest, a metastore.Attributes) error {
	for k := range t.written { // the row moves to a new tuple id
		if k.digest == d.String() {
			delete(t.written, k)
		}
	}
	tag, err := t.tc.exec(ctx, nil, `UPDATE manifests SET delete_enabled = $3, write_enabled = $4, read_enabled = $5,
		list_enabled = $6 WHERE repo_id = `+repoID+` AND digest = $2`,
		repo, d.String(), a.DeleteEnabled, a.WriteEnabled, a.ReadEnabled, a.ListEnabled)
	return affected("set attributes of "+d.String(), tag, err)
}

// affected returns ErrNotFound when a statement changed no row.
func affected(what string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return fmt.Errorf("metastore: %s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return metastore.ErrNotFound
	}
	return nil
}

func (t *txn) CreateUpload(ctx context.Context, u *metastore.Upload) error {
	tag, err := t.tc.exec(ctx, nil, `INSERT INTO uploads (id, repo, created, modified) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`, u.ID, u.Repo, u.Created, u.Modified)
	if err != nil {
		return fmt.Errorf("metastore: create upload %s: %w", u.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("metastore: create upload %s: %w", u.ID, metastore.ErrExists)
	}
	return nil
}

func (t *txn) TouchUpload(ctx context.Context, id string, tm time.Time) error {
	tag, err := t.tc.exec(ctx, nil, `UPDATE uploads SET modified = $2 WHERE id = $1`, id, tm)
	return affected("touch upload "+id, tag, err)
}

func (t *txn) DeleteUpload(ctx context.Context, id string) error {
	tag, err := t.tc.exec(ctx, nil, `DELETE FROM uploads WHERE id = $1`, id)
	return affected("delete upload "+id, tag, err)
}

func (t *txn) CreateToken(ctx context.Context, tok *metastore.Token) error {
	var expires *time.Time
	if !tok.Expires.IsZero() {
		expires = &tok.Expires
	}
	repos, actions := tok.Repositories, tok.Actions
	if repos == nil {
		repos = []string{}
	}
	if actions == nil {
		actions = []string{}
	}
	tag, err := t.tc.exec(ctx, nil, `INSERT INTO tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (name) DO NOTHING`, tok.Name, tok.Hash, repos, actions, tok.Created, expires)
	if err != nil {
		return fmt.Errorf("metastore: create token %s: %w", tok.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return metastore.ErrExists
	}
	return nil
}

func (t *txn) DeleteToken(ctx context.Context, name string) error {
	tag, err := t.tc.exec(ctx, nil, `DELETE FROM tokens WHERE name = $1`, name)
	return affected("delete token "+name, tag, err)
}

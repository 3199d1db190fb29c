package sqlite

import "github.com/graft-registry/graft/internal/metastore/sqlstore"

// repoID is the id of the repository named by a statement's first argument.
const repoID = `(SELECT id FROM repos WHERE name = ?1)`

// metaColumns are a manifest's columns but its content, with the attributes of its
// repository (joined as r), and the least key it is a tag-schema artifact of.
const metaColumns = sqlstore.ManifestColumns + `,
	(SELECT min(e.subject) FROM tag_edges e INDEXED BY tag_edges_by_artifact
		WHERE e.repo_id = m.repo_id AND e.artifact = m.digest)`

// contentColumns are what a pull reads: a few columns, the content last.
const contentColumns = `m.digest, m.media_type, m.size, m.read_enabled, r.read_enabled, m.content`

const (
	byDigest = ` FROM manifests m JOIN repos r ON r.id = m.repo_id WHERE r.name = ?1 AND m.digest = ?2`
	byTag    = ` FROM repos r JOIN tags t ON t.repo_id = r.id JOIN manifests m ON m.id = t.manifest_id
		WHERE r.name = ?1 AND t.name = ?2`
)

const repoColumns = `name, manifest_count, tag_count, size, created, updated,
	delete_enabled, write_enabled, read_enabled, list_enabled`

// unreferenced is the condition on a repo_blobs row rb that no manifest of its
// repository names the blob.
const unreferenced = `NOT EXISTS (SELECT 1 FROM manifest_refs mr JOIN manifests m ON m.id = mr.manifest_id
	WHERE mr.digest = rb.digest AND mr.is_manifest = 0 AND m.repo_id = rb.repo_id)`

// The referrers queries: two indexes serve them, (repo, subject, digest) and (repo,
// subject, artifact type, digest), each a range scan in digest order.
const referrerColumns = `SELECT media_type, digest, size, artifact_type, annotations FROM manifests
	WHERE repo_id = ` + repoID + ` AND subject = ?2`

const consumerColumns = `name, after, holder, lease_until, last_success, last_failure, last_error, failures`

var queries = sqlstore.Queries{
	Manifest:       `SELECT ` + metaColumns + `, m.content` + byDigest,
	TaggedManifest: `SELECT ` + metaColumns + `, m.content` + byTag,
	Tag:            `SELECT ` + metaColumns + byTag,
	Content:        `SELECT ` + contentColumns + byDigest,
	TaggedContent:  `SELECT ` + contentColumns + byTag,
	Manifests: sqlstore.ManifestsQuery{
		Select: `SELECT ` + metaColumns + ` FROM repos r JOIN manifests m ON m.repo_id = r.id
			WHERE r.name = ?1 AND m.digest > ?2`,
		Order: ` ORDER BY m.digest LIMIT ?3`,
	},

	Repository:     `SELECT ` + repoColumns + ` FROM repos WHERE name = ?1 AND hidden = 0`,
	RepositoryList: `SELECT ` + repoColumns + ` FROM repos WHERE name > ?1 AND hidden = 0 ORDER BY name LIMIT ?2`,
	RepositoryAttributes: `SELECT delete_enabled, write_enabled, read_enabled, list_enabled
		FROM repos WHERE name = ?1 AND hidden = 0`,
	Repositories: `SELECT name FROM repos WHERE name > ?1 AND list_enabled = 1 AND hidden = 0 ORDER BY name LIMIT ?2`,
	Tags: `SELECT t.name FROM tags t JOIN manifests m ON m.id = t.manifest_id
		WHERE t.repo_id = ` + repoID + ` AND t.name > ?2 AND m.list_enabled = 1
		ORDER BY t.name LIMIT ?3`,
	TagList: `SELECT t.name, m.digest, t.updated, t.last_pulled FROM tags t JOIN manifests m ON m.id = t.manifest_id
		WHERE t.repo_id = ` + repoID + ` AND t.name > ?2 ORDER BY t.name LIMIT ?3`,
	RecordManifestPull: `UPDATE manifests SET last_pulled = ?3
		WHERE repo_id = ` + repoID + ` AND digest = ?2 AND (last_pulled IS NULL OR last_pulled < ?3)`,
	RecordTagPull: `UPDATE tags SET last_pulled = ?3
		WHERE repo_id = ` + repoID + ` AND name = ?2 AND (last_pulled IS NULL OR last_pulled < ?3)
		AND manifest_id = (SELECT id FROM manifests WHERE repo_id = tags.repo_id AND digest = ?4)`,
	TagsOf: `SELECT t.name FROM repos r JOIN manifests m ON m.repo_id = r.id JOIN tags t ON t.manifest_id = m.id
		WHERE r.name = ?1 AND m.digest = ?2 ORDER BY t.name`,

	Referrers:       referrerColumns + ` AND digest > ?3 ORDER BY digest LIMIT ?4`,
	ReferrersOfType: referrerColumns + ` AND artifact_type = ?5 AND digest > ?3 ORDER BY digest LIMIT ?4`,
	// CROSS JOIN: the references of the child first, not every manifest of the repository.
	Parents: `SELECT m.digest FROM manifest_refs mr CROSS JOIN manifests m ON m.id = mr.manifest_id
		WHERE mr.digest = ?2 AND mr.is_manifest = 1 AND m.repo_id = ` + repoID + ` ORDER BY m.digest`,
	TagArtifacts: `SELECT DISTINCT artifact FROM tag_edges
		WHERE repo_id = ` + repoID + ` AND subject = ?2 AND artifact > ?3 ORDER BY artifact LIMIT ?4`,
	Artifacts: `SELECT m.subject, m.digest, m.kind FROM manifests m
		WHERE m.repo_id = ` + repoID + ` AND m.subject IN (SELECT value FROM json_each(?2))
		UNION ALL
		SELECT e.subject, e.artifact, m.kind FROM tag_edges e JOIN manifests m ON m.repo_id = e.repo_id AND m.digest = e.artifact
		WHERE e.repo_id = ` + repoID + ` AND e.subject IN (SELECT value FROM json_each(?3))`,
	DeleteTagEdges: `DELETE FROM tag_edges WHERE repo_id = ?1 AND tag = ?2`,
	AddTagEdges: `INSERT INTO tag_edges (repo_id, tag, artifact, subject, direct)
		SELECT ?1, ?2, ?3, ?4, 1
		UNION ALL
		SELECT ?1, ?2, mr.digest, ?4, 0 FROM manifests m JOIN manifest_refs mr ON mr.manifest_id = m.id
		WHERE ?5 AND m.repo_id = ?1 AND m.digest = ?3 AND mr.is_manifest = 1
		ON CONFLICT DO NOTHING`,

	Blob: `SELECT b.size FROM repos r JOIN repo_blobs rb ON rb.repo_id = r.id JOIN blobs b ON b.digest = rb.digest
		WHERE r.name = ?1 AND rb.digest = ?2`,
	BlobRepository: `SELECT r.name FROM repo_blobs rb JOIN repos r ON r.id = rb.repo_id WHERE rb.digest = ?1 LIMIT 1`,
	// The list is JSON; SQLite looks each of its digests up in the primary key.
	BlobSizes: `SELECT rb.digest, b.size FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest
		WHERE rb.repo_id = ` + repoID + ` AND rb.digest IN (SELECT value FROM json_each(?2))`,
	ManifestSizes: `SELECT digest, size FROM manifests
		WHERE repo_id = ` + repoID + ` AND digest IN (SELECT value FROM json_each(?2))`,
	// CROSS JOIN: the references to the blob first, then their manifests by id.
	LockingManifest: `SELECT m.digest FROM manifest_refs mr CROSS JOIN manifests m ON m.id = mr.manifest_id
		WHERE mr.digest = ?2 AND mr.is_manifest = 0 AND m.repo_id = ` + repoID + `
			AND NOT (m.delete_enabled AND m.write_enabled)
		LIMIT 1`,

	Upload:       `SELECT repo, owner, created, modified FROM uploads WHERE id = ?1`,
	StaleUploads: `SELECT id, repo, owner, created, modified FROM uploads WHERE modified < ?1 ORDER BY modified LIMIT ?2`,
	EmptyUploads: `SELECT id, repo, owner, created, modified FROM uploads
		WHERE created < ?1 AND modified = created ORDER BY created LIMIT ?2`,
	OpenUploads: `SELECT (SELECT count(*) FROM (SELECT 1 FROM uploads WHERE repo = ?1 LIMIT ?3)),
		(SELECT count(*) FROM (SELECT 1 FROM uploads WHERE owner = ?2 LIMIT ?3))`,

	Nodes: `SELECT m.digest, m.subject,
			m.tag_count > (SELECT count(*) FROM tag_edges e INDEXED BY tag_edges_by_artifact
				WHERE e.repo_id = m.repo_id AND e.artifact = m.digest AND e.direct),
			m.delete_enabled, m.updated, m.kind, m.last_pulled, m.size,
			(SELECT json_group_array(digest) FROM (SELECT mr.digest FROM manifest_refs mr
				WHERE mr.manifest_id = m.id AND mr.is_manifest = 1 ORDER BY mr.digest)),
			(SELECT json_group_array(subject) FROM (SELECT DISTINCT e.subject FROM tag_edges e INDEXED BY tag_edges_by_artifact
				WHERE e.repo_id = m.repo_id AND e.artifact = m.digest ORDER BY e.subject))
		FROM manifests m WHERE m.repo_id = ` + repoID + ` AND m.digest > ?2
		ORDER BY m.digest LIMIT ?3`,
	UnreferencedBlobs: `SELECT rb.digest FROM repo_blobs rb
		WHERE rb.repo_id = ` + repoID + ` AND rb.digest > ?2 AND rb.created < ?3 AND ` + unreferenced + `
		ORDER BY rb.digest LIMIT ?4`,
	UnlinkedBlobs: `SELECT b.digest FROM blobs b WHERE b.digest > ?1
		AND NOT EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.digest = b.digest)
		ORDER BY b.digest LIMIT ?2`,

	// expires is 0 for never.
	Token:  `SELECT name, hash, repositories, actions, created, NULLIF(expires, 0) FROM tokens WHERE name = ?1`,
	Tokens: `SELECT name, hash, repositories, actions, created, NULLIF(expires, 0) FROM tokens ORDER BY name`,

	// The writer is alone: a sweep, a link and a claim never run at once, nor two
	// writers of tag-schema edges.
	LockTagEdges: "",
	HoldBlob:     "",
	SweepHold:    "",
	ClaimBlob: `INSERT INTO blobs (digest, size, created) VALUES (?1, ?2, ?3)
		ON CONFLICT (digest) DO UPDATE SET created = max(created, excluded.created)`,
	UnlinkBlob: `DELETE FROM repo_blobs WHERE repo_id = ` + repoID + ` AND digest = ?2
		RETURNING repo_id, COALESCE((SELECT size FROM blobs WHERE digest = ?2), 0)`,
	UnlinkUnreferenced: `DELETE FROM repo_blobs AS rb WHERE rb.repo_id = ` + repoID + ` AND rb.digest = ?2
		AND rb.created < ?3 AND ` + unreferenced + `
		RETURNING repo_id, COALESCE((SELECT size FROM blobs WHERE digest = ?2), 0)`,
	BlobState:  `SELECT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = ?1), (SELECT created FROM blobs WHERE digest = ?1)`,
	ForgetBlob: `DELETE FROM blobs WHERE digest = ?1`,
	RecordSweep: `INSERT INTO blob_sweeps (id, cutoff) VALUES (1, ?1)
		ON CONFLICT (id) DO UPDATE SET cutoff = excluded.cutoff WHERE cutoff < excluded.cutoff`,
	SweepCutoff: `SELECT cutoff FROM blob_sweeps WHERE id = 1`,

	SetRepositoryAttributes: `UPDATE repos SET delete_enabled = ?2, write_enabled = ?3, read_enabled = ?4,
		list_enabled = ?5 WHERE name = ?1 AND hidden = 0`,
	SetManifestAttributes: `UPDATE manifests SET delete_enabled = ?3, write_enabled = ?4, read_enabled = ?5,
		list_enabled = ?6 WHERE repo_id = ` + repoID + ` AND digest = ?2`,

	CreateUpload: `INSERT INTO uploads (id, repo, created, modified, owner) VALUES (?1, ?2, ?3, ?4, ?5)
		ON CONFLICT (id) DO NOTHING`,
	TouchUpload:  `UPDATE uploads SET modified = ?2 WHERE id = ?1`,
	DeleteUpload: `DELETE FROM uploads WHERE id = ?1`,

	CreateToken: `INSERT INTO tokens (name, hash, repositories, actions, created, expires)
		VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, 0)) ON CONFLICT (name) DO NOTHING`,
	DeleteToken: `DELETE FROM tokens WHERE name = ?1`,

	Backfills:    `SELECT name FROM backfills ORDER BY name`,
	DoneBackfill: `DELETE FROM backfills WHERE name = ?1`,
	ManifestsAfter: `SELECT repo_id, digest, media_type, content FROM manifests
		WHERE (repo_id, digest) > (?1, ?2) ORDER BY repo_id, digest LIMIT ?3`,
	SetKind: `UPDATE manifests SET kind = ?3 WHERE repo_id = ?1 AND digest = ?2`,
	TagsAfter: `SELECT t.repo_id, t.name, m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
		WHERE (t.repo_id, t.name) > (?1, ?2) ORDER BY t.repo_id, t.name LIMIT ?3`,

	AppendEvent: `INSERT INTO events (time, type, repo, data) VALUES (?1, ?2, ?3, ?4)`,
	// The writer is alone: events take their places in the order they commit.
	Events:    `SELECT seq, time, type, repo, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2`,
	EventHead: `SELECT coalesce(max(seq), 0) FROM events`,
	Backlog:   `SELECT count(*), min(time) FROM events WHERE seq > ?1`,
	Consumers: `SELECT ` + consumerColumns + ` FROM event_consumers ORDER BY name`,
	ClaimConsumer: `INSERT INTO event_consumers (name, after, holder, lease_until) VALUES (?1, ?5, ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until
		WHERE event_consumers.holder = excluded.holder OR event_consumers.lease_until < ?4
		RETURNING ` + consumerColumns,
	AdvanceConsumer: `UPDATE event_consumers SET after = ?3, last_success = ?4, failures = 0
		WHERE name = ?1 AND holder = ?2`,
	FailConsumer: `UPDATE event_consumers SET last_failure = ?4, last_error = ?3, failures = failures + 1
		WHERE name = ?1 AND holder = ?2`,
	DeleteConsumer: `DELETE FROM event_consumers WHERE name = ?1`,
	PruneEvents: `DELETE FROM events WHERE seq <= coalesce((SELECT min(after) FROM event_consumers),
		(SELECT max(seq) FROM events)) AND time < ?1`,

	AddCounters: `UPDATE repos SET manifest_count = manifest_count + ?2, tag_count = tag_count + ?3,
		size = size + ?4, updated = ?5 WHERE id = ?1`,
	AddStat: `INSERT INTO stats (key, slot, value) VALUES (?1, 0, ?2)
		ON CONFLICT (key, slot) DO UPDATE SET value = value + excluded.value`,
	Stats: `SELECT key, sum(value) FROM stats GROUP BY key`,
	ShowRepository: `UPDATE repos SET hidden = 0, created = ?2, updated = ?2, delete_enabled = 1, write_enabled = 1,
		read_enabled = 1, list_enabled = 1 WHERE id = ?1 AND hidden = 1`,
}

package postgres

import "github.com/graft-registry/graft/internal/metastore/sqlstore"

// repoID is the id of the repository named by a query's first parameter: an index
// lookup, planned once as an InitPlan.
const repoID = `(SELECT id FROM repos WHERE name = $1)`

// metaColumns are a manifest's columns but its content, with the attributes of its
// repository (joined as r), and the least key it is a tag-schema artifact of.
const metaColumns = sqlstore.ManifestColumns + `,
	(SELECT min(e.subject) FROM tag_edges e WHERE e.artifact = m.digest AND e.repo_id = m.repo_id)`

const manifestColumns = metaColumns + `, m.content`

// contentColumns are what a pull reads.
const contentColumns = `m.digest, m.media_type, m.size, m.read_enabled, r.read_enabled, m.content`

// The point lookups of a manifest, by digest and by tag. A tag is looked up first, as an
// InitPlan, so that the manifest is then found by its key: as a join, a planner without
// statistics may go the other way, through every manifest of the repository.
const (
	byDigest = ` FROM repos r JOIN manifests m ON m.repo_id = r.id WHERE r.name = $1 AND m.digest = $2`
	byTag    = ` FROM repos r JOIN manifests m ON m.repo_id = r.id WHERE r.name = $1 AND m.digest = ` + tagged
	tagged   = `(SELECT manifest FROM tags WHERE repo_id = ` + repoID + ` AND name = $2)`
)

// repoColumns are a repository's, with its counters summed over their slots (joined as
// s, a lateral subquery).
const repoColumns = `r.name, s.manifests, s.tags, s.size, r.created, GREATEST(r.created, s.updated),
	r.delete_enabled, r.write_enabled, r.read_enabled, r.list_enabled`

const repoStats = `LEFT JOIN LATERAL (SELECT COALESCE(sum(manifests), 0)::bigint AS manifests,
	COALESCE(sum(tags), 0)::bigint AS tags, COALESCE(sum(size), 0)::bigint AS size, max(updated) AS updated
	FROM repo_stats WHERE repo_id = r.id) s ON true`

// unreferenced is the condition on a repo_blobs row rb that no manifest of its
// repository names the blob.
const unreferenced = `NOT EXISTS (SELECT 1 FROM manifest_refs mr
	WHERE mr.repo_id = rb.repo_id AND mr.digest = rb.digest AND NOT mr.is_manifest)`

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

// lockDigest takes the transaction's advisory lock on a blob digest, for a sweep;
// lockDigestShared takes it for a link or a claim.
const (
	lockDigest       = `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`
	lockDigestShared = `SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))`
)

const tokenColumns = `name, hash, repositories, actions, created, expires`

const consumerColumns = `name, after, holder, lease_until, last_success, last_failure, last_error, failures`

var queries = sqlstore.Queries{
	Manifest:       `SELECT ` + manifestColumns + byDigest,
	TaggedManifest: `SELECT ` + manifestColumns + byTag,
	Tag:            `SELECT ` + metaColumns + byTag,
	Content:        `SELECT ` + contentColumns + byDigest,
	TaggedContent:  `SELECT ` + contentColumns + byTag,
	Manifests: sqlstore.ManifestsQuery{
		Select: `SELECT ` + metaColumns + ` FROM repos r JOIN manifests m ON m.repo_id = r.id
			WHERE r.name = $1 AND m.digest > $2`,
		Order: ` ORDER BY m.digest LIMIT $3`,
	},

	Repository: `SELECT ` + repoColumns + ` FROM repos r ` + repoStats + ` WHERE r.name = $1 AND NOT r.hidden`,
	RepositoryList: `SELECT ` + repoColumns + ` FROM repos r ` + repoStats + `
		WHERE r.name > $1 AND NOT r.hidden ORDER BY r.name LIMIT $2`,
	RepositoryAttributes: `SELECT delete_enabled, write_enabled, read_enabled, list_enabled
		FROM repos WHERE name = $1 AND NOT hidden`,
	Repositories: `SELECT name FROM repos WHERE name > $1 AND list_enabled AND NOT hidden ORDER BY name LIMIT $2`,
	// The listings of tags and parents, each a range of an index in the order it returns.
	Tags: `SELECT t.name FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.manifest
		WHERE t.repo_id = ` + repoID + ` AND t.name > $2 AND m.list_enabled
		ORDER BY t.name LIMIT $3`,
	TagList: `SELECT name, manifest, updated, last_pulled FROM tags
		WHERE repo_id = ` + repoID + ` AND name > $2 ORDER BY name LIMIT $3`,
	RecordManifestPull: `UPDATE manifests SET last_pulled = $3
		WHERE repo_id = ` + repoID + ` AND digest = $2 AND (last_pulled IS NULL OR last_pulled < $3)`,
	RecordTagPull: `UPDATE tags SET last_pulled = $3
		WHERE repo_id = ` + repoID + ` AND name = $2 AND manifest = $4 AND (last_pulled IS NULL OR last_pulled < $3)`,
	TagsOf: `SELECT name FROM tags WHERE repo_id = ` + repoID + ` AND manifest = $2 ORDER BY name`,

	Referrers:       referrersQuery,
	ReferrersOfType: referrersOfTypeQuery,
	Parents: `SELECT manifest FROM manifest_refs
		WHERE repo_id = ` + repoID + ` AND digest = $2 AND is_manifest ORDER BY manifest`,
	TagArtifacts: `SELECT DISTINCT artifact FROM tag_edges
		WHERE subject = $2 AND repo_id = ` + repoID + ` AND artifact > $3 ORDER BY artifact LIMIT $4`,
	Artifacts: `SELECT m.subject, m.digest, m.kind FROM manifests m
		WHERE m.repo_id = ` + repoID + ` AND m.subject = ANY($2)
		UNION ALL
		SELECT e.subject, e.artifact, m.kind FROM tag_edges e JOIN manifests m ON m.repo_id = e.repo_id AND m.digest = e.artifact
		WHERE e.subject = ANY($3) AND e.repo_id = ` + repoID,
	DeleteTagEdges: `DELETE FROM tag_edges WHERE repo_id = $1 AND tag = $2`,
	AddTagEdges: `INSERT INTO tag_edges (repo_id, tag, artifact, subject, direct)
		SELECT $1::bigint, $2::text, $3::text, $4::text, true
		UNION ALL
		SELECT $1, $2, mr.digest, $4, false FROM manifest_refs mr
		WHERE $5 AND mr.repo_id = $1 AND mr.manifest = $3 AND mr.is_manifest
		ON CONFLICT DO NOTHING`,

	Blob: `SELECT b.size FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest
		WHERE rb.repo_id = ` + repoID + ` AND rb.digest = $2`,
	BlobRepository: `SELECT r.name FROM repo_blobs rb JOIN repos r ON r.id = rb.repo_id
		WHERE rb.digest = $1 LIMIT 1`,
	BlobSizes: `SELECT rb.digest, b.size FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest
		WHERE rb.repo_id = ` + repoID + ` AND rb.digest = ANY($2)`,
	ManifestSizes: `SELECT digest, size FROM manifests WHERE repo_id = ` + repoID + ` AND digest = ANY($2)`,
	LockingManifest: `SELECT mr.manifest FROM manifest_refs mr
		JOIN manifests m ON m.repo_id = mr.repo_id AND m.digest = mr.manifest
		WHERE mr.repo_id = ` + repoID + ` AND mr.digest = $2 AND NOT mr.is_manifest
			AND NOT (m.delete_enabled AND m.write_enabled)
		LIMIT 1`,

	Upload:       `SELECT repo, owner, created, modified FROM uploads WHERE id = $1`,
	StaleUploads: `SELECT id, repo, owner, created, modified FROM uploads WHERE modified < $1 ORDER BY modified LIMIT $2`,
	EmptyUploads: `SELECT id, repo, owner, created, modified FROM uploads
		WHERE created < $1 AND modified = created ORDER BY created LIMIT $2`,
	OpenUploads: `SELECT (SELECT count(*) FROM (SELECT 1 FROM uploads WHERE repo = $1 LIMIT $3) r),
		(SELECT count(*) FROM (SELECT 1 FROM uploads WHERE owner = $2 LIMIT $3) o)`,

	Nodes: `SELECT m.digest, m.subject,
			m.tag_count > (SELECT count(*) FROM tag_edges e WHERE e.artifact = m.digest AND e.repo_id = m.repo_id AND e.direct),
			m.delete_enabled, m.updated, m.kind, m.last_pulled, m.size,
			ARRAY(SELECT mr.digest FROM manifest_refs mr
			      WHERE mr.repo_id = m.repo_id AND mr.manifest = m.digest AND mr.is_manifest ORDER BY mr.digest),
			ARRAY(SELECT DISTINCT e.subject FROM tag_edges e
			      WHERE e.artifact = m.digest AND e.repo_id = m.repo_id ORDER BY e.subject)
		FROM manifests m WHERE m.repo_id = ` + repoID + ` AND m.digest > $2
		ORDER BY m.digest LIMIT $3`,
	UnreferencedBlobs: `SELECT rb.digest FROM repo_blobs rb
		WHERE rb.repo_id = ` + repoID + ` AND rb.digest > $2 AND rb.created < $3 AND ` + unreferenced + `
		ORDER BY rb.digest LIMIT $4`,
	UnlinkedBlobs: `SELECT b.digest FROM blobs b WHERE b.digest > $1
		AND NOT EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.digest = b.digest)
		ORDER BY b.digest LIMIT $2`,

	Token:  `SELECT ` + tokenColumns + ` FROM tokens WHERE name = $1`,
	Tokens: `SELECT ` + tokenColumns + ` FROM tokens ORDER BY name`,

	// one key per repository (ids past 2^31 share keys, which only makes two
	// repositories' writers wait for each other)
	LockTagEdges: `SELECT pg_advisory_xact_lock(1735549302, ($1::bigint % 2147483647)::integer)`,

	HoldBlob:  lockDigestShared,
	SweepHold: lockDigest,
	// Update, else insert: an update of a row that a sweep deleted after this
	// transaction's snapshot fails as a serialization failure, and the claim is retried.
	ClaimBlob: `WITH
		up AS (UPDATE blobs SET created = greatest(created, $3) WHERE digest = $1 RETURNING 1)
		INSERT INTO blobs (digest, size, created) SELECT $1, $2::bigint, $3 WHERE NOT EXISTS (SELECT 1 FROM up)
		ON CONFLICT (digest) DO NOTHING`,
	UnlinkBlob: `WITH
		gone AS (DELETE FROM repo_blobs WHERE repo_id = ` + repoID + ` AND digest = $2 RETURNING repo_id)
		SELECT repo_id, COALESCE((SELECT size FROM blobs WHERE digest = $2 LIMIT 1), 0) FROM gone`,
	UnlinkUnreferenced: `WITH
		gone AS (DELETE FROM repo_blobs rb WHERE rb.repo_id = ` + repoID + ` AND rb.digest = $2 AND rb.created < $3
			AND ` + unreferenced + ` RETURNING repo_id)
		SELECT repo_id, COALESCE((SELECT size FROM blobs WHERE digest = $2 LIMIT 1), 0) FROM gone`,
	BlobState:  `SELECT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = $1), (SELECT created FROM blobs WHERE digest = $1)`,
	ForgetBlob: `DELETE FROM blobs WHERE digest = $1`,
	RecordSweep: `INSERT INTO blob_sweeps (id, cutoff) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET cutoff = excluded.cutoff WHERE blob_sweeps.cutoff < excluded.cutoff`,
	SweepCutoff: `SELECT cutoff FROM blob_sweeps WHERE id = 1`,

	SetRepositoryAttributes: `UPDATE repos SET delete_enabled = $2, write_enabled = $3, read_enabled = $4,
		list_enabled = $5 WHERE name = $1 AND NOT hidden`,
	SetManifestAttributes: `UPDATE manifests SET delete_enabled = $3, write_enabled = $4, read_enabled = $5,
		list_enabled = $6 WHERE repo_id = ` + repoID + ` AND digest = $2`,

	CreateUpload: `INSERT INTO uploads (id, repo, created, modified, owner) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO NOTHING`,
	TouchUpload:  `UPDATE uploads SET modified = $2 WHERE id = $1`,
	DeleteUpload: `DELETE FROM uploads WHERE id = $1`,

	CreateToken: `INSERT INTO tokens (` + tokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (name) DO NOTHING`,
	DeleteToken: `DELETE FROM tokens WHERE name = $1`,

	Backfills:    `SELECT name FROM backfills ORDER BY name`,
	DoneBackfill: `DELETE FROM backfills WHERE name = $1`,
	ManifestsAfter: `SELECT repo_id, digest, media_type, content FROM manifests
		WHERE (repo_id, digest) > ($1, $2) ORDER BY repo_id, digest LIMIT $3`,
	SetKind: `UPDATE manifests SET kind = $3 WHERE repo_id = $1 AND digest = $2`,
	TagsAfter: `SELECT repo_id, name, manifest FROM tags
		WHERE (repo_id, name) > ($1, $2) ORDER BY repo_id, name LIMIT $3`,

	AppendEvent: `INSERT INTO events (time, type, repo, data) VALUES ($1, $2, $3, $4)`,
	// Transactions take ids in one order and commit in another: one sequencer at a
	// time places what has committed, after what it placed before; what commits later
	// is placed later.
	SequenceHold: `SELECT pg_advisory_xact_lock(1735549300, 3)`,
	SequenceEvents: `UPDATE events e SET seq = n.top + n.rank FROM (
			SELECT u.id, row_number() OVER (ORDER BY u.id) AS rank,
				(SELECT coalesce(max(seq), 0) FROM events) AS top
			FROM (SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT 10000) u
		) n WHERE e.id = n.id`,
	Events:    `SELECT seq, time, type, repo, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`,
	EventHead: `SELECT coalesce(max(seq), 0) FROM events`,
	Backlog: `SELECT count(*), min(time) FROM (
			SELECT time FROM events WHERE seq > $1 UNION ALL SELECT time FROM events WHERE seq IS NULL) e`,
	Consumers: `SELECT ` + consumerColumns + ` FROM event_consumers ORDER BY name`,
	ClaimConsumer: `INSERT INTO event_consumers AS c (name, after, holder, lease_until) VALUES ($1, $5, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until
		WHERE c.holder = excluded.holder OR c.lease_until < $4
		RETURNING ` + consumerColumns,
	AdvanceConsumer: `UPDATE event_consumers SET after = $3, last_success = $4, failures = 0
		WHERE name = $1 AND holder = $2`,
	FailConsumer: `UPDATE event_consumers SET last_failure = $4, last_error = $3, failures = failures + 1
		WHERE name = $1 AND holder = $2`,
	DeleteConsumer: `DELETE FROM event_consumers WHERE name = $1`,
	PruneEvents: `DELETE FROM events WHERE seq <= coalesce((SELECT min(after) FROM event_consumers),
		(SELECT max(seq) FROM events)) AND time < $1`,

	// Each transaction adds to the row of the slot of its database session, which no
	// other session holds (claimSlot), so that concurrent pushes to one repository do
	// not meet on one row: two that did would conflict, and one of them retry.
	AddCounters: `INSERT INTO repo_stats (repo_id, slot, manifests, tags, size, updated)
		VALUES ($1, coalesce(current_setting('graft.slot', true)::int, pg_backend_pid() % 64), $2, $3, $4, $5)
		ON CONFLICT (repo_id, slot) DO UPDATE SET manifests = repo_stats.manifests + excluded.manifests,
			tags = repo_stats.tags + excluded.tags, size = repo_stats.size + excluded.size, updated = excluded.updated`,
	// The registry-wide counters, in slots as a repository's are.
	AddStat: `INSERT INTO stats (key, slot, value)
		VALUES ($1, coalesce(current_setting('graft.slot', true)::int, pg_backend_pid() % 64), $2)
		ON CONFLICT (key, slot) DO UPDATE SET value = stats.value + excluded.value`,
	Stats: `SELECT key, sum(value)::bigint FROM stats GROUP BY key`,
	ShowRepository: `UPDATE repos SET hidden = false, created = $2, delete_enabled = true, write_enabled = true,
		read_enabled = true, list_enabled = true WHERE id = $1 AND hidden`,
}

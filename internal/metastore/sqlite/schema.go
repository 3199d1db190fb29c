package sqlite

import "github.com/graft-registry/graft/internal/metastore/sqlstore"

// migrations[i] moves the schema from version i to i+1 (PRAGMA user_version).
//
// Manifest content is the last column of manifests: SQLite reads a row's columns in
// order, so queries that stop before it never touch the overflow pages of a large
// manifest.
var migrations = []string{`
CREATE TABLE repos (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	manifest_count INTEGER NOT NULL DEFAULT 0,
	tag_count INTEGER NOT NULL DEFAULT 0,
	size INTEGER NOT NULL DEFAULT 0,
	delete_enabled INTEGER NOT NULL DEFAULT 1,
	write_enabled INTEGER NOT NULL DEFAULT 1,
	read_enabled INTEGER NOT NULL DEFAULT 1,
	list_enabled INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE blobs (
	digest TEXT PRIMARY KEY,
	size INTEGER NOT NULL,
	created INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE repo_blobs (
	repo_id INTEGER NOT NULL,
	digest TEXT NOT NULL,
	created INTEGER NOT NULL,
	PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX repo_blobs_by_digest ON repo_blobs (digest);
CREATE TABLE manifests (
	id INTEGER PRIMARY KEY,
	repo_id INTEGER NOT NULL,
	digest TEXT NOT NULL,
	media_type TEXT NOT NULL,
	size INTEGER NOT NULL,
	total_size INTEGER NOT NULL,
	tag_count INTEGER NOT NULL DEFAULT 0,
	artifact_type TEXT NOT NULL,
	config_media_type TEXT NOT NULL,
	subject TEXT,
	annotations TEXT,
	platform_os TEXT NOT NULL DEFAULT '',
	platform_architecture TEXT NOT NULL DEFAULT '',
	platform_variant TEXT NOT NULL DEFAULT '',
	platform_os_version TEXT NOT NULL DEFAULT '',
	platform_os_features TEXT,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	delete_enabled INTEGER NOT NULL DEFAULT 1,
	write_enabled INTEGER NOT NULL DEFAULT 1,
	read_enabled INTEGER NOT NULL DEFAULT 1,
	list_enabled INTEGER NOT NULL DEFAULT 1,
	content BLOB NOT NULL,
	UNIQUE (repo_id, digest)
);
-- the artifactType filter of the manifest listing (the others: sqlstore.ManifestIndexes)
CREATE INDEX manifests_by_type ON manifests (repo_id, artifact_type, digest);
` + sqlstore.ManifestIndexes + `
CREATE TABLE manifest_refs (
	manifest_id INTEGER NOT NULL,
	digest TEXT NOT NULL,
	size INTEGER NOT NULL,
	is_manifest INTEGER NOT NULL,
	PRIMARY KEY (manifest_id, digest)
) WITHOUT ROWID;
CREATE INDEX manifest_refs_by_digest ON manifest_refs (digest, is_manifest);
CREATE TABLE tags (
	repo_id INTEGER NOT NULL,
	name TEXT NOT NULL,
	manifest_id INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	PRIMARY KEY (repo_id, name)
) WITHOUT ROWID;
CREATE INDEX tags_by_manifest ON tags (manifest_id);
CREATE TABLE uploads (
	id TEXT PRIMARY KEY,
	repo TEXT NOT NULL,
	created INTEGER NOT NULL,
	modified INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_by_modified ON uploads (modified);
`, `
-- version 2: access tokens; garbage collection reads repo_blobs.created as the time a
-- link was made or last released, and blobs.created as the time a blob was last claimed.
CREATE TABLE tokens (
	name TEXT PRIMARY KEY,
	hash TEXT NOT NULL,
	repositories TEXT NOT NULL,
	actions TEXT NOT NULL,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL
) WITHOUT ROWID;
`, `
-- version 3: what a manifest is (its kind), when manifests and tags were last pulled,
-- and the edges of the referrers tag schema.
-- The kind goes before the content, which stays last: the table is built anew.
CREATE TABLE manifests_v3 (
	id INTEGER PRIMARY KEY,
	repo_id INTEGER NOT NULL,
	digest TEXT NOT NULL,
	media_type TEXT NOT NULL,
	size INTEGER NOT NULL,
	total_size INTEGER NOT NULL,
	tag_count INTEGER NOT NULL DEFAULT 0,
	artifact_type TEXT NOT NULL,
	config_media_type TEXT NOT NULL,
	subject TEXT,
	annotations TEXT,
	platform_os TEXT NOT NULL DEFAULT '',
	platform_architecture TEXT NOT NULL DEFAULT '',
	platform_variant TEXT NOT NULL DEFAULT '',
	platform_os_version TEXT NOT NULL DEFAULT '',
	platform_os_features TEXT,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	delete_enabled INTEGER NOT NULL DEFAULT 1,
	write_enabled INTEGER NOT NULL DEFAULT 1,
	read_enabled INTEGER NOT NULL DEFAULT 1,
	list_enabled INTEGER NOT NULL DEFAULT 1,
	kind TEXT NOT NULL DEFAULT '',
	last_pulled INTEGER,
	content BLOB NOT NULL,
	UNIQUE (repo_id, digest)
);
INSERT INTO manifests_v3 (id, repo_id, digest, media_type, size, total_size, tag_count, artifact_type,
	config_media_type, subject, annotations, platform_os, platform_architecture, platform_variant,
	platform_os_version, platform_os_features, created, updated, delete_enabled, write_enabled,
	read_enabled, list_enabled, content)
SELECT id, repo_id, digest, media_type, size, total_size, tag_count, artifact_type,
	config_media_type, subject, annotations, platform_os, platform_architecture, platform_variant,
	platform_os_version, platform_os_features, created, updated, delete_enabled, write_enabled,
	read_enabled, list_enabled, content FROM manifests;
DROP TABLE manifests;
ALTER TABLE manifests_v3 RENAME TO manifests;
-- the artifactType filter of the manifest listing (the others: sqlstore.ManifestIndexes)
CREATE INDEX manifests_by_type ON manifests (repo_id, artifact_type, digest);
` + sqlstore.ManifestIndexes + `
CREATE INDEX manifests_by_kind ON manifests (repo_id, kind, digest);

-- when a tag was last pulled (manifests.last_pulled likewise), recorded in batches
ALTER TABLE tags ADD COLUMN last_pulled INTEGER;

-- the edges of the referrers tag schema (see sqlstore.Queries.AddTagEdges)
CREATE TABLE tag_edges (
	repo_id INTEGER NOT NULL,
	tag TEXT NOT NULL,
	artifact TEXT NOT NULL,
	subject TEXT NOT NULL,
	direct INTEGER NOT NULL,
	PRIMARY KEY (repo_id, tag, artifact)
) WITHOUT ROWID;
CREATE INDEX tag_edges_by_subject ON tag_edges (repo_id, subject, artifact);
CREATE INDEX tag_edges_by_artifact ON tag_edges (repo_id, artifact, subject, direct);

-- What the migration leaves to sqlstore.Backfill, which reads it in Go.
CREATE TABLE backfills (name TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO backfills (name) VALUES ('kinds'), ('tag_edges');
`, `
-- version 4: the outbox. Every change is written here in its transaction; consumers
-- (webhooks, replication) follow it, each from its place (seq) in it, one holder at a
-- time. The writer is alone, so events take their places in commit order.
CREATE TABLE events (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	time INTEGER NOT NULL,
	type TEXT NOT NULL,
	repo TEXT NOT NULL,
	data BLOB NOT NULL
);
CREATE TABLE event_consumers (
	name TEXT PRIMARY KEY,
	after INTEGER NOT NULL,
	holder TEXT NOT NULL DEFAULT '',
	lease_until INTEGER NOT NULL DEFAULT 0,
	last_success INTEGER,
	last_failure INTEGER,
	last_error TEXT NOT NULL DEFAULT '',
	failures INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
`, `
-- version 5: registry-wide counters, and repositories deleted whole. A deleted
-- repository keeps its row, and so its id, which a store may have cached: hidden marks
-- it gone until a write creates it again.
ALTER TABLE repos ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;

-- The registry-wide counters (sqlstore.Queries.Stats), changed in the transaction of
-- each change. SQLite has one writer: one slot.
CREATE TABLE stats (
	key TEXT NOT NULL,
	slot INTEGER NOT NULL,
	value INTEGER NOT NULL,
	PRIMARY KEY (key, slot)
) WITHOUT ROWID;
INSERT INTO backfills (name) VALUES ('stats');
`, `
-- version 6: who opened an upload session, and the indexes that count the sessions of a
-- repository and of an owner, and find those never written (a write moves modified).
ALTER TABLE uploads ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX uploads_by_repo ON uploads (repo);
CREATE INDEX uploads_by_owner ON uploads (owner);
CREATE INDEX uploads_empty ON uploads (created) WHERE modified = created;
`, `
-- version 7: the latest t of a blob sweep, which tells a commit whether its claim may
-- have been swept (metastore.BlobWriter.ClaimHeld). One row.
CREATE TABLE blob_sweeps (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	cutoff INTEGER NOT NULL
);
`}

package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/graft-registry/graft/internal/metastore/sqlstore"
)

// migrations[i] moves the schema from version i to i+1; graft_schema records each
// version applied.
//
// Manifests, tags and references are keyed by (repository, digest or name), not by a
// serial id: serializable transactions lock the index pages they read, and a serial key
// would send every concurrent push into the same last page of the index, to conflict
// there. Digests spread them over the index.
//
// Text that the API orders (names, tags, digests) is in the "C" collation: byte order,
// whatever the database's default, and the order the indexes keep.
//
// Of the full indexes of a table, only the primary key starts with repo_id; the others
// start with the column they are for (manifests_by_type, tags_by_manifest). On tables
// without statistics, a new registry's, the planner cannot tell apart the indexes whose
// first column a query constrains, and might look a manifest up by scanning the
// repository's whole range of another index; a prepared statement would keep that plan
// (TestStatementPlans).
var migrations = []string{`
CREATE TABLE repos (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text COLLATE "C" NOT NULL UNIQUE,
	created timestamptz NOT NULL,
	delete_enabled boolean NOT NULL DEFAULT true,
	write_enabled boolean NOT NULL DEFAULT true,
	read_enabled boolean NOT NULL DEFAULT true,
	list_enabled boolean NOT NULL DEFAULT true
);
CREATE INDEX repos_listed ON repos (name) WHERE list_enabled;

-- A repository's counters are the sums of its rows here. Each transaction adds its changes
-- to the row of the slot of its database session (its backend pid modulo 64), so that
-- concurrent pushes to one repository, from any replica, update different rows and do
-- not conflict over a single hot one.
CREATE TABLE repo_stats (
	repo_id bigint NOT NULL,
	slot integer NOT NULL,
	manifests bigint NOT NULL,
	tags bigint NOT NULL,
	size bigint NOT NULL,
	updated timestamptz NOT NULL,
	PRIMARY KEY (repo_id, slot)
);

-- created is when the blob was last claimed (or first linked).
CREATE TABLE blobs (
	digest text COLLATE "C" PRIMARY KEY,
	size bigint NOT NULL,
	created timestamptz NOT NULL
);
-- created is when the link was made or last released.
CREATE TABLE repo_blobs (
	repo_id bigint NOT NULL,
	digest text COLLATE "C" NOT NULL,
	created timestamptz NOT NULL,
	PRIMARY KEY (repo_id, digest)
);
CREATE INDEX repo_blobs_by_digest ON repo_blobs (digest);

CREATE TABLE manifests (
	repo_id bigint NOT NULL,
	digest text COLLATE "C" NOT NULL,
	media_type text NOT NULL,
	size bigint NOT NULL,
	total_size bigint NOT NULL,
	tag_count bigint NOT NULL DEFAULT 0,
	artifact_type text COLLATE "C" NOT NULL,
	config_media_type text NOT NULL,
	subject text COLLATE "C",
	annotations text,
	platform_os text NOT NULL DEFAULT '',
	platform_architecture text NOT NULL DEFAULT '',
	platform_variant text NOT NULL DEFAULT '',
	platform_os_version text NOT NULL DEFAULT '',
	platform_os_features text[],
	created timestamptz NOT NULL,
	updated timestamptz NOT NULL,
	delete_enabled boolean NOT NULL DEFAULT true,
	write_enabled boolean NOT NULL DEFAULT true,
	read_enabled boolean NOT NULL DEFAULT true,
	list_enabled boolean NOT NULL DEFAULT true,
	content bytea NOT NULL,
	PRIMARY KEY (repo_id, digest)
);
-- the artifactType filter of the manifest listing (the others: sqlstore.ManifestIndexes)
CREATE INDEX manifests_by_type ON manifests (artifact_type, repo_id, digest);
` + sqlstore.ManifestIndexes + `

CREATE TABLE manifest_refs (
	repo_id bigint NOT NULL,
	manifest text COLLATE "C" NOT NULL,
	digest text COLLATE "C" NOT NULL,
	size bigint NOT NULL,
	is_manifest boolean NOT NULL,
	PRIMARY KEY (repo_id, manifest, digest)
);
-- Parents, and whether a manifest of the repository names a blob
CREATE INDEX manifest_refs_children ON manifest_refs (repo_id, digest, manifest) WHERE is_manifest;
CREATE INDEX manifest_refs_blobs ON manifest_refs (repo_id, digest) WHERE NOT is_manifest;

-- prev is the manifest a tag named before its last move: SetTag learns it from the
-- upsert itself, without first reading the tag (see txn.SetTag).
CREATE TABLE tags (
	repo_id bigint NOT NULL,
	name text COLLATE "C" NOT NULL,
	manifest text COLLATE "C" NOT NULL,
	prev text COLLATE "C",
	updated timestamptz NOT NULL,
	PRIMARY KEY (repo_id, name)
);
CREATE INDEX tags_by_manifest ON tags (manifest, repo_id, name);

CREATE TABLE uploads (
	id text PRIMARY KEY,
	repo text NOT NULL,
	created timestamptz NOT NULL,
	modified timestamptz NOT NULL
);
CREATE INDEX uploads_by_modified ON uploads (modified);

CREATE TABLE tokens (
	name text COLLATE "C" PRIMARY KEY,
	hash text NOT NULL,
	repositories text[] NOT NULL,
	actions text[] NOT NULL,
	created timestamptz NOT NULL,
	expires timestamptz
);
`, `
-- version 2: what a manifest is (its kind), when manifests and tags were last pulled,
-- and the edges of the referrers tag schema.
ALTER TABLE manifests ADD COLUMN kind text COLLATE "C" NOT NULL DEFAULT '';
-- when a manifest or tag was last pulled, recorded in batches
ALTER TABLE manifests ADD COLUMN last_pulled timestamptz;
ALTER TABLE tags ADD COLUMN last_pulled timestamptz;
CREATE INDEX manifests_by_kind ON manifests (kind, repo_id, digest);

-- the edges of the referrers tag schema (see sqlstore.Queries.AddTagEdges)
CREATE TABLE tag_edges (
	repo_id bigint NOT NULL,
	tag text COLLATE "C" NOT NULL,
	artifact text COLLATE "C" NOT NULL,
	subject text COLLATE "C" NOT NULL,
	direct boolean NOT NULL,
	PRIMARY KEY (repo_id, tag, artifact)
);
CREATE INDEX tag_edges_by_subject ON tag_edges (subject, repo_id, artifact);
CREATE INDEX tag_edges_by_artifact ON tag_edges (artifact, repo_id);

-- What the migration leaves to sqlstore.Backfill, which reads it in Go.
CREATE TABLE backfills (name text PRIMARY KEY);
INSERT INTO backfills (name) VALUES ('kinds'), ('tag_edges');
`, `
-- version 3: the outbox. Every change is written here in its transaction; consumers
-- (webhooks, replication) follow it, each from its place (seq) in it, one holder at a
-- time. Concurrent transactions take ids in one order and commit in another: seq is
-- given after the commit, in the order events became visible (SequenceEvents).
CREATE TABLE events (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	seq bigint UNIQUE,
	time timestamptz NOT NULL,
	type text NOT NULL,
	repo text NOT NULL,
	data bytea NOT NULL
);
CREATE INDEX events_unplaced ON events (id) WHERE seq IS NULL;
CREATE TABLE event_consumers (
	name text PRIMARY KEY,
	after bigint NOT NULL,
	holder text NOT NULL DEFAULT '',
	lease_until timestamptz NOT NULL DEFAULT 'epoch',
	last_success timestamptz,
	last_failure timestamptz,
	last_error text NOT NULL DEFAULT '',
	failures bigint NOT NULL DEFAULT 0
);
CREATE INDEX event_consumers_by_after ON event_consumers (after);
`, `
-- version 4: registry-wide counters, and repositories deleted whole. A deleted
-- repository keeps its row, and so its id, which every replica may have cached: hidden
-- marks it gone until a write creates it again.
ALTER TABLE repos ADD COLUMN hidden boolean NOT NULL DEFAULT false;
DROP INDEX repos_listed;
CREATE INDEX repos_listed ON repos (name) WHERE list_enabled AND NOT hidden;

-- The registry-wide counters (sqlstore.Queries.Stats) are the sums of their rows here,
-- spread over slots as repo_stats are: each transaction adds to the slot of its database
-- session, so that concurrent pushes do not meet on one row.
CREATE TABLE stats (
	key text COLLATE "C" NOT NULL,
	slot integer NOT NULL,
	value bigint NOT NULL,
	PRIMARY KEY (key, slot)
);
INSERT INTO backfills (name) VALUES ('stats');
`, `
-- version 5: who opened an upload session, and the indexes that count the sessions of a
-- repository and of an owner, and find those never written (a write moves modified).
ALTER TABLE uploads ADD COLUMN owner text NOT NULL DEFAULT '';
CREATE INDEX uploads_by_repo ON uploads (repo);
CREATE INDEX uploads_by_owner ON uploads (owner);
CREATE INDEX uploads_empty ON uploads (created) WHERE modified = created;
`, `
-- version 6: the latest t of a blob sweep, which tells a commit whether its claim may
-- have been swept (metastore.BlobWriter.ClaimHeld). One row.
CREATE TABLE blob_sweeps (
	id integer PRIMARY KEY CHECK (id = 1),
	cutoff timestamptz NOT NULL
);
`}

// SchemaVersion is the version of the schema Open migrates a database to.
var SchemaVersion = len(migrations)

// migrationLock is the key of the session advisory lock that one graft at a time holds
// while it migrates. It is a pair of int4 keys, a lock space apart from the bigint keys
// of the digest locks, so the two never collide.
const migrationLock = `SELECT pg_advisory_lock(1735549300, 1)`
const migrationUnlock = `SELECT pg_advisory_unlock(1735549300, 1)`

// migrate brings the schema up to date. Replicas starting together take turns: each
// waits for the lock, then finds the schema migrated by the first.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("metastore: migrate: %w", err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, migrationLock); err != nil {
		return fmt.Errorf("metastore: migrate: take the migration lock: %w", err)
	}
	defer func() {
		// The lock is the session's: should the unlock fail, the connection must not go
		// back to the pool still holding it.
		if _, err := c.Exec(context.WithoutCancel(ctx), migrationUnlock); err != nil {
			c.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS graft_schema (
		version integer PRIMARY KEY,
		applied timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("metastore: migrate: create the version table: %w", err)
	}
	var version int
	if err := c.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM graft_schema`).Scan(&version); err != nil {
		return fmt.Errorf("metastore: read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("metastore: the database has schema version %d, newer than this graft knows (%d)", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		err := pgx.BeginFunc(ctx, c.Conn(), func(tx pgx.Tx) error {
			// No arguments: the simple protocol, which runs every statement of the script.
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO graft_schema (version) VALUES ($1)`, v+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("metastore: migrate to version %d: %w", v+1, err)
		}
	}
	return nil
}

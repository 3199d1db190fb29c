package sqlstore

import (
	"context"
	"time"

	"github.com/graft-registry/graft/internal/metastore"
)

// Queries are the statements of a dialect. Each names its arguments ($1, $2, …) and
// the columns it returns; a dialect may spell the placeholders its own way, but their
// numbers and meaning are these.
type Queries struct {
	// The columns of a manifest, read by Manifest, TaggedManifest, Tag and Manifests in
	// this order: digest, media type, size, total size, tag count, artifact type,
	// config media type, subject (NULL for none), annotations (JSON, NULL for none),
	// platform os, architecture, variant, os version, os features (a list), created,
	// updated, the manifest's delete, write, read and list attributes, its
	// repository's four, its kind, when it was last pulled (NULL for never), the least
	// key of a manifest it is a tag-schema artifact of (NULL for none); then, for
	// Manifest and TaggedManifest, the content.

	// Manifest: $1 repository, $2 digest.
	Manifest string
	// TaggedManifest: $1 repository, $2 tag.
	TaggedManifest string
	// Tag: $1 repository, $2 tag; no content.
	Tag string
	// Content and TaggedContent, what a pull reads: $1 repository, $2 digest or tag.
	// Columns: digest, media type, size, read attribute, the repository's read
	// attribute, content.
	Content, TaggedContent string
	// Manifests is the manifest listing: Manifests.Select with the conditions of a
	// filter appended, then Manifests.Order.
	Manifests ManifestsQuery
	// Backfills: the names of the backfills a migration asked for. DoneBackfill: $1
	// the name of one done.
	Backfills, DoneBackfill string
	// ManifestsAfter: $1 repository id, $2 digest, $3 n. Columns: repository id,
	// digest, media type, content of the manifests after the one named, in order.
	ManifestsAfter string
	// SetKind: $1 repository id, $2 digest, $3 kind.
	SetKind string
	// TagsAfter: $1 repository id, $2 tag, $3 n. Columns: repository id, tag, the
	// digest of the manifest it names, of the tags after the one named, in order.
	TagsAfter string

	// Repository: $1 name. RepositoryList: $1 after, $2 n. Columns: name, manifest
	// count, tag count, size, created, updated, delete, write, read and list attributes.
	Repository, RepositoryList string
	// RepositoryAttributes: $1 name. Columns: the four attributes.
	RepositoryAttributes string
	// Repositories, the names of the listed ones: $1 after, $2 n.
	Repositories string
	// Tags, of listed manifests: $1 repository, $2 after, $3 n.
	Tags string
	// TagsOf: $1 repository, $2 digest; the tag names in order.
	TagsOf string
	// TagList, every tag, listed or not: $1 repository, $2 after, $3 n. Columns: name,
	// digest, when it was set, when it was last pulled (NULL for never).
	TagList string
	// RecordManifestPull: $1 repository, $2 digest, $3 time; moves the manifest's last
	// pull forward. RecordTagPull: $1 repository, $2 tag, $3 time, $4 the digest the
	// tag must still name.
	RecordManifestPull, RecordTagPull string

	// Referrers: $1 repository, $2 subject, $3 after, $4 n; ReferrersOfType also $5 the
	// artifact type. Columns: media type, digest, size, artifact type, annotations.
	Referrers, ReferrersOfType string
	// Parents: $1 repository, $2 digest; the digests of the indexes listing it, in order.
	Parents string
	// TagArtifacts: $1 repository, $2 key, $3 after, $4 n; the digests of the
	// tag-schema artifacts of the manifest of key, each once, in order.
	TagArtifacts string
	// Artifacts: $1 repository, $2 a list of subject digests, $3 a list of keys.
	// Columns: the subject's digest (a referrer) or key (a tag-schema artifact), the
	// artifact's digest and kind.
	Artifacts string
	// DeleteTagEdges: $1 repository id, $2 tag; forgets the edges the tag made.
	DeleteTagEdges string
	// LockTagEdges, when not empty, is deferred before a transaction's first write of
	// repository $1's tag-schema edges, and holds them until it ends. Writers take
	// those rows in orders no index can keep the same (a tag's edges at once; a
	// deleted manifest's across the tags that list it, then the fallback index's
	// tag written again), and rows locked in two orders deadlock. A database whose
	// writer is alone needs none.
	LockTagEdges string
	// AddTagEdges: $1 repository id, $2 tag, $3 the digest of the manifest it names,
	// $4 the key it is named after, $5 whether the manifests it lists are artifacts too
	// (a fallback index). Records the edges the tag makes: a tag of the referrers tag
	// schema ("sha256-<hex>", "sha256-<hex>.sig", …) makes the manifest it names an
	// artifact (a direct edge) of the manifest of key subject, and a fallback index tag
	// each manifest the index lists (edges not direct).
	AddTagEdges string

	// Blob: $1 repository, $2 digest; the blob's size.
	Blob string
	// BlobRepository: $1 digest; a repository name.
	BlobRepository string
	// BlobSizes and ManifestSizes: $1 repository, $2 a list of digests. Columns: the
	// digest and size of each found: a blob the repository may read, a manifest of it.
	BlobSizes, ManifestSizes string
	// LockingManifest: $1 repository, $2 a blob's digest; the digest of one manifest of
	// the repository that names the blob and whose delete or write attribute is off,
	// found through the references to the blob.
	LockingManifest string

	// Upload: $1 id. Columns: repository, owner, created, modified.
	Upload string
	// StaleUploads: $1 time, $2 n; the sessions last written before the time.
	// EmptyUploads: $1 time, $2 n; the sessions created before the time and never
	// written since (modified equal to created), in order of creation. Columns: id,
	// repository, owner, created, modified.
	StaleUploads, EmptyUploads string
	// OpenUploads: $1 repository, $2 owner, $3 n. Columns: the number of sessions of
	// the repository and of the owner, each counted up to n.
	OpenUploads string

	// Nodes: $1 repository, $2 after, $3 n. Columns: digest, subject, tagged (by a tag
	// other than the tag-schema tags naming it), delete attribute, updated, kind, last
	// pulled (NULL for never), children (a list), the keys it is a tag-schema artifact
	// of (a list).
	Nodes string
	// UnreferencedBlobs: $1 repository, $2 after, $3 time, $4 n; digests.
	UnreferencedBlobs string
	// UnlinkedBlobs: $1 after, $2 n; digests.
	UnlinkedBlobs string

	// Token: $1 name. Tokens: no arguments. Columns: name, hash, repositories (a list),
	// actions (a list), created, expires (NULL for never).
	Token, Tokens string

	// HoldBlob, when not empty, is deferred before a claim or link of blob $1: it holds
	// the blob against a sweep until the transaction ends, and waits for one under way.
	// SweepHold is its exclusive side, deferred before a sweep's check. A database
	// whose writer is alone needs neither.
	HoldBlob, SweepHold string
	// ClaimBlob: $1 digest, $2 size (a guess), $3 time, which replaces a claim time
	// only when later.
	ClaimBlob string
	// RecordSweep: $1 the t of a sweep, kept when later than every one recorded.
	// SweepCutoff: no arguments; one column, the latest t recorded, or no row.
	RecordSweep, SweepCutoff string
	// UnlinkBlob: $1 repository, $2 digest. UnlinkUnreferenced also: $3 time, before
	// which the link must have been made or released, and no manifest of the repository
	// may name the blob. Both return the repository's id and the blob's size, and no
	// row when nothing was unlinked.
	UnlinkBlob, UnlinkUnreferenced string
	// BlobState: $1 digest. Columns: whether a repository may read it, when it was last
	// claimed (NULL, or no row, when the store does not know it).
	BlobState string
	// ForgetBlob: $1 digest.
	ForgetBlob string

	// SetRepositoryAttributes: $1 name, $2–$5 delete, write, read, list.
	SetRepositoryAttributes string
	// SetManifestAttributes: $1 repository, $2 digest, $3–$6 delete, write, read, list.
	SetManifestAttributes string

	// CreateUpload: $1 id, $2 repository, $3 created, $4 modified, $5 owner; changes no
	// row when the id exists.
	CreateUpload string
	// TouchUpload: $1 id, $2 time. DeleteUpload: $1 id.
	TouchUpload, DeleteUpload string

	// CreateToken: $1 name, $2 hash, $3 repositories, $4 actions, $5 created, $6 expires
	// (nil for never); changes no row when the name exists.
	CreateToken string
	// DeleteToken: $1 name.
	DeleteToken string

	// AppendEvent: $1 time, $2 type, $3 repository, $4 data.
	AppendEvent string
	// SequenceHold, run first in SequenceEvents' transaction, makes it wait for any
	// other; SequenceEvents places the committed events without a place after the
	// last place. Both empty where the database places an event as it commits it.
	SequenceHold, SequenceEvents string
	// Events: $1 after, $2 n. Columns: place, time, type, repository, data.
	Events string
	// EventHead: the last place (0 for none).
	EventHead string
	// Backlog: $1 after. Columns: how many events follow, placed or not, and the time
	// of the first (NULL for none).
	Backlog string
	// Consumers. Columns: name, after, holder, lease until, last success, last failure
	// (NULL for none), last error, failures.
	Consumers string
	// ClaimConsumer: $1 name, $2 holder, $3 until, $4 now, $5 start. Creates the
	// consumer at start, or takes its lease when it ran out or is $2's; returns the
	// consumer's columns (as Consumers) when $2 holds it, else no row.
	ClaimConsumer string
	// AdvanceConsumer: $1 name, $2 holder, $3 place, $4 time.
	AdvanceConsumer string
	// FailConsumer: $1 name, $2 holder, $3 message, $4 time.
	FailConsumer string
	// DeleteConsumer: $1 name.
	DeleteConsumer string
	// PruneEvents: $1 time; removes the placed events older than it that every
	// consumer has passed.
	PruneEvents string

	// AddCounters adds to the counters of a repository: $1 id, $2 manifests, $3 tags,
	// $4 size, $5 the time of the change.
	AddCounters string
	// AddStat adds $2 to the registry-wide counter named $1 (see Stats).
	AddStat string
	// Stats: no arguments. Columns: the name of each registry-wide counter and its
	// value. The counters are "repositories", "tags", "size", "uploads" and
	// "manifests/" followed by a kind.
	Stats string
	// ShowRepository: $1 id, $2 time. Brings back a deleted repository, created at
	// $2, with every attribute enabled; changes no row when it was not deleted.
	ShowRepository string
}

// ManifestColumns are the columns of a manifest (see Queries), up to its kind, from the
// manifests table m and its repository r.
const ManifestColumns = `m.digest, m.media_type, m.size, m.total_size, m.tag_count, m.artifact_type,
	m.config_media_type, m.subject, m.annotations, m.platform_os, m.platform_architecture,
	m.platform_variant, m.platform_os_version, m.platform_os_features, m.created, m.updated,
	m.delete_enabled, m.write_enabled, m.read_enabled, m.list_enabled,
	r.delete_enabled, r.write_enabled, r.read_enabled, r.list_enabled, m.kind, m.last_pulled`

// ManifestIndexes are the indexes of the manifests table that serve the referrers API,
// with and without an artifactType filter, and the filters of the manifest listing,
// each a range in digest order. Both schemas create them, beside an index by artifact
// type of their own.
const ManifestIndexes = `
CREATE INDEX manifests_by_subject ON manifests (repo_id, subject, digest) WHERE subject IS NOT NULL;
CREATE INDEX manifests_by_subject_type ON manifests (repo_id, subject, artifact_type, digest) WHERE subject IS NOT NULL;
CREATE INDEX manifests_with_subject ON manifests (repo_id, digest) WHERE subject IS NOT NULL;
CREATE INDEX manifests_without_subject ON manifests (repo_id, digest) WHERE subject IS NULL;
CREATE INDEX manifests_tagged ON manifests (repo_id, digest) WHERE tag_count > 0;
CREATE INDEX manifests_untagged ON manifests (repo_id, digest) WHERE tag_count = 0;
`

// ManifestsQuery is the manifest listing: $1 repository, $2 after, $3 n, then the
// values of the filter's conditions that take one, numbered on from $4. Select names the
// manifests table m; the conditions of a filter (see conditions) go between it and
// Order.
type ManifestsQuery struct {
	Select, Order string
}

// The conditions of the manifest listing's filters, the same in every dialect; a %s is
// where the placeholder of the condition's argument goes. Each condition has an index
// that yields the manifests in digest order, so that the query is a range scan whose
// length follows the answer.
const (
	condArtifactType = ` AND m.artifact_type = %s`
	condKind         = ` AND m.kind = %s`
	condWithSubject  = ` AND m.subject IS NOT NULL`
	condNoSubject    = ` AND m.subject IS NULL`
	condTagged       = ` AND m.tag_count > 0`
	condUntagged     = ` AND m.tag_count = 0`
	condTagEdge      = ` AND m.digest IN (SELECT e.artifact FROM tag_edges e WHERE e.repo_id = m.repo_id)`
)

// Writes are the writes whose statements the databases make differ: PostgreSQL makes
// each one statement (data-modifying common table expressions), SQLite a few. They are
// mechanical: they report what the rows were, and the caller keeps the rules (counters,
// errors, what is cached).
//
// A manifest's row may be found again in the same transaction by a locator a write
// returns (a row id, a tuple id), which the caller passes back, or nil.
type Writes interface {
	// RepositoryID returns the id of repository name, and creates it, at now, when
	// create is set; created reports that it did. ErrNoRows when it does not exist and
	// create is not set.
	RepositoryID(ctx context.Context, q TxQuerier, name string, create bool, now time.Time) (id int64, created bool, err error)
	// LinkBlob records blob d with size, and its link to repository repo at now, or
	// moves the link's time to now; linked reports a new link.
	LinkBlob(ctx context.Context, q TxQuerier, repo int64, d string, size int64, now time.Time) (linked bool, err error)
	// PutManifest inserts m, or when repository and digest are stored already, moves
	// its updated time only; inserted reports which. at locates the row.
	PutManifest(ctx context.Context, q TxQuerier, m *ManifestRow) (inserted bool, at any, err error)
	// PutTagged is PutManifest of m, then SetTag of tag at it, at now: a push's two
	// writes, in one statement where the database allows.
	PutTagged(ctx context.Context, q TxQuerier, m *ManifestRow, tag string, now time.Time) (inserted bool, mv TagMove, err error)
	// DeleteManifest deletes manifest d of repository name with its tags, its
	// references and the tag-schema edges it is an end of (those of its tags, and those
	// that make it an artifact), and moves the links of the blobs it named to now. It
	// returns what was deleted; ErrNoRows when there is no such manifest.
	DeleteManifest(ctx context.Context, q TxQuerier, name, d string, now time.Time) (Deleted, error)
	// DeleteRepository deletes everything of repository id (manifests, references,
	// tags, tag-schema edges, links) and marks it deleted, its counters zero. It
	// returns how many manifests of each kind it had.
	DeleteRepository(ctx context.Context, q TxQuerier, id int64) (kinds map[string]int64, err error)
	// RecountStats sets the registry-wide counters (Queries.Stats) from the rows
	// they count: once, when a migration adds them.
	RecountStats(ctx context.Context, q TxQuerier) error
	// SetTag points tag of repository repo at manifest d (at at, when not nil), and
	// moves the tag counts of the manifests it leaves and names. It learns what the tag
	// named from the write: it reads no tag before it.
	SetTag(ctx context.Context, q TxQuerier, repo int64, tag, d string, at any, now time.Time) (TagMove, error)
	// DeleteTag deletes tag of repository name and moves its manifest's tag count. It
	// returns the repository's id; ErrNoRows when there is no such tag.
	DeleteTag(ctx context.Context, q TxQuerier, name, tag string, now time.Time) (repo int64, err error)
}

// Deleted is what DeleteManifest deleted.
type Deleted struct {
	// Repo is the repository's id.
	Repo int64
	// Size and Kind are the manifest's; Tags how many tags named it.
	Size, Tags int64
	Kind       string
}

// TagMove is what SetTag did.
type TagMove struct {
	// Found is false when the manifest does not exist.
	Found bool
	// Changed is false when the tag named the manifest already.
	Changed bool
	// Moved is set when the tag named another manifest before.
	Moved bool
	// Previous is that manifest, when Moved, and Attributes its attributes.
	Previous   string
	Attributes metastore.Attributes
	// At locates the manifest's row after the change, or is nil.
	At any
}

// ManifestRow is a manifest as a store writes it.
type ManifestRow struct {
	Repo                          int64
	Digest, MediaType             string
	Size                          int64
	ArtifactType, ConfigMediaType string
	Kind                          string
	Subject                       *string
	// Annotations is the annotations as JSON, or nil for none.
	Annotations                          *string
	OS, Architecture, Variant, OSVersion string
	OSFeatures                           []string
	Created, Updated                     time.Time
	Content                              []byte
	// The references, each digest once: its kind and size where first named, and the
	// size last declared for it, which the total size counts when the store does not
	// know the blob or child.
	RefDigests  []string
	RefSizes    []int64
	RefDeclared []int64
	RefManifest []bool
}

// Counts reads rows of a name and a count, as the queries of Writes.DeleteRepository
// return the kinds of its manifests; it closes them.
func Counts(rows Rows, err error) (map[string]int64, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[string]int64{}
	for rows.Next() {
		var (
			name string
			n    int64
		)
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		counts[name] = n
	}
	return counts, rows.Err()
}

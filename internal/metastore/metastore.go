// Package metastore defines where a registry keeps its facts: repositories, the blobs
// each may read, manifests with their content and what they reference, tags, the
// referrers index and upload sessions. Every write happens in a transaction; every
// query is an indexed lookup whose cost follows the size of its answer.
//
// Implementations live in subpackages: sqlite (an embedded database) and postgres, both
// on the SQL core of sqlstore; storetest is the contract test suite every implementation
// passes.
package metastore

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	// ErrNotFound is returned when what a call names does not exist.
	ErrNotFound = errors.New("metastore: not found")
	// ErrExists is returned when what a call would create exists already.
	ErrExists = errors.New("metastore: already exists")
	// ErrUnavailable is in the chain of an error met reaching the store's database (a
	// connection refused, reset or silent past a timeout), rather than an answer of its
	// own: a request that meets it may succeed later, unchanged.
	ErrUnavailable = errors.New("metastore: the metadata store is unavailable")
)

// The contract is split by role, as a consumer needs it: the registry's push takes
// manifests, blobs and attributes; auth takes tokens; garbage collection its own view. A
// Store composes every role; a Tx is a Reader with the writers.

// Store is a metadata store.
type Store interface {
	Reader
	Updater
	BlobSweeper
	EventSequencer
	PullRecorder
	StatsReader
	Close() error
}

// StatsReader reads the registry-wide counters, for metrics.
type StatsReader interface {
	// Stats returns the counters the store keeps as it changes: reading them costs
	// the same however large the registry.
	Stats(ctx context.Context) (*Stats, error)
}

// Stats are registry-wide counts.
type Stats struct {
	// Repositories counts the repositories that exist (not those deleted).
	Repositories int64
	// Manifests counts the manifests by kind (Manifest.Kind).
	Manifests map[string]int64
	Tags      int64
	// Size is the sum of the repositories' sizes (Repository.Size): a blob that
	// several repositories may read counts in each.
	Size int64
	// Uploads counts the upload sessions under way.
	Uploads int64
}

// Pinger is a store that can tell cheaply whether it answers: a readiness probe asks it
// every few seconds.
type Pinger interface {
	// Ping returns an error when the store does not answer.
	Ping(ctx context.Context) error
}

// Updater runs read-write transactions.
type Updater interface {
	// Update runs fn in a read-write transaction and commits it when fn returns nil.
	// Transactions are serializable. fn may be called more than once (to retry a
	// conflict), so it must not act outside tx; the error fn returns is returned as is.
	Update(ctx context.Context, fn func(tx Tx) error) error
}

// BlobSweeper removes blobs no repository may read.
type BlobSweeper interface {
	// SweepBlob forgets blob d and calls del to remove its bytes, when no repository
	// may read d and no one linked or claimed d at or after t. LinkBlob and ClaimBlob
	// of d wait until SweepBlob returns, so that a blob an upload claimed before
	// committing it to the blob store is never removed under it. del may run again
	// after a failure, so it must accept bytes already gone. SweepBlob reports whether
	// it removed d. Before it looks at d it records t for ClaimHeld, so that a claim
	// older than t is known to be lost even when the sweep fails half-way.
	SweepBlob(ctx context.Context, d digest.Digest, t time.Time, del func(context.Context) error) (bool, error)
}

// Reader answers queries. A Store answers each from the latest committed state; a Tx
// from its own.
type Reader interface {
	ManifestReader
	ContentReader
	RepositoryReader
	Lister
	GraphReader
	BlobReader
	UploadReader
	TokenReader
	GCReader
	EventReader
}

// ManifestReader reads manifests and the tags that name them.
type ManifestReader interface {
	// Manifest returns the manifest d of repo with its content, or ErrNotFound.
	Manifest(ctx context.Context, repo string, d digest.Digest) (*Manifest, error)
	// TaggedManifest returns the manifest that tag names in repo, with its content,
	// or ErrNotFound.
	TaggedManifest(ctx context.Context, repo, tag string) (*Manifest, error)
	// Tag returns the manifest tag names in repo, without its content, or ErrNotFound.
	Tag(ctx context.Context, repo, tag string) (*Manifest, error)
	// TagsOf returns the tags naming manifest d in repo, in lexical order.
	TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error)
	// MissingManifests returns those of ds that are not manifests of repo.
	MissingManifests(ctx context.Context, repo string, ds []digest.Digest) ([]digest.Digest, error)
	// ManifestSizes returns the size of each of ds that is a manifest of repo, in one
	// lookup; the others are not in the map.
	ManifestSizes(ctx context.Context, repo string, ds []digest.Digest) (map[digest.Digest]int64, error)
}

// ContentReader serves pulls: a lookup that reads no more than a pull needs.
type ContentReader interface {
	// Content returns what a pull of manifest d of repo serves, or ErrNotFound.
	Content(ctx context.Context, repo string, d digest.Digest) (*Content, error)
	// TaggedContent returns what a pull of tag in repo serves, or ErrNotFound.
	TaggedContent(ctx context.Context, repo, tag string) (*Content, error)
}

// RepositoryReader reads one repository.
type RepositoryReader interface {
	// Repository returns repo with its counts and attributes, or ErrNotFound. A
	// repository exists once it has had content; queries never create one.
	Repository(ctx context.Context, repo string) (*Repository, error)
	// RepositoryAttributes returns the attributes of repo, or ErrNotFound: what a
	// write checks, without the counts every concurrent write changes.
	RepositoryAttributes(ctx context.Context, repo string) (Attributes, error)
}

// Lister answers the listings of the API, a page at a time: up to n entries after
// `after`, in the order named. All pages through any of them.
type Lister interface {
	// RepositoryList returns repositories in lexical order, listed or not.
	RepositoryList(ctx context.Context, after string, n int) ([]Repository, error)
	// Repositories returns the names of listed repositories (ListEnabled), in lexical
	// order.
	Repositories(ctx context.Context, after string, n int) ([]string, error)
	// Tags returns tags of repo in lexical order, leaving out the tags of manifests
	// that are not listed (ListEnabled).
	Tags(ctx context.Context, repo, after string, n int) ([]string, error)
	// TagList returns the tags of repo in lexical order, listed or not, with what they
	// name and when they were set and pulled.
	TagList(ctx context.Context, repo, after string, n int) ([]TagInfo, error)
	// Manifests returns the manifests of repo that pass f, without their content, in
	// digest order.
	Manifests(ctx context.Context, repo string, f Filter, after digest.Digest, n int) ([]Manifest, error)
}

// GraphReader follows the edges between manifests.
type GraphReader interface {
	// Referrers returns up to n descriptors, in digest order after `after`, of the
	// manifests of repo whose subject is subject; of those with the artifact type
	// artifactType only, unless it is empty.
	Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string, after digest.Digest, n int) ([]ocispec.Descriptor, error)
	// Parents returns the digests of the manifests of repo that list d as a child.
	Parents(ctx context.Context, repo string, d digest.Digest) ([]digest.Digest, error)
	// TagArtifacts returns up to n digests, in order after `after`, of the manifests of
	// repo that are artifacts of the manifest of key (reference.SchemaKeyOf) by the
	// referrers tag schema: named by a tag "<key>" or "<key>.<suffix>", or listed by
	// the index a tag "<key>" names.
	TagArtifacts(ctx context.Context, repo, key string, after digest.Digest, n int) ([]digest.Digest, error)
	// KindCounts returns, for each of subjects that has artifacts in repo (referrers, or
	// tag-schema artifacts), how many it has of each kind; each artifact counts once.
	KindCounts(ctx context.Context, repo string, subjects []digest.Digest) (map[digest.Digest]map[string]int64, error)
}

// BlobReader reads which blobs a repository may read.
type BlobReader interface {
	// Blob returns the size of blob d when repo may read it, or ErrNotFound.
	Blob(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// BlobRepository returns a repository that may read blob d, or ErrNotFound.
	BlobRepository(ctx context.Context, d digest.Digest) (string, error)
	// MissingBlobs returns those of ds that repo may not read.
	MissingBlobs(ctx context.Context, repo string, ds []digest.Digest) ([]digest.Digest, error)
	// BlobSizes returns the size of each of ds that repo may read, in one lookup; the
	// others are not in the map.
	BlobSizes(ctx context.Context, repo string, ds []digest.Digest) (map[digest.Digest]int64, error)
	// LockingManifest returns a manifest of repo that names blob d and whose attributes
	// refuse its delete (DeleteEnabled or WriteEnabled off), or ErrNotFound: a lock
	// protects the blobs of what it locks.
	LockingManifest(ctx context.Context, repo string, d digest.Digest) (digest.Digest, error)
}

// UploadReader reads upload sessions.
type UploadReader interface {
	// Upload returns the upload session id, or ErrNotFound.
	Upload(ctx context.Context, id string) (*Upload, error)
	// StaleUploads returns up to n upload sessions last written before t.
	StaleUploads(ctx context.Context, t time.Time, n int) ([]Upload, error)
	// EmptyUploads returns up to n upload sessions created before t and never written
	// since (Modified equal to Created).
	EmptyUploads(ctx context.Context, t time.Time, n int) ([]Upload, error)
	// OpenUploads counts the upload sessions of repo and those of owner, each up to
	// upTo: a count costs what upTo allows, however many sessions are open.
	OpenUploads(ctx context.Context, repo, owner string, upTo int) (ofRepo, ofOwner int, err error)
}

// TokenReader reads repository-scoped access tokens.
type TokenReader interface {
	// Token returns the access token name, or ErrNotFound.
	Token(ctx context.Context, name string) (*Token, error)
	// Tokens returns every access token, in name order.
	Tokens(ctx context.Context) ([]Token, error)
}

// GCReader is what garbage collection reads: the graph of a repository and the blobs
// nothing names.
type GCReader interface {
	// Nodes returns up to n manifests of repo, in digest order after `after`, as
	// garbage collection sees them.
	Nodes(ctx context.Context, repo string, after digest.Digest, n int) ([]Node, error)
	// UnreferencedBlobs returns up to n blobs, in digest order after `after`, that repo
	// may read, that no manifest of repo names, and whose link was made or last
	// released before t.
	UnreferencedBlobs(ctx context.Context, repo string, t time.Time, after digest.Digest, n int) ([]digest.Digest, error)
	// UnlinkedBlobs returns up to n blobs the store knows of (linked or claimed once)
	// that no repository may read, in digest order after `after`.
	UnlinkedBlobs(ctx context.Context, after digest.Digest, n int) ([]digest.Digest, error)
	// BlobState reports whether any repository may read blob d, and when d was last
	// claimed (the zero time when the store does not know d): what SweepBlob checks.
	BlobState(ctx context.Context, d digest.Digest) (linked bool, claimed time.Time, err error)
}

// Tx is a read-write transaction.
type Tx interface {
	Reader
	RepositoryWriter
	ManifestWriter
	BlobWriter
	AttributeWriter
	UploadWriter
	TokenWriter
	EventWriter
}

// RepositoryWriter removes repositories.
type RepositoryWriter interface {
	// DeleteRepository removes repo with everything in it: its manifests, tags and
	// links to blobs (the blobs are left for garbage collection), or returns
	// ErrNotFound. The repository is then gone from every listing and lookup; a write
	// to its name creates it anew, with every attribute enabled.
	DeleteRepository(ctx context.Context, repo string) error
}

// ManifestWriter stores manifests and moves tags.
type ManifestWriter interface {
	// PutManifest stores m in m.Repo, creating the repository when needed. Storing a
	// manifest that exists only updates its Updated time.
	PutManifest(ctx context.Context, m *Manifest) error
	// DeleteManifest removes manifest d and its tags from repo, or returns ErrNotFound.
	// The links of the blobs d named are released: their grace period restarts.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// SetTag points tag at manifest d of repo, which must exist.
	SetTag(ctx context.Context, repo, tag string, d digest.Digest) error
	// MoveTag is SetTag that reports what the tag named before. The store learns it
	// from the write itself, not from a read before it, so that concurrent pushes to
	// distinct tags read nothing another writes; a caller that refuses the move it
	// reports returns an error, and the transaction rolls back.
	MoveTag(ctx context.Context, repo, tag string, d digest.Digest) (TagMove, error)
	// DeleteTag removes tag from repo, or returns ErrNotFound.
	DeleteTag(ctx context.Context, repo, tag string) error
}

// TagMove is what a tag named before MoveTag pointed it at a manifest.
type TagMove struct {
	// Previous is the manifest the tag named: "" for a new tag, the manifest itself
	// when the tag named it already.
	Previous digest.Digest
	// Attributes are those of Previous, when it is another manifest.
	Attributes Attributes
}

// BlobWriter records which blobs a repository may read.
type BlobWriter interface {
	// LinkBlob records that blob d, of size bytes, is in the blob store and that repo
	// may read it, creating repo when needed. Linking again restarts the link's grace
	// period (see UnreferencedBlobs).
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	// ClaimBlob records that blob d, of size bytes, is about to be committed to the
	// blob store: a SweepBlob that started before the claim has finished, and none
	// with an earlier t will remove d. The size may be a guess (0 when unknown):
	// LinkBlob records the real one. It returns the time it records the claim at, for
	// ClaimHeld; a claim never moves d's claim time back.
	ClaimBlob(ctx context.Context, d digest.Digest, size int64) (time.Time, error)
	// ClaimHeld reports whether a claim of blob d made at claimed is sure to have kept
	// d from every SweepBlob since: none ran with a t after claimed. A claim is only as
	// good as the grace period of the sweeps that follow it, and a commit that took
	// longer than that (a stalled process, a grace period of zero) may find its bytes
	// gone: its link must not say otherwise. Like LinkBlob it waits for a sweep of d
	// under way. It may report false for a claim no sweep touched (the sweeps it
	// counts are of any blob); the caller then looks for the bytes under a new claim.
	ClaimHeld(ctx context.Context, d digest.Digest, claimed time.Time) (bool, error)
	// UnlinkUnreferenced takes blob d from repo when no manifest of repo names it and
	// its link was made or last released before t, and reports whether it did.
	UnlinkUnreferenced(ctx context.Context, repo string, d digest.Digest, t time.Time) (bool, error)
	// UnlinkBlob takes blob d from repo, or returns ErrNotFound.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
}

// AttributeWriter sets what may be done with repositories and manifests.
type AttributeWriter interface {
	// SetRepositoryAttributes sets the attributes of repo, or returns ErrNotFound.
	SetRepositoryAttributes(ctx context.Context, repo string, a Attributes) error
	// SetManifestAttributes sets the attributes of manifest d of repo, or returns
	// ErrNotFound.
	SetManifestAttributes(ctx context.Context, repo string, d digest.Digest, a Attributes) error
}

// UploadWriter records upload sessions.
type UploadWriter interface {
	// CreateUpload records a new upload session.
	CreateUpload(ctx context.Context, u *Upload) error
	// TouchUpload records a write to upload id at t; the registry records only writes
	// that left bytes in the session, so that an untouched session is an empty one.
	TouchUpload(ctx context.Context, id string, t time.Time) error
	// DeleteUpload forgets upload id, or returns ErrNotFound.
	DeleteUpload(ctx context.Context, id string) error
}

// EventReader reads the outbox: the changes of the registry, in the order its consumers
// follow them, and where each consumer is.
type EventReader interface {
	// Events returns up to n events after place `after`, in outbox order: the events
	// EventSequencer.SequenceEvents has placed.
	Events(ctx context.Context, after int64, n int) ([]Event, error)
	// EventHead returns the place of the last event placed: where a new consumer
	// starts.
	EventHead(ctx context.Context) (int64, error)
	// Backlog returns how many events there are after place `after`, placed or not,
	// and the time of the first of them (the zero time when none).
	Backlog(ctx context.Context, after int64) (int64, time.Time, error)
	// Consumers returns every consumer of the outbox, in name order.
	Consumers(ctx context.Context) ([]Consumer, error)
}

// EventSequencer places the events of committed transactions in the outbox.
type EventSequencer interface {
	// SequenceEvents gives every committed event without a place the next places, in
	// a transaction of its own. An event is read only once placed, and places are
	// given in the order the events became visible: a consumer that has read up to a
	// place never finds an event placed before it later, however the transactions
	// that wrote them overlapped.
	SequenceEvents(ctx context.Context) error
}

// EventWriter writes the outbox and the places of its consumers.
type EventWriter interface {
	// AppendEvent writes e to the outbox in the transaction; the store places it.
	AppendEvent(ctx context.Context, e *Event) error
	// ClaimConsumer gives holder the lease of consumer name until `until`, unless
	// another holder's lease runs then, and returns the consumer. A consumer the store
	// does not know yet is created at place start.
	ClaimConsumer(ctx context.Context, name, holder string, until time.Time, start int64) (c *Consumer, ok bool, err error)
	// AdvanceConsumer moves consumer name, whose lease holder must hold, past place
	// `to`, and records a success at `at`; ErrNotFound when holder holds it no longer.
	AdvanceConsumer(ctx context.Context, name, holder string, to int64, at time.Time) error
	// FailConsumer records that a delivery of consumer name failed at `at` with msg;
	// ErrNotFound when holder holds it no longer.
	FailConsumer(ctx context.Context, name, holder, msg string, at time.Time) error
	// DeleteConsumer forgets consumer name: one no longer configured.
	DeleteConsumer(ctx context.Context, name string) error
	// PruneEvents removes the events that every consumer has passed and that are
	// older than `before`, and reports how many.
	PruneEvents(ctx context.Context, before time.Time) (int64, error)
}

// PullRecorder records when manifests and tags were pulled.
type PullRecorder interface {
	// RecordPulls moves, for each pull p of ps, the last pull of manifest p.Digest of
	// p.Repo, and of tag p.Tag when it is set and still names that manifest, forward
	// to p.At, in one transaction of its own. Pulls of what is gone are no error.
	// Pull times only ever move forward, so two calls on the same rows commute: the
	// transaction needs no serializable snapshot, and concurrent calls wait for one
	// another rather than fail. Callers that may run at once (replicas) should order ps
	// alike, or they may deadlock.
	RecordPulls(ctx context.Context, ps []Pull) error
}

// TokenWriter creates and removes access tokens.
type TokenWriter interface {
	// CreateToken stores tok, or returns ErrExists when a token has its name.
	CreateToken(ctx context.Context, tok *Token) error
	// DeleteToken removes the token name, or returns ErrNotFound.
	DeleteToken(ctx context.Context, name string) error
}

// Attributes are what may be done with a repository or a manifest, as teams know them
// from ACR's changeable attributes. The zero value forbids everything; stores create
// repositories and manifests with every attribute enabled.
type Attributes struct {
	DeleteEnabled bool
	WriteEnabled  bool
	ReadEnabled   bool
	ListEnabled   bool
}

// Enabled are the attributes of a new repository or manifest.
var Enabled = Attributes{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: true, ListEnabled: true}

// Repository is a repository with its counts.
type Repository struct {
	Name          string
	ManifestCount int64
	TagCount      int64
	// Size is the bytes of the blobs the repository may read and of its manifests.
	Size       int64
	Created    time.Time
	Updated    time.Time
	Attributes Attributes
}

// Filter selects manifests of a listing; unset fields select everything.
type Filter struct {
	Tagged       *bool
	HasSubject   *bool
	ArtifactType string
	// Kind selects the manifests of one kind (Manifest.Kind).
	Kind string
	// TagEdge selects the artifacts of a manifest by the referrers tag schema: those a
	// tag-schema tag names, and the manifests a fallback index lists.
	TagEdge bool
}

// Manifest is a stored manifest.
type Manifest struct {
	Repo      string
	Digest    digest.Digest
	MediaType string
	Size      int64
	// Content is the manifest exactly as pushed.
	Content []byte
	// ArtifactType is the manifest's artifactType, else its config's media type.
	ArtifactType    string
	ConfigMediaType string
	// Subject is the digest of the manifest this one refers to, or "".
	Subject digest.Digest
	// TagSubject is the key (reference.SchemaKeyOf) of a manifest this one is an
	// artifact of by the referrers tag schema, the least if several, or "". The store
	// keeps it.
	TagSubject string
	// Kind is what the manifest is, as internal/artifact classifies it; "" until the
	// store has classified a manifest stored before kinds were kept.
	Kind string
	// LastPulled is when the manifest was last pulled, by digest or by a tag, as the
	// registry last recorded it; the zero time for never.
	LastPulled  time.Time
	Annotations map[string]string
	// Platform is the platform an image's config names, when known.
	Platform *ocispec.Platform
	// References are the blobs and child manifests the manifest names.
	References []Reference
	// TotalSize is the manifest's size plus the sizes of the blobs it names and the
	// total sizes of its child manifests; the store computes it.
	TotalSize int64
	// TagCount is the number of tags naming the manifest; the store keeps it.
	TagCount   int64
	Attributes Attributes
	// RepoAttributes are the attributes of the manifest's repository, as read with it.
	RepoAttributes Attributes
	Created        time.Time
	Updated        time.Time
}

// Content is a manifest as a pull serves it, with the attributes that decide whether
// it may be pulled.
type Content struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
	// Bytes are the manifest exactly as pushed.
	Bytes []byte
	// ReadEnabled is the manifest's attribute; RepoReadEnabled its repository's.
	ReadEnabled     bool
	RepoReadEnabled bool
}

// Reference is a blob or child manifest a manifest names.
type Reference struct {
	Digest   digest.Digest
	Size     int64
	Manifest bool // a child manifest, not a blob
}

// Descriptor is m as a descriptor of the referrers API.
func (m *Manifest) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    m.MediaType,
		Digest:       m.Digest,
		Size:         m.Size,
		ArtifactType: m.ArtifactType,
		Annotations:  m.Annotations,
	}
}

// Event is a change of the registry, as the outbox keeps it.
type Event struct {
	// Seq is its place in the outbox; 0 until placed.
	Seq  int64
	Time time.Time
	// Type says what changed (internal/events names the types).
	Type string
	Repo string
	// Data is the event's JSON.
	Data []byte
}

// Consumer is a follower of the outbox: a webhook, a replication rule.
type Consumer struct {
	Name string
	// After is the place it has passed.
	After      int64
	Holder     string
	LeaseUntil time.Time
	// LastSuccess and LastFailure are the times of its last delivery of each outcome
	// (zero for none); LastError the message of the last failure; Failures how many
	// deliveries failed since the last success.
	LastSuccess, LastFailure time.Time
	LastError                string
	Failures                 int64
}

// TagInfo is a tag with what it names.
type TagInfo struct {
	Name   string
	Digest digest.Digest
	// Updated is when the tag was set or last moved.
	Updated time.Time
	// LastPulled is when it was last pulled, or the zero time.
	LastPulled time.Time
}

// Key is the key a listing of tags continues after.
func (t TagInfo) Key() string { return t.Name }

// Pull is a pull of a manifest, by digest or by tag.
type Pull struct {
	Repo   string
	Digest digest.Digest
	// Tag is the tag it was pulled by, or "".
	Tag string
	At  time.Time
}

// Upload is an upload session of a repository.
type Upload struct {
	ID   string
	Repo string
	// Owner names who opened it (a user, a token, an address), so that the sessions a
	// caller holds open can be counted.
	Owner    string
	Created  time.Time
	Modified time.Time
}

// Node is a manifest as garbage collection sees it: what keeps it and what it keeps.
type Node struct {
	Digest digest.Digest
	// Subject is the manifest it refers to, or "".
	Subject digest.Digest
	// TagSubjects are the keys (reference.SchemaKeyOf) of the manifests it is an
	// artifact of by the referrers tag schema.
	TagSubjects []string
	// Children are the manifests it lists (an index's manifests).
	Children []digest.Digest
	// Tagged is set when a tag names it other than a tag-schema tag, which makes it an
	// artifact of another manifest rather than keeping it.
	Tagged bool
	// DeleteEnabled is the manifest's own attribute; a locked manifest stays.
	DeleteEnabled bool
	Updated       time.Time
	// Kind is what the manifest is (Manifest.Kind); LastPulled when it was last
	// pulled, or the zero time: what retention policies keep manifests by.
	Kind       string
	LastPulled time.Time
	// Size is the manifest's own size, for reports.
	Size int64
}

// Token is a repository-scoped access token: a name that works as a user name, a
// secret known by its hash only, and what it may do where.
type Token struct {
	Name string
	// Hash is the hash of the secret; the store never sees the secret itself.
	Hash string
	// Repositories are the repository name patterns the token works for.
	Repositories []string
	// Actions are what the token may do there: pull, push, delete.
	Actions []string
	Created time.Time
	// Expires is when the token stops working; the zero time is never.
	Expires time.Time
}

package postgres

// The statements whose plans the tests explain.
var (
	ReferrersQuery              = queries.Referrers
	ReferrersOfTypeQuery        = queries.ReferrersOfType
	ManifestQuery               = queries.Manifest
	TaggedManifestQuery         = queries.TaggedManifest
	TagQuery                    = queries.Tag
	TagsQuery                   = queries.Tags
	TagsOfQuery                 = queries.TagsOf
	TagListQuery                = queries.TagList
	RecordManifestPullStatement = queries.RecordManifestPull
	RecordTagPullStatement      = queries.RecordTagPull
	ParentsQuery                = queries.Parents
	BlobSizesQuery              = queries.BlobSizes
	ManifestSizesQuery          = queries.ManifestSizes
	LockingManifestQuery        = queries.LockingManifest
	OpenUploadsQuery            = queries.OpenUploads
	EmptyUploadsQuery           = queries.EmptyUploads
	PutManifestStatement        = putManifest
	SetTagStatement             = setTag
	SetTagWrittenStatement      = setTagWritten
	PutTaggedStatement          = putTagged
	ClaimSlotStatement          = claimSlot
	DeleteManifestStatement     = deleteManifest
	EventsQuery                 = queries.Events
	SequenceEventsStatement     = queries.SequenceEvents
	BacklogQuery                = queries.Backlog
	PruneEventsStatement        = queries.PruneEvents
)

// SetAttempts sets after how many conflicts an Update runs alone, and how many
// attempts it makes at most.
func (s *Store) SetAttempts(escalateAfter, maxAttempts int) {
	s.run.escalateAfter, s.run.maxAttempts = escalateAfter, maxAttempts
}

// Migrations are the schema's migrations, for a test to build a database of an older
// version.
var Migrations = migrations

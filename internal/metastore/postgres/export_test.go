package postgres

// The statements whose plans the tests explain.
const (
	ReferrersQuery          = referrersQuery
	ReferrersOfTypeQuery    = referrersOfTypeQuery
	ManifestQuery           = manifestQuery
	TaggedManifestQuery     = taggedManifestQuery
	TagQuery                = tagQuery
	TagsQuery               = tagsQuery
	TagsOfQuery             = tagsOfQuery
	ParentsQuery            = parentsQuery
	MissingBlobsQuery       = missingBlobsQuery
	MissingManifestsQuery   = missingManifestsQuery
	PutManifestStatement    = putManifest
	SetTagStatement         = setTag
	SetTagWrittenStatement  = setTagWritten
	DeleteManifestStatement = deleteManifest
)

// Retries returns how many Update attempts the store retried after a conflict.
func (s *Store) Retries() int64 { return s.retries.Load() }

// Escalations returns how many Update attempts ran alone.
func (s *Store) Escalations() int64 { return s.escalations.Load() }

// SetAttempts sets after how many conflicts an Update runs alone, and how many
// attempts it makes at most.
func (s *Store) SetAttempts(escalateAfter, maxAttempts int) {
	s.escalateAfter, s.maxAttempts = escalateAfter, maxAttempts
}

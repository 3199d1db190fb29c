package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// tx implements metastore.Tx: one attempt of an Update.
type tx struct {
	reader
	s *Store
	// q runs the transaction's statements, after the pending manifest write; raw runs
	// them as they come, for the Writes, which the tx sends that write before.
	q, raw TxQuerier
	// put is the manifest write PutManifest left for the transaction's next
	// statement: when that is a SetTag of the manifest, the two go as one
	// (Writes.PutTagged), one round trip. putErr is what sending it met.
	put    *pendingPut
	putErr error
	// pending are the changes to repository counters, written by flush: once, when fn
	// returns, however many rows the transaction wrote, and before the transaction
	// reads a counter.
	pending map[int64]*repoDelta
	// created are the repositories this attempt created, cached by the Store once it
	// commits.
	created map[string]int64
	// written locate the manifest rows this attempt wrote last, for SetTag.
	written map[manifestKey]any
	// held are the blobs this attempt holds against a sweep (hold).
	held map[digest.Digest]bool
	// edgesHeld are the repositories whose tag-schema edges this attempt holds
	// (holdTagEdges).
	edgesHeld map[int64]bool
	// stats are the changes to the registry-wide counters, written by flush.
	stats map[string]int64
	// shown are the repositories this attempt made sure are not deleted.
	shown map[int64]bool
}

type repoDelta struct{ manifests, tags, size int64 }

type pendingPut struct {
	ctx  context.Context
	repo int64
	row  *ManifestRow
	size int64
	kind string
	name string
}

// sendPut sends the pending manifest write, if any.
func (t *tx) sendPut(ctx context.Context) error {
	if t.putErr != nil {
		return t.putErr
	}
	p := t.put
	if p == nil {
		return nil
	}
	t.put = nil
	inserted, at, err := t.d.Writes.PutManifest(ctx, t.raw, p.row)
	if err != nil {
		t.putErr = fmt.Errorf("metastore: put manifest %s in %s: %w", p.row.Digest, p.name, err)
		return t.putErr
	}
	t.putDone(p, inserted, at)
	return nil
}

// putDone records the manifest write p, which inserted a row or found it, at at.
func (t *tx) putDone(p *pendingPut, inserted bool, at any) {
	t.wrote(p.repo, p.row.Digest, at)
	if inserted {
		t.addToRepo(p.repo, 1, 0, p.size)
		t.addStat(statManifests+p.kind, 1)
	} else {
		t.addToRepo(p.repo, 0, 0, 0)
	}
}

// putFirst is the querier of a tx: it sends the pending manifest write before any
// statement.
type putFirst struct {
	TxQuerier
	t *tx
}

func (q putFirst) Query(ctx context.Context, sql string, args ...any) (Rows, error) {
	if err := q.t.sendPut(ctx); err != nil {
		return nil, err
	}
	return q.TxQuerier.Query(ctx, sql, args...)
}

func (q putFirst) QueryRow(ctx context.Context, sql string, args ...any) Row {
	if err := q.t.sendPut(ctx); err != nil {
		return errRow{err}
	}
	return q.TxQuerier.QueryRow(ctx, sql, args...)
}

func (q putFirst) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	if err := q.t.sendPut(ctx); err != nil {
		return 0, err
	}
	return q.TxQuerier.Exec(ctx, sql, args...)
}

// Defer sends the pending write with the context of the PutManifest that left it; its
// error is the next statement's, or the commit's.
func (q putFirst) Defer(sql string, args ...any) {
	if p := q.t.put; p != nil {
		q.t.sendPut(p.ctx)
	}
	q.TxQuerier.Defer(sql, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type manifestKey struct {
	repo   int64
	digest string
}

var _ metastore.Tx = (*tx)(nil)

// addToRepo adds to the counters of repository id, and marks it updated.
func (t *tx) addToRepo(id, manifests, tags, size int64) {
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
	t.addStat(statTags, tags)
	t.addStat(statSize, size)
}

// The names of the registry-wide counters (Queries.Stats).
const (
	statRepositories = "repositories"
	statTags         = "tags"
	statSize         = "size"
	statUploads      = "uploads"
	statManifests    = "manifests/" // and the kind
)

// addStat adds delta to the registry-wide counter name.
func (t *tx) addStat(name string, delta int64) {
	if delta == 0 {
		return
	}
	if t.stats == nil {
		t.stats = map[string]int64{}
	}
	t.stats[name] += delta
}

// flush sends the pending manifest write, and defers the statements that write the
// pending counter changes. Repositories go in id order, so that two transactions lock
// their rows in the same order.
func (t *tx) flush(ctx context.Context) error {
	if err := t.sendPut(ctx); err != nil {
		return err
	}
	now := t.s.now()
	for _, id := range slices.Sorted(maps.Keys(t.pending)) {
		d := t.pending[id]
		t.q.Defer(t.d.AddCounters, id, d.manifests, d.tags, d.size, now)
	}
	t.pending = nil
	for _, name := range slices.Sorted(maps.Keys(t.stats)) {
		if v := t.stats[name]; v != 0 {
			t.q.Defer(t.d.AddStat, name, v)
		}
	}
	t.stats = nil
	return nil
}

// Repository reads the counters with this transaction's changes.
func (t *tx) Repository(ctx context.Context, repo string) (*metastore.Repository, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.reader.Repository(ctx, repo)
}

// RepositoryList reads the counters with this transaction's changes.
func (t *tx) RepositoryList(ctx context.Context, after string, n int) ([]metastore.Repository, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.reader.RepositoryList(ctx, after, n)
}

// repoID returns the id of repo, creating the repository when create is set, or
// ErrNotFound.
//
// A deleted repository keeps its row, and so its id, which every replica may have
// cached: a write that creates it brings the row back.
func (t *tx) repoID(ctx context.Context, repo string, create bool) (int64, error) {
	if id, ok := t.s.repos.Load(repo); ok {
		return id.(int64), t.show(ctx, id.(int64), create)
	}
	if id, ok := t.created[repo]; ok {
		return id, nil
	}
	if err := t.sendPut(ctx); err != nil {
		return 0, err
	}
	id, created, err := t.d.Writes.RepositoryID(ctx, t.raw, repo, create, t.s.now())
	if err != nil {
		return 0, notFound("repository "+repo, err)
	}
	if created {
		if t.created == nil {
			t.created = map[string]int64{}
		}
		t.created[repo] = id
		t.addStat(statRepositories, 1)
		return id, nil
	}
	// Visible and not created here: committed, for good.
	t.s.repos.Store(repo, id)
	return id, t.show(ctx, id, create)
}

// show brings back repository id when it was deleted and create is set, once per
// attempt.
func (t *tx) show(ctx context.Context, id int64, create bool) error {
	if !create || t.shown[id] {
		return nil
	}
	n, err := t.q.Exec(ctx, t.d.ShowRepository, id, t.s.now())
	if err != nil {
		return wrap("create repository", err)
	}
	if t.shown == nil {
		t.shown = map[int64]bool{}
	}
	t.shown[id] = true
	if n == 1 {
		t.addStat(statRepositories, 1)
	}
	return nil
}

func (t *tx) DeleteRepository(ctx context.Context, repo string) error {
	r, err := t.Repository(ctx, repo) // flushes the counters: they are read whole
	if err != nil {
		return err
	}
	id, err := t.repoID(ctx, repo, false)
	if err != nil {
		return err
	}
	t.holdTagEdges(t.q, id)
	kinds, err := t.d.Writes.DeleteRepository(ctx, t.q, id)
	if err != nil {
		return wrap("delete repository "+repo, err)
	}
	t.moved(id)
	delete(t.shown, id)
	for kind, n := range kinds {
		t.addStat(statManifests+kind, -n)
	}
	t.addStat(statRepositories, -1)
	t.addStat(statTags, -r.TagCount)
	t.addStat(statSize, -r.Size)
	return nil
}

// wrote records where this attempt left the row of manifest d of repo, or forgets it
// when at is nil.
func (t *tx) wrote(repo int64, d string, at any) {
	k := manifestKey{repo, d}
	if at == nil {
		delete(t.written, k)
		return
	}
	if t.written == nil {
		t.written = map[manifestKey]any{}
	}
	t.written[k] = at
}

// moved forgets where the manifest rows of repo are: a write moved some of them.
func (t *tx) moved(repo int64) {
	for k := range t.written {
		if k.repo == repo {
			delete(t.written, k)
		}
	}
}

func (t *tx) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	id, err := t.repoID(ctx, repo, true)
	if err != nil {
		return err
	}
	t.hold(d)
	if err := t.sendPut(ctx); err != nil {
		return err
	}
	linked, err := t.d.Writes.LinkBlob(ctx, t.raw, id, d.String(), size, t.s.now())
	if err != nil {
		return fmt.Errorf("metastore: link %s to %s: %w", d, repo, err)
	}
	if linked {
		t.addToRepo(id, 0, 0, size)
	}
	return nil
}

// holdTagEdges takes the lock on repository id's tag-schema edges
// (Queries.LockTagEdges), once per attempt, before the first statement that writes
// them: on q, the querier that statement goes on.
func (t *tx) holdTagEdges(q TxQuerier, id int64) {
	if t.d.LockTagEdges == "" || t.edgesHeld[id] {
		return
	}
	if t.edgesHeld == nil {
		t.edgesHeld = map[int64]bool{}
	}
	t.edgesHeld[id] = true
	q.Defer(t.d.LockTagEdges, id)
}

// hold holds blob d against a sweep until the transaction ends (Queries.HoldBlob), once
// per transaction: a link checks its claim, then links, under one hold.
func (t *tx) hold(d digest.Digest) {
	if t.d.HoldBlob == "" || t.held[d] {
		return
	}
	if t.held == nil {
		t.held = map[digest.Digest]bool{}
	}
	t.held[d] = true
	t.q.Defer(t.d.HoldBlob, d.String())
}

func (t *tx) ClaimBlob(ctx context.Context, d digest.Digest, size int64) (time.Time, error) {
	t.hold(d)
	now := t.s.now()
	if _, err := t.q.Exec(ctx, t.d.ClaimBlob, d.String(), size, now); err != nil {
		return time.Time{}, wrap("claim "+d.String(), err)
	}
	return now, nil
}

func (t *tx) ClaimHeld(ctx context.Context, d digest.Digest, claimed time.Time) (bool, error) {
	t.hold(d)
	var cutoff time.Time
	err := t.q.QueryRow(ctx, t.d.SweepCutoff).Scan(&cutoff)
	if errors.Is(err, ErrNoRows) {
		return true, nil // nothing was ever swept
	}
	if err != nil {
		return false, wrap("check the claim of "+d.String(), err)
	}
	// A sweep removes a blob claimed before its t; a claim never moves back. The
	// microsecond spares the rounding of a database that keeps no finer time.
	return !claimed.Before(cutoff.Add(time.Microsecond)), nil
}

func (t *tx) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	var id, size int64
	if err := t.q.QueryRow(ctx, t.d.UnlinkBlob, repo, d.String()).Scan(&id, &size); err != nil {
		return notFound("unlink "+d.String(), err)
	}
	t.addToRepo(id, 0, 0, -size)
	return nil
}

func (t *tx) UnlinkUnreferenced(ctx context.Context, repo string, d digest.Digest, tm time.Time) (bool, error) {
	var id, size int64
	err := t.q.QueryRow(ctx, t.d.UnlinkUnreferenced, repo, d.String(), tm).Scan(&id, &size)
	if errors.Is(err, ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, wrap("unlink "+d.String()+" from "+repo, err)
	}
	t.addToRepo(id, 0, 0, -size)
	return true, nil
}

func (t *tx) PutManifest(ctx context.Context, m *metastore.Manifest) error {
	repo, err := t.repoID(ctx, m.Repo, true)
	if err != nil {
		return err
	}
	row, err := manifestRow(repo, m, t.s.now())
	if err != nil {
		return fmt.Errorf("metastore: put manifest %s in %s: %w", m.Digest, m.Repo, err)
	}
	// The write waits for the next statement (see tx.put).
	if err := t.sendPut(ctx); err != nil {
		return err
	}
	t.put = &pendingPut{ctx: ctx, repo: repo, row: row, size: m.Size, kind: m.Kind, name: m.Repo}
	return nil
}

// manifestRow is m as the stores write it. A digest named twice is one reference: its
// first kind and size are recorded, and the total counts it once, at the size last
// declared.
func manifestRow(repo int64, m *metastore.Manifest, now time.Time) (*ManifestRow, error) {
	if !m.Updated.IsZero() {
		now = m.Updated
	}
	created := now
	if !m.Created.IsZero() {
		created = m.Created
	}
	row := &ManifestRow{
		Repo: repo, Digest: m.Digest.String(), MediaType: m.MediaType, Size: m.Size, Kind: m.Kind,
		ArtifactType: m.ArtifactType, ConfigMediaType: m.ConfigMediaType,
		Created: created, Updated: now, Content: m.Content,
	}
	if m.Subject != "" {
		s := m.Subject.String()
		row.Subject = &s
	}
	var err error
	if row.Annotations, err = marshalAnnotations(m.Annotations); err != nil {
		return nil, fmt.Errorf("annotations: %w", err)
	}
	if p := m.Platform; p != nil {
		row.OS, row.Architecture, row.Variant, row.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
		if len(p.OSFeatures) > 0 {
			row.OSFeatures = p.OSFeatures
		}
	}
	at := map[digest.Digest]int{}
	for _, ref := range m.References {
		if i, ok := at[ref.Digest]; ok {
			row.RefDeclared[i] = ref.Size
			continue
		}
		at[ref.Digest] = len(row.RefDigests)
		row.RefDigests = append(row.RefDigests, ref.Digest.String())
		row.RefSizes = append(row.RefSizes, ref.Size)
		row.RefDeclared = append(row.RefDeclared, ref.Size)
		row.RefManifest = append(row.RefManifest, ref.Manifest)
	}
	return row, nil
}

func (t *tx) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	if err := t.sendPut(ctx); err != nil {
		return err
	}
	if t.d.LockTagEdges != "" {
		// the delete takes the manifest's tag-schema edges with it
		id, err := t.repoID(ctx, repo, false)
		if err != nil {
			return notFound("delete manifest "+d.String(), err)
		}
		t.holdTagEdges(t.raw, id)
	}
	del, err := t.d.Writes.DeleteManifest(ctx, t.raw, repo, d.String(), t.s.now())
	if err != nil {
		return notFound("delete manifest "+d.String(), err)
	}
	t.moved(del.Repo)
	t.addToRepo(del.Repo, -1, -del.Tags, -del.Size)
	t.addStat(statManifests+del.Kind, -1)
	return nil
}

func (t *tx) SetTag(ctx context.Context, repo, tag string, d digest.Digest) error {
	_, err := t.MoveTag(ctx, repo, tag, d)
	return err
}

func (t *tx) MoveTag(ctx context.Context, repo, tag string, d digest.Digest) (metastore.TagMove, error) {
	id, err := t.repoID(ctx, repo, false)
	if err != nil {
		return metastore.TagMove{}, err
	}
	key, suffix, schema := reference.SchemaKey(tag)
	if schema {
		// A tag-schema tag's edges go before its row is written, in the order a
		// delete that cascades through them takes the two (edges, then the tag of the
		// fallback index it writes again): the other order deadlocked an attach with
		// a concurrent delete of a signature. They are added back below. Queued on the
		// raw querier, so that a pending manifest write still joins the tag's.
		t.holdTagEdges(t.raw, id)
		t.raw.Defer(t.d.DeleteTagEdges, id, tag)
	}
	var mv TagMove
	if p := t.put; p != nil && p.repo == id && p.row.Digest == d.String() && t.putErr == nil {
		t.put = nil
		var inserted bool
		inserted, mv, err = t.d.Writes.PutTagged(ctx, t.raw, p.row, tag, t.s.now())
		if err != nil {
			return metastore.TagMove{}, fmt.Errorf("metastore: put manifest %s in %s as %s: %w", d, repo, tag, err)
		}
		t.putDone(p, inserted, mv.At)
	} else {
		if err := t.sendPut(ctx); err != nil {
			return metastore.TagMove{}, err
		}
		mv, err = t.d.Writes.SetTag(ctx, t.raw, id, tag, d.String(), t.written[manifestKey{id, d.String()}], t.s.now())
	}
	switch {
	case err != nil:
		return metastore.TagMove{}, fmt.Errorf("metastore: tag %s:%s: %w", repo, tag, err)
	case !mv.Found:
		return metastore.TagMove{}, metastore.ErrNotFound
	case !mv.Changed:
		if schema {
			if err := t.addTagEdges(ctx, id, tag, d, key, suffix); err != nil {
				return metastore.TagMove{}, fmt.Errorf("metastore: tag %s:%s: %w", repo, tag, err)
			}
		}
		return metastore.TagMove{Previous: d}, nil
	}
	moved := metastore.TagMove{}
	if mv.Moved {
		moved = metastore.TagMove{Previous: digest.Digest(mv.Previous), Attributes: mv.Attributes}
	}
	if mv.Moved {
		t.moved(id)
		t.addToRepo(id, 0, 0, 0)
	} else {
		t.addToRepo(id, 0, 1, 0)
	}
	t.wrote(id, d.String(), mv.At)
	if schema {
		if err := t.addTagEdges(ctx, id, tag, d, key, suffix); err != nil {
			return metastore.TagMove{}, fmt.Errorf("metastore: tag %s:%s: %w", repo, tag, err)
		}
	}
	return moved, nil
}

// addTagEdges records the edges of tag-schema tag of repository id, now naming d.
func (t *tx) addTagEdges(ctx context.Context, id int64, tag string, d digest.Digest, key, suffix string) error {
	_, err := t.q.Exec(ctx, t.d.AddTagEdges, id, tag, d.String(), key, suffix == "")
	return err
}

func (t *tx) DeleteTag(ctx context.Context, repo, tag string) error {
	if err := t.sendPut(ctx); err != nil {
		return err
	}
	if _, _, ok := reference.SchemaKey(tag); ok {
		// The edges first, as MoveTag takes them.
		rid, err := t.repoID(ctx, repo, false)
		if err != nil {
			return notFound("delete tag "+tag, err)
		}
		t.holdTagEdges(t.q, rid)
		t.q.Defer(t.d.DeleteTagEdges, rid, tag)
	}
	id, err := t.d.Writes.DeleteTag(ctx, t.raw, repo, tag, t.s.now())
	if err != nil {
		return notFound("delete tag "+tag, err)
	}
	t.moved(id)
	t.addToRepo(id, 0, -1, 0)
	return nil
}

// affected returns ErrNotFound when a statement changed no row.
func affected(what string, n int64, err error) error {
	if err != nil {
		return wrap(what, err)
	}
	if n == 0 {
		return metastore.ErrNotFound
	}
	return nil
}

func (t *tx) SetRepositoryAttributes(ctx context.Context, repo string, a metastore.Attributes) error {
	n, err := t.q.Exec(ctx, t.d.SetRepositoryAttributes, repo, a.DeleteEnabled, a.WriteEnabled, a.ReadEnabled, a.ListEnabled)
	return affected("set attributes of "+repo, n, err)
}

func (t *tx) SetManifestAttributes(ctx context.Context, repo string, d digest.Digest, a metastore.Attributes) error {
	for k := range t.written { // the row may move
		if k.digest == d.String() {
			delete(t.written, k)
		}
	}
	n, err := t.q.Exec(ctx, t.d.SetManifestAttributes, repo, d.String(), a.DeleteEnabled, a.WriteEnabled, a.ReadEnabled, a.ListEnabled)
	return affected("set attributes of "+d.String(), n, err)
}

func (t *tx) CreateUpload(ctx context.Context, u *metastore.Upload) error {
	n, err := t.q.Exec(ctx, t.d.CreateUpload, u.ID, u.Repo, u.Created, u.Modified, u.Owner)
	if err != nil {
		return wrap("create upload "+u.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("metastore: create upload %s: %w", u.ID, metastore.ErrExists)
	}
	t.addStat(statUploads, 1)
	return nil
}

func (t *tx) TouchUpload(ctx context.Context, id string, tm time.Time) error {
	n, err := t.q.Exec(ctx, t.d.TouchUpload, id, tm)
	return affected("touch upload "+id, n, err)
}

func (t *tx) DeleteUpload(ctx context.Context, id string) error {
	n, err := t.q.Exec(ctx, t.d.DeleteUpload, id)
	if err := affected("delete upload "+id, n, err); err != nil {
		return err
	}
	t.addStat(statUploads, -1)
	return nil
}

func (t *tx) CreateToken(ctx context.Context, tok *metastore.Token) error {
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
	n, err := t.q.Exec(ctx, t.d.CreateToken, tok.Name, tok.Hash, repos, actions, tok.Created, expires)
	if err != nil {
		return wrap("create token "+tok.Name, err)
	}
	if n == 0 {
		return metastore.ErrExists
	}
	return nil
}

func (t *tx) DeleteToken(ctx context.Context, name string) error {
	n, err := t.q.Exec(ctx, t.d.DeleteToken, name)
	return affected("delete token "+name, n, err)
}

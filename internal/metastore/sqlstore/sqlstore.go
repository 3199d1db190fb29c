// Package sqlstore is the half of the SQL metadata stores that does not depend on the
// database: every metastore method, written once in Go — how rows become metastore
// values and back, repository counters, references de-duplicated, errors wrapped and
// mapped, repository ids cached — over a Dialect that says what the databases make
// differ: the text of each statement, the few writes that PostgreSQL does in one
// statement and SQLite in several, and how a read-write transaction runs (SQLite's
// single writer committing groups, PostgreSQL's serializable transactions with
// retries).
//
// Values cross the boundary as Go types (time.Time, []string, bool): a driver adapter
// converts them to what its database stores (see the sqlite package).
package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
)

// ErrNoRows is what a Row's Scan returns when the query found nothing. Adapters return
// it in place of their driver's own.
var ErrNoRows = errors.New("sqlstore: no rows")

// Querier runs statements: on a pool of connections, or in a transaction. Arguments are
// positional ($1 or ?1, as the dialect spells them), in the order each statement of
// Queries documents.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) Row
	// Exec runs a statement and returns how many rows it changed.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
}

// TxQuerier runs the statements of a read-write transaction.
type TxQuerier interface {
	Querier
	// Defer queues a statement whose result nobody reads, to run before the next one
	// (in the same round trip, where the database allows); an error it meets is the
	// next statement's, or the commit's.
	Defer(sql string, args ...any)
}

// Rows are the rows of a query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is the first row of a query.
type Row interface {
	Scan(dest ...any) error
}

// Transactor runs read-write transactions the way its database wants them.
type Transactor interface {
	// Update runs fn in a read-write transaction and commits it when fn returns nil.
	// It may run fn again, in a new transaction, after a conflict; it returns only once
	// it knows whether the transaction committed.
	Update(ctx context.Context, fn func(q TxQuerier) error) error
	// Sweep runs fn in a transaction of its own, committed when fn reports true and
	// rolled back otherwise.
	Sweep(ctx context.Context, fn func(q TxQuerier) (bool, error)) (bool, error)
	// Close waits for the transactions under way, then closes the connections, the
	// read pool's too.
	Close() error
}

// Dialect is what differs between the SQL databases.
type Dialect struct {
	Queries
	Writes Writes
	// Placeholder is the placeholder of argument n: $n, ?n.
	Placeholder func(n int) string
}

// Store is a metastore.Store on a database.
type Store struct {
	reader
	run Transactor
	// repos caches the ids of committed repositories. A deleted repository keeps its
	// row (marked deleted, emptied), so an id never changes and every replica's cache
	// stays right.
	repos sync.Map // string → int64
	// now is the clock the store dates what it writes by.
	now func() time.Time
	// sweptTo is the latest sweep t this store recorded, in Unix nanoseconds.
	sweptTo atomic.Int64
}

var _ metastore.Store = (*Store)(nil)

// New returns a store that reads through read and writes through run.
func New(d *Dialect, read Querier, run Transactor) *Store {
	return &Store{reader: reader{d: d, q: read}, run: run, now: time.Now}
}

// SetClock makes the store date what it writes by now: a test's control of time, so
// that what depends on ages (grace periods, retention) does not depend on the speed of
// the machine.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Update implements metastore.Updater.
func (s *Store) Update(ctx context.Context, fn func(metastore.Tx) error) error {
	var t *tx
	err := s.run.Update(ctx, func(q TxQuerier) error {
		t = &tx{s: s, raw: q}
		t.q = putFirst{TxQuerier: q, t: t}
		t.reader = reader{d: s.d, q: t.q}
		if err := fn(t); err != nil {
			return err
		}
		return t.flush(ctx)
	})
	if err != nil {
		return err
	}
	for name, id := range t.created {
		s.repos.Store(name, id)
	}
	return nil
}

// SweepBlob implements metastore.BlobSweeper. Its transaction holds d (Queries.HoldBlob)
// from its check to its commit, so that links and claims of d wait for it, and it for
// them.
func (s *Store) SweepBlob(ctx context.Context, d digest.Digest, t time.Time, del func(context.Context) error) (bool, error) {
	if err := s.recordSweep(ctx, t); err != nil {
		return false, err
	}
	swept, err := s.run.Sweep(ctx, func(q TxQuerier) (bool, error) {
		if s.d.SweepHold != "" {
			q.Defer(s.d.SweepHold, d.String())
		}
		var (
			linked  bool
			claimed *time.Time
		)
		err := q.QueryRow(ctx, s.d.BlobState, d.String()).Scan(&linked, &claimed)
		if err != nil && !errors.Is(err, ErrNoRows) {
			return false, fmt.Errorf("metastore: sweep %s: %w", d, err)
		}
		if linked || claimed != nil && !claimed.Before(t) {
			return false, nil
		}
		if err := del(ctx); err != nil {
			return false, err
		}
		if _, err := q.Exec(ctx, s.d.ForgetBlob, d.String()); err != nil {
			return false, fmt.Errorf("metastore: sweep %s: %w", d, err)
		}
		return true, nil
	})
	return swept && err == nil, err
}

// recordSweep records t as a sweep's, in a transaction of its own, committed before
// the sweep looks at a blob (see metastore.BlobWriter.ClaimHeld). A collection sweeps
// many blobs with one t: only the first of its sweeps writes. A t is a grace period
// before now; one after now (a test's clock) is recorded as now, so that the claims made
// after the collection still hold.
func (s *Store) recordSweep(ctx context.Context, t time.Time) error {
	if now := s.now(); t.After(now) {
		t = now
	}
	if t.UnixNano() <= s.sweptTo.Load() {
		return nil
	}
	err := s.run.Update(ctx, func(q TxQuerier) error {
		_, err := q.Exec(ctx, s.d.RecordSweep, t)
		return err
	})
	if err != nil {
		return fmt.Errorf("metastore: record a sweep: %w", err)
	}
	for {
		cur := s.sweptTo.Load()
		if t.UnixNano() <= cur || s.sweptTo.CompareAndSwap(cur, t.UnixNano()) {
			return nil
		}
	}
}

// Close implements metastore.Store.
func (s *Store) Close() error { return s.run.Close() }

// notFound maps ErrNoRows to metastore.ErrNotFound, and wraps other errors.
func notFound(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoRows):
		return metastore.ErrNotFound
	default:
		return fmt.Errorf("metastore: %s: %w", what, err)
	}
}

// RecordPulls implements metastore.PullRecorder. It runs as a sweep does, at the
// database's weakest isolation that still writes atomically (READ COMMITTED on
// PostgreSQL): each statement only moves a time forward, so a flush that waits for
// another's row goes on from the committed row instead of failing and starting over.
// Nothing is read back: the statements travel with the commit, hundreds in one round
// trip.
func (s *Store) RecordPulls(ctx context.Context, ps []metastore.Pull) error {
	if len(ps) == 0 {
		return nil
	}
	_, err := s.run.Sweep(ctx, func(q TxQuerier) (bool, error) {
		for _, p := range ps {
			q.Defer(s.d.RecordManifestPull, p.Repo, p.Digest.String(), p.At)
			if p.Tag != "" {
				q.Defer(s.d.RecordTagPull, p.Repo, p.Tag, p.At, p.Digest.String())
			}
		}
		return true, nil
	})
	return wrap("record pulls", err)
}

// wrap wraps err, if any, with what failed.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("metastore: %s: %w", what, err)
}

// backfillBatch is how many rows Backfill reads at a time.
const backfillBatch = 500

// Backfill completes, once, what a schema migration added but could not compute in SQL:
// the kind of each manifest stored before kinds were kept (internal/artifact classifies
// it from the content), and the edges of the tag-schema tags set before edges were
// kept. A migration that needs one records its name in the backfills table; a store
// calls Backfill once its schema is up to date.
func (s *Store) Backfill(ctx context.Context) error {
	pending, err := collect(ctx, s.q, "backfills", s.d.Backfills, nil, scanOne[string])
	if err != nil {
		return err
	}
	for _, name := range pending {
		switch name {
		case "kinds":
			err = s.backfillKinds(ctx)
		case "tag_edges":
			err = s.backfillTagEdges(ctx)
		case "stats":
			// after "kinds": the manifests are counted by kind
			err = s.run.Update(ctx, func(q TxQuerier) error {
				return wrap("count the registry", s.d.Writes.RecountStats(ctx, q))
			})
		default:
			err = fmt.Errorf("metastore: the database asks for a backfill this graft does not know: %q", name)
		}
		if err == nil {
			err = s.run.Update(ctx, func(q TxQuerier) error {
				_, err := q.Exec(ctx, s.d.DoneBackfill, name)
				return wrap("backfill "+name, err)
			})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) backfillKinds(ctx context.Context) error {
	type row struct {
		repo         int64
		d, mediaType string
		content      []byte
	}
	var after row
	for {
		rows, err := collect(ctx, s.q, "classify manifests", s.d.ManifestsAfter, []any{after.repo, after.d, backfillBatch}, func(r Row) (row, error) {
			var v row
			return v, r.Scan(&v.repo, &v.d, &v.mediaType, &v.content)
		})
		if err != nil || len(rows) == 0 {
			return err
		}
		err = s.run.Update(ctx, func(q TxQuerier) error {
			for _, r := range rows {
				if _, err := q.Exec(ctx, s.d.SetKind, r.repo, r.d, kindOf(r.mediaType, r.content)); err != nil {
					return wrap("classify "+r.d, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		after = rows[len(rows)-1]
	}
}

func (s *Store) backfillTagEdges(ctx context.Context) error {
	type row struct {
		repo   int64
		tag, d string
	}
	var after row
	for {
		rows, err := collect(ctx, s.q, "tag-schema edges", s.d.TagsAfter, []any{after.repo, after.tag, backfillBatch}, func(r Row) (row, error) {
			var v row
			return v, r.Scan(&v.repo, &v.tag, &v.d)
		})
		if err != nil || len(rows) == 0 {
			return err
		}
		err = s.run.Update(ctx, func(q TxQuerier) error {
			locked := map[int64]bool{}
			for _, r := range rows {
				key, suffix, ok := reference.SchemaKey(r.tag)
				if !ok {
					continue
				}
				if s.d.LockTagEdges != "" && !locked[r.repo] {
					locked[r.repo] = true
					q.Defer(s.d.LockTagEdges, r.repo)
				}
				q.Defer(s.d.DeleteTagEdges, r.repo, r.tag)
				if _, err := q.Exec(ctx, s.d.AddTagEdges, r.repo, r.tag, r.d, key, suffix == ""); err != nil {
					return wrap("tag-schema edges of "+r.tag, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		after = rows[len(rows)-1]
	}
}

// kindOf is what the manifest content is; a manifest the registry accepted parses.
func kindOf(mediaType string, content []byte) string {
	m, err := manifest.Parse(mediaType, content)
	if err != nil {
		return string(artifact.Artifact)
	}
	return string(artifact.Classify(m))
}

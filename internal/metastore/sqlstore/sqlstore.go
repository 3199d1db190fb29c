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
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
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
}

// Store is a metastore.Store on a database.
type Store struct {
	reader
	run Transactor
	// repos caches the ids of committed repositories. A repository is never deleted, so
	// its id never changes.
	repos sync.Map // string → int64
}

var _ metastore.Store = (*Store)(nil)

// New returns a store that reads through read and writes through run.
func New(d *Dialect, read Querier, run Transactor) *Store {
	return &Store{reader: reader{d: d, q: read}, run: run}
}

// Update implements metastore.Updater.
func (s *Store) Update(ctx context.Context, fn func(metastore.Tx) error) error {
	var t *tx
	err := s.run.Update(ctx, func(q TxQuerier) error {
		t = &tx{reader: reader{d: s.d, q: q}, s: s, q: q}
		if err := fn(t); err != nil {
			return err
		}
		t.flush()
		return nil
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

// wrap wraps err, if any, with what failed.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("metastore: %s: %w", what, err)
}

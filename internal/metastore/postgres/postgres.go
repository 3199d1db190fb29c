// Package postgres is a metastore.Store in PostgreSQL, for the scale-out deployment:
// any number of graft replicas share one database.
//
// Updates run in SERIALIZABLE transactions and are retried, with a short jittered
// backoff, when PostgreSQL reports a serialization failure or a deadlock; fn may so run
// more than once, as the interface allows. An Update that keeps losing is retried alone:
// it waits for the transactions under way, across replicas, and holds new ones back
// while it runs (see escalateAfter), so every Update commits in the end. The schema is
// laid out so that concurrent pushes do not conflict where their changes do not: no hot
// rows (repository counters are spread over slots, see schema.go), no serial keys, and
// writes that learn what they replace from the write itself rather than from a read
// before it.
//
// A round trip is the main cost of a statement, so each operation is one statement where
// SQL allows it, BEGIN travels with a transaction's first statement and COMMIT with its
// last, and statements are prepared once per connection (pgx does it).
//
// Reads and writes use two pools, so that a reading Store method called while an Update
// holds a connection never waits for a connection another Update holds.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
)

// Options configure a Store.
type Options struct {
	// URL is the database's connection string (postgres://user:password@host:port/db?...).
	URL string
	// MaxConns bounds the connections the Store opens, reads and writes together; 0
	// means 8 per CPU.
	MaxConns int32
}

// Store is a metastore.Store in a PostgreSQL database.
type Store struct {
	reader
	read  *pgxpool.Pool
	write *pgxpool.Pool

	// repos caches the ids of committed repositories. A repository is never deleted, so
	// its id never changes.
	repos sync.Map // string → int64

	retries     atomic.Int64 // attempts retried after a conflict, for benchmarks
	escalations atomic.Int64 // attempts run alone

	escalateAfter, maxAttempts int
}

var _ metastore.Store = (*Store)(nil)

// Open connects to the database, creates or migrates its schema, and returns a Store.
func Open(ctx context.Context, o Options) (*Store, error) {
	total := o.MaxConns
	if total <= 0 {
		total = int32(8 * runtime.GOMAXPROCS(0))
	}
	writers := max(1, total/2)
	readers := max(1, total-writers)
	write, err := newPool(ctx, o.URL, writers, true)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, err
	}
	read, err := newPool(ctx, o.URL, readers, false)
	if err != nil {
		write.Close()
		return nil, err
	}
	return &Store{reader: reader{q: read}, read: read, write: write,
		escalateAfter: escalateAfter, maxAttempts: maxAttempts}, nil
}

// newPool connects a pool of conns connections. generic sets the write pool's plan
// mode (see below).
func newPool(ctx context.Context, url string, conns int32, generic bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("metastore: parse the database URL: %w", err)
	}
	cfg.MaxConns = conns
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "graft"
	}
	// A sequential scan in a serializable transaction locks the whole table against
	// concurrent writers, where an index scan locks the pages it reads. Every query here
	// has an index; this keeps the planner from a sequential scan of a table it
	// believes small (a new registry, statistics not gathered yet).
	cfg.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
	if generic {
		// The write statements are long, and PostgreSQL estimates their generic plans
		// (an unnest of a parameter array counts 10 rows) dearer than plans for the
		// values, so it would plan them again at every execution: half the database's
		// CPU of a push. Their generic plans use the right indexes, with statistics or
		// without (TestStatementPlans).
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("metastore: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("metastore: connect: %w", err)
	}
	return pool, nil
}

// Close implements metastore.Store: it waits for the connections in use, then closes
// them all.
func (s *Store) Close() error {
	s.write.Close()
	s.read.Close()
	return nil
}

// An Update runs optimistically at first: concurrently with others, which PostgreSQL
// checks for conflicts. After escalateAfter conflicts in a row it runs alone, as a
// transaction that takes the exclusive side of updateLock before it begins (and so takes
// its snapshot after the wait), where optimistic ones take the shared side with BEGIN. A
// transaction with no concurrent serializable writer cannot be a victim of one;
// maxAttempts only bounds the attempts should something else keep failing them.
const (
	escalateAfter = 5
	maxAttempts   = 20
)

// updateLock is the advisory lock an Update that runs alone takes exclusively, and
// every other Update shared; an int4 pair, apart from the migration lock's and from the
// bigint keys of the digest locks.
const (
	lockUpdateShared = `SELECT pg_advisory_xact_lock_shared(1735549300, 2)`
	lockUpdateAlone  = `SELECT pg_advisory_lock(1735549300, 2)`
	unlockUpdate     = `SELECT pg_advisory_unlock(1735549300, 2)`
)

// Update implements metastore.Store. fn runs again, in a new transaction, after a
// serialization failure or a deadlock.
func (s *Store) Update(ctx context.Context, fn func(metastore.Tx) error) error {
	for attempt := 0; ; attempt++ {
		alone := attempt >= s.escalateAfter
		if alone {
			s.escalations.Add(1)
		}
		retry, err := s.attempt(ctx, fn, alone)
		if !retry || attempt+1 >= s.maxAttempts {
			return err
		}
		s.retries.Add(1)
		if !alone {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
		}
	}
}

// backoff sleeps a random time up to 1 ms × 2^attempt, so that the transactions that
// conflicted do not meet again at once.
func backoff(ctx context.Context, attempt int) error {
	d := time.Millisecond << min(attempt, 6)
	t := time.NewTimer(rand.N(d) + 100*time.Microsecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt runs fn in one transaction, alone or not; retry reports a conflict.
func (s *Store) attempt(ctx context.Context, fn func(metastore.Tx) error, alone bool) (retry bool, err error) {
	c, err := s.write.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("metastore: %w", err)
	}
	defer c.Release()
	tc := &txConn{c: c.Conn(), begin: []stmt{{sql: beginSerializable}, {sql: lockUpdateShared}}}
	if alone {
		if _, err := c.Exec(ctx, lockUpdateAlone); err != nil {
			return false, fmt.Errorf("metastore: wait to run alone: %w", err)
		}
		defer func() {
			// The lock is the session's: should the unlock fail, the connection must
			// not go back to the pool holding it.
			if _, err := c.Exec(context.WithoutCancel(ctx), unlockUpdate); err != nil {
				c.Conn().Close(context.WithoutCancel(ctx))
			}
		}()
		tc.begin = tc.begin[:1]
	}
	t := &txn{reader: reader{q: tc}, s: s, tc: tc}
	err = run(fn, t)
	// Once the transaction is under way, finish it whatever becomes of ctx: the caller
	// must learn whether its writes were committed.
	done := context.WithoutCancel(ctx)
	if err == nil && tc.conflict { // fn went on after a conflict: nothing may commit
		err = fmt.Errorf("metastore: the transaction conflicted with another: %w", cmp.Or(tc.failed, errSwept))
	}
	if err != nil {
		tc.rollback(done)
		return tc.conflict, err
	}
	if err := t.commit(done); err != nil {
		return tc.conflict, err
	}
	for name, id := range t.created {
		s.repos.Store(name, id)
	}
	return false, nil
}

func run(fn func(metastore.Tx) error, t *txn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("metastore: update panicked: %v", p)
		}
	}()
	return fn(t)
}

// SweepBlob implements metastore.Store. It holds the advisory lock of d from its check
// until it commits; LinkBlob and ClaimBlob take the same lock, shared among them, so
// that a sweep waits for the links and claims of d in progress and they wait for it. It
// checks at READ COMMITTED: a serializable snapshot would be taken before the lock is
// granted and would miss a link committed while it waited.
func (s *Store) SweepBlob(ctx context.Context, d digest.Digest, t time.Time, del func(context.Context) error) (bool, error) {
	c, err := s.write.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("metastore: sweep %s: %w", d, err)
	}
	defer c.Release()
	tc := &txConn{c: c.Conn(), begin: []stmt{{sql: beginReadCommitted}}}
	done := context.WithoutCancel(ctx)
	swept, err := s.sweep(ctx, tc, d, t, del)
	if err != nil || !swept {
		tc.rollback(done)
		return false, err
	}
	if err := tc.commit(done, nil); err != nil {
		return false, fmt.Errorf("metastore: sweep %s: %w", d, err)
	}
	return true, nil
}

func (s *Store) sweep(ctx context.Context, tc *txConn, d digest.Digest, t time.Time, del func(context.Context) error) (bool, error) {
	var linked bool
	var claimed *time.Time
	err := tc.queryRow(ctx, []stmt{{sql: lockDigest, args: []any{d.String()}}},
		`SELECT EXISTS (SELECT 1 FROM repo_blobs WHERE digest = $1), (SELECT created FROM blobs WHERE digest = $1)`,
		d.String()).Scan(&linked, &claimed)
	if err != nil {
		return false, fmt.Errorf("metastore: sweep %s: %w", d, err)
	}
	if linked || claimed != nil && !claimed.Before(t) {
		return false, nil
	}
	if err := del(ctx); err != nil {
		return false, err
	}
	if _, err := tc.exec(ctx, nil, `DELETE FROM blobs WHERE digest = $1`, d.String()); err != nil {
		return false, fmt.Errorf("metastore: sweep %s: %w", d, err)
	}
	return true, nil
}

// lockDigest takes the transaction's advisory lock on a blob digest, for a sweep;
// lockDigestShared takes it for a link or a claim.
const (
	lockDigest       = `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`
	lockDigestShared = `SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))`
)

const (
	beginSerializable  = `BEGIN ISOLATION LEVEL SERIALIZABLE`
	beginReadCommitted = `BEGIN ISOLATION LEVEL READ COMMITTED`
)

// stmt is a statement to send before another, in the same round trip.
type stmt struct {
	sql  string
	args []any
}

// txConn runs the statements of one transaction on one connection. BEGIN goes out with
// the first statement, in one batch; every error is watched for a conflict, which makes
// the transaction one to retry, and for the first failure, after which PostgreSQL
// refuses every statement until the rollback.
type txConn struct {
	c        *pgx.Conn
	begin    []stmt // BEGIN, and what goes with it
	begun    bool
	conflict bool
	failed   error
}

// note records err, and returns it.
func (tc *txConn) note(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			tc.conflict = true
		}
	}
	if tc.failed == nil {
		tc.failed = err
	}
	return err
}

// send queues BEGIN when due, then pre, then sql, and sends them in one batch. The
// results of the statements before sql are read; sql's are left to the caller, who
// must close the batch.
func (tc *txConn) send(ctx context.Context, pre []stmt, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	if !tc.begun {
		pre = append(slices.Clip(tc.begin), pre...)
	}
	n := len(pre)
	for _, p := range pre {
		b.Queue(p.sql, p.args...)
	}
	b.Queue(sql, args...)
	br := tc.c.SendBatch(ctx, b)
	tc.begun = true
	for range n {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, tc.note(err)
		}
	}
	return br, nil
}

// Query implements querier: a query alone, after BEGIN when due.
func (tc *txConn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return tc.query(ctx, nil, sql, args...)
}

// QueryRow implements querier.
func (tc *txConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return tc.queryRow(ctx, nil, sql, args...)
}

func (tc *txConn) query(ctx context.Context, pre []stmt, sql string, args ...any) (pgx.Rows, error) {
	br, err := tc.send(ctx, pre, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, tc.note(err)
	}
	return &txRows{Rows: rows, br: br, tc: tc}, nil
}

func (tc *txConn) queryRow(ctx context.Context, pre []stmt, sql string, args ...any) pgx.Row {
	rows, err := tc.query(ctx, pre, sql, args...)
	return &txRow{rows: rows, err: err}
}

func (tc *txConn) exec(ctx context.Context, pre []stmt, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := tc.send(ctx, pre, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, tc.note(err)
}

// commit sends pre and COMMIT in one batch. COMMIT of a transaction that an error
// aborted answers ROLLBACK, and no error: that is reported as the first failure.
func (tc *txConn) commit(ctx context.Context, pre []stmt) error {
	if !tc.begun {
		return nil
	}
	if tc.failed != nil {
		tc.rollback(ctx)
		return fmt.Errorf("metastore: the transaction failed, and was rolled back: %w", tc.failed)
	}
	b := &pgx.Batch{}
	for _, p := range pre {
		b.Queue(p.sql, p.args...)
	}
	b.Queue(`COMMIT`)
	br := tc.c.SendBatch(ctx, b)
	var tag pgconn.CommandTag
	var err error
	for range len(pre) + 1 {
		if tag, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tc.note(err)
		tc.rollback(ctx)
		return fmt.Errorf("metastore: commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		return fmt.Errorf("metastore: commit: the database rolled the transaction back (%s)", tag)
	}
	return nil
}

// rollback ends the transaction, if one was begun. When it fails, the connection is in
// an unknown state: the pool discards a connection still in a transaction.
func (tc *txConn) rollback(ctx context.Context) {
	if tc.begun {
		tc.c.Exec(ctx, `ROLLBACK`)
	}
}

// txRows are the rows of a query sent in a batch: closing them closes the batch.
type txRows struct {
	pgx.Rows
	br pgx.BatchResults
	tc *txConn
}

func (r *txRows) Close() {
	r.Rows.Close()
	r.tc.note(r.Rows.Err())
	r.tc.note(r.br.Close())
}

func (r *txRows) Err() error {
	return r.tc.note(r.Rows.Err())
}

// txRow is pgx.Row on txRows.
type txRow struct {
	rows pgx.Rows
	err  error
}

func (r *txRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/graft-registry/graft/internal/metastore/sqlstore"
)

// transactor is the sqlstore.Transactor of PostgreSQL. Reads and writes use two pools,
// so that a reading Store method called while an Update holds a connection never waits
// for a connection another Update holds.
type transactor struct {
	read  *pgxpool.Pool
	write *pgxpool.Pool

	retries     atomic.Int64 // attempts retried after a conflict, for benchmarks
	escalations atomic.Int64 // attempts run alone
	roundTrips  atomic.Int64 // batches sent to the database by Updates and Sweeps
	statements  atomic.Int64 // statements in them

	escalateAfter, maxAttempts int
	// timeout bounds each round trip (see unavailable.go).
	timeout time.Duration
}

// An Update runs optimistically at first: concurrently with others, which PostgreSQL
// checks for conflicts. After escalateAfter conflicts in a row it runs alone, as a
// transaction that takes the exclusive side of updateLock before it begins (and so takes
// its snapshot after the wait), where optimistic ones, and sweeps, take the shared side
// with BEGIN. A transaction with no concurrent writer cannot be a victim of one;
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

const (
	beginSerializable  = `BEGIN ISOLATION LEVEL SERIALIZABLE`
	beginReadCommitted = `BEGIN ISOLATION LEVEL READ COMMITTED`
)

// Update implements sqlstore.Transactor. fn runs again, in a new transaction, after a
// serialization failure or a deadlock.
func (r *transactor) Update(ctx context.Context, fn func(sqlstore.TxQuerier) error) error {
	for attempt := 0; ; attempt++ {
		alone := attempt >= r.escalateAfter
		if alone {
			r.escalations.Add(1)
		}
		retry, err := r.attempt(ctx, fn, alone)
		if !retry || attempt+1 >= r.maxAttempts {
			return err
		}
		r.retries.Add(1)
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

// acquire takes a connection of the write pool, waiting no longer than a round trip's
// deadline.
func (r *transactor) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := r.bounded(ctx)
	defer cancel()
	c, err := r.write.Acquire(actx)
	if err != nil {
		return nil, fmt.Errorf("metastore: %w", unreachable(ctx, err))
	}
	return c, nil
}

// attempt runs fn in one transaction, alone or not; retry reports a conflict.
func (r *transactor) attempt(ctx context.Context, fn func(sqlstore.TxQuerier) error, alone bool) (retry bool, err error) {
	c, err := r.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer c.Release()
	tc := &txConn{c: c.Conn(), timeout: r.timeout, pending: []stmt{{sql: beginSerializable}, {sql: lockUpdateShared}}}
	defer r.count(tc)
	if alone {
		tc.trips, tc.stmts = tc.trips+2, tc.stmts+2 // the lock, and its unlock
		lctx, cancel := r.bounded(ctx)
		_, err := c.Exec(lctx, lockUpdateAlone)
		cancel()
		if err != nil {
			return false, fmt.Errorf("metastore: wait to run alone: %w", unreachable(ctx, err))
		}
		defer func() {
			// The lock is the session's: should the unlock fail, the connection must
			// not go back to the pool holding it.
			uctx, cancel := r.bounded(context.WithoutCancel(ctx))
			defer cancel()
			if _, err := c.Exec(uctx, unlockUpdate); err != nil {
				c.Conn().Close(uctx)
			}
		}()
		tc.pending = tc.pending[:1]
	}
	err = run(func() error { return fn(tc) })
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
	if err := tc.commit(done); err != nil {
		return tc.conflict, err
	}
	return false, nil
}

func run(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("metastore: update panicked: %v", p)
		}
	}()
	return fn()
}

// Sweep implements sqlstore.Transactor. It checks at READ COMMITTED: a serializable
// snapshot would be taken before the blob's lock (Queries.SweepHold) is granted and
// would miss a link committed while it waited. It holds the shared side of updateLock
// as an optimistic Update does: a row it changes between an Update's snapshot and that
// Update's write of the row fails the Update, which must not happen to one run alone.
func (r *transactor) Sweep(ctx context.Context, fn func(sqlstore.TxQuerier) (bool, error)) (bool, error) {
	c, err := r.acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("metastore: sweep: %w", err)
	}
	defer c.Release()
	tc := &txConn{c: c.Conn(), timeout: r.timeout, pending: []stmt{{sql: beginReadCommitted}, {sql: lockUpdateShared}}}
	defer r.count(tc)
	done := context.WithoutCancel(ctx)
	var swept bool
	err = run(func() error {
		var err error
		swept, err = fn(tc)
		return err
	})
	if err != nil || !swept {
		tc.rollback(done)
		return false, err
	}
	if err := tc.commit(done); err != nil {
		return false, fmt.Errorf("metastore: sweep: %w", err)
	}
	return true, nil
}

// TxStats are counts of what a Store's transactions did since it opened.
type TxStats struct {
	// Retries are the attempts retried after a conflict (a serialization failure or
	// a deadlock), and Alone those that ran alone after too many (escalateAfter).
	Retries, Alone int64
	// RoundTrips are the batches of statements sent, and Statements the statements in
	// them, BEGIN and COMMIT included.
	RoundTrips, Statements int64
}

// TxStats returns what the Store's transactions did since it opened.
func (s *Store) TxStats() TxStats {
	r := s.run
	return TxStats{Retries: r.retries.Load(), Alone: r.escalations.Load(),
		RoundTrips: r.roundTrips.Load(), Statements: r.statements.Load()}
}

// count adds what tc sent to the totals.
func (r *transactor) count(tc *txConn) {
	r.roundTrips.Add(tc.trips)
	r.statements.Add(tc.stmts)
}

// Close implements sqlstore.Transactor: it waits for the connections in use, then
// closes them all.
func (r *transactor) Close() error {
	r.write.Close()
	r.read.Close()
	return nil
}

// stmt is a statement to send before another, in the same round trip.
type stmt struct {
	sql  string
	args []any
}

// txConn runs the statements of one transaction on one connection. BEGIN, and what is
// deferred, goes out with the next statement, in one batch; every error is watched for
// a conflict, which makes the transaction one to retry, and for the first failure,
// after which PostgreSQL refuses every statement until the rollback.
type txConn struct {
	c        *pgx.Conn
	timeout  time.Duration // of each round trip
	pending  []stmt        // BEGIN until sent, and deferred statements
	begun    bool
	deferred bool // a statement was deferred
	conflict bool
	failed   error

	trips, stmts int64 // round trips and statements sent
}

var _ sqlstore.TxQuerier = (*txConn)(nil)

// note records err, met on behalf of a caller whose context is ctx, and returns it:
// marked as the database being unreachable when it is (see unreachable).
func (tc *txConn) note(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	err = unreachable(ctx, err)
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

// Defer implements sqlstore.TxQuerier.
func (tc *txConn) Defer(sql string, args ...any) {
	tc.pending = append(tc.pending, stmt{sql: sql, args: args})
	tc.deferred = true
}

// send sends the pending statements, then sql, in one batch, with a round trip's
// deadline. The results of the pending ones are read; sql's are left to the caller,
// who must close the batch and then call done.
func (tc *txConn) send(ctx context.Context, sql string, args []any) (br pgx.BatchResults, done context.CancelFunc, err error) {
	b := &pgx.Batch{}
	pre := tc.pending
	tc.pending = nil
	for _, p := range pre {
		b.Queue(p.sql, p.args...)
	}
	b.Queue(sql, args...)
	bctx, done := context.WithTimeout(ctx, tc.timeout)
	br = tc.c.SendBatch(bctx, b)
	tc.begun = true
	tc.trips, tc.stmts = tc.trips+1, tc.stmts+int64(b.Len())
	for range pre {
		if _, err := br.Exec(); err != nil {
			br.Close()
			done()
			return nil, nil, tc.note(ctx, err)
		}
	}
	return br, done, nil
}

// Query implements sqlstore.Querier.
func (tc *txConn) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	br, done, err := tc.send(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		done()
		return nil, tc.note(ctx, err)
	}
	return &txRows{Rows: rows, br: br, tc: tc, ctx: ctx, done: done}, nil
}

// QueryRow implements sqlstore.Querier.
func (tc *txConn) QueryRow(ctx context.Context, sql string, args ...any) sqlstore.Row {
	rows, err := tc.Query(ctx, sql, args...)
	return &txRow{rows: rows, err: err}
}

// Exec implements sqlstore.Querier.
func (tc *txConn) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	br, done, err := tc.send(ctx, sql, args)
	if err != nil {
		return 0, err
	}
	defer done()
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag.RowsAffected(), tc.note(ctx, err)
}

// commit sends the pending statements and COMMIT in one batch. COMMIT of a transaction
// that an error aborted answers ROLLBACK, and no error: that is reported as the first
// failure.
func (tc *txConn) commit(ctx context.Context) error {
	if !tc.begun && !tc.deferred { // nothing was asked of the database
		return nil
	}
	if tc.failed != nil {
		tc.rollback(ctx)
		return fmt.Errorf("metastore: the transaction failed, and was rolled back: %w", tc.failed)
	}
	br, done, err := tc.send(ctx, `COMMIT`, nil)
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		done()
	}
	if err != nil {
		err = tc.note(ctx, err)
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
		tc.trips, tc.stmts = tc.trips+1, tc.stmts+1
		ctx, cancel := context.WithTimeout(ctx, tc.timeout)
		defer cancel()
		tc.c.Exec(ctx, `ROLLBACK`)
	}
}

// txRows are the rows of a query sent in a batch: closing them closes the batch and
// ends its deadline.
type txRows struct {
	pgx.Rows
	br   pgx.BatchResults
	tc   *txConn
	ctx  context.Context // the caller's
	done context.CancelFunc
}

func (r *txRows) Close() {
	r.Rows.Close()
	r.tc.note(r.ctx, r.Rows.Err())
	r.tc.note(r.ctx, r.br.Close())
	r.done()
}

func (r *txRows) Err() error {
	return r.tc.note(r.ctx, r.Rows.Err())
}

// txRow is the first row of txRows.
type txRow struct {
	rows sqlstore.Rows
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
		return sqlstore.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// pool is the read pool as a sqlstore.Querier; each statement has a round trip's
// deadline, its wait for a connection included.
type pool struct {
	p       *pgxpool.Pool
	timeout time.Duration
}

func (p pool) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	qctx, done := context.WithTimeout(ctx, p.timeout)
	rows, err := p.p.Query(qctx, sql, args...)
	if err != nil {
		done()
		return nil, unreachable(ctx, err)
	}
	return &poolRows{Rows: rows, ctx: ctx, done: done}, nil
}

func (p pool) QueryRow(ctx context.Context, sql string, args ...any) sqlstore.Row {
	qctx, done := context.WithTimeout(ctx, p.timeout)
	return poolRow{r: p.p.QueryRow(qctx, sql, args...), ctx: ctx, done: done}
}

func (p pool) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	qctx, done := context.WithTimeout(ctx, p.timeout)
	defer done()
	tag, err := p.p.Exec(qctx, sql, args...)
	return tag.RowsAffected(), unreachable(ctx, err)
}

// poolRows are the rows of a query of the read pool: closing them ends its deadline.
type poolRows struct {
	pgx.Rows
	ctx  context.Context // the caller's
	done context.CancelFunc
}

func (r *poolRows) Close() {
	r.Rows.Close()
	r.done()
}

func (r *poolRows) Err() error { return unreachable(r.ctx, r.Rows.Err()) }

type poolRow struct {
	r    pgx.Row
	ctx  context.Context // the caller's
	done context.CancelFunc
}

func (r poolRow) Scan(dest ...any) error {
	defer r.done()
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sqlstore.ErrNoRows
	}
	return unreachable(r.ctx, err)
}

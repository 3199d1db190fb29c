// Package sqlite is a metastore.Store in an embedded SQLite database (WAL mode), on the
// SQL core of sqlstore.
//
// Reads go through a pool of read-only connections and see the latest commit. Writes go
// through one connection owned by a writer goroutine that commits concurrent Updates
// together: each runs in a savepoint of a shared transaction, and one fsync of the WAL
// makes the whole group durable (synchronous=FULL). Under load this turns many small
// commits into few, without weakening durability.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlstore"
)

// maxBatch bounds how many Updates share one commit, so that one slow group does not
// hold back the next for long.
const maxBatch = 256

// Store is a metastore.Store in a SQLite database file.
type Store struct {
	*sqlstore.Store
	w *writer
}

var _ metastore.Store = (*Store)(nil)

var dialect = &sqlstore.Dialect{Queries: queries, Writes: writes{},
	Placeholder: func(n int) string { return "?" + strconv.Itoa(n) }}

// Open opens the database at path, creating it and bringing its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("metastore: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("metastore: open: %w", err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	// Transactions are plain BEGIN/COMMIT statements on one dedicated connection, so
	// that its prepared statements serve every transaction.
	c, err := w.Conn(ctx)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("metastore: open: %w", err)
	}
	wr := &writer{
		read: &conn{p: r},
		wc:   &conn{p: c},
		r:    r,
		w:    w,
		ops:  make(chan *op, maxBatch),
		done: make(chan struct{}),
	}
	go wr.run()
	s := &Store{Store: sqlstore.New(dialect, wr.read, wr), w: wr}
	if err := s.Backfill(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Ping implements metastore.Pinger: the database answers a read, and its writer is
// open.
func (s *Store) Ping(ctx context.Context) error {
	s.w.mu.RLock()
	closed := s.w.closed
	s.w.mu.RUnlock()
	if closed {
		return errors.New("metastore: the store is closed")
	}
	var one int
	if err := s.w.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("metastore: %w", err)
	}
	return nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(0)")
	// Readers read the database through one shared mapping, so their own page
	// caches stay small: a cache per connection would hold a copy of the same hot
	// pages eight times over.
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		q.Add("_pragma", "mmap_size(268435456)")
		q.Add("_pragma", "cache_size(-1024)") // 1 MiB
	} else {
		q.Add("_pragma", "cache_size(-16384)") // 16 MiB for the writer
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func migrate(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("metastore: read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("metastore: the database has schema version %d, newer than this graft knows (%d)", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("metastore: migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("metastore: migrate to version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("metastore: migrate: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("metastore: migrate: %w", err)
		}
	}
	return nil
}

// writer is the sqlstore.Transactor of SQLite: one goroutine owns the write connection
// and commits the Updates queued meanwhile as one transaction.
type writer struct {
	read *conn
	wc   *conn // the writer's one connection, used only by the writer goroutine
	r, w *sql.DB

	mu     sync.RWMutex // guards closed against sends on ops
	closed bool
	ops    chan *op
	done   chan struct{}
}

type op struct {
	ctx  context.Context
	fn   func(sqlstore.TxQuerier) error
	err  error
	done chan struct{}
}

// Update implements sqlstore.Transactor. fn runs exactly once.
func (w *writer) Update(ctx context.Context, fn func(sqlstore.TxQuerier) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan struct{})}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errors.New("metastore: closed")
	}
	select {
	case w.ops <- o:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	// Once queued, wait for the outcome even if ctx ends: the caller must learn
	// whether its writes were committed.
	<-o.done
	return o.err
}

// Sweep implements sqlstore.Transactor: it runs as one op of the writer, so every other
// write, the links and claims of the blob among them, waits until it is done.
func (w *writer) Sweep(ctx context.Context, fn func(sqlstore.TxQuerier) (bool, error)) (bool, error) {
	var swept bool
	err := w.Update(ctx, func(q sqlstore.TxQuerier) error {
		var err error
		swept, err = fn(q)
		return err
	})
	return swept && err == nil, err
}

func (w *writer) run() {
	defer close(w.done)
	batch := make([]*op, 0, maxBatch)
	for o := range w.ops {
		batch = append(batch[:0], o)
	fill:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		w.commit(batch)
		for _, o := range batch {
			close(o.done)
		}
	}
}

// commit runs batch in one transaction, each op in a savepoint of its own, so that
// an op that fails leaves the others' writes in place. When SQLite itself fails, the
// transaction may be gone: the savepoint statements then fail and so does every op.
func (w *writer) commit(batch []*op) {
	ctx := context.Background()
	c := w.wc
	if _, err := c.Exec(ctx, "BEGIN IMMEDIATE"); err != nil {
		failAll(batch, fmt.Errorf("metastore: begin: %w", err))
		return
	}
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		if _, err := c.Exec(ctx, "SAVEPOINT op"); err != nil {
			w.abort(batch, fmt.Errorf("metastore: savepoint: %w", err))
			return
		}
		q := &txQuerier{conn: c}
		o.err = run(o, q)
		if o.err == nil {
			o.err = q.deferred
		}
		if o.err != nil {
			if _, err := c.Exec(ctx, "ROLLBACK TO op"); err != nil {
				w.abort(batch, fmt.Errorf("metastore: roll back: %w", err))
				return
			}
		}
		if _, err := c.Exec(ctx, "RELEASE op"); err != nil {
			w.abort(batch, fmt.Errorf("metastore: release: %w", err))
			return
		}
	}
	if _, err := c.Exec(ctx, "COMMIT"); err != nil {
		w.abort(batch, fmt.Errorf("metastore: commit: %w", err))
	}
}

// abort rolls back the transaction, if SQLite has not already, and fails the batch.
func (w *writer) abort(batch []*op, err error) {
	w.wc.Exec(context.Background(), "ROLLBACK")
	for _, o := range batch {
		o.err = err
	}
}

func run(o *op, q *txQuerier) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("metastore: update panicked: %v", p)
		}
	}()
	return o.fn(q)
}

func failAll(batch []*op, err error) {
	for _, o := range batch {
		if o.err == nil {
			o.err = err
		}
	}
}

// Close implements sqlstore.Transactor: it waits for queued Updates, then closes the
// database.
func (w *writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.ops)
	w.mu.Unlock()
	<-w.done
	w.read.close()
	w.wc.close()
	return errors.Join(w.wc.p.(*sql.Conn).Close(), w.r.Close(), w.w.Close())
}

// txQuerier is the writer's connection as the transaction of one op. A deferred
// statement runs at once: there is no round trip to save. Its error is the next
// statement's, and the op's.
type txQuerier struct {
	*conn
	deferred error
}

func (q *txQuerier) Defer(sql string, args ...any) {
	if q.deferred == nil {
		_, q.deferred = q.conn.Exec(context.Background(), sql, args...)
	}
}

func (q *txQuerier) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	if q.deferred != nil {
		return nil, q.deferred
	}
	return q.conn.Query(ctx, sql, args...)
}

func (q *txQuerier) QueryRow(ctx context.Context, sql string, args ...any) sqlstore.Row {
	if q.deferred != nil {
		return errRow{q.deferred}
	}
	return q.conn.QueryRow(ctx, sql, args...)
}

func (q *txQuerier) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	if q.deferred != nil {
		return 0, q.deferred
	}
	return q.conn.Exec(ctx, sql, args...)
}

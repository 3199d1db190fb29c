// Package sqlite is a metastore.Store in an embedded SQLite database (WAL mode).
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
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/graft-registry/graft/internal/metastore"
)

// maxBatch bounds how many Updates share one commit, so that one slow group does not
// hold back the next for long.
const maxBatch = 256

// Store is a metastore.Store in a SQLite database file.
type Store struct {
	reader
	r  *sql.DB
	w  *sql.DB
	wc *conn // the writer's one connection, used only by the writer goroutine

	mu     sync.RWMutex // guards closed against sends on ops
	closed bool
	ops    chan *op
	done   chan struct{}
}

var _ metastore.Store = (*Store)(nil)

type op struct {
	ctx  context.Context
	fn   func(metastore.Tx) error
	err  error
	done chan struct{}
}

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
	s := &Store{
		reader: reader{q: &conn{p: r}},
		r:      r,
		w:      w,
		wc:     &conn{p: c},
		ops:    make(chan *op, maxBatch),
		done:   make(chan struct{}),
	}
	go s.writer()
	return s, nil
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

// Update implements metastore.Store. fn runs exactly once.
func (s *Store) Update(ctx context.Context, fn func(metastore.Tx) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errors.New("metastore: closed")
	}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	// Once queued, wait for the outcome even if ctx ends: the caller must learn
	// whether its writes were committed.
	<-o.done
	return o.err
}

func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*op, 0, maxBatch)
	for o := range s.ops {
		batch = append(batch[:0], o)
	fill:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
		for _, o := range batch {
			close(o.done)
		}
	}
}

// commit runs batch in one transaction, each op in a savepoint of its own, so that
// an op that fails leaves the others' writes in place. When SQLite itself fails, the
// transaction may be gone: the savepoint statements then fail and so does every op.
func (s *Store) commit(batch []*op) {
	ctx := context.Background()
	c := s.wc
	if _, err := c.exec(ctx, "BEGIN IMMEDIATE"); err != nil {
		failAll(batch, fmt.Errorf("metastore: begin: %w", err))
		return
	}
	t := &txn{reader: reader{q: c}}
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		if _, err := c.exec(ctx, "SAVEPOINT op"); err != nil {
			s.abort(batch, fmt.Errorf("metastore: savepoint: %w", err))
			return
		}
		o.err = run(o, t)
		if o.err == nil {
			o.err = t.flush(ctx)
		}
		t.pending = nil
		if o.err != nil {
			if _, err := c.exec(ctx, "ROLLBACK TO op"); err != nil {
				s.abort(batch, fmt.Errorf("metastore: roll back: %w", err))
				return
			}
		}
		if _, err := c.exec(ctx, "RELEASE op"); err != nil {
			s.abort(batch, fmt.Errorf("metastore: release: %w", err))
			return
		}
	}
	if _, err := c.exec(ctx, "COMMIT"); err != nil {
		s.abort(batch, fmt.Errorf("metastore: commit: %w", err))
	}
}

// abort rolls back the transaction, if SQLite has not already, and fails the batch.
func (s *Store) abort(batch []*op, err error) {
	s.wc.exec(context.Background(), "ROLLBACK")
	for _, o := range batch {
		o.err = err
	}
}

func run(o *op, t *txn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("metastore: update panicked: %v", p)
		}
	}()
	return o.fn(t)
}

func failAll(batch []*op, err error) {
	for _, o := range batch {
		if o.err == nil {
			o.err = err
		}
	}
}

// Close implements metastore.Store: it waits for queued Updates, then closes the
// database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.ops)
	s.mu.Unlock()
	<-s.done
	s.q.close()
	s.wc.close()
	return errors.Join(s.wc.p.(*sql.Conn).Close(), s.r.Close(), s.w.Close())
}

// conn runs statements prepared once, on a pool or on one connection, and cached by
// query text.
type conn struct {
	p interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}
	stmts sync.Map // string → *sql.Stmt
}

func (c *conn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := c.p.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := c.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (c *conn) close() {
	c.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
}

func (c *conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (c *conn) queryRow(ctx context.Context, query string, args ...any) *row {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return &row{err: err}
	}
	return &row{r: st.QueryRowContext(ctx, args...)}
}

func (c *conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// row is an *sql.Row that may carry a preparation error.
type row struct {
	r   *sql.Row
	err error
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

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
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlstore"
)

// Options configure a Store.
type Options struct {
	// URL is the database's connection string (postgres://user:password@host:port/db?...).
	URL string
	// MaxConns bounds the connections the Store opens, reads and writes together; 0
	// means 16 per CPU. Three quarters write: a write transaction holds its connection
	// while its commit waits for the disk, and concurrent commits share one flush of
	// the log (PostgreSQL's group commit), so the more commit at once, the fewer
	// flushes per push.
	MaxConns int32
	// Timeout bounds each round trip to the database, and the wait for a connection:
	// past it the database counts as unavailable (metastore.ErrUnavailable). 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// Store is a metastore.Store in a PostgreSQL database.
type Store struct {
	*sqlstore.Store
	run *transactor
}

var _ metastore.Store = (*Store)(nil)

var dialect = &sqlstore.Dialect{Queries: queries, Writes: writes{},
	Placeholder: func(n int) string { return "$" + strconv.Itoa(n) }}

// Open connects to the database, creates or migrates its schema, and returns a Store.
func Open(ctx context.Context, o Options) (*Store, error) {
	total := o.MaxConns
	if total <= 0 {
		total = int32(16 * runtime.GOMAXPROCS(0))
	}
	writers := max(1, total*3/4)
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
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	run := &transactor{read: read, write: write, escalateAfter: escalateAfter, maxAttempts: maxAttempts, timeout: timeout}
	s := &Store{Store: sqlstore.New(dialect, pool{read, timeout}, run), run: run}
	if err := s.Backfill(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Ping implements metastore.Pinger: both pools reach the database.
func (s *Store) Ping(ctx context.Context) error {
	for _, p := range []*pgxpool.Pool{s.run.read, s.run.write} {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("metastore: %w", err)
		}
	}
	return nil
}

// claimSlot gives a writing session the repository counter slot (the rows of
// repo_stats it adds to) that no other session holds, across replicas: the first free of
// 128, held by a session advisory lock until the connection closes; its backend pid
// modulo 64, which may be another's, when all are taken. pg_backend_pid() % 64 alone
// gave two of 24 sessions the same slot more often than not, and their concurrent
// pushes conflicted on its row.
const claimSlot = `SELECT set_config('graft.slot', coalesce(
	(SELECT n FROM generate_series(0, 127) n WHERE pg_try_advisory_lock(1735549301, n) LIMIT 1),
	pg_backend_pid() % 64)::text, false)`

// newPool connects a pool of conns connections. generic sets the write pool's plan
// mode (see below).
func newPool(ctx context.Context, url string, conns int32, generic bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("metastore: parse the database URL: %w", err)
	}
	cfg.MaxConns = conns
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
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
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, claimSlot)
			return err
		}
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

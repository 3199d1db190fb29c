package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/graft-registry/graft/internal/metastore/sqlstore"
)

// SQLite has no time or array types: the schema keeps times as integer nanoseconds
// since the epoch and lists as JSON text. The adapter converts the Go values the core
// speaks (time.Time, *time.Time, []string, []int64, []bool) on the way in and out.

// conn runs statements prepared once, on a pool or on one connection, and cached by
// query text.
type conn struct {
	p interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}
	stmts sync.Map // string → *sql.Stmt
}

var _ sqlstore.Querier = (*conn)(nil)

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

func (c *conn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	args = convertArgs(args)
	r, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (c *conn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	args = convertArgs(args)
	return row{st.QueryRowContext(ctx, args...)}
}

func (c *conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return 0, err
	}
	args = convertArgs(args)
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// convertArgs returns args with the values SQLite has no type for converted; args
// itself is left alone.
func convertArgs(args []any) []any {
	var out []any
	for i, a := range args {
		var v any
		switch a := a.(type) {
		case time.Time:
			v = a.UnixNano()
		case *time.Time:
			if a != nil {
				v = a.UnixNano()
			}
		case []string:
			v = jsonList(a, a == nil)
		case []int64:
			v = jsonList(a, a == nil)
		case []bool:
			v = jsonList(a, a == nil)
		default:
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = v
	}
	if out == nil {
		return args
	}
	return out
}

// jsonList is list as JSON text, or NULL for a nil list.
func jsonList(list any, isNil bool) any {
	if isNil {
		return nil
	}
	b, _ := json.Marshal(list) // lists of strings, numbers and booleans always marshal
	return string(b)
}

type rows struct{ r *sql.Rows }

func (r rows) Next() bool             { return r.r.Next() }
func (r rows) Err() error             { return r.r.Err() }
func (r rows) Close()                 { r.r.Close() }
func (r rows) Scan(dest ...any) error { return scan(r.r, dest) }

type row struct{ r *sql.Row }

func (r row) Scan(dest ...any) error {
	err := scan(r.r, dest)
	if errors.Is(err, sql.ErrNoRows) {
		return sqlstore.ErrNoRows
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// scan scans into dest, through stand-ins for the destinations SQLite has no type for.
func scan(s interface{ Scan(...any) error }, dest []any) error {
	var fix []func() error
	stand := func(i int, v any) { // dest is the caller's: replace in a copy
		if fix == nil {
			dest = append([]any(nil), dest...)
		}
		dest[i] = v
	}
	for i, d := range dest {
		switch p := d.(type) {
		case *time.Time:
			var n int64
			stand(i, &n)
			fix = append(fix, func() error { *p = time.Unix(0, n).UTC(); return nil })
		case **time.Time:
			var n sql.NullInt64
			stand(i, &n)
			fix = append(fix, func() error {
				*p = nil
				if n.Valid {
					t := time.Unix(0, n.Int64).UTC()
					*p = &t
				}
				return nil
			})
		case *[]string:
			var s sql.NullString
			stand(i, &s)
			fix = append(fix, func() error {
				*p = nil
				if !s.Valid {
					return nil
				}
				if err := json.Unmarshal([]byte(s.String), p); err != nil {
					return fmt.Errorf("a list column: %w", err)
				}
				return nil
			})
		}
	}
	if err := s.Scan(dest...); err != nil {
		return err
	}
	for _, f := range fix {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

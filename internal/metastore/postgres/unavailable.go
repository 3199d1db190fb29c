package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/graft-registry/graft/internal/metastore"
)

// A database that is down refuses or resets connections, which pgx reports at once; one
// that hangs, or a network that drops everything while the connections stay open,
// answers nothing, and a statement would wait for it forever. So each round trip to the
// database has a deadline (Options.Timeout), and what fails to reach the database is
// reported as metastore.ErrUnavailable: the server answers 503, and the pool replaces
// the connections that failed, so that the store recovers by itself once the database
// is back.

// DefaultTimeout is Options.Timeout when it is 0.
const DefaultTimeout = 10 * time.Second

// connectTimeout bounds a new connection's dial and handshake, unless the URL sets
// connect_timeout.
const connectTimeout = 5 * time.Second

// bounded returns ctx with the store's deadline for one round trip.
func (r *transactor) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// unreachable returns err, met by a round trip on behalf of a caller whose context is
// parent, marked as the database being unreachable when it is no answer of the
// database's own: a connection that failed or closed, or a deadline of the store's
// that passed. An error of the caller's own context (a client gone) is left as it is.
func unreachable(parent context.Context, err error) error {
	if err == nil || parent.Err() != nil || errors.Is(err, metastore.ErrUnavailable) {
		return err
	}
	var (
		pe   *pgconn.PgError
		ce   *pgconn.ConnectError
		ne   net.Error
		gone bool
	)
	switch {
	case errors.As(err, &pe):
		switch pe.Code {
		case "57P01", "57P02", "57P03", "53300": // admin or crash shutdown, cannot connect now, too many connections
			gone = true
		default:
			gone = pe.Code[:2] == "08" // connection exception
		}
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded):
		gone = true
	}
	if !gone {
		return err
	}
	return fmt.Errorf("%w: %w", metastore.ErrUnavailable, err)
}

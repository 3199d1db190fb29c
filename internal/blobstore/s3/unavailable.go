package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/graft-registry/graft/internal/blobstore"
)

// A server that is down refuses or resets connections, which the SDK retries a few
// times and then reports; one that hangs, or a network that drops everything while the
// connections stay open, answers nothing, and a request would wait for it forever. So a
// connection that moves no byte either way for connIdle, while a request waits on it,
// fails, and such a silence is not retried; and whatever fails to reach the server (or
// is the server's own 5xx) is reported as blobstore.ErrUnavailable: the registry
// answers 503, and the transport opens new connections once the server is back.

const (
	// connIdle is how long a connection may move no byte while a request is under way.
	// Servers send a response's headers, or keep-alive whitespace, well within it.
	connIdle = 20 * time.Second
	// dialTimeout bounds connecting to the server.
	dialTimeout = 5 * time.Second
)

// idleConn is a connection whose every read and write must make progress within idle:
// each one moves the deadline, and a write moves the deadline of the read that awaits
// its answer too.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.Conn.SetDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(p)
}

// boundTransport makes tr's connections idleConns, dialled within dialTimeout.
func boundTransport(tr *http.Transport) {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &idleConn{Conn: c, idle: connIdle}, nil
	}
}

// retryer is the SDK's standard retryer, but for a connection that went silent: it was
// given connIdle already, and another attempt would only make the caller wait as long
// again.
func retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		silent := retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return aws.FalseTernary
			}
			return aws.UnknownTernary
		})
		o.Retryables = append([]retry.IsErrorRetryable{silent}, o.Retryables...)
	})
}

// markUnavailable is a middleware of every operation: it marks what failed to reach the
// server as the server being unavailable (see unreachable).
func markUnavailable(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("graftUnavailable",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			return out, md, unreachable(ctx, err)
		}), middleware.Before)
}

// unreachable returns err, met on behalf of a caller whose context is ctx, marked as
// the server being unavailable when the request could not be sent or answered (a
// connection refused, reset or silent), or the server answered 5xx. An error of the
// caller's own context (a client gone) is left as it is.
func unreachable(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, blobstore.ErrUnavailable) {
		return err
	}
	var (
		send *smithyhttp.RequestSendError
		ne   net.Error
	)
	switch {
	case status(err) >= 500, errors.As(err, &send), errors.As(err, &ne),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %w", blobstore.ErrUnavailable, err)
	}
	return err
}

package mirror

import (
	"context"
	"errors"
	"net/http"

	"oras.land/oras-go/v2/errdef"
	orascode "oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/graft-registry/graft/internal/errcode"
)

func isNotFound(err error) bool { return errors.Is(err, errdef.ErrNotFound) }

// failed is the error a client gets when the upstream could not give what (a manifest
// or blob, named for the message) and the mirror holds no copy of it; unknown is the
// code of "not there". The upstream's own error is logged, not shown: it may name
// addresses that are the server's business.
func (s *Set) failed(up *upstream, err error, unknown errcode.Code, what string) error {
	var e *errcode.Error
	if errors.As(err, &e) {
		return err
	}
	var resp *orascode.ErrorResponse
	switch {
	case isNotFound(err):
		return errcode.New(unknown, "%s is not in mirror %s, nor upstream at %s", what, up.Prefix, up.Upstream)
	case errors.Is(err, errClosed), errors.Is(err, context.Canceled) && s.ctx.Err() != nil:
		return errcode.New(errcode.Unavailable, "mirror %s is shutting down", up.Prefix)
	case errors.As(err, &resp):
		s.log.Warn("mirror: the upstream refused a request", "mirror", up.Prefix, "upstream", up.Upstream, "status", resp.StatusCode, "err", err)
		switch resp.StatusCode {
		case http.StatusNotFound:
			return errcode.New(unknown, "%s is not in mirror %s, nor upstream at %s", what, up.Prefix, up.Upstream)
		case http.StatusTooManyRequests:
			return errcode.New(errcode.TooManyRequests, "upstream %s of mirror %s limits its requests: %s is not here yet; try again later", up.Upstream, up.Prefix, what)
		case http.StatusUnauthorized, http.StatusForbidden:
			return errcode.New(unknown, "upstream %s of mirror %s refused access to %s (%d): it has no such repository, or the mirror's credentials do not reach it",
				up.Upstream, up.Prefix, what, resp.StatusCode)
		}
		return errcode.New(errcode.Unavailable, "upstream %s of mirror %s failed (%d) to give %s, which the mirror does not hold",
			up.Upstream, up.Prefix, resp.StatusCode, what).WithStatus(http.StatusBadGateway)
	case unreachable(err):
		s.log.Warn("mirror: the upstream cannot be reached", "mirror", up.Prefix, "upstream", up.Upstream, "err", err)
		return errcode.New(errcode.Unavailable, "upstream %s of mirror %s cannot be reached, and the mirror does not hold %s", up.Upstream, up.Prefix, what)
	}
	s.log.Warn("mirror: the upstream's answer is not usable", "mirror", up.Prefix, "upstream", up.Upstream, "err", err)
	return errcode.New(errcode.Unavailable, "upstream %s of mirror %s gave an answer the mirror cannot use for %s", up.Upstream, up.Prefix, what).
		WithStatus(http.StatusBadGateway)
}

// unreachable reports whether err is a failure to reach the upstream at all, or to
// hear from it in time, rather than an answer.
func unreachable(err error) bool {
	var resp *orascode.ErrorResponse
	if errors.As(err, &resp) {
		return false
	}
	var netErr interface{ Timeout() bool }
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded)
}

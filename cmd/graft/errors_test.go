package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/daemon"
)

func TestExitCodeAndDescribe(t *testing.T) {
	u, _ := url.Parse("https://registry.example.com/v2/app/manifests/v1")
	answer := func(code int, errs ...errcode.Error) *errcode.ErrorResponse {
		return &errcode.ErrorResponse{Method: "HEAD", URL: u, StatusCode: code, Errors: errs}
	}
	status := func(code int) error { return fmt.Errorf("resolving: %w", answer(code)) }
	dial := func(err error) error {
		return &url.Error{Op: "Get", URL: u.String(), Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	denied := answer(403, errcode.Error{Code: "DENIED", Message: "requested access to the resource is denied",
		Detail: []any{map[string]any{"Type": "repository", "Name": "team/app", "Action": "delete"}}})
	_, missing := os.Stat("/nonexistent/file")
	tests := []struct {
		name string
		err  error
		code int
		// want is in the message; never is not
		want, never string
	}{
		{name: "unauthorized", err: status(401), code: exitDenied, want: "log in with `graft login registry.example.com`"},
		{name: "forbidden", err: status(403), code: exitDenied, want: "check your permissions"},
		{name: "locked", err: fmt.Errorf("pushing: %w", answer(403, errcode.Error{Code: "DENIED", Message: "repository app is locked for writes"})),
			code: exitDenied, want: "locked for writes: `graft unlock` allows it again"},
		{name: "not found", err: status(404), code: exitNotFound, want: "check the repository"},
		{name: "not found in a layout", err: fmt.Errorf("v1: %w", errdef.ErrNotFound), code: exitNotFound, want: "check the repository"},
		{name: "server error", err: status(500), code: exitFailure, want: "500 Internal Server Error", never: ": check"},
		{name: "connection refused", err: dial(errors.New("connection refused")), code: exitUnreachable, want: "is the registry running"},
		{name: "DNS", err: dial(&net.DNSError{Err: "no such host", Name: "registry.example.com", IsNotFound: true}),
			code: exitUnreachable, want: "check the registry's host name", never: "plain-http"},
		{name: "HTTPS to plain HTTP", err: errors.New(`Get "https://h/v2/": http: server gave HTTP response to HTTPS client`), code: exitUnreachable, want: "--plain-http"},
		{name: "declined", err: fmt.Errorf("delete: %w", client.ErrDeclined), code: exitDeclined, want: "--yes"},
		{name: "interrupted", err: fmt.Errorf("copy: %w", context.Canceled), code: exitInterrupted},
		{name: "a server's address taken", err: &net.OpError{Op: "listen", Net: "tcp", Err: errors.New("bind: address already in use")}, code: exitFailure},
		// a missing file's errno looks like a net.Error: it is not a network failure
		{name: "missing file", err: missing, code: exitFailure},
		{name: "usage", err: &client.UsageError{Err: errors.New("bad")}, code: exitUsage, want: "bad: see --help"},
		{name: "usage with its own hint", err: &hintedError{&client.UsageError{Err: errors.New("no terminal")}, "pass --password-stdin"},
			code: exitUsage, want: "no terminal: pass --password-stdin", never: "--help"},
		{name: "wrong password", err: &client.LoginError{Host: "registry.example.com", Err: answer(401)}, code: exitDenied,
			want: "check the user name and password", never: "graft login"},
		{name: "no data dir", err: fmt.Errorf("the data directory x %w", daemon.ErrNoDataDir), code: exitFailure, want: "--data-dir"},
		// the library's words are graft's
		{name: "a copy step", err: fmt.Errorf("pushing to r/app:v1: %w", &oras.CopyError{Op: "Exists", Origin: oras.CopyErrorOriginDestination, Err: status(401)}),
			code: exitDenied, want: "pushing to r/app:v1: checking what the destination has: resolving: HEAD https://registry.example.com/v2/app/manifests/v1: 401 Unauthorized",
			never: "failed to perform"},
		{name: "a pull's write", err: fmt.Errorf("pulling x into dir: %w", &oras.CopyError{Op: "Push", Origin: oras.CopyErrorOriginDestination, Err: errors.New("open dir/a.txt: is a directory")}),
			code: exitFailure, want: "pulling x into dir: writing to the destination: open dir/a.txt: is a directory", never: "Push"},
		{name: "a detail", err: fmt.Errorf("deleting: %w", denied), code: exitDenied,
			want: "403 Forbidden: requested access to the resource is denied (needs delete on repository team/app)", never: "map["},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.code {
				t.Errorf("exitCode = %d, want %d", got, tt.code)
			}
			msg := describe(tt.err)
			if strings.Contains(msg, "\n") {
				t.Errorf("describe spans lines: %q", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("describe = %q, want it to say %q", msg, tt.want)
			}
			if tt.never != "" && strings.Contains(msg, tt.never) {
				t.Errorf("describe = %q, want it not to say %q", msg, tt.never)
			}
		})
	}
	if exitCode(nil) != exitOK {
		t.Error("nil is not success")
	}
}

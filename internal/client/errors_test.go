package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

func TestExitCodeAndDescribe(t *testing.T) {
	u, _ := url.Parse("https://registry.example.com/v2/app/manifests/v1")
	status := func(code int) error {
		return fmt.Errorf("resolving: %w", &errcode.ErrorResponse{Method: "HEAD", URL: u, StatusCode: code})
	}
	_, missing := os.Stat("/nonexistent/file")
	tests := []struct {
		name string
		err  error
		code int
		hint string
	}{
		{"unauthorized", status(401), ExitDenied, "graft login registry.example.com"},
		{"forbidden", status(403), ExitDenied, "locked"},
		{"not found", status(404), ExitNotFound, "check the repository"},
		{"not found in a layout", fmt.Errorf("v1: %w", errdef.ErrNotFound), ExitNotFound, "check the repository"},
		{"server error", status(500), ExitFailure, ""},
		{"connection refused", &url.Error{Op: "Get", URL: u.String(), Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}, ExitUnreachable, "--plain-http"},
		{"HTTPS to plain HTTP", errors.New(`Get "https://h/v2/": http: server gave HTTP response to HTTPS client`), ExitUnreachable, "--plain-http"},
		{"declined", fmt.Errorf("delete: %w", ErrDeclined), ExitDeclined, "--yes"},
		{"interrupted", fmt.Errorf("copy: %w", context.Canceled), ExitInterrupted, ""},
		// a missing file's errno looks like a net.Error: it is not a network failure
		{"missing file", missing, ExitFailure, ""},
		{"usage", &UsageError{Err: errors.New("bad")}, ExitUsage, "--help"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.code {
				t.Errorf("ExitCode = %d, want %d", got, tt.code)
			}
			msg := Describe(tt.err)
			if strings.Contains(msg, "\n") {
				t.Errorf("Describe spans lines: %q", msg)
			}
			if !strings.Contains(msg, tt.hint) {
				t.Errorf("Describe = %q, want it to say %q", msg, tt.hint)
			}
		})
	}
	if ExitCode(nil) != ExitOK {
		t.Error("nil is not success")
	}
}

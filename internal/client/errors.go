package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Exit codes of the client verbs, so that scripts can tell failures apart without
// parsing messages.
const (
	ExitOK = 0
	// ExitFailure is any failure no other code describes.
	ExitFailure = 1
	// ExitUsage is a wrong command line: unknown flag, missing argument, bad reference.
	ExitUsage = 2
	// ExitNotFound means the registry has no such repository, manifest, tag or blob.
	ExitNotFound = 3
	// ExitDenied means authentication failed or the registry refused the operation
	// (401, 403, a locked manifest).
	ExitDenied = 4
	// ExitUnreachable means the registry could not be reached: connection, DNS or TLS.
	ExitUnreachable = 5
	// ExitDeclined means the user answered no, or there was no one to ask.
	ExitDeclined = 6
	// ExitInterrupted is the shell's code for a SIGINT.
	ExitInterrupted = 130
)

// A UsageError is a mistake on the command line.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ErrDeclined is returned when a destructive operation was not confirmed.
var ErrDeclined = errors.New("not confirmed")

// ErrDenied wraps refusals that are not HTTP answers, such as locked manifests left
// behind by a delete.
var ErrDenied = errors.New("denied")

// ExitCode maps err to one of the Exit codes.
func ExitCode(err error) int {
	var (
		usage   *UsageError
		resp    *errcode.ErrorResponse
		opErr   *net.OpError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &usage):
		return ExitUsage
	case errors.Is(err, ErrDeclined):
		return ExitDeclined
	case errors.Is(err, ErrDenied), errors.Is(err, auth.ErrBasicCredentialNotFound):
		return ExitDenied
	case errors.As(err, &resp):
		switch resp.StatusCode {
		case http.StatusNotFound:
			return ExitNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return ExitDenied
		}
		return ExitFailure
	case errors.Is(err, errdef.ErrNotFound):
		return ExitNotFound
	case errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &hostErr),
		errors.As(err, &dnsErr), errors.As(err, &opErr), isPlainHTTPMismatch(err):
		return ExitUnreachable
	}
	return ExitFailure
}

// Describe renders err as one line that ends with what to do about it, where graft
// can tell.
func Describe(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if hint := hint(err); hint != "" {
		msg += ": " + hint
	}
	return msg
}

func hint(err error) string {
	var (
		resp    *errcode.ErrorResponse
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		opErr   *net.OpError
		urlErr  *url.Error
		usage   *UsageError
	)
	switch {
	case errors.As(err, &usage):
		return "see --help"
	case errors.Is(err, ErrDeclined):
		return "pass --yes to go ahead without asking"
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		// oras-go names the request in the message only
		host := "HOST"
		if m := requestHostRe.FindStringSubmatch(err.Error()); m != nil {
			host = m[1]
		}
		return fmt.Sprintf("the registry wants a user name and password: log in with `graft login %s`", host)
	case errors.As(err, &resp):
		host := resp.URL.Host
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Sprintf("log in with `graft login %s`", host)
		case http.StatusForbidden:
			return "the registry refused: check your permissions, and whether the repository or manifest is locked"
		case http.StatusNotFound:
			return "check the repository, tag or digest (`graft tag list`, `graft repo list`)"
		case http.StatusBadRequest:
			if resp.URL.Scheme == "http" {
				// what an HTTPS server answers a plain HTTP request
				return "if the registry speaks HTTPS, pass --plain-http=false (plain HTTP is the default for loopback hosts)"
			}
		}
	case errors.Is(err, errdef.ErrNotFound):
		return "check the repository, tag or digest (`graft tag list`, `graft repo list`)"
	case isPlainHTTPMismatch(err):
		return "the registry speaks plain HTTP: pass --plain-http"
	case errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &hostErr):
		return "trust the registry's CA with --ca-file FILE, or skip verification with --insecure"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		if errors.As(err, &urlErr) && strings.HasPrefix(urlErr.URL, "https:") {
			return "is the registry running at that address? If it speaks plain HTTP, pass --plain-http"
		}
		return "is the registry running at that address?"
	}
	return ""
}

var requestHostRe = regexp.MustCompile(`"https?://([^/"]+)/`)

// isPlainHTTPMismatch reports the error Go's HTTP client gives when an HTTPS request
// is answered in plain HTTP; it has no type of its own.
func isPlainHTTPMismatch(err error) bool {
	return strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

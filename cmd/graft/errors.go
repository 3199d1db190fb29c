package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/graft-registry/graft/internal/client"
	"github.com/graft-registry/graft/internal/daemon"
)

// Exit codes, so that scripts can tell failures apart without parsing messages. Every
// verb returns its error; main alone turns it into one of these.
const (
	exitOK = 0
	// exitFailure is any failure no other code describes.
	exitFailure = 1
	// exitUsage is a wrong command line: unknown flag, missing argument, bad reference.
	exitUsage = 2
	// exitNotFound means the registry has no such repository, manifest, tag or blob.
	exitNotFound = 3
	// exitDenied means authentication failed or the registry refused the operation
	// (401, 403, a locked manifest).
	exitDenied = 4
	// exitUnreachable means the registry could not be reached: connection, DNS or TLS.
	exitUnreachable = 5
	// exitDeclined means the user answered no, or there was no one to ask.
	exitDeclined = 6
	// exitInterrupted is the shell's code for a SIGINT.
	exitInterrupted = 130
)

// exitCode maps err to one of the exit codes.
func exitCode(err error) int {
	var (
		usage   *client.UsageError
		resp    *errcode.ErrorResponse
		opErr   *net.OpError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &usage):
		return exitUsage
	case errors.Is(err, client.ErrDeclined):
		return exitDeclined
	case errors.Is(err, client.ErrDenied), errors.Is(err, auth.ErrBasicCredentialNotFound):
		return exitDenied
	case errors.As(err, &resp):
		switch resp.StatusCode {
		case http.StatusNotFound:
			return exitNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return exitDenied
		}
		return exitFailure
	case errors.Is(err, errdef.ErrNotFound):
		return exitNotFound
	case errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &hostErr),
		errors.As(err, &dnsErr), isPlainHTTPMismatch(err),
		// graft serve's own address taken is no registry out of reach
		errors.As(err, &opErr) && opErr.Op != "listen":
		return exitUnreachable
	}
	return exitFailure
}

// describe renders err as one line in graft's words, ending with what to do about it
// where graft can tell.
func describe(err error) string {
	msg := strings.Join(strings.Fields(render(err)), " ")
	if hint := hint(err); hint != "" {
		msg += ": " + hint
	}
	return msg
}

// A hintedError carries the one hint that fits it, where only the verb knows it.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() }
func (e *hintedError) Unwrap() error { return e.err }

// hint is the one thing to do about err that fits it, or "".
func hint(err error) string {
	var (
		hinted   *hintedError
		resp     *errcode.ErrorResponse
		certErr  *tls.CertificateVerificationError
		uaErr    x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		dnsErr   *net.DNSError
		opErr    *net.OpError
		urlErr   *url.Error
		usage    *client.UsageError
		loginErr *client.LoginError
	)
	status := 0
	if errors.As(err, &resp) {
		status = resp.StatusCode
	}
	switch {
	case errors.As(err, &hinted):
		return hinted.hint
	case errors.As(err, &usage):
		return "see --help"
	case errors.Is(err, client.ErrDeclined):
		return "pass --yes to go ahead without asking"
	case errors.Is(err, daemon.ErrNoDataDir):
		return "name the registry's data directory with --data-dir or --config"
	case errors.As(err, &loginErr) && status == http.StatusUnauthorized:
		return "check the user name and password"
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		// oras-go names the request in the message only
		host := "HOST"
		if m := requestHostRe.FindStringSubmatch(err.Error()); m != nil {
			host = m[1]
		}
		return fmt.Sprintf("the registry wants a user name and password: log in with `graft login %s`", host)
	case status == http.StatusUnauthorized:
		return fmt.Sprintf("log in with `graft login %s`", resp.URL.Host)
	case status == http.StatusForbidden && locked(resp):
		return "`graft unlock` allows it again"
	case status == http.StatusForbidden:
		return "the registry refused: check your permissions, and whether the repository or manifest is locked"
	case status == http.StatusNotFound, status == 0 && errors.Is(err, errdef.ErrNotFound):
		return "check the repository, tag or digest (`graft tag list`, `graft repo list`)"
	case status == http.StatusBadRequest && resp.URL.Scheme == "http":
		// what an HTTPS server answers a plain HTTP request
		return "if the registry speaks HTTPS, pass --plain-http=false (plain HTTP is the default for loopback hosts)"
	case isPlainHTTPMismatch(err):
		return "the registry speaks plain HTTP: pass --plain-http"
	case errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &hostErr):
		return "trust the registry's CA with --ca-file FILE, or skip verification with --insecure"
	case errors.As(err, &dnsErr):
		return "check the registry's host name"
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

// locked reports whether a refusal is graft's for a lock.
func locked(resp *errcode.ErrorResponse) bool {
	for _, e := range resp.Errors {
		if strings.Contains(e.Message, "locked") {
			return true
		}
	}
	return false
}

// render is err's text with the library's words put in graft's, wherever they occur
// in its chain: a copy step of oras-go ("failed to perform "Exists" on destination")
// says what was being done; a registry's error answer reads as the request, the
// status and the registry's message, without a Go rendering of its detail.
func render(err error) string {
	switch e := err.(type) {
	case *oras.CopyError:
		return copyStep(e) + ": " + render(e.Err)
	case *errcode.ErrorResponse:
		return answer(e)
	}
	s := err.Error()
	var inner []error
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		inner = []error{u.Unwrap()}
	case interface{ Unwrap() []error }:
		inner = u.Unwrap()
	}
	for _, e := range inner {
		if e == nil {
			continue
		}
		// a wrapping error's text holds its cause's: replace that part only
		if text := e.Error(); text != "" {
			if i := strings.LastIndex(s, text); i >= 0 {
				s = s[:i] + render(e) + s[i+len(text):]
			}
		}
	}
	return s
}

// copyStep says what an oras-go copy was doing when it failed.
func copyStep(e *oras.CopyError) string {
	switch e.Op {
	case "Exists":
		return "checking what the destination has"
	case "Push":
		return "writing to the destination"
	case "PushReference", "Tag":
		return "tagging in the destination"
	case "Mount":
		return "mounting in the destination"
	case "Fetch", "FetchReference":
		return "reading from the source"
	case "Resolve":
		return "resolving in the source"
	case "FindSuccessors", "Successors":
		return "reading what the source's manifest references"
	}
	if e.Origin == oras.CopyErrorOriginDestination {
		return "copying to the destination"
	}
	return "copying from the source"
}

// answer renders a registry's error answer: the request, the status, and what the
// registry said, with the access it wanted when it says that.
func answer(r *errcode.ErrorResponse) string {
	var b strings.Builder
	b.WriteString(r.Method)
	if r.URL != nil {
		b.WriteString(" " + r.URL.Redacted())
	}
	fmt.Fprintf(&b, ": %d %s", r.StatusCode, http.StatusText(r.StatusCode))
	for _, e := range r.Errors {
		msg := e.Message
		if msg == "" {
			msg = strings.ToLower(strings.ReplaceAll(e.Code, "_", " "))
		}
		b.WriteString(": " + msg)
		if a := access(e.Detail); a != "" {
			b.WriteString(" (" + a + ")")
		}
	}
	return b.String()
}

// access renders the detail distribution and graft give UNAUTHORIZED and DENIED, the
// access the request needed ([{"Type": "repository", "Name": "team/app", "Action":
// "delete"}]), as "delete on repository team/app"; any other detail as "".
func access(detail any) string {
	if detail == nil {
		return ""
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return ""
	}
	var needs []struct{ Type, Name, Action string }
	if json.Unmarshal(b, &needs) != nil {
		return ""
	}
	var out []string
	for _, n := range needs {
		if n.Action == "" || n.Type == "" {
			return ""
		}
		out = append(out, strings.TrimSpace(n.Action+" on "+n.Type+" "+n.Name))
	}
	if len(out) == 0 {
		return ""
	}
	return "needs " + strings.Join(out, ", ")
}

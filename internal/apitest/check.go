package apitest

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"github.com/graft-registry/graft/internal/errcode"
)

// WantStatus stops the test unless r has status.
func WantStatus(t testing.TB, what string, r *Response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: got %v, want status %d", what, r, status)
	}
}

// WantHeader reports an error unless r's header key is want ("" for absent).
func WantHeader(t testing.TB, what string, r *Response, key, want string) {
	t.Helper()
	if got := r.Header.Get(key); got != want {
		t.Errorf("%s: %s is %q, want %q", what, key, got, want)
	}
}

// Errors decodes the spec's error body of r; ok is false when the body is not one.
func (r *Response) Errors() (errs []errcode.ErrorInfo, ok bool) {
	var body errcode.ErrorResponse
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Errors) == 0 {
		return nil, false
	}
	return body.Errors, true
}

// ErrorCode is the code of the first error of r's body, or "".
func (r *Response) ErrorCode() string {
	errs, _ := r.Errors()
	if len(errs) == 0 {
		return ""
	}
	return errs[0].Code
}

// CheckError reports an error, and returns false, unless r has status and is the
// spec's error answer: a JSON body holding one error of code (any code when code is
// ""). The answer to a HEAD request has no body; only its status counts.
func CheckError(t testing.TB, what string, r *Response, status int, code string) bool {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: got %v, want status %d %s", what, r, status, code)
		return false
	}
	if r.Method == http.MethodHead {
		if len(r.Body) != 0 {
			t.Errorf("%s: the answer to HEAD has a body: %v", what, r)
			return false
		}
		return true
	}
	errs, ok := r.Errors()
	switch {
	case !ok:
		t.Errorf("%s: not a spec error body: %v", what, r)
		return false
	case r.Header.Get("Content-Type") != "application/json":
		t.Errorf("%s: error body of Content-Type %q", what, r.Header.Get("Content-Type"))
		return false
	case len(errs) != 1 || code != "" && errs[0].Code != code:
		t.Errorf("%s: got %v, want the one error %s", what, r, code)
		return false
	}
	return true
}

// WantError is CheckError that stops the test.
func WantError(t testing.TB, what string, r *Response, status int, code string) {
	t.Helper()
	if !CheckError(t, what, r, status, code) {
		t.FailNow()
	}
}

var linkRe = regexp.MustCompile(`^<([^>]+)>;\s*rel="?next"?$`)

// NextLink returns the target of r's Link rel="next" header, or "" when it has none;
// a malformed Link fails the test.
func NextLink(t testing.TB, r *Response) string {
	t.Helper()
	link := r.Header.Get("Link")
	if link == "" {
		return ""
	}
	m := linkRe.FindStringSubmatch(link)
	if m == nil {
		t.Fatalf("%s %s: malformed Link header %q", r.Method, r.URL, link)
		return ""
	}
	return m[1]
}

// Decode decodes the JSON body into v, and stops the test if it cannot.
func Decode(t testing.TB, what string, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, clip(body))
	}
}

// JSON encodes v.
func JSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package apitest

import (
	"fmt"
	"net/http"
	"testing"
)

// recorder is a test that keeps its failures instead of failing: a check must report
// what differs, or every test built on it passes whatever the registry answers.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(f string, a ...any) { r.errors = append(r.errors, fmt.Sprintf(f, a...)) }
func (r *recorder) Fatalf(f string, a ...any) { r.Errorf(f, a...) }
func (r *recorder) FailNow()                  {}

func answer(method string, status int, contentType, body string) *Response {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return &Response{Method: method, URL: "/v2/x", Status: status, Header: h, Body: []byte(body)}
}

func TestCheckError(t *testing.T) {
	const one = `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"m"}]}`
	for _, tc := range []struct {
		name   string
		r      *Response
		status int
		code   string
		ok     bool
	}{
		{"the error", answer("GET", 404, "application/json", one), 404, "MANIFEST_UNKNOWN", true},
		{"any code", answer("GET", 404, "application/json", one), 404, "", true},
		{"HEAD, no body", answer("HEAD", 404, "", ""), 404, "MANIFEST_UNKNOWN", true},
		{"another status", answer("GET", 400, "application/json", one), 404, "MANIFEST_UNKNOWN", false},
		{"another code", answer("GET", 404, "application/json", one), 404, "BLOB_UNKNOWN", false},
		{"not JSON", answer("GET", 404, "application/json", "not found"), 404, "MANIFEST_UNKNOWN", false},
		{"no errors", answer("GET", 404, "application/json", `{"errors":[]}`), 404, "", false},
		{"two errors", answer("GET", 404, "application/json",
			`{"errors":[{"code":"MANIFEST_UNKNOWN"},{"code":"MANIFEST_UNKNOWN"}]}`), 404, "MANIFEST_UNKNOWN", false},
		{"another Content-Type", answer("GET", 404, "text/plain", one), 404, "MANIFEST_UNKNOWN", false},
		{"HEAD with a body", answer("HEAD", 404, "application/json", one), 404, "MANIFEST_UNKNOWN", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			ok := CheckError(rec, "check", tc.r, tc.status, tc.code)
			if ok != tc.ok || ok != (len(rec.errors) == 0) {
				t.Errorf("CheckError: %v with errors %q, want %v", ok, rec.errors, tc.ok)
			}
		})
	}
}

func TestWantHeader(t *testing.T) {
	r := answer("GET", 200, "application/json", "{}")
	for _, tc := range []struct {
		key, want string
		ok        bool
	}{
		{"Content-Type", "application/json", true},
		{"Content-Type", "text/plain", false},
		{"Link", "", true},
		{"Content-Type", "", false},
	} {
		rec := &recorder{TB: t}
		WantHeader(rec, "check", r, tc.key, tc.want)
		if ok := len(rec.errors) == 0; ok != tc.ok {
			t.Errorf("WantHeader(%s, %q): errors %q, want ok %v", tc.key, tc.want, rec.errors, tc.ok)
		}
	}
}

func TestNextLink(t *testing.T) {
	for _, tc := range []struct {
		link, want string
		ok         bool
	}{
		{"", "", true},
		{`</v2/x/tags/list?last=a&n=1>; rel="next"`, "/v2/x/tags/list?last=a&n=1", true},
		{`</v2/_catalog?n=2>;rel=next`, "/v2/_catalog?n=2", true},
		{`/v2/x/tags/list; rel="next"`, "", false},
		{`</v2/x>; rel="prev"`, "", false},
	} {
		rec := &recorder{TB: t}
		r := answer("GET", 200, "", "")
		r.Header.Set("Link", tc.link)
		if got := NextLink(rec, r); got != tc.want || (len(rec.errors) == 0) != tc.ok {
			t.Errorf("NextLink(%q) = %q with errors %q, want %q", tc.link, got, rec.errors, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	c := &Client{URL: "http://127.0.0.1:5"}
	for _, tc := range []struct{ target, want string }{
		{"/v2/", "http://127.0.0.1:5/v2/"},
		{"/v2/a/../b/tags/list", "http://127.0.0.1:5/v2/a/../b/tags/list"}, // as sent, not cleaned
		{"/v2/x/blobs/uploads/id?digest=sha256:1", "http://127.0.0.1:5/v2/x/blobs/uploads/id?digest=sha256:1"},
		{"https://elsewhere/v2/", "https://elsewhere/v2/"},
	} {
		if got, err := c.Resolve(tc.target); err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.target, got, err, tc.want)
		}
	}
	if got, err := c.Resolve("v2/"); err == nil {
		t.Errorf("Resolve of a relative path = %q, want an error", got)
	}
}

func TestUploadRangeAndWithQuery(t *testing.T) {
	for size, want := range map[int64]string{0: "0-0", 1: "0-0", 10: "0-9"} {
		if got := UploadRange(size); got != want {
			t.Errorf("UploadRange(%d) = %q, want %q", size, got, want)
		}
	}
	if got := WithQuery("/v2/x/blobs/uploads/id?_state=s", "digest", "sha256:1"); got != "/v2/x/blobs/uploads/id?_state=s&digest=sha256%3A1" {
		t.Errorf("WithQuery = %q", got)
	}
}

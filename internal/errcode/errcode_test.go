package errcode_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/errcode"
)

func TestAs(t *testing.T) {
	orig := errcode.New(errcode.BlobUnknown, "blob %s is not in the repository", "sha256:abc")
	tests := []struct {
		name string
		err  error
	}{
		{"itself", orig},
		{"wrapped", fmt.Errorf("stat: %w", orig)},
		{"wrapped twice", fmt.Errorf("get: %w", fmt.Errorf("stat: %w", orig))},
		{"joined", errors.Join(errors.New("first"), orig)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errcode.As(tt.err); got != orig {
				t.Errorf("As(%v) = %#v, want the wrapped error", tt.err, got)
			}
			if !errcode.Is(tt.err, errcode.BlobUnknown) {
				t.Errorf("Is(%v, BLOB_UNKNOWN) = false", tt.err)
			}
			if errcode.Is(tt.err, errcode.ManifestUnknown) {
				t.Errorf("Is(%v, MANIFEST_UNKNOWN) = true", tt.err)
			}
		})
	}
}

func TestAsHidesPlainErrors(t *testing.T) {
	secret := "open /var/lib/graft/blobs/sha256/ab/abcdef: permission denied"
	for _, err := range []error{
		errors.New(secret),
		fmt.Errorf("reading: %w", &fs.PathError{Op: "open", Path: "/var/lib/graft/blobs", Err: fs.ErrPermission}),
	} {
		e := errcode.As(err)
		if e.Code != errcode.Unknown {
			t.Errorf("As(%v).Code = %v, want UNKNOWN", err, e.Code)
		}
		if got := e.HTTPStatus(); got != http.StatusInternalServerError {
			t.Errorf("As(%v).HTTPStatus() = %d, want 500", err, got)
		}
		body, jerr := json.Marshal(errcode.Body(e))
		if jerr != nil {
			t.Fatal(jerr)
		}
		for _, leak := range []string{"/var/lib", "permission", "open"} {
			if strings.Contains(e.Error(), leak) || strings.Contains(string(body), leak) {
				t.Errorf("As(%v) shows %q: %s / %s", err, leak, e.Error(), body)
			}
		}
		if errcode.Is(err, errcode.Unknown) {
			t.Errorf("Is(%v, UNKNOWN) = true for an error without a code", err)
		}
	}
	if e := errcode.As(nil); e.Code != errcode.Unknown {
		t.Errorf("As(nil).Code = %v, want UNKNOWN", e.Code)
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		err  *errcode.Error
		want int
	}{
		{errcode.New(errcode.BlobUnknown, "x"), http.StatusNotFound},
		{errcode.New(errcode.ManifestInvalid, "x"), http.StatusBadRequest},
		{errcode.New(errcode.Unauthorized, "x"), http.StatusUnauthorized},
		{errcode.New(errcode.Denied, "x"), http.StatusForbidden},
		{errcode.New(errcode.Unsupported, "x"), http.StatusMethodNotAllowed},
		{errcode.New(errcode.TooManyRequests, "x"), http.StatusTooManyRequests},
		{errcode.New(errcode.ManifestInvalid, "too big").WithStatus(http.StatusRequestEntityTooLarge), http.StatusRequestEntityTooLarge},
		{&errcode.Error{Code: errcode.BlobUploadInvalid, Status: http.StatusRequestedRangeNotSatisfiable}, http.StatusRequestedRangeNotSatisfiable},
		{errcode.New(errcode.ManifestInvalid, "too big").TooLarge(), http.StatusRequestEntityTooLarge},
		{errcode.New(errcode.BlobUploadInvalid, "gap").RangeNotSatisfiable(), http.StatusRequestedRangeNotSatisfiable},
	}
	for _, tt := range tests {
		if got := tt.err.HTTPStatus(); got != tt.want {
			t.Errorf("%v: HTTPStatus() = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestWithStatusAndDetailCopy(t *testing.T) {
	orig := errcode.New(errcode.ManifestInvalid, "manifest is %d bytes", 5<<20)
	saved := *orig

	withStatus := orig.WithStatus(http.StatusRequestEntityTooLarge)
	if withStatus == orig {
		t.Fatal("WithStatus returned its receiver")
	}
	if withStatus.Status != http.StatusRequestEntityTooLarge || withStatus.Code != orig.Code || withStatus.Message != orig.Message {
		t.Errorf("WithStatus = %+v", withStatus)
	}

	detail := map[string]any{"size": 5 << 20}
	withDetail := withStatus.WithDetail(detail)
	if withDetail == withStatus {
		t.Fatal("WithDetail returned its receiver")
	}
	if !reflect.DeepEqual(withDetail.Detail, detail) || withDetail.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("WithDetail = %+v, want the detail and the status it was made from", withDetail)
	}

	if !reflect.DeepEqual(*orig, saved) {
		t.Errorf("original changed to %+v, was %+v", *orig, saved)
	}
	if withStatus.Detail != nil {
		t.Errorf("WithDetail changed its receiver: %+v", withStatus)
	}
	if orig.HTTPStatus() != http.StatusBadRequest {
		t.Errorf("original HTTPStatus() = %d after WithStatus", orig.HTTPStatus())
	}
}

func TestError(t *testing.T) {
	if got, want := errcode.New(errcode.NameInvalid, "bad name %q", "A").Error(), `NAME_INVALID: bad name "A"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&errcode.Error{Code: errcode.NameUnknown}).Error(), "NAME_UNKNOWN"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestBody(t *testing.T) {
	errs := []*errcode.Error{
		errcode.New(errcode.BlobUnknown, "blob unknown to registry"),
		errcode.New(errcode.ManifestBlobUnknown, "blob %s is not in the repository", "sha256:abc").WithDetail("sha256:abc"),
	}
	b, err := json.Marshal(errcode.Body(errs...))
	if err != nil {
		t.Fatal(err)
	}
	// Decode generically: the test is about the bytes clients read, not about the
	// Go types that produce them.
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"errors": []any{
			map[string]any{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"},
			map[string]any{"code": "MANIFEST_BLOB_UNKNOWN", "message": "blob sha256:abc is not in the repository", "detail": "sha256:abc"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Body = %s, want %v", b, want)
	}
}

func TestBodyStructuredDetail(t *testing.T) {
	e := errcode.New(errcode.ManifestBlobUnknown, "missing").WithDetail([]string{"sha256:a", "sha256:b"})
	b, err := json.Marshal(errcode.Body(e))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Errors []map[string]json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Errors) != 1 {
		t.Fatalf("Body = %s, want one error", b)
	}
	for _, key := range []string{"code", "message", "detail"} {
		if _, ok := got.Errors[0][key]; !ok {
			t.Errorf("Body = %s has no %q", b, key)
		}
	}
	// The spec allows any JSON in detail: structured detail stays structured.
	var detail []string
	if err := json.Unmarshal(got.Errors[0]["detail"], &detail); err != nil ||
		!reflect.DeepEqual(detail, []string{"sha256:a", "sha256:b"}) {
		t.Errorf("detail = %s, want the JSON list [sha256:a sha256:b]", got.Errors[0]["detail"])
	}
}

func TestBodyEmpty(t *testing.T) {
	b, err := json.Marshal(errcode.Body())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"errors":[]}`; got != want {
		t.Errorf("Body() = %s, want %s", got, want)
	}
}

func TestCodesAreDistinct(t *testing.T) {
	codes := []errcode.Code{
		errcode.BlobUnknown, errcode.BlobUploadInvalid, errcode.BlobUploadUnknown, errcode.DigestInvalid,
		errcode.ManifestBlobUnknown, errcode.ManifestInvalid, errcode.ManifestUnknown, errcode.NameInvalid,
		errcode.NameUnknown, errcode.SizeInvalid, errcode.Unauthorized, errcode.Denied, errcode.Unsupported,
		errcode.TooManyRequests, errcode.PaginationNumberInvalid, errcode.Unknown,
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if seen[c.Name] {
			t.Errorf("code %s defined twice", c.Name)
		}
		seen[c.Name] = true
		if c.Name != strings.ToUpper(c.Name) || strings.ContainsAny(c.Name, " -") {
			t.Errorf("code %q is not in the spec's form", c.Name)
		}
		if c.Status < 400 || c.Status > 599 {
			t.Errorf("code %s has status %d", c.Name, c.Status)
		}
	}
}

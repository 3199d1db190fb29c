// Package errcode defines the error codes of the OCI distribution spec and the error
// values that carry them from the registry service to the HTTP layer.
package errcode

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is an error code of the distribution spec, with the HTTP status the spec gives it.
type Code struct {
	Name   string
	Status int
}

// The codes of distribution-spec v1.1, and PAGINATION_NUMBER_INVALID, which
// distribution and the clients built on it use for a bad `n`.
var (
	BlobUnknown             = Code{"BLOB_UNKNOWN", http.StatusNotFound}
	BlobUploadInvalid       = Code{"BLOB_UPLOAD_INVALID", http.StatusBadRequest}
	BlobUploadUnknown       = Code{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound}
	DigestInvalid           = Code{"DIGEST_INVALID", http.StatusBadRequest}
	ManifestBlobUnknown     = Code{"MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest}
	ManifestInvalid         = Code{"MANIFEST_INVALID", http.StatusBadRequest}
	ManifestUnknown         = Code{"MANIFEST_UNKNOWN", http.StatusNotFound}
	NameInvalid             = Code{"NAME_INVALID", http.StatusBadRequest}
	NameUnknown             = Code{"NAME_UNKNOWN", http.StatusNotFound}
	SizeInvalid             = Code{"SIZE_INVALID", http.StatusBadRequest}
	Unauthorized            = Code{"UNAUTHORIZED", http.StatusUnauthorized}
	Denied                  = Code{"DENIED", http.StatusForbidden}
	Unsupported             = Code{"UNSUPPORTED", http.StatusMethodNotAllowed}
	TooManyRequests         = Code{"TOOMANYREQUESTS", http.StatusTooManyRequests}
	PaginationNumberInvalid = Code{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest}
	// PreconditionFailed is graft's: a conditional manifest push (If-Match, as HTTP
	// has it) whose tag names another manifest by now.
	PreconditionFailed = Code{"PRECONDITION_FAILED", http.StatusPreconditionFailed}
	// Unavailable is distribution's, which clients know: a store the registry needs
	// cannot be reached for now (the same request may succeed later), or a pull-through
	// mirror's upstream failed it and it holds no copy (503 when the upstream cannot be
	// reached, 502 when it answered wrongly).
	Unavailable = Code{"UNAVAILABLE", http.StatusServiceUnavailable}
	// Unknown is what any error without a code becomes: its text is never shown.
	Unknown = Code{"UNKNOWN", http.StatusInternalServerError}
)

// Error is an error with a spec code. Message is shown to the client, so it must never
// hold a file path or an internal error's text; Detail is optional structured context.
type Error struct {
	Code    Code
	Message string
	Detail  any
	// Status, when set, overrides Code's HTTP status (413 for an oversized manifest,
	// 416 for an out-of-order chunk).
	Status int
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.Name
	}
	return e.Code.Name + ": " + e.Message
}

// HTTPStatus is the status an answer carrying e has.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.Status
}

// New returns an error with code c and a message made from format and args.
func New(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// WithStatus returns a copy of e answered with status instead of its code's.
func (e *Error) WithStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
}

// TooLarge returns a copy of e answered 413 Request Entity Too Large: what the client
// sent is over a limit, which distribution answers so too. It keeps the HTTP status
// here, so that the registry service can say it without importing net/http.
func (e *Error) TooLarge() *Error { return e.WithStatus(http.StatusRequestEntityTooLarge) }

// RangeNotSatisfiable returns a copy of e answered 416 Requested Range Not
// Satisfiable, as the spec answers a chunk that does not start where the upload ends.
func (e *Error) RangeNotSatisfiable() *Error {
	return e.WithStatus(http.StatusRequestedRangeNotSatisfiable)
}

// WithDetail returns a copy of e with detail.
func (e *Error) WithDetail(detail any) *Error {
	c := *e
	c.Detail = detail
	return &c
}

// As returns the *Error in err's chain, or an UNKNOWN error that hides err's text.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Unknown, Message: "internal server error"}
}

// Is reports whether err carries code c.
func Is(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c
}

// ErrorResponse is the spec's error body. It mirrors specs-go's ErrorResponse, whose
// detail is a string: the spec allows any JSON there, which is what clients get here.
type ErrorResponse struct {
	Errors []ErrorInfo `json:"errors"`
}

// ErrorInfo is one error of an ErrorResponse.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// Body is the spec's JSON error body for errs.
func Body(errs ...*Error) ErrorResponse {
	body := ErrorResponse{Errors: make([]ErrorInfo, 0, len(errs))}
	for _, e := range errs {
		body.Errors = append(body.Errors, ErrorInfo{Code: e.Code.Name, Message: e.Message, Detail: e.Detail})
	}
	return body
}

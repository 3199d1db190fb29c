package client

import "errors"

// A UsageError is a mistake on the command line: a bad reference, a missing file to
// push, a flag the verb cannot use.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ErrDeclined is returned when a destructive operation was not confirmed.
var ErrDeclined = errors.New("not confirmed")

// ErrDenied wraps refusals that are not HTTP answers, such as locked manifests left
// behind by a delete.
var ErrDenied = errors.New("denied")

// A LoginError is a login that failed: the registry refused the user name and
// password, or could not be asked.
type LoginError struct {
	Host string
	Err  error
}

func (e *LoginError) Error() string { return "logging in to " + e.Host + ": " + e.Err.Error() }
func (e *LoginError) Unwrap() error { return e.Err }

// ErrNoMetadataAPI is the error of a verb that needs graft's metadata API
// (/graft/v1/), such as lock and unlock, on a registry that does not serve it.
var ErrNoMetadataAPI = errors.New("the registry does not serve graft's metadata API (/graft/v1/): locks are graft's own")

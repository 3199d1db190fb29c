//go:build !unix

package daemon

import "errors"

// LockFile is the file in the data directory that graft serve holds an exclusive
// lock on while it runs (on Unix systems only).
const LockFile = "graft.lock"

// ErrDataDirInUse is the error of a graft serve whose data directory another one
// serves.
var ErrDataDirInUse = errors.New("is in use by another graft serve")

func lockDataDir(string) (func(), error) { return func() {}, nil }

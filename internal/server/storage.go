package server

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"syscall"

	"github.com/graft-registry/graft/internal/errcode"
)

// A store that cannot write is the server's failure, never the client's: a full disk
// is answered 507 Insufficient Storage, any other failure 500, each with the spec's
// error body, and logged at ERROR with the operation and the file it failed on. What
// the store had is kept (an upload keeps its bytes, to resume once there is room), and
// reads go on.

// storageError is the answer to err when it is a store's failure to write for want of
// space, or nil.
func storageError(err error) *errcode.Error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || sqliteFull(err) {
		return &errcode.Error{Code: errcode.Unknown, Status: http.StatusInsufficientStorage,
			Message: "the registry's storage is full; the upload can be resumed once there is room"}
	}
	return nil
}

// failureAttrs are what a log line of a store's failure names: the operation and the
// file, when the error says.
func failureAttrs(err error) []any {
	var (
		pe *fs.PathError
		le *os.LinkError
		se *os.SyscallError
	)
	switch {
	case errors.As(err, &pe):
		return []any{slog.String("op", pe.Op), slog.String("file", pe.Path)}
	case errors.As(err, &le):
		return []any{slog.String("op", le.Op), slog.String("file", le.New)}
	case errors.As(err, &se):
		return []any{slog.String("op", se.Syscall)}
	}
	return nil
}

// sqliteFull reports whether err is SQLite's SQLITE_FULL: the database could not grow.
func sqliteFull(err error) bool {
	var coded interface{ Code() int }
	return errors.As(err, &coded) && coded.Code()&0xff == 13 // SQLITE_FULL, and its extended codes
}

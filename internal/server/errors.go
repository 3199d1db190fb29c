package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/graft-registry/graft/internal/blobstore"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
)

// writeError answers with err as the spec's error body (the answer to HEAD has the
// status alone). An error without a code is logged with its text and answered as
// UNKNOWN, so no internal detail reaches the client, but for a store that could not be
// reached: 503 UNAVAILABLE, naming the store. A client that went away is recorded as
// 499.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	err = answeringError(r, w, err)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		w.WriteHeader(499)
		return
	}
	e := errcode.As(err)
	switch {
	case e.Code != errcode.Unknown:
	case errors.Is(err, metastore.ErrUnavailable), errors.Is(err, blobstore.ErrUnavailable):
		part := "metadata store"
		if !errors.Is(err, metastore.ErrUnavailable) {
			part = "blob store"
		}
		s.log.Warn("request failed: the "+part+" is unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		e = errcode.New(errcode.Unavailable, "the registry's %s is unavailable; try again later", part)
		w.Header().Set("Retry-After", "5")
	default:
		if full := storageError(err); full != nil {
			e = full
		}
		attrs := append([]any{"method", r.Method, "path", r.URL.Path, "err", err}, failureAttrs(err)...)
		s.log.Error("request failed", attrs...)
	}
	status := e.HTTPStatus()
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	body, _ := json.Marshal(errcode.Body(e))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// writeJSON answers with v as JSON of type contentType.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encoding an answer", "method", r.Method, "path", r.URL.Path, "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

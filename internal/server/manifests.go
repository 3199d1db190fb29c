package server

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/manifest"
)

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	m, err := s.reg.GetManifest(r.Context(), rt.name, rt.ref)
	if err != nil {
		return err
	}
	h := w.Header()
	// The stored bytes go out as pushed, with the media type they were pushed as,
	// whatever Accept says: every manifest type has one representation here, and
	// clients check the Content-Type they get.
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("Etag", `"`+m.Digest.String()+`"`)
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, m.Digest.String()) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(m.Bytes)
	}
	return nil
}

func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	if r.ContentLength > manifest.MaxSize {
		return errcode.New(errcode.ManifestInvalid, "manifest larger than %d bytes", manifest.MaxSize).
			WithStatus(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, manifest.MaxSize+1))
	if err != nil {
		if errors.Is(r.Context().Err(), err) || r.Context().Err() != nil {
			return r.Context().Err()
		}
		return errcode.New(errcode.ManifestInvalid, "reading the manifest failed")
	}
	tags := r.URL.Query()["tag"]
	pushed, err := s.reg.PutManifest(r.Context(), rt.name, rt.ref, r.Header.Get("Content-Type"), body, tags)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.name+"/manifests/"+pushed.Digest.String())
	h.Set("Docker-Content-Digest", pushed.Digest.String())
	if pushed.Subject != "" {
		h.Set("OCI-Subject", pushed.Subject.String())
	}
	if len(tags) > 0 {
		for _, t := range pushed.Tags {
			h.Add("OCI-Tag", t)
		}
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// Headers of a manifest DELETE: how many manifests the cascade removed besides the one
// named, and at how many locked manifests it stopped.
const (
	CascadeHeader       = "Graft-Cascade-Deleted"
	CascadeLockedHeader = "Graft-Cascade-Locked"
)

func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	deleted, err := s.reg.DeleteManifest(r.Context(), rt.name, rt.ref)
	if err != nil {
		return err
	}
	if len(deleted.Manifests) == 0 { // a tag
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	h := w.Header()
	h.Set(CascadeHeader, strconv.Itoa(len(deleted.Manifests)-1))
	h.Set(CascadeLockedHeader, strconv.Itoa(len(deleted.Locked)))
	body := struct {
		Deleted []digest.Digest `json:"deleted"`
		Locked  []digest.Digest `json:"locked"`
	}{deleted.Manifests, deleted.Locked}
	if body.Locked == nil {
		body.Locked = []digest.Digest{}
	}
	s.writeJSON(w, r, http.StatusAccepted, "application/json", body)
	return nil
}

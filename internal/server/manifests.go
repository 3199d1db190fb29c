package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/registry"
)

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	m, err := s.manifest(r.Context(), rt.name, rt.ref)
	if err != nil {
		return err
	}
	tag := rt.ref
	if tag == m.Digest.String() {
		tag = ""
	}
	s.reg.RecordPull(rt.name, m.Digest, tag)
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
	body, release, err := s.manifestBodies.readManifest(w, r)
	if err != nil {
		return err
	}
	defer release()
	tags := r.URL.Query()["tag"]
	cond, err := precondition(r.Header)
	if err != nil {
		return err
	}
	pushed, err := s.reg.PutManifestIf(r.Context(), rt.name, rt.ref, r.Header.Get("Content-Type"), body, tags, cond)
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

// precondition reads the conditions of a manifest push: If-Match names the manifest
// (its quoted digest, the ETag a GET answers) the tag must name for the push to move
// it, If-None-Match: * that the tag must name none yet.
func precondition(h http.Header) (registry.Precondition, error) {
	var p registry.Precondition
	if v := h.Get("If-None-Match"); v != "" {
		if strings.TrimSpace(v) != "*" {
			return p, errBadRequest("If-None-Match of a manifest push must be *")
		}
		p.Absent = true
	}
	if v := h.Get("If-Match"); v != "" {
		d, err := digest.Parse(strings.Trim(strings.TrimPrefix(strings.TrimSpace(v), "W/"), `"`))
		if err != nil {
			return p, errBadRequest("If-Match of a manifest push must be the ETag of a manifest")
		}
		p.Digest = d
	}
	return p, nil
}

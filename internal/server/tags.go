package server

import (
	"net/http"
	"net/url"
	"strconv"

	specv1 "github.com/opencontainers/distribution-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/registry"
)

func (s *Server) tags(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	n, err := registry.PageSize(q.Get("n"))
	if err != nil {
		return err
	}
	page, err := s.reg.Tags(r.Context(), rt.name, q.Get("last"), n)
	if err != nil {
		return err
	}
	setNext(w, "/v2/"+rt.name+"/tags/list", page, n)
	s.writeJSON(w, r, http.StatusOK, "application/json", specv1.TagList{Name: rt.name, Tags: page.Items})
	return nil
}

func (s *Server) catalog(w http.ResponseWriter, r *http.Request, _ route) error {
	q := r.URL.Query()
	n, err := registry.PageSize(q.Get("n"))
	if err != nil {
		return err
	}
	page, err := s.catalogPage(r, q.Get("last"), n)
	if err != nil {
		return err
	}
	setNext(w, "/v2/_catalog", page, n)
	s.writeJSON(w, r, http.StatusOK, "application/json", specv1.RepositoryList{Repositories: page.Items})
	return nil
}

// setNext adds the Link header of the page after page, if there is one.
func setNext(w http.ResponseWriter, path string, page *registry.Page, n int) {
	if !page.More || len(page.Items) == 0 {
		return
	}
	setLink(w, path, url.Values{"n": {strconv.Itoa(n)}, "last": {page.Items[len(page.Items)-1]}})
}

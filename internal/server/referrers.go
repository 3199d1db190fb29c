package server

import (
	"net/http"
	"net/url"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/registry"
)

func (s *Server) referrers(w http.ResponseWriter, r *http.Request, rt route) error {
	res, artifactType, err := s.referrerPage(w, r, rt, "/v2/"+rt.name+"/referrers/"+rt.ref)
	if err != nil {
		return err
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	s.writeJSON(w, r, http.StatusOK, ocispec.MediaTypeImageIndex, res.Index)
	return nil
}

// referrerPage answers the query of a referrers listing, of the OCI or the legacy ORAS
// API, whose path is path: a page of `n` after `last`, of `artifactType` when given,
// with the Link of the next page, which keeps the query.
func (s *Server) referrerPage(w http.ResponseWriter, r *http.Request, rt route, path string) (*registry.Referrers, string, error) {
	q := r.URL.Query()
	n := 0 // the page size the registry picks
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = registry.PageSize(v); err != nil {
			return nil, "", err
		}
	}
	artifactType := q.Get("artifactType")
	if err := s.fillReferrers(r.Context(), rt.name, rt.ref); err != nil {
		return nil, "", err
	}
	res, err := s.reg.Referrers(r.Context(), rt.name, rt.ref, artifactType, q.Get("last"), n)
	if err != nil {
		return nil, "", err
	}
	if res.Next != "" {
		next := url.Values{"last": {res.Next.String()}}
		if artifactType != "" {
			next.Set("artifactType", artifactType)
		}
		if n > 0 {
			next.Set("n", strconv.Itoa(n))
		}
		setLink(w, path, next)
	}
	return res, artifactType, nil
}

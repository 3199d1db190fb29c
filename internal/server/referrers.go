package server

import (
	"net/http"
	"net/url"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/registry"
)

func (s *Server) referrers(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	n := 0 // the page size the registry picks
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = registry.PageSize(v); err != nil {
			return err
		}
	}
	artifactType := q.Get("artifactType")
	res, err := s.reg.Referrers(r.Context(), rt.name, rt.ref, artifactType, q.Get("last"), n)
	if err != nil {
		return err
	}
	h := w.Header()
	if artifactType != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	if res.Next != "" {
		next := url.Values{"last": {res.Next.String()}}
		if artifactType != "" {
			next.Set("artifactType", artifactType)
		}
		if n > 0 {
			next.Set("n", strconv.Itoa(n))
		}
		h.Set("Link", "</v2/"+rt.name+"/referrers/"+rt.ref+"?"+next.Encode()+`>; rel="next"`)
	}
	writeJSON(w, r, http.StatusOK, ocispec.MediaTypeImageIndex, res.Index)
	return nil
}

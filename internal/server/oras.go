package server

import (
	"net/http"
	"net/url"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/registry"
)

// The legacy ORAS artifacts API, which early ORAS clients and the notation prototype
// use: a manifest by digest, and the referrers of a manifest as {"references": [...]}.

func (s *Server) orasManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	return s.getManifest(w, r, rt)
}

type orasReferrers struct {
	References []ocispec.Descriptor `json:"references"`
}

func (s *Server) orasReferrers(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	n := registry.ReferrersPage
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
	if res.Next != "" {
		next := url.Values{"last": {res.Next.String()}, "n": {strconv.Itoa(len(res.Index.Manifests))}}
		if artifactType != "" {
			next.Set("artifactType", artifactType)
		}
		w.Header().Set("Link", "</oras/artifacts/v1/"+rt.name+"/manifests/"+rt.ref+"/referrers?"+next.Encode()+`>; rel="next"`)
	}
	writeJSON(w, r, http.StatusOK, "application/json", orasReferrers{References: res.Index.Manifests})
	return nil
}

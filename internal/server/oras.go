package server

import (
	"net/http"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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
	res, _, err := s.referrerPage(w, r, rt, "/oras/artifacts/v1/"+rt.name+"/manifests/"+rt.ref+"/referrers")
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", orasReferrers{References: res.Index.Manifests})
	return nil
}

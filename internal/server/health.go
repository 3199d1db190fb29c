package server

import (
	"net/http"
)

// Health endpoints, for load balancers and orchestrators: they need no credentials and
// say nothing a caller could use (the failing part's name, never its error, which is
// logged).
const (
	// HealthPath answers 200 while the process serves HTTP at all.
	HealthPath = "/healthz"
	// ReadyPath answers 200 when the metadata store and the blob store answer, and 503
	// naming the parts that do not.
	ReadyPath = "/readyz"
)

type healthAnswer struct {
	Status string `json:"status"`
	// Failing names the parts that do not answer: metadata, blobs.
	Failing []string `json:"failing,omitempty"`
}

// serveHealth answers the health endpoints; it reports whether r was one.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != HealthPath && r.URL.Path != ReadyPath {
		return false
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.writeJSON(w, r, http.StatusMethodNotAllowed, "application/json", healthAnswer{Status: "method not allowed"})
		return true
	}
	if r.URL.Path == HealthPath {
		s.writeJSON(w, r, http.StatusOK, "application/json", healthAnswer{Status: "ok"})
		return true
	}
	failed := s.reg.Ready(r.Context())
	if len(failed) == 0 {
		s.writeJSON(w, r, http.StatusOK, "application/json", healthAnswer{Status: "ready"})
		return true
	}
	a := healthAnswer{Status: "unavailable"}
	for _, f := range failed {
		a.Failing = append(a.Failing, f.Part)
		s.log.Warn("not ready: a store does not answer", "part", f.Part, "err", f.Err)
	}
	s.writeJSON(w, r, http.StatusServiceUnavailable, "application/json", a)
	return true
}

package ui

import (
	"net/http"

	"github.com/graft-registry/graft/internal/auth"
)

// viewer is who is looking at a page, and what the pages need to know of them.
type viewer struct{}

// viewer returns who sent r.
func (h *Handler) viewer(w http.ResponseWriter, r *http.Request) *viewer { return &viewer{} }

// overTLS reports whether the browser talks to us over TLS, directly or through a
// proxy that says so.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

// may returns what the viewer may do with repository repo: anything, as long as the
// view knows no access control.
func (v *viewer) may(repo string) auth.Actions { return auth.All }

// mayPull checks that the viewer may see repo.
func (v *viewer) mayPull(w http.ResponseWriter, r *http.Request, repo string) (bool, error) {
	return v.may(repo).Has(auth.Pull), nil
}

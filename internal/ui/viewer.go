package ui

import (
	"net/http"

	"github.com/graft-registry/graft/internal/auth"
)

// viewer is who is looking at a page, and what the pages need to know of them.
type viewer struct {
	// CSRF is the token every form sends back.
	CSRF   string
	secure bool
}

// viewer returns who sent r, and gives the browser a CSRF cookie when it has none.
func (h *Handler) viewer(w http.ResponseWriter, r *http.Request) *viewer {
	v := &viewer{secure: overTLS(r)}
	v.csrf(w, r)
	return v
}

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

// setCookie sets a cookie of the view: maxAge 0 lasts the browser session, -1
// deletes it.
func (v *viewer) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: v.secure, SameSite: http.SameSiteStrictMode,
	})
}

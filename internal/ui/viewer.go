package ui

import (
	"net/http"
	"net/url"

	"github.com/graft-registry/graft/internal/auth"
)

// viewer is who is looking at a page, and what the pages need to know of them.
type viewer struct {
	h *Handler
	// caller is nil when access control is off.
	caller *auth.Caller
	// Name and Kind ("user" or "token") say who is logged in, if anyone.
	Name, Kind string
	// Session is set when a login cookie names them, not a client certificate.
	Session bool
	// AuthOn says whether access control is on, and so logins.
	AuthOn bool
	// CSRF is the token every form sends back.
	CSRF   string
	secure bool
}

// viewer finds out who sent r (see identify), and gives the browser a CSRF cookie
// when it has none.
func (h *Handler) viewer(w http.ResponseWriter, r *http.Request) *viewer {
	v := &viewer{h: h, AuthOn: h.auth != nil, secure: overTLS(r)}
	v.csrf(w, r)
	if h.auth != nil {
		v.identify(w, r)
	}
	return v
}

// overTLS reports whether the browser talks to us over TLS, directly or through a
// proxy that says so.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

// may returns what the viewer may do with repository repo.
func (v *viewer) may(repo string) auth.Actions {
	if v.caller == nil {
		return auth.All
	}
	have, _ := v.h.auth.Allowed(v.caller, repo)
	return have
}

// Anonymous reports whether access control is on and the viewer has not logged in.
func (v *viewer) Anonymous() bool {
	return v.caller != nil && v.caller.Identity.Kind == auth.Anonymous
}

// mayPull checks that the viewer may see repo. A viewer who has not logged in is sent
// to log in; to one who has, a repository they may not see is not there.
func (v *viewer) mayPull(w http.ResponseWriter, r *http.Request, repo string) (bool, error) {
	if v.may(repo).Has(auth.Pull) {
		return true, nil
	}
	if v.Anonymous() && r.Method != http.MethodPost {
		http.Redirect(w, r, Prefix+"_login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return false, nil
	}
	return false, errNotFound
}

// setCookie sets a cookie of the view: maxAge 0 lasts the browser session, -1
// deletes it.
func (v *viewer) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: v.secure, SameSite: http.SameSiteStrictMode,
	})
}

package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/graft-registry/graft/internal/accesslog"
	"github.com/graft-registry/graft/internal/auth"
)

// Sessions: with access control on, logging in (a user's name and password, or a
// repository token's name and secret, checked by auth.Login as a docker login is)
// starts a session, a token of auth's kept in an HttpOnly, SameSite=Strict cookie
// (Secure under TLS). Any replica that shares the token signing key accepts it.
// Who the viewer is then decides what the view shows and offers, by the policies
// that decide for the API.

const sessionCookie = "graft_session"

// identify finds out who the viewer is: the session cookie's identity, else a
// verified client certificate's, else nobody.
func (v *viewer) identify(w http.ResponseWriter, r *http.Request) {
	id := auth.Identity{Kind: auth.Anonymous}
	if c, err := r.Cookie(sessionCookie); err == nil {
		sid, err := v.h.auth.Session(r.Context(), c.Value)
		switch {
		case err == nil:
			id, v.Session = sid, true
		case errors.Is(err, auth.ErrBadCredentials):
			v.setCookie(w, sessionCookie, "", -1) // expired, or its password changed
		default:
			v.h.log.Error("web view: checking a session", "err", err)
		}
	} else if cid, ok := v.h.auth.CertIdentity(r); ok {
		id = cid
	}
	v.caller = &auth.Caller{Identity: id}
	if id.Kind != auth.Anonymous {
		v.Name, v.Kind = id.Name, id.Kind.String()
		accesslog.SetUser(r.Context(), id.Name)
	}
}

type loginData struct {
	User, Next, Error string
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request, v *viewer) {
	next := safeNext(r.FormValue("next"))
	if h.auth == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if r.Method != http.MethodPost {
		h.render(w, r, v, http.StatusOK, "login", page{Title: "Log in", Data: loginData{Next: next}})
		return
	}
	user := strings.TrimSpace(r.PostFormValue("user"))
	id, err := h.auth.Login(r.Context(), user, r.PostFormValue("password"), h.auth.ClientAddr(r))
	if err != nil {
		var limited *auth.RateLimitError
		status, msg := http.StatusUnauthorized, "Wrong name or password."
		switch {
		case errors.As(err, &limited):
			w.Header().Set("Retry-After", fmt.Sprint(int(limited.RetryAfter.Round(time.Second)/time.Second)))
			status, msg = http.StatusTooManyRequests, fmt.Sprintf("Too many failed logins from your address: try again in %s.", limited.RetryAfter.Round(time.Second))
		case !errors.Is(err, auth.ErrBadCredentials):
			h.fail(w, r, v, err)
			return
		}
		h.render(w, r, v, status, "login", page{Title: "Log in", Data: loginData{User: user, Next: next, Error: msg}})
		return
	}
	s, err := h.auth.IssueSession(id)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	v.setCookie(w, sessionCookie, s.Token, int(time.Until(s.Expires)/time.Second))
	v.newCSRF(w) // a token seen before the login is not good after it
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, v *viewer) error {
	v.setCookie(w, sessionCookie, "", -1)
	v.newCSRF(w)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
	return nil
}

// safeNext is where a login sends the browser: a page of the view, never another
// site.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, Prefix) ||
		!strings.HasPrefix(path.Clean(u.Path)+"/", Prefix) ||
		strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, "//") {
		return Prefix
	}
	return u.RequestURI()
}

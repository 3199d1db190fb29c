package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
)

// Every change is a POST that carries the CSRF token of a cookie of its own (double
// submit: a page of another site can neither read the cookie nor set the form field)
// and comes from a page of this origin (Sec-Fetch-Site, Origin; see Handler.origin).
// The cookie is there with access control off too, when anyone may delete.

const (
	csrfCookie = "graft_csrf"
	csrfLength = 43 // 32 random bytes, base64url
	// maxForm bounds the body of a form.
	maxForm = 64 << 10
)

// csrf takes the CSRF token of r's cookie, or makes one.
func (v *viewer) csrf(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == csrfLength {
		v.CSRF = c.Value
		return
	}
	v.newCSRF(w)
}

func (v *viewer) newCSRF(w http.ResponseWriter) {
	b := make([]byte, 32)
	rand.Read(b)
	v.CSRF = base64.RawURLEncoding.EncodeToString(b)
	v.setCookie(w, csrfCookie, v.CSRF, 0)
}

// checkCSRF reports whether the form r posts carries the token of its CSRF cookie.
func (v *viewer) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) != csrfLength {
		return false
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
	sent := r.PostFormValue("csrf")
	return subtle.ConstantTimeCompare([]byte(sent), []byte(c.Value)) == 1
}

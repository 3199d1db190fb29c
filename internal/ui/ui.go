// Package ui is graft's web view: its repositories, their manifests, and each
// manifest's graph (platform manifests, signatures, SBOMs, attestations, and what is
// attached to those) drawn as a picture. It is served from the registry's own binary
// under /ui/: pages rendered on the server from the registry service's indexed
// queries, a little script, and the picture as SVG laid out here.
//
// A reference a user holds pastes into the address bar: /ui/<name> is a repository,
// /ui/<name>:<tag> and /ui/<name>@<digest> are manifests. The view's own endpoints
// start with '_', which no repository name can.
package ui

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/registry"
)

// Prefix is where the web view is served.
const Prefix = "/ui/"

//go:embed templates static
var files embed.FS

// Options configure a Handler.
type Options struct {
	// Auth decides who may see and do what, as for the API; nil lets anyone do
	// anything.
	Auth   *auth.Authenticator
	Logger *slog.Logger
}

// Handler serves the web view.
type Handler struct {
	reg    *registry.Registry
	auth   *auth.Authenticator
	log    *slog.Logger
	pages  map[string]*template.Template
	static http.Handler
	// origin refuses changes a page of another site asks a browser to make, before the
	// CSRF token is looked at.
	origin *http.CrossOriginProtection
}

// New returns the web view of reg.
func New(reg *registry.Registry, opts Options) *Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	return &Handler{
		reg: reg, auth: opts.Auth, log: log, pages: parsePages(),
		static: http.StripPrefix(Prefix+"_static/", http.FileServerFS(static)),
		origin: http.NewCrossOriginProtection(),
	}
}

// parsePages parses each page's template with the layout; a template that does not
// parse is a bug of this package, found by any test.
func parsePages() map[string]*template.Template {
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/graph.html"))
	pages := map[string]*template.Template{}
	names, _ := fs.Glob(files, "templates/*.html")
	for _, name := range names {
		page := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if page == "layout" || page == "graph" {
			continue
		}
		pages[page] = template.Must(template.Must(base.Clone()).ParseFS(files, name))
	}
	return pages
}

// Mount returns a handler that serves ui under Prefix, sends a browser asking for the
// root there, and everything else to api.
func Mount(api, ui http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case (p == "/" || p == "/ui") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			http.Redirect(w, r, Prefix, http.StatusFound)
		case strings.HasPrefix(p, Prefix):
			ui.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// contentSecurityPolicy allows the view's own script, styles and images and nothing
// else: no inline script or style, so that nothing a manifest says can run.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("X-Frame-Options", "DENY")
	p := strings.TrimPrefix(r.URL.Path, Prefix)
	if strings.HasPrefix(p, "_static/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.fail(w, r, nil, errMethod)
			return
		}
		hdr.Set("Cache-Control", "no-cache") // revalidated: the binary may change under the same names
		h.static.ServeHTTP(w, r)
		return
	}
	v := h.viewer(w, r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		if err := h.origin.Check(r); err != nil {
			h.fail(w, r, v, errForbidden("this change was asked for by another site"))
			return
		}
		if !v.checkCSRF(r) {
			h.fail(w, r, v, errForbidden("the form has expired: reload the page and try again"))
			return
		}
	default:
		h.fail(w, r, v, errMethod)
		return
	}
	post := r.Method == http.MethodPost
	switch p = strings.TrimSuffix(p, "/"); {
	case p == "":
		h.getOnly(w, r, v, h.repositories)
	case p == "_login":
		h.login(w, r, v)
	case p == "_logout":
		h.postOnly(w, r, v, h.logout)
	case strings.HasPrefix(p, "_blob/"):
		h.getOnly(w, r, v, func(w http.ResponseWriter, r *http.Request, v *viewer) error {
			return h.blob(w, r, v, strings.TrimPrefix(p, "_blob/"))
		})
	case strings.HasPrefix(p, "_"):
		h.fail(w, r, v, errNotFound)
	default:
		name, ref := splitReference(p)
		var err error
		switch {
		case ref == "" && post:
			err = h.repositoryAction(w, r, v, name)
		case ref == "":
			err = h.repository(w, r, v, name)
		case post:
			err = h.manifestAction(w, r, v, name, ref)
		default:
			err = h.manifest(w, r, v, name, ref)
		}
		if err != nil {
			h.fail(w, r, v, err)
		}
	}
}

type pageFunc func(http.ResponseWriter, *http.Request, *viewer) error

func (h *Handler) getOnly(w http.ResponseWriter, r *http.Request, v *viewer, f pageFunc) {
	if r.Method == http.MethodPost {
		h.fail(w, r, v, errMethod)
		return
	}
	if err := f(w, r, v); err != nil {
		h.fail(w, r, v, err)
	}
}

func (h *Handler) postOnly(w http.ResponseWriter, r *http.Request, v *viewer, f pageFunc) {
	if r.Method != http.MethodPost {
		h.fail(w, r, v, errMethod)
		return
	}
	if err := f(w, r, v); err != nil {
		h.fail(w, r, v, err)
	}
}

// splitReference splits the path of a repository or manifest page: name, or
// name:tag, or name@digest. A name has no ':' or '@', so the last of them decides.
func splitReference(p string) (name, ref string) {
	if i := strings.LastIndexByte(p, '@'); i >= 0 {
		return p[:i], p[i+1:]
	}
	slash := strings.LastIndexByte(p, '/')
	if i := strings.LastIndexByte(p, ':'); i > slash {
		return p[:i], p[i+1:]
	}
	return p, ""
}

// pageError is an error a page answers with: its status and what it tells the user.
type pageError struct {
	status  int
	message string
}

func (e *pageError) Error() string { return e.message }

var (
	errNotFound = &pageError{http.StatusNotFound, "There is nothing here, or you may not see it."}
	errMethod   = &pageError{http.StatusMethodNotAllowed, "This page does not take that method."}
)

func errForbidden(msg string) error { return &pageError{http.StatusForbidden, msg} }

// fail answers with an error page. The registry's errors are shown as the API would
// say them, except that what does not exist and what the viewer may not see look
// alike; an internal error is logged and shown without its text.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, v *viewer, err error) {
	var (
		pe *pageError
		ce *errcode.Error
	)
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &ce):
		switch ce.Code {
		case errcode.NameUnknown, errcode.ManifestUnknown, errcode.BlobUnknown, errcode.NameInvalid, errcode.DigestInvalid:
			pe = errNotFound
		default:
			pe = &pageError{ce.Code.Status, ce.Message}
		}
	default:
		h.log.Error("web view", "method", r.Method, "path", r.URL.Path, "err", err)
		pe = &pageError{http.StatusInternalServerError, "Something went wrong on the server; it is in its log."}
	}
	if v == nil {
		v = &viewer{}
	}
	h.render(w, r, v, pe.status, "error", page{Title: http.StatusText(pe.status), Data: pe.message})
}

// page is what every page's template gets.
type page struct {
	Title  string
	Viewer *viewer
	// Crumbs lead from the list of repositories to this page.
	Crumbs []crumb
	// Notice is a message of the action that led here.
	Notice string
	Data   any
}

type crumb struct{ Name, URL string }

// render writes page p with status. A page is rendered into memory first, so that a
// template that fails answers 500 instead of half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, v *viewer, status int, name string, p page) {
	p.Viewer = v
	var b strings.Builder
	if err := h.pages[name].ExecuteTemplate(&b, "layout.html", p); err != nil {
		h.log.Error("web view: rendering", "page", name, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write([]byte(b.String()))
	}
}

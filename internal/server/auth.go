package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/graft-registry/graft/internal/accesslog"
	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/registry"
)

// Access control: every request of the API is authenticated and checked against what
// its route needs before its handler runs; the listings (catalog, repositories) are
// cut down to what the caller may see, and a mount needs pull on its source.

type callerKey struct{}

// callerOf is the authenticated caller of r; nil when authentication is off.
func callerOf(r *http.Request) *auth.Caller {
	c, _ := r.Context().Value(callerKey{}).(*auth.Caller)
	return c
}

// needs is what a route needs on its repository, by method. Changing locks (PATCH of
// the metadata API) needs delete: whoever may delete may as well unlock.
func needs(k kind, method string) auth.Actions {
	read := method == http.MethodGet || method == http.MethodHead
	switch k {
	case routeManifest:
		switch {
		case read:
			return auth.Pull
		case method == http.MethodDelete:
			return auth.Delete
		}
		return auth.Push
	case routeBlob:
		if method == http.MethodDelete {
			return auth.Delete
		}
		return auth.Pull
	case routeUploads, routeUpload:
		return auth.Push
	case routeMetaRepo, routeMetaManifest:
		if read {
			return auth.Pull
		}
		return auth.Delete
	}
	return auth.Pull
}

// challengeActions are the actions a challenge asks a token for: a push also asks for
// pull, as docker and distribution do, since a client that pushes reads back.
func challengeActions(need auth.Actions) auth.Actions {
	if need == auth.Push {
		return auth.Pull | auth.Push
	}
	return need
}

// authorize authenticates r and checks that its caller may do what rt does. It
// returns r carrying the caller, or the error to answer with (its challenge set on w).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, rt route) (*http.Request, error) {
	c, err := s.auth.Authenticate(r)
	if err != nil {
		return r, s.authError(w, r, err, s.scopesOf(rt, r.Method))
	}
	r = r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
	accesslog.SetUser(r.Context(), c.Identity.Name)
	switch rt.kind {
	case routeBase:
		if !c.Authenticated() {
			return r, s.refuse(w, r, c, nil, true)
		}
	case routeCatalog, routeMetaRepos, routeMetaEvents:
		if !s.auth.Catalog(c) {
			return r, s.refuse(w, r, c, []auth.Scope{auth.CatalogScope}, true)
		}
	default:
		need := needs(rt.kind, r.Method)
		have, could := s.auth.Allowed(c, rt.name)
		if !have.Has(need) {
			return r, s.refuse(w, r, c, []auth.Scope{auth.RepositoryScope(rt.name, challengeActions(need))}, could.Has(need))
		}
	}
	return r, nil
}

func (s *Server) scopesOf(rt route, method string) []auth.Scope {
	switch rt.kind {
	case routeBase:
		return nil
	case routeCatalog, routeMetaRepos, routeMetaEvents:
		return []auth.Scope{auth.CatalogScope}
	}
	return []auth.Scope{auth.RepositoryScope(rt.name, challengeActions(needs(rt.kind, method)))}
}

// refuse answers a caller that may not do what it asked. A caller without
// credentials, or whose token lacks what its identity could do with another, is sent
// to the token endpoint (401); one whose identity may not is denied (403).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, c *auth.Caller, scopes []auth.Scope, could bool) error {
	switch {
	case c.Identity.Kind == auth.Anonymous:
		w.Header().Set("WWW-Authenticate", s.auth.Challenge(r, scopes, ""))
		return unauthorized(scopes)
	case c.Bearer && could:
		w.Header().Set("WWW-Authenticate", s.auth.Challenge(r, scopes, "insufficient_scope"))
		return unauthorized(scopes)
	}
	s.auth.Denied()
	return errcode.New(errcode.Denied, "requested access to the resource is denied").WithDetail(accessDetail(scopes))
}

// authError answers credentials that failed: 401 with a challenge, or 429 for a source
// that failed too often.
func (s *Server) authError(w http.ResponseWriter, r *http.Request, err error, scopes []auth.Scope) error {
	var limited *auth.RateLimitError
	switch {
	case errors.As(err, &limited):
		return rateLimited(w, limited)
	case errors.Is(err, auth.ErrBadCredentials):
		w.Header().Set("WWW-Authenticate", s.auth.Challenge(r, scopes, "invalid_token"))
		return errcode.New(errcode.Unauthorized, "invalid credentials").WithDetail(accessDetail(scopes))
	}
	return err
}

// rateLimited answers a login the limiter refused.
func rateLimited(w http.ResponseWriter, limited *auth.RateLimitError) error {
	w.Header().Set("Retry-After", strconvSeconds(limited.RetryAfter))
	if limited.Busy {
		return errcode.New(errcode.TooManyRequests, "too many logins under way from this address; try again in a moment")
	}
	return errcode.New(errcode.TooManyRequests, "too many failed logins from this address; try again later")
}

// strconvSeconds spells d as Retry-After does: whole seconds, rounded up.
func strconvSeconds(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

func unauthorized(scopes []auth.Scope) error {
	return errcode.New(errcode.Unauthorized, "authentication required").WithDetail(accessDetail(scopes))
}

// accessDetail is the detail of UNAUTHORIZED and DENIED errors, as distribution gives
// it: what access the request needed.
func accessDetail(scopes []auth.Scope) any {
	type access struct {
		Type   string `json:"Type"`
		Name   string `json:"Name"`
		Action string `json:"Action"`
	}
	out := []access{}
	for _, s := range scopes {
		for _, a := range s.Actions {
			out = append(out, access{s.Type, s.Name, a})
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// mayMount reports whether r's caller may mount a blob from repository from into
// name (push on name was checked with the route): it needs pull on from, and a mount
// that names no source needs pull everywhere. A caller that may not is answered as if
// the blob were not there (a new upload session), which tells it nothing about from;
// a token that lacks a pull its identity could have is sent for a new token.
func (s *Server) mayMount(w http.ResponseWriter, r *http.Request, name, from string) (bool, error) {
	c := callerOf(r)
	if s.auth == nil || c == nil {
		return true, nil
	}
	if from == "" {
		return s.auth.Everywhere(c), nil
	}
	have, could := s.auth.Allowed(c, from)
	switch {
	case have.Has(auth.Pull):
		return true, nil
	case c.Bearer && could.Has(auth.Pull):
		scopes := []auth.Scope{auth.RepositoryScope(name, auth.Pull|auth.Push), auth.RepositoryScope(from, auth.Pull)}
		w.Header().Set("WWW-Authenticate", s.auth.Challenge(r, scopes, "insufficient_scope"))
		return false, unauthorized(scopes)
	}
	return false, nil
}

// listBatch is how many repositories a filtered listing reads at a time.
const listBatch = 1000

// catalogPage is the catalog's page after last, n at most, of the repositories r's
// caller may pull.
func (s *Server) catalogPage(r *http.Request, last string, n int) (*registry.Page, error) {
	c := callerOf(r)
	if s.auth == nil || c == nil {
		return s.reg.Catalog(r.Context(), last, n)
	}
	out := []string{}
	for n > 0 {
		page, err := s.reg.Catalog(r.Context(), last, listBatch)
		if err != nil {
			return nil, err
		}
		for _, name := range page.Items {
			if s.auth.MayList(c, name) {
				out = append(out, name)
			}
		}
		if len(out) > n {
			return &registry.Page{Items: out[:n], More: true}, nil
		}
		if !page.More || len(page.Items) == 0 {
			break
		}
		last = page.Items[len(page.Items)-1]
	}
	return &registry.Page{Items: out}, nil
}

// repositoryList is the metadata API's list of repositories after last, n at most, of
// those r's caller may pull.
func (s *Server) repositoryList(r *http.Request, last string, n int) ([]metastore.Repository, bool, error) {
	c := callerOf(r)
	if s.auth == nil || c == nil {
		return s.reg.RepositoryList(r.Context(), last, n)
	}
	out := []metastore.Repository{}
	for n > 0 {
		repos, more, err := s.reg.RepositoryList(r.Context(), last, listBatch)
		if err != nil {
			return nil, false, err
		}
		for _, rp := range repos {
			if s.auth.MayList(c, rp.Name) {
				out = append(out, rp)
			}
		}
		if len(out) > n {
			return out[:n], true, nil
		}
		if !more || len(repos) == 0 {
			break
		}
		last = repos[len(repos)-1].Name
	}
	return out, false, nil
}

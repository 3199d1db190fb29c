package server

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/graft-registry/graft/internal/accesslog"
	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/httpstatus"
)

// The token endpoint of the Docker/OCI token flow, on the registry's own listener:
// GET with Basic credentials (or none, for what anonymous callers may do), as the
// token specification has it, and POST of the OAuth2 password and refresh token
// grants, as docker login and oras use them.

// tokenResponse carries both spellings of the token: older clients read token,
// OAuth2 clients access_token.
type tokenResponse struct {
	Token        string `json:"token,omitempty"`
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// maxTokenForm bounds a token request's body: a few credentials and scopes.
const maxTokenForm = 64 << 10

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	sw := &httpstatus.Writer{ResponseWriter: w}
	start := time.Now()
	var err error
	h := sw.Header()
	// the answer holds credentials: no cache may keep it
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	switch r.Method {
	case http.MethodGet:
		err = s.tokenGet(sw, r)
	case http.MethodPost:
		err = s.tokenPost(sw, r)
	default:
		h.Set("Allow", "GET, POST")
		err = errcode.New(errcode.Unsupported, "%s is not supported here", r.Method)
	}
	if err != nil {
		s.writeError(sw, r, err)
	}
	// the query and body hold credentials and are never logged
	s.log.Debug("token request", "method", r.Method, "status", sw.Status(), "duration", time.Since(start))
}

func (s *Server) tokenGet(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := s.checkService(q.Get("service")); err != nil {
		return err
	}
	id, err := s.tokenIdentity(r)
	if err != nil {
		return s.tokenError(w, err)
	}
	accesslog.SetUser(r.Context(), id.Name)
	resp, err := s.issue(id, auth.ParseScopes(q["scope"]), q.Get("offline_token") == "true")
	if err != nil {
		return err
	}
	resp.Token = resp.AccessToken
	s.writeJSON(w, r, http.StatusOK, "application/json", resp)
	return nil
}

func (s *Server) tokenPost(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if err := r.ParseForm(); err != nil {
		return errBadRequest("the body must be an application/x-www-form-urlencoded token request")
	}
	f := r.PostForm
	if err := s.checkService(f.Get("service")); err != nil {
		return err
	}
	var (
		id  auth.Identity
		err error
	)
	switch f.Get("grant_type") {
	case "password":
		id, err = s.auth.Login(r.Context(), f.Get("username"), f.Get("password"), s.auth.ClientAddr(r))
	case "refresh_token":
		id, err = s.auth.Refresh(r.Context(), f.Get("refresh_token"))
	default:
		return errBadRequest("grant_type must be password or refresh_token")
	}
	if err != nil {
		return s.tokenError(w, err)
	}
	accesslog.SetUser(r.Context(), id.Name)
	resp, err := s.issue(id, auth.ParseScopes(f["scope"]), f.Get("access_type") == "offline")
	if err != nil {
		return err
	}
	resp.TokenType = "Bearer"
	if resp.RefreshToken == "" && f.Get("grant_type") == "refresh_token" {
		// the client keeps using the refresh token it has
		resp.RefreshToken = f.Get("refresh_token")
	}
	s.writeJSON(w, r, http.StatusOK, "application/json", resp)
	return nil
}

// checkService refuses a request for another service's tokens: a client configured
// for another registry should hear so, not get a token that every request refuses.
func (s *Server) checkService(service string) error {
	if service != "" && service != s.auth.Service() {
		return errBadRequest("this token endpoint issues tokens for service %q, not %q", s.auth.Service(), clipName(service))
	}
	return nil
}

// tokenIdentity is who asks the GET endpoint for a token: Basic credentials, a client
// certificate, or nobody.
func (s *Server) tokenIdentity(r *http.Request) (auth.Identity, error) {
	if r.Header.Get("Authorization") != "" {
		name, password, ok := r.BasicAuth()
		if !ok {
			return auth.Identity{}, auth.ErrBadCredentials
		}
		return s.auth.Login(r.Context(), name, password, s.auth.ClientAddr(r))
	}
	if id, ok := s.auth.CertIdentity(r); ok {
		return id, nil
	}
	return auth.Identity{Kind: auth.Anonymous}, nil
}

func (s *Server) tokenError(w http.ResponseWriter, err error) error {
	var limited *auth.RateLimitError
	switch {
	case errors.As(err, &limited):
		return rateLimited(w, limited)
	case errors.Is(err, auth.ErrBadCredentials):
		return errcode.New(errcode.Unauthorized, "invalid credentials")
	}
	return err
}

func (s *Server) issue(id auth.Identity, scopes []auth.Scope, offline bool) (*tokenResponse, error) {
	granted := s.auth.Grant(id, scopes)
	iss, err := s.auth.IssueAccess(id, granted)
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{
		AccessToken: iss.Token,
		ExpiresIn:   int(iss.Expires.Sub(iss.IssuedAt).Seconds()),
		IssuedAt:    iss.IssuedAt.UTC().Format(time.RFC3339),
	}
	names := make([]string, len(granted))
	for i, g := range granted {
		names[i] = g.String()
	}
	resp.Scope = strings.Join(names, " ")
	if offline && id.Kind != auth.Anonymous {
		if resp.RefreshToken, err = s.auth.IssueRefresh(id); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

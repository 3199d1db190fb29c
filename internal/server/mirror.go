package server

import (
	"context"
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/metastore"
)

// Mirror fills the repositories of pull-through mirrors from their upstream registries
// when a pull finds the registry lacking (internal/mirror). The registry refuses
// clients' pushes and deletes there itself.
type Mirror interface {
	// Covers reports whether repo is a mirror's.
	Covers(repo string) bool
	// Manifest returns manifest ref of repo as a pull serves it, fetched from upstream
	// when the registry lacks it or holds a tag that is due to be checked.
	Manifest(ctx context.Context, repo, ref string) (*metastore.Content, error)
	// Referrers fetches the referrers of subject that upstream lists, when they are due
	// to be checked, for the registry to answer with.
	Referrers(ctx context.Context, repo, subject string) error
	// StatBlob answers a HEAD of a blob the registry lacks.
	StatBlob(ctx context.Context, repo, ref string) (digest.Digest, int64, error)
	// FetchBlob fetches a blob the registry lacks. With stream, the pull that starts
	// the fetch gets a reader of the bytes as they arrive, and their size; nil means
	// that the registry now holds the blob.
	FetchBlob(ctx context.Context, repo, ref string, stream bool) (io.ReadCloser, int64, error)
	Collectors() []prometheus.Collector
}

// manifest returns manifest ref of repository name as a pull serves it, through its
// mirror when it has one.
func (s *Server) manifest(ctx context.Context, name, ref string) (*metastore.Content, error) {
	if s.mirror != nil && s.mirror.Covers(name) {
		return s.mirror.Manifest(ctx, name, ref)
	}
	return s.reg.GetManifest(ctx, name, ref)
}

// fillReferrers has the mirror of repository name, if any, fetch the referrers of
// subject before the registry answers.
func (s *Server) fillReferrers(ctx context.Context, name, subject string) error {
	if s.mirror != nil && s.mirror.Covers(name) {
		return s.mirror.Referrers(ctx, name, subject)
	}
	return nil
}

// mirrored reports whether err is the registry lacking a blob that a mirror fetches.
func (s *Server) mirrored(rt route, err error) bool {
	return s.mirror != nil && errcode.Is(err, errcode.BlobUnknown) && s.mirror.Covers(rt.name)
}

// serveMirroredBlob serves a GET of a blob the registry lacks when this pull is the one
// that streams its fetch, and reports whether it did; when it did not, the registry
// now holds the blob. A fetch that fails once the answer started cuts the connection:
// the client must not take a short body for the blob.
func (s *Server) serveMirroredBlob(w http.ResponseWriter, r *http.Request, rt route) (bool, error) {
	// A ranged GET waits for the whole blob to be stored, then gets its range.
	body, size, err := s.mirror.FetchBlob(r.Context(), rt.name, rt.ref, r.Header.Get("Range") == "")
	if err != nil || body == nil {
		return false, err
	}
	defer body.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Docker-Content-Digest", rt.ref)
	h.Set("Etag", `"`+rt.ref+`"`)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, body); err != nil {
		panic(http.ErrAbortHandler)
	}
	return true, nil
}

package server

import (
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/registry"
)

func blobLocation(name string, d digest.Digest) string {
	return "/v2/" + name + "/blobs/" + d.String()
}

func uploadLocation(name, id string) string {
	return "/v2/" + name + "/blobs/uploads/" + id
}

// startUpload answers POST /v2/<name>/blobs/uploads/: a mount (?mount=&from=), a
// monolithic upload (?digest=, the blob in the body) or a new session.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		allowed, err := s.mayMount(w, r, rt.name, q.Get("from"))
		if err != nil {
			return err
		}
		if allowed {
			d, ok, err := s.reg.MountBlob(ctx, rt.name, q.Get("from"), mount)
			if err != nil {
				return err
			}
			if ok {
				return blobCreated(w, rt.name, d)
			}
		}
	} else if ref := q.Get("digest"); ref != "" {
		c, err := chunk(r)
		if err != nil {
			return err
		}
		d, err := s.reg.PutBlob(ctx, rt.name, ref, c)
		if err != nil {
			return err
		}
		return blobCreated(w, rt.name, d)
	}
	id, err := s.reg.StartUpload(ctx, rt.name, s.uploadOwner(r))
	if err != nil {
		return err
	}
	return uploadAccepted(w, rt.name, id, 0, http.StatusAccepted)
}

// uploadOwner names who opens an upload session, for the bound on the sessions one
// caller holds open: the user or token it authenticated as, else the address it came
// from (an IPv6 client by its /64), as the login limiter counts it.
func (s *Server) uploadOwner(r *http.Request) string {
	if c := callerOf(r); c != nil && c.Identity.Kind != auth.Anonymous {
		return c.Identity.Kind.String() + ":" + c.Identity.Name
	}
	addr := r.RemoteAddr
	if s.auth != nil {
		addr = s.auth.ClientAddr(r)
	}
	return "addr:" + auth.Source(addr)
}

func blobCreated(w http.ResponseWriter, name string, d digest.Digest) error {
	h := w.Header()
	h.Set("Location", blobLocation(name, d))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// uploadAccepted answers with the state of session id holding size bytes.
func uploadAccepted(w http.ResponseWriter, name, id string, size int64, status int) error {
	h := w.Header()
	h.Set("Location", uploadLocation(name, id))
	h.Set("Docker-Upload-UUID", id)
	h.Set("Range", uploadRange(size))
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

// uploadRange is the Range header of an upload holding size bytes: the inclusive range
// of bytes received, "0-0" when there are none (as distribution answers).
func uploadRange(size int64) string {
	return "0-" + strconv.FormatInt(max(size-1, 0), 10)
}

func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) error {
	size, err := s.reg.UploadStatus(r.Context(), rt.name, rt.ref)
	if err != nil {
		return err
	}
	return uploadAccepted(w, rt.name, rt.ref, size, http.StatusNoContent)
}

func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	c, err := chunk(r)
	if err == nil {
		var size int64
		if size, err = s.reg.AppendUpload(r.Context(), rt.name, rt.ref, c); err == nil {
			return uploadAccepted(w, rt.name, rt.ref, size, http.StatusAccepted)
		}
	}
	return s.withUploadState(w, r, rt, err)
}

// withUploadState adds to a 416 answer (a chunk out of order or a malformed
// Content-Range) where the upload stands, so that the client can resume from there.
func (s *Server) withUploadState(w http.ResponseWriter, r *http.Request, rt route, err error) error {
	if errcode.As(err).HTTPStatus() != http.StatusRequestedRangeNotSatisfiable {
		return err
	}
	if size, serr := s.reg.UploadStatus(r.Context(), rt.name, rt.ref); serr == nil {
		h := w.Header()
		h.Set("Location", uploadLocation(rt.name, rt.ref))
		h.Set("Range", uploadRange(size))
		h.Set("Docker-Upload-UUID", rt.ref)
	}
	return err
}

func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ref := r.URL.Query().Get("digest")
	if ref == "" {
		return errcode.New(errcode.DigestInvalid, "the digest query parameter is required")
	}
	c, err := chunk(r)
	if err == nil {
		var d digest.Digest
		if d, err = s.reg.FinishUpload(r.Context(), rt.name, rt.ref, ref, c); err == nil {
			return blobCreated(w, rt.name, d)
		}
	}
	return s.withUploadState(w, r, rt, err)
}

func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	if err := s.reg.CancelUpload(r.Context(), rt.name, rt.ref); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// chunk reads what a request says of the bytes in its body: Content-Range (start-end,
// inclusive) and Content-Length, which must agree.
func chunk(r *http.Request) (registry.Chunk, error) {
	c := registry.Chunk{Body: r.Body, Start: -1, Length: r.ContentLength}
	start, length, err := parseContentRange(r.Header.Get("Content-Range"), r.ContentLength)
	if err != nil {
		return c, err
	}
	if start >= 0 {
		c.Start, c.Length = start, length
	}
	return c, nil
}

// parseContentRange reads an upload chunk's Content-Range, "start-end" in bytes,
// inclusive, as distribution has it ("bytes " or "bytes=" before it is tolerated):
// where the chunk starts and how long it is. start is -1 when there is no header.
// A Content-Length (contentLength >= 0) must agree with the range.
func parseContentRange(cr string, contentLength int64) (start, length int64, err error) {
	if cr == "" {
		return -1, contentLength, nil
	}
	cr = strings.TrimPrefix(strings.TrimSpace(cr), "bytes=")
	cr = strings.TrimPrefix(cr, "bytes ")
	first, last, ok := strings.Cut(cr, "-")
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	// digits only: strconv takes a sign too
	if !ok || !digits(first) || !digits(last) || err1 != nil || err2 != nil || end < start || end == math.MaxInt64 {
		return -1, 0, &errcode.Error{Code: errcode.BlobUploadInvalid, Message: "malformed Content-Range",
			Status: http.StatusRequestedRangeNotSatisfiable}
	}
	length = end - start + 1
	if contentLength >= 0 && contentLength != length {
		return -1, 0, &errcode.Error{Code: errcode.BlobUploadInvalid,
			Message: "Content-Range and Content-Length disagree", Status: http.StatusRequestedRangeNotSatisfiable}
	}
	return start, length, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

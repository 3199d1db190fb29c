package server

import (
	"net/http"
	"strconv"
	"time"
)

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	h := w.Header()
	if r.Method == http.MethodHead {
		d, size, err := s.reg.StatBlob(r.Context(), rt.name, rt.ref)
		if s.mirrored(rt, err) {
			d, size, err = s.mirror.StatBlob(r.Context(), rt.name, rt.ref)
		}
		if err != nil {
			return err
		}
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Accept-Ranges", "bytes")
		h.Set("Etag", `"`+d.String()+`"`)
		w.WriteHeader(http.StatusOK)
		return nil
	}
	b, err := s.reg.OpenBlob(r.Context(), rt.name, rt.ref)
	if s.mirrored(rt, err) {
		if served, err := s.serveMirroredBlob(w, r, rt); served || err != nil {
			return err
		}
		b, err = s.reg.OpenBlob(r.Context(), rt.name, rt.ref)
	}
	if err != nil {
		return err
	}
	if b.URL != "" {
		h.Set("Docker-Content-Digest", b.Digest.String())
		http.Redirect(w, r, b.URL, http.StatusTemporaryRedirect)
		return nil
	}
	defer b.Close()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", b.Digest.String())
	h.Set("Etag", `"`+b.Digest.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	// ServeContent answers Range requests (206, 416) and hands the blob's reader, an
	// *os.File in the embedded store, to net/http's ReadFrom, which sends it with
	// sendfile(2): no copy through user space (bench/README.md has the measurement).
	http.ServeContent(w, r, "", time.Time{}, b.ReadSeekCloser)
	return nil
}

func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	if err := s.reg.DeleteBlob(r.Context(), rt.name, rt.ref); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

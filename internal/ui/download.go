package ui

import (
	"errors"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/reference"
)

// blob downloads a file of an artifact, <name>@<digest>, as an attachment named as
// the query's name says: never shown by the browser in the view's origin, whatever
// its content.
func (h *Handler) blob(w http.ResponseWriter, r *http.Request, v *viewer, p string) error {
	repo, ref := splitReference(p)
	if !reference.IsDigest(ref) {
		return errNotFound
	}
	if ok, err := v.mayPull(w, r, repo); !ok {
		return err
	}
	b, err := h.reg.OpenBlob(r.Context(), repo, ref)
	if err != nil {
		var e *errcode.Error
		if errors.As(err, &e) && e.Code == errcode.BlobUnknown {
			return errNotFound
		}
		return err
	}
	if b.URL != "" {
		http.Redirect(w, r, b.URL, http.StatusFound)
		return nil
	}
	defer b.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fileName(r.URL.Query().Get("name"), b.Digest)}))
	hdr.Set("Cache-Control", "private, max-age=86400, immutable")
	hdr.Set("ETag", `"`+b.Digest.String()+`"`)
	http.ServeContent(w, r, "", time.Time{}, b)
	return nil
}

// fileName is a safe name to save a file as: the base of name without control
// characters, else the digest's hex.
func fileName(name string, d digest.Digest) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '/' || r == '\\' {
			return -1
		}
		return r
	}, path.Base(strings.ReplaceAll(name, "\\", "/")))
	if name == "" || name == "." || name == ".." || name == "/" {
		return d.Encoded()
	}
	return name
}

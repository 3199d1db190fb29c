package ui

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/reference"
	"github.com/graft-registry/graft/internal/registry"
)

// Actions change the registry through the registry service, which applies its locks
// as for the API; the view offers them only to a viewer whose policies allow them
// (deleting, and changing locks, need delete, as the API's PATCH does) and checks
// again when they are posted.

// previewDetails bounds the manifests of a delete preview described one by one.
const previewDetails = 100

type deleteData struct {
	Repo string
	Root *loaded
	// Removed are the manifests the delete removes, the root first; Locked those it
	// keeps, with what hangs under them.
	Removed, Locked []previewRow
	// More is how many more it removes than Removed lists.
	More int
}

type previewRow struct {
	Digest digest.Digest
	M      *loaded // nil past previewDetails
}

// deletePreview shows what deleting a manifest removes, as graft delete lists it
// before it asks, and the form that confirms it.
func (h *Handler) deletePreview(w http.ResponseWriter, r *http.Request, v *viewer, repo, ref string) error {
	if !v.may(repo).Has(auth.Delete) {
		return errForbidden("You may not delete in " + repo + ".")
	}
	ctx := r.Context()
	root, err := h.load(ctx, repo, ref)
	if err != nil {
		return err
	}
	plan, err := h.reg.DeletePlan(ctx, repo, root.Info.Digest.String())
	if err != nil {
		return err
	}
	d := deleteData{Repo: repo, Root: root}
	rows := func(ds []digest.Digest) ([]previewRow, error) {
		var out []previewRow
		for _, x := range ds {
			row := previewRow{Digest: x}
			if len(d.Removed)+len(out) < previewDetails {
				m, err := h.load(ctx, repo, x.String())
				if err != nil && !notFound(err) {
					return nil, err
				}
				row.M = m
			}
			out = append(out, row)
		}
		return out, nil
	}
	if d.Removed, err = rows(plan.Manifests); err != nil {
		return err
	}
	if d.Locked, err = rows(plan.Locked); err != nil {
		return err
	}
	short := "@" + shortDigest(root.Info.Digest.String())
	h.render(w, r, v, http.StatusOK, "delete", page{
		Title:  "Delete " + repo + short,
		Crumbs: []crumb{{repo, repoURL(repo)}, {short, manifestURL(repo, root.Info.Digest.String())}, {"delete", ""}},
		Data:   d,
	})
	return nil
}

// manifestAction does what a manifest page's form posts: delete, lock or unlock.
func (h *Handler) manifestAction(w http.ResponseWriter, r *http.Request, v *viewer, repo, ref string) error {
	if ok, err := v.mayPull(w, r, repo); !ok {
		return err
	}
	if !v.may(repo).Has(auth.Delete) {
		return errForbidden("You may not change " + repo + ".")
	}
	ctx := r.Context()
	switch action := r.PostFormValue("action"); action {
	case "delete":
		if !reference.IsDigest(ref) {
			return &pageError{http.StatusBadRequest, "A manifest is deleted by its digest."}
		}
		done, err := h.reg.DeleteManifest(ctx, repo, ref)
		if err != nil {
			return err
		}
		q := url.Values{"deleted": {strconv.Itoa(len(done.Manifests))}, "kept": {strconv.Itoa(len(done.Locked))}}
		http.Redirect(w, r, repoURL(repo)+"?"+q.Encode(), http.StatusSeeOther)
	case "lock", "unlock":
		on := action == "unlock"
		if _, err := h.reg.UpdateManifest(ctx, repo, ref, registry.AttributesPatch{WriteEnabled: &on, DeleteEnabled: &on}); err != nil {
			return err
		}
		http.Redirect(w, r, manifestURL(repo, ref)+"?done="+action+"ed", http.StatusSeeOther)
	default:
		return &pageError{http.StatusBadRequest, "There is no such action."}
	}
	return nil
}

// repositoryAction does what a repository page's form posts: lock or unlock.
func (h *Handler) repositoryAction(w http.ResponseWriter, r *http.Request, v *viewer, repo string) error {
	if ok, err := v.mayPull(w, r, repo); !ok {
		return err
	}
	if !v.may(repo).Has(auth.Delete) {
		return errForbidden("You may not change " + repo + ".")
	}
	action := r.PostFormValue("action")
	if action != "lock" && action != "unlock" {
		return &pageError{http.StatusBadRequest, "There is no such action."}
	}
	on := action == "unlock"
	if _, err := h.reg.UpdateRepository(r.Context(), repo, registry.AttributesPatch{WriteEnabled: &on, DeleteEnabled: &on}); err != nil {
		return err
	}
	http.Redirect(w, r, repoURL(repo)+"?done="+action+"ed", http.StatusSeeOther)
	return nil
}

package ui

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/reference"
	"github.com/graft-registry/graft/internal/registry"
)

// Page sizes of the listings.
const (
	reposPerPage = 50
	rowsPerPage  = 50
	// listBatch is how many repositories a listing cut down to what the viewer may see
	// reads at a time, as the API's does.
	listBatch = 1000
	// widePicture is the width of a picture, in pixels, above which it takes the
	// page's width.
	widePicture = 720
	// maxConfig bounds the image config a page reads.
	maxConfig = 1 << 20
)

type repositoriesData struct {
	Filter string
	Repos  []metastore.Repository
	Next   string
}

// repositories lists the repositories the viewer may see, whose names start with the
// filter, in name order.
func (h *Handler) repositories(w http.ResponseWriter, r *http.Request, v *viewer) error {
	q := r.URL.Query()
	prefix := strings.TrimSpace(q.Get("q"))
	repos, more, err := h.repositoryPage(r.Context(), v, prefix, q.Get("last"), reposPerPage)
	if err != nil {
		return err
	}
	d := repositoriesData{Filter: prefix, Repos: repos}
	if more {
		d.Next = withQuery(Prefix, url.Values{"q": {prefix}, "last": {repos[len(repos)-1].Name}})
	}
	h.render(w, r, v, http.StatusOK, "repositories", page{Title: "Repositories", Data: d})
	return nil
}

// repositoryPage returns up to n repositories after last whose names start with
// prefix and that v may see: an indexed range of names, read in batches when some of
// it is cut away.
func (h *Handler) repositoryPage(ctx context.Context, v *viewer, prefix, last string, n int) ([]metastore.Repository, bool, error) {
	out := []metastore.Repository{}
	if prefix != "" && !validNamePrefix(prefix) {
		return out, false, nil
	}
	after := max(last, prefixStart(prefix))
	batch := n + 1
	if v.caller != nil {
		batch = listBatch
	}
	for {
		repos, more, err := h.reg.RepositoryList(ctx, after, batch)
		if err != nil {
			return nil, false, err
		}
		for _, rp := range repos {
			if !strings.HasPrefix(rp.Name, prefix) {
				return out, false, nil
			}
			if v.may(rp.Name).Has(auth.Pull) {
				if len(out) == n {
					return out, true, nil
				}
				out = append(out, rp)
			}
		}
		if !more || len(repos) == 0 {
			return out, false, nil
		}
		after = repos[len(repos)-1].Name
	}
}

// validNamePrefix reports whether s may start a repository name.
func validNamePrefix(s string) bool {
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.ContainsRune("._-/", c)) {
			return false
		}
	}
	return true
}

// prefixStart is the greatest string that sorts before every repository name that
// starts with prefix, and after every other name that sorts before them: prefix with
// its last byte one less, followed by a byte no name has.
func prefixStart(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]-1) + "\x7f"
}

type repositoryData struct {
	Repo *metastore.Repository
	// Tab is "tagged" or "untagged"; Kind the kind filter, "" for all.
	Tab, Kind string
	Kinds     []artifact.Kind
	Rows      []manifestRow
	Next      string
	MayChange bool
	// TabURLs are the pages of each tab, keeping the kind filter.
	TaggedURL, UntaggedURL string
}

type manifestRow struct {
	registry.ManifestInfo
	Kind artifact.Kind
}

// Type is what a listing says a manifest is besides its kind: an image's platform, an
// artifact's type. An artifact pushed as an image (cosign's tag-schema signatures)
// has only the image config's type, which says nothing.
func (m manifestRow) Type() string {
	switch {
	case m.Platform != nil:
		return platformString(m.Platform)
	case m.Kind == artifact.Image || m.Kind == artifact.Index:
		return ""
	case m.ArtifactType == m.ConfigMediaType && (m.ConfigMediaType == ocispec.MediaTypeImageConfig || m.ConfigMediaType == manifest.MediaTypeDockerConfig):
		return ""
	}
	return m.ArtifactType
}

// repository is a repository's page: its tagged or its untagged manifests, newest
// first, a page at a time, of one kind or all.
func (h *Handler) repository(w http.ResponseWriter, r *http.Request, v *viewer, name string) error {
	if ok, err := v.mayPull(w, r, name); !ok {
		return err
	}
	ctx := r.Context()
	rp, err := h.reg.Repository(ctx, name)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	d := repositoryData{Repo: rp, Tab: q.Get("tab"), Kinds: artifact.Kinds, MayChange: v.may(name).Has(auth.Delete)}
	if d.Tab != "tagged" && d.Tab != "untagged" {
		d.Tab = "tagged"
		if rp.TagCount == 0 {
			d.Tab = "untagged"
		}
	}
	var want artifact.Kind
	if k := artifact.Kind(q.Get("kind")); k.Valid() {
		want, d.Kind = k, string(k)
	}
	tagged := d.Tab == "tagged"
	f := metastore.Filter{Tagged: &tagged, Kind: string(want)}
	list, more, err := h.reg.ManifestList(ctx, name, f, q.Get("last"), rowsPerPage)
	if err != nil {
		return err
	}
	after := ""
	if more {
		after = list[len(list)-1].Digest.String()
	}
	for i := range list {
		d.Rows = append(d.Rows, manifestRow{ManifestInfo: list[i], Kind: h.kindOf(ctx, &list[i].Manifest, nil)})
	}
	// newest first within the page: the store lists in digest order, and keeps no
	// index by time
	slices.SortStableFunc(d.Rows, func(a, b manifestRow) int { return b.Updated.Compare(a.Updated) })
	base := url.Values{"tab": {d.Tab}, "kind": {d.Kind}}
	if after != "" {
		next := url.Values{"tab": {d.Tab}, "kind": {d.Kind}, "last": {after}}
		d.Next = withQuery(repoURL(name), next)
	}
	base.Set("tab", "tagged")
	d.TaggedURL = withQuery(repoURL(name), base)
	base.Set("tab", "untagged")
	d.UntaggedURL = withQuery(repoURL(name), base)
	h.render(w, r, v, http.StatusOK, "repository", page{
		Title: name, Crumbs: []crumb{{name, repoURL(name)}}, Notice: notice(q), Data: d,
	})
	return nil
}

// notice is the message of the action that redirected here: numbers and words of
// this package only, nothing a request can spell.
func notice(q url.Values) string {
	switch {
	case q.Has("deleted"):
		n, _ := strconv.Atoi(q.Get("deleted"))
		msg := "Deleted " + plural(n, "manifest") + "."
		if k, _ := strconv.Atoi(q.Get("kept")); k > 0 {
			msg += " Kept " + plural(k, "locked manifest") + " and what hangs under them."
		}
		return msg
	case q.Get("done") == "locked":
		return "Locked: deletes and writes are refused until it is unlocked."
	case q.Get("done") == "unlocked":
		return "Unlocked."
	}
	return ""
}

type manifestData struct {
	Repo string
	// Ref is the tag or digest the page was asked for.
	Ref    string
	M      *loaded
	Config *imageConfig
	Layers []layerRow
	// Children are the manifests of an index.
	Children []ocispec.Descriptor
	// Annotations are the manifest's, sorted.
	Annotations []keyValue
	Picture     *picture
	// Wide is set when the picture needs the page's width: what is beside it then
	// goes under it.
	Wide      bool
	Cut       bool
	Pull      []string
	MayChange bool
	Locked    bool
	Lock      string
}

type imageConfig struct {
	ocispec.Image
	Labels []keyValue
}

type layerRow struct {
	ocispec.Descriptor
	Title       string
	DownloadURL string
}

// manifest is a manifest's page: the picture of its graph beside what it is.
func (h *Handler) manifest(w http.ResponseWriter, r *http.Request, v *viewer, repo, ref string) error {
	if ok, err := v.mayPull(w, r, repo); !ok {
		return err
	}
	q := r.URL.Query()
	switch {
	case q.Has("delete"):
		return h.deletePreview(w, r, v, repo, ref)
	case q.Has("referrers"):
		return h.referrersPage(w, r, v, repo, ref, q.Get("referrers"))
	}
	ctx := r.Context()
	m, err := h.load(ctx, repo, ref)
	if err != nil {
		return err
	}
	d := manifestData{Repo: repo, Ref: ref, M: m, MayChange: v.may(repo).Has(auth.Delete),
		Locked: locked(m.Info.Attributes), Lock: lockState(m.Info.Attributes),
		Annotations: sortedMap(m.Info.Annotations)}
	if p := m.Parsed; p != nil {
		d.Children = p.Manifests
		d.Annotations = sortedMap(p.Annotations)
		blobs := p.Blobs
		if p.Config != nil && len(blobs) > 0 {
			blobs = blobs[1:]
			if d.Config, err = h.imageConfig(ctx, repo, p.Config); err != nil {
				return err
			}
		}
		for _, b := range blobs {
			l := layerRow{Descriptor: b, Title: b.Annotations[ocispec.AnnotationTitle]}
			if l.Title != "" {
				l.DownloadURL = withQuery(Prefix+"_blob/"+repo+"@"+b.Digest.String(), url.Values{"name": {l.Title}})
			}
			d.Layers = append(d.Layers, l)
		}
	}
	g, err := h.buildGraph(ctx, repo, m, pictureLimits)
	if err != nil {
		return err
	}
	d.Picture, d.Cut = draw(repo, g), g.Cut
	d.Wide = d.Picture.Width > widePicture
	d.Pull = pullCommands(r, repo, ref, m)
	title := repo + "@" + shortDigest(m.Info.Digest.String())
	if !reference.IsDigest(ref) {
		title = repo + ":" + ref
	}
	h.render(w, r, v, http.StatusOK, "manifest", page{
		Title:  title,
		Crumbs: []crumb{{repo, repoURL(repo)}, {strings.TrimPrefix(title, repo), manifestURL(repo, ref)}},
		Notice: notice(q), Data: d,
	})
	return nil
}

// imageConfig reads the image config desc names, or returns nil for a config that is
// not an image's, too large, or not readable here.
func (h *Handler) imageConfig(ctx context.Context, repo string, desc *ocispec.Descriptor) (*imageConfig, error) {
	if desc.MediaType != ocispec.MediaTypeImageConfig && desc.MediaType != manifest.MediaTypeDockerConfig || desc.Size > maxConfig {
		return nil, nil
	}
	b, err := h.reg.OpenBlob(ctx, repo, desc.Digest.String())
	var e *errcode.Error
	switch {
	case err != nil && !errors.As(err, &e):
		return nil, err
	case err != nil || b.Blob == nil: // gone, locked, or only at a URL of the blob store
		return nil, nil
	}
	defer b.Close()
	c := &imageConfig{}
	if err := json.NewDecoder(io.LimitReader(b, maxConfig)).Decode(&c.Image); err != nil {
		return nil, nil
	}
	c.Labels = sortedMap(c.Config.Labels)
	return c, nil
}

// pullCommands are the commands that pull the manifest as the page names it.
func pullCommands(r *http.Request, repo, ref string, m *loaded) []string {
	sep := ":"
	if reference.IsDigest(ref) {
		sep = "@"
	}
	at := r.Host + "/" + repo + sep + ref
	plain := ""
	if !overTLS(r) {
		plain = " --plain-http"
	}
	var out []string
	if m.Kind == artifact.Image || m.Kind == artifact.Index {
		out = append(out, "docker pull "+at)
	}
	return append(out, "oras pull"+plain+" "+at, "graft pull"+plain+" "+at)
}

type referrersData struct {
	Repo         string
	Subject      *loaded
	ArtifactType string
	Rows         []ocispec.Descriptor
	Next         string
}

// referrersPage lists the referrers of one artifact type of a manifest: what a group
// of the picture stands for.
func (h *Handler) referrersPage(w http.ResponseWriter, r *http.Request, v *viewer, repo, ref, artifactType string) error {
	ctx := r.Context()
	m, err := h.load(ctx, repo, ref)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	page1, err := h.reg.Referrers(ctx, repo, m.Info.Digest.String(), artifactType, q.Get("last"), 100)
	if err != nil {
		return err
	}
	d := referrersData{Repo: repo, Subject: m, ArtifactType: artifactType, Rows: page1.Index.Manifests}
	if page1.Next != "" {
		d.Next = withQuery(manifestURL(repo, m.Info.Digest.String()),
			url.Values{"referrers": {artifactType}, "last": {page1.Next.String()}})
	}
	short := "@" + shortDigest(m.Info.Digest.String())
	h.render(w, r, v, http.StatusOK, "referrers", page{
		Title:  "Referrers of " + repo + short,
		Crumbs: []crumb{{repo, repoURL(repo)}, {short, manifestURL(repo, m.Info.Digest.String())}, {"referrers", ""}},
		Data:   d,
	})
	return nil
}

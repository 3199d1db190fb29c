package server

import "strings"

// kind is an endpoint of the API.
type kind int

const (
	routeNone          kind = iota
	routeBase               // /v2/
	routeCatalog            // /v2/_catalog
	routeTags               // /v2/<name>/tags/list
	routeManifest           // /v2/<name>/manifests/<ref>
	routeBlob               // /v2/<name>/blobs/<digest>
	routeUploads            // /v2/<name>/blobs/uploads/
	routeUpload             // /v2/<name>/blobs/uploads/<id>
	routeReferrers          // /v2/<name>/referrers/<digest>
	routeORASManifest       // /oras/artifacts/v1/<name>/manifests/<digest>
	routeORASReferrers      // /oras/artifacts/v1/<name>/manifests/<digest>/referrers
	routeMetaRepos          // /graft/v1/_repositories
	routeMetaRepo           // /graft/v1/<name>
	routeMetaManifests      // /graft/v1/<name>/_manifests
	routeMetaManifest       // /graft/v1/<name>/_manifests/<ref>
	routeMetaEvents         // /graft/v1/_events
)

var kindNames = [...]string{"none", "base", "catalog", "tags", "manifest", "blob", "uploads", "upload",
	"referrers", "oras_manifest", "oras_referrers", "meta_repositories", "meta_repository",
	"meta_manifests", "meta_manifest", "meta_events"}

func (k kind) String() string { return kindNames[k] }

// route is a parsed request path. Its name and ref are as they appear in the path;
// the registry validates them.
type route struct {
	kind kind
	name string
	ref  string // a tag, digest or upload ID
}

const (
	v2Prefix   = "/v2/"
	orasPrefix = "/oras/artifacts/v1/"
	metaPrefix = "/graft/v1/"
)

// parseRoute parses path. Repository names contain slashes, so the endpoint is
// recognized from the end of the path and the name is everything before it.
func parseRoute(path string) route {
	switch {
	case path == "/v2" || path == v2Prefix:
		return route{kind: routeBase}
	case path == "/v2/_catalog":
		return route{kind: routeCatalog}
	case strings.HasPrefix(path, v2Prefix):
		return parseV2(path[len(v2Prefix):])
	case strings.HasPrefix(path, orasPrefix):
		return parseORAS(path[len(orasPrefix):])
	case strings.HasPrefix(path, metaPrefix):
		return parseMeta(path[len(metaPrefix):])
	}
	return route{}
}

// parseMeta parses a path of the metadata API. Its endpoint words start with '_',
// which no component of a repository name can, so the first one ends the name.
func parseMeta(p string) route {
	switch p {
	case "_repositories":
		return route{kind: routeMetaRepos}
	case "_events":
		return route{kind: routeMetaEvents}
	}
	name, rest, ok := strings.Cut(p, "/_manifests")
	switch {
	case !ok:
		return named(routeMetaRepo, p, "")
	case rest == "":
		return named(routeMetaManifests, name, "")
	case rest[0] == '/' && len(rest) > 1 && !strings.Contains(rest[1:], "/"):
		return named(routeMetaManifest, name, rest[1:])
	}
	return route{}
}

func parseV2(p string) route {
	if name, ok := strings.CutSuffix(p, "/tags/list"); ok {
		return named(routeTags, name, "")
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads/"); ok {
		return named(routeUploads, name, "")
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads"); ok {
		return named(routeUploads, name, "")
	}
	rest, last, ok := cutLast(p)
	if !ok || last == "" {
		return route{}
	}
	rest, endpoint, ok := cutLast(rest)
	if !ok {
		return route{}
	}
	switch endpoint {
	case "manifests":
		return named(routeManifest, rest, last)
	case "blobs":
		return named(routeBlob, rest, last)
	case "referrers":
		return named(routeReferrers, rest, last)
	case "uploads":
		if name, ok := strings.CutSuffix(rest, "/blobs"); ok {
			return named(routeUpload, name, last)
		}
	}
	return route{}
}

func parseORAS(p string) route {
	kind := routeORASManifest
	if rest, ok := strings.CutSuffix(p, "/referrers"); ok {
		kind, p = routeORASReferrers, rest
	}
	rest, ref, ok := cutLast(p)
	if !ok || ref == "" {
		return route{}
	}
	name, ok := strings.CutSuffix(rest, "/manifests")
	if !ok {
		return route{}
	}
	return named(kind, name, ref)
}

// cutLast splits p at its last slash.
func cutLast(p string) (before, after string, ok bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", "", false
	}
	return p[:i], p[i+1:], true
}

func named(k kind, name, ref string) route {
	if name == "" {
		return route{}
	}
	return route{kind: k, name: name, ref: ref}
}

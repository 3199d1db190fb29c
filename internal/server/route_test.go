package server

import (
	"strings"
	"testing"
)

const testDigest = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		want route
	}{
		{"/v2/", route{kind: routeBase}},
		{"/v2", route{kind: routeBase}},
		{"/v2/_catalog", route{kind: routeCatalog}},

		{"/v2/alpine/tags/list", route{routeTags, "alpine", ""}},
		{"/v2/library/alpine/manifests/latest", route{routeManifest, "library/alpine", "latest"}},
		{"/v2/library/alpine/manifests/" + testDigest, route{routeManifest, "library/alpine", testDigest}},
		{"/v2/library/alpine/blobs/" + testDigest, route{routeBlob, "library/alpine", testDigest}},
		{"/v2/library/alpine/blobs/uploads/", route{routeUploads, "library/alpine", ""}},
		{"/v2/library/alpine/blobs/uploads", route{routeUploads, "library/alpine", ""}},
		{"/v2/library/alpine/blobs/uploads/0b6b2c8e-4d55-4a4e-8b4b-7c2a1b0b7a3e", route{routeUpload, "library/alpine", "0b6b2c8e-4d55-4a4e-8b4b-7c2a1b0b7a3e"}},
		{"/v2/library/alpine/referrers/" + testDigest, route{routeReferrers, "library/alpine", testDigest}},
		{"/oras/artifacts/v1/library/alpine/manifests/" + testDigest, route{routeORASManifest, "library/alpine", testDigest}},
		{"/oras/artifacts/v1/library/alpine/manifests/" + testDigest + "/referrers", route{routeORASReferrers, "library/alpine", testDigest}},

		// Multi-component names.
		{"/v2/a/b/c/tags/list", route{routeTags, "a/b/c", ""}},
		{"/v2/a/b/c/manifests/v1.0", route{routeManifest, "a/b/c", "v1.0"}},
		{"/v2/a/b/c/blobs/uploads/", route{routeUploads, "a/b/c", ""}},
		{"/v2/a/b/c/blobs/uploads/id", route{routeUpload, "a/b/c", "id"}},
		{"/oras/artifacts/v1/a/b/c/manifests/" + testDigest + "/referrers", route{routeORASReferrers, "a/b/c", testDigest}},

		// Names that contain the words of endpoints: the endpoint is the end of the path.
		{"/v2/x/blobs/uploads/blobs/" + testDigest, route{routeBlob, "x/blobs/uploads", testDigest}},
		{"/v2/x/blobs/uploads/blobs/uploads/", route{routeUploads, "x/blobs/uploads", ""}},
		{"/v2/x/blobs/uploads/blobs/uploads", route{routeUploads, "x/blobs/uploads", ""}},
		{"/v2/x/blobs/uploads/blobs/uploads/id", route{routeUpload, "x/blobs/uploads", "id"}},
		{"/v2/x/blobs/uploads/manifests/latest", route{routeManifest, "x/blobs/uploads", "latest"}},
		{"/v2/x/blobs/uploads/tags/list", route{routeTags, "x/blobs/uploads", ""}},
		{"/v2/manifests/tags/tags/list", route{routeTags, "manifests/tags", ""}},
		{"/v2/manifests/tags/manifests/latest", route{routeManifest, "manifests/tags", "latest"}},
		{"/v2/a/manifests/tags/list", route{routeTags, "a/manifests", ""}},
		{"/v2/tags/list/tags/list", route{routeTags, "tags/list", ""}},
		{"/v2/a/tags/list/manifests/list", route{routeManifest, "a/tags/list", "list"}},
		{"/v2/blobs/blobs/uploads/id", route{routeUpload, "blobs", "id"}},
		{"/v2/uploads/blobs/uploads/", route{routeUploads, "uploads", ""}},
		{"/v2/referrers/referrers/" + testDigest, route{routeReferrers, "referrers", testDigest}},
		{"/v2/v2/manifests/latest", route{routeManifest, "v2", "latest"}},
		{"/v2/_catalog/tags/list", route{routeTags, "_catalog", ""}},
		{"/v2/oras/artifacts/v1/x/manifests/latest", route{routeManifest, "oras/artifacts/v1/x", "latest"}},
		{"/oras/artifacts/v1/x/manifests/y/manifests/" + testDigest, route{routeORASManifest, "x/manifests/y", testDigest}},
		{"/oras/artifacts/v1/referrers/manifests/" + testDigest + "/referrers", route{routeORASReferrers, "referrers", testDigest}},

		// The metadata API: its endpoint words start with '_', which names cannot.
		{"/graft/v1/_repositories", route{kind: routeMetaRepos}},
		{"/graft/v1/library/alpine", route{routeMetaRepo, "library/alpine", ""}},
		{"/graft/v1/library/alpine/_manifests", route{routeMetaManifests, "library/alpine", ""}},
		{"/graft/v1/library/alpine/_manifests/" + testDigest, route{routeMetaManifest, "library/alpine", testDigest}},
		{"/graft/v1/a/manifests/tags/_manifests/latest", route{routeMetaManifest, "a/manifests/tags", "latest"}},
		{"/graft/v1/_repositories/_manifests", route{routeMetaManifests, "_repositories", ""}},
		{"/graft/v1/_manifests", route{routeMetaRepo, "_manifests", ""}},

		// Paths that must not route.
		{"", route{}},
		{"/", route{}},
		{"/v2//blobs/" + testDigest, route{}},
		{"/v2//manifests/latest", route{}},
		{"/v2//tags/list", route{}},
		{"/v2//blobs/uploads/", route{}},
		{"/v2//blobs/uploads", route{}},
		{"/v2//blobs/uploads/id", route{}},
		{"/v2//referrers/" + testDigest, route{}},
		{"/v2/blobs/uploads/", route{}},
		{"/v2/blobs/uploads/id", route{}},
		{"/v2/manifests/latest", route{}},
		{"/v2/tags/list", route{}},
		{"/v2/a/manifests/", route{}},
		{"/v2/a/manifests", route{}},
		{"/v2/a/blobs/", route{}},
		{"/v2/a/referrers/", route{}},
		{"/v2/a/tags/list/", route{}},
		{"/v2/a/tags/", route{}},
		{"/v2/a/tags/lists", route{}},
		{"/v2/a/manifests/latest/", route{}},
		{"/v2/a/manifests/latest/extra", route{}},
		{"/v2/a/blobs/uploads/id/", route{}},
		{"/v2/a/blobs/uploads//", route{}},
		{"/v2/a/unknown/x", route{}},
		{"/v2/a", route{}},
		{"/v2/_catalog/", route{}},
		{"/v2/_catalogs", route{}},
		{"/v2x", route{}},
		{"/v2x/a/manifests/latest", route{}},
		{"/v3/a/manifests/latest", route{}},
		{"v2/a/manifests/latest", route{}},
		{"//v2/a/manifests/latest", route{}},
		{"/V2/a/manifests/latest", route{}},
		{"/oras/artifacts/v1", route{}},
		{"/oras/artifacts/v1/", route{}},
		{"/oras/artifacts/v1//manifests/" + testDigest, route{}},
		{"/oras/artifacts/v1/manifests/" + testDigest, route{}},
		{"/oras/artifacts/v1/a/manifests/", route{}},
		{"/oras/artifacts/v1/a/manifests//referrers", route{}},
		{"/oras/artifacts/v1/a/blobs/" + testDigest, route{}},
		{"/oras/artifacts/v1/a/manifests/" + testDigest + "/referrers/", route{}},
		{"/oras/artifacts/v2/a/manifests/" + testDigest, route{}},
		{"/graft/v1/", route{}},
		{"/graft/v1", route{}},
		{"/graft/v1//_manifests", route{}},
		{"/graft/v1/a/_manifests/", route{}},
		{"/graft/v1/a/_manifests/x/", route{}},
		{"/graft/v1/a/_manifests/x/y", route{}},
		{"/graft/v1/a/_manifestsx", route{}},
		{"/graft/v2/a", route{}},
	}
	for _, tt := range tests {
		if got := parseRoute(tt.path); got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
		checkRoute(t, tt.path)
	}
}

func TestKindString(t *testing.T) {
	seen := map[string]kind{}
	for k := routeNone; int(k) < len(kindNames); k++ {
		s := k.String()
		if s == "" {
			t.Errorf("kind %d has no name", k)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("kinds %d and %d are both named %q", prev, k, s)
		}
		seen[s] = k
	}
}

// routePath rebuilds the canonical path of rt, the inverse of parseRoute.
func routePath(rt route) string {
	switch rt.kind {
	case routeBase:
		return "/v2/"
	case routeCatalog:
		return "/v2/_catalog"
	case routeTags:
		return "/v2/" + rt.name + "/tags/list"
	case routeManifest:
		return "/v2/" + rt.name + "/manifests/" + rt.ref
	case routeBlob:
		return "/v2/" + rt.name + "/blobs/" + rt.ref
	case routeUploads:
		return "/v2/" + rt.name + "/blobs/uploads/"
	case routeUpload:
		return "/v2/" + rt.name + "/blobs/uploads/" + rt.ref
	case routeReferrers:
		return "/v2/" + rt.name + "/referrers/" + rt.ref
	case routeORASManifest:
		return "/oras/artifacts/v1/" + rt.name + "/manifests/" + rt.ref
	case routeORASReferrers:
		return "/oras/artifacts/v1/" + rt.name + "/manifests/" + rt.ref + "/referrers"
	case routeMetaRepos:
		return "/graft/v1/_repositories"
	case routeMetaRepo:
		return "/graft/v1/" + rt.name
	case routeMetaManifests:
		return "/graft/v1/" + rt.name + "/_manifests"
	case routeMetaManifest:
		return "/graft/v1/" + rt.name + "/_manifests/" + rt.ref
	}
	return ""
}

// canonicalPath is the path parseRoute treats path as: "/v2" is "/v2/", and the
// uploads endpoint is the same with or without its trailing slash.
func canonicalPath(path string, rt route) string {
	switch {
	case rt.kind == routeBase && path == "/v2":
		return "/v2/"
	case rt.kind == routeUploads && !strings.HasSuffix(path, "/"):
		return path + "/"
	}
	return path
}

func hasRef(k kind) bool {
	switch k {
	case routeManifest, routeBlob, routeUpload, routeReferrers, routeORASManifest, routeORASReferrers,
		routeMetaManifest:
		return true
	}
	return false
}

func hasName(k kind) bool {
	switch k {
	case routeNone, routeBase, routeCatalog, routeMetaRepos:
		return false
	}
	return true
}

func TestRoutePathRoundTrip(t *testing.T) {
	// The table of TestParseRoute exercises the fuzz property on known inputs too.
	for _, path := range []string{
		"/v2", "/v2/", "/v2/_catalog", "/v2/a/b/blobs/uploads", "/v2/a/b/blobs/uploads/",
		"/v2/x/blobs/uploads/blobs/uploads/id", "/oras/artifacts/v1/a/manifests/d/referrers",
	} {
		checkRoute(t, path)
	}
}

func checkRoute(t *testing.T, path string) {
	t.Helper()
	rt := parseRoute(path)
	_ = rt.kind.String()
	if rt.kind == routeNone {
		if rt != (route{}) {
			t.Fatalf("parseRoute(%q) = %+v: no route, yet a name or ref", path, rt)
		}
		return
	}
	if hasName(rt.kind) != (rt.name != "") {
		t.Fatalf("parseRoute(%q) = %+v: name presence does not match kind %s", path, rt, rt.kind)
	}
	if hasRef(rt.kind) != (rt.ref != "") {
		t.Fatalf("parseRoute(%q) = %+v: ref presence does not match kind %s", path, rt, rt.kind)
	}
	if strings.Contains(rt.ref, "/") {
		t.Fatalf("parseRoute(%q) = %+v: ref contains a slash", path, rt)
	}
	rebuilt := routePath(rt)
	if rebuilt == "" {
		t.Fatalf("parseRoute(%q) = %+v: the test has no path for kind %s", path, rt, rt.kind)
	}
	if want := canonicalPath(path, rt); rebuilt != want {
		t.Fatalf("parseRoute(%q) = %+v, which rebuilds to %q, want %q", path, rt, rebuilt, want)
	}
	if again := parseRoute(rebuilt); again != rt {
		t.Fatalf("parseRoute(%q) = %+v, but its rebuilt path %q parses to %+v", path, rt, rebuilt, again)
	}
}

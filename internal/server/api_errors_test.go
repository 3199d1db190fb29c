package server_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/registrytest"
)

func TestBase(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		headers := map[string]string{"Content-Type": "application/json", "Content-Length": "2",
			"Docker-Distribution-API-Version": "registry/2.0"}
		run(t, srv, []call{
			{method: http.MethodGet, target: "/v2/", status: http.StatusOK, headers: headers, answer: []byte(`{}`)},
			{method: http.MethodGet, target: "/v2", status: http.StatusOK, headers: headers, answer: []byte(`{}`)},
			{method: http.MethodHead, target: "/v2/", status: http.StatusOK, headers: headers, answer: []byte{}},
		})
	})
}

// TestErrorBodies: every error is the spec's JSON body, byte for byte, with the
// headers of a JSON answer; the answer to HEAD has the status and no body.
func TestErrorBodies(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		im := apitest.NewImage(t, linuxAMD64, "a layer")
		srv.PushBlobs(t, "err/app", im.Blobs()[:1])
		missing := im.Layers[0].Desc.Digest.String()
		headers := func(body []byte) map[string]string {
			return map[string]string{"Content-Type": "application/json", "Content-Length": strconv.Itoa(len(body)),
				"Docker-Distribution-API-Version": "registry/2.0"}
		}
		for _, tc := range []struct {
			name, method, target string
			body                 []byte
			header               []string
			status               int
			answer               []byte
		}{
			{"unknown manifest", http.MethodGet, "/v2/err/app/manifests/v9", nil, nil, http.StatusNotFound,
				errorBody("MANIFEST_UNKNOWN", "manifest v9 is not in the repository")},
			{"invalid name", http.MethodGet, "/v2/err/App/tags/list", nil, nil, http.StatusBadRequest,
				errorBody("NAME_INVALID", "invalid repository name")},
			{"a detail", http.MethodPut, "/v2/err/app/manifests/v1", im.Manifest.Data, []string{"Content-Type", ocispec.MediaTypeImageManifest},
				http.StatusBadRequest, []byte(`{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob ` + missing +
					` is not in the repository","detail":["` + missing + `"]}]}`)},
			{"a message that quotes", http.MethodGet, "/v2/err/app/blobs/sha256:abc", nil, nil, http.StatusBadRequest,
				[]byte(`{"errors":[{"code":"DIGEST_INVALID","message":"invalid digest \"sha256:abc\""}]}`)},
			{"no such endpoint", http.MethodGet, "/nope", nil, nil, http.StatusNotFound, errorBody("UNSUPPORTED", "no such endpoint")},
			{"an unsupported method", http.MethodPost, "/v2/err/app/manifests/v1", nil, nil, http.StatusMethodNotAllowed,
				errorBody("UNSUPPORTED", "POST is not supported here")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				call{method: tc.method, target: tc.target, body: tc.body, header: tc.header, status: tc.status,
					headers: headers(tc.answer), answer: tc.answer}.check(t, srv)
				if tc.method == http.MethodGet {
					call{method: http.MethodHead, target: tc.target, status: tc.status, answer: []byte{},
						headers: map[string]string{"Content-Length": ""}}.check(t, srv)
				}
			})
		}
	})
}

// TestUnknownEndpoints: a path the API does not have is 404 UNSUPPORTED; a method an
// endpoint does not have is 405 UNSUPPORTED, with an Allow header that lists those it
// has. Neither changes anything.
func TestUnknownEndpoints(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		im := apitest.NewImage(t, linuxAMD64, "a layer")
		srv.PushImage(t, "good", "latest", im)
		layer := im.Layers[0].Desc.Digest.String()
		loc := srv.StartUpload(t, "good")
		var calls []call
		for _, path := range []string{
			"/nope", "/v2/good", "/v2/good/nope/latest", "/v2/good/manifests/", "/v2/good/blobs/", "/v3/good/tags/list",
			"/oras/artifacts/v1/good/nope", "/oras/artifacts/v1/good/manifests/", "/graft/v1/good/_manifests/a/b",
		} {
			calls = append(calls, call{method: http.MethodGet, target: path, status: http.StatusNotFound,
				code: "UNSUPPORTED", message: "no such endpoint"})
		}
		// An endpoint word the metadata API does not have is part of the name.
		calls = append(calls, call{method: http.MethodGet, target: "/graft/v1/good/_tags", status: http.StatusBadRequest,
			code: "NAME_INVALID"})
		const (
			get       = "GET, HEAD"
			manifests = "GET, HEAD, PUT, DELETE"
			blobs     = "GET, HEAD, DELETE"
			uploads   = "POST"
			upload    = "GET, HEAD, PUT, PATCH, DELETE"
			patchable = "GET, HEAD, PATCH"
			repoAllow = "GET, HEAD, PATCH, DELETE"
		)
		d := im.Desc().Digest.String()
		for _, c := range []struct{ method, path, allow string }{
			{http.MethodPatch, "/v2/good/manifests/latest", manifests},
			{http.MethodPost, "/v2/good/manifests/latest", manifests},
			{http.MethodPost, "/v2/_catalog", get},
			{http.MethodDelete, "/v2/", get},
			{http.MethodPut, "/v2/good/blobs/" + layer, blobs},
			{http.MethodPost, "/v2/good/blobs/" + layer, blobs},
			{http.MethodPost, "/v2/good/tags/list", get},
			{http.MethodDelete, "/v2/good/tags/list", get},
			{http.MethodGet, "/v2/good/blobs/uploads/", uploads},
			{http.MethodHead, "/v2/good/blobs/uploads/", uploads},
			{http.MethodPost, loc, upload},
			{http.MethodPost, "/v2/good/referrers/" + layer, get},
			{http.MethodPut, "/oras/artifacts/v1/good/manifests/" + d, get},
			{http.MethodDelete, "/oras/artifacts/v1/good/manifests/" + d + "/referrers", get},
			{http.MethodPost, "/graft/v1/_repositories", get},
			{http.MethodPatch, "/graft/v1/_repositories", get},
			{http.MethodPut, "/graft/v1/good", repoAllow},
			{http.MethodPost, "/graft/v1/good", repoAllow},
			{http.MethodPost, "/graft/v1/good/_manifests", get},
			{http.MethodPatch, "/graft/v1/good/_manifests", get},
			{http.MethodDelete, "/graft/v1/good/_manifests/latest", patchable},
			{http.MethodPut, "/graft/v1/good/_manifests/latest", patchable},
			{http.MethodOptions, "/v2/good/manifests/latest", manifests},
			{"BREW", "/v2/", get},
			{"BREW", "/v2/good/manifests/latest", manifests},
		} {
			calls = append(calls, call{method: c.method, target: c.path, body: []byte("{}"), status: http.StatusMethodNotAllowed,
				code: "UNSUPPORTED", message: c.method + " is not supported here", headers: map[string]string{"Allow": c.allow}})
		}
		// The token endpoint is served only with authentication on; without, it is
		// no endpoint.
		calls = append(calls, call{method: http.MethodGet, target: "/auth/token", status: http.StatusNotFound, code: "UNSUPPORTED",
			headers: map[string]string{"Allow": ""}})
		run(t, srv, calls)
		wantManifest(t, srv, "good", "latest", im.Manifest)
		call{method: http.MethodGet, target: loc, status: http.StatusNoContent, headers: map[string]string{"Range": "0-0"}}.check(t, srv)
	})
}

// TestServerFailure: a store that fails is a 500 UNKNOWN that tells the client nothing
// of why, and is logged.
func TestServerFailure(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		srv.PushImage(t, "fail/app", "v1", apitest.NewImage(t, linuxAMD64, "a layer"))
		if err := srv.Stores.Meta.Close(); err != nil {
			t.Fatal(err)
		}
		body := errorBody("UNKNOWN", "internal server error")
		run(t, srv, []call{
			{method: http.MethodGet, target: "/v2/fail/app/manifests/v1", status: http.StatusInternalServerError, answer: body},
			{method: http.MethodHead, target: "/v2/fail/app/manifests/v1", status: http.StatusInternalServerError, answer: []byte{}},
			{method: http.MethodPost, target: "/v2/fail/app/blobs/uploads/?digest=" + digest.FromString("x").String(),
				body: []byte("x"), status: http.StatusInternalServerError, answer: body},
		})
		if log := srv.Log(); !strings.Contains(log, `"level":"ERROR","msg":"request failed","method":"GET","path":"/v2/fail/app/manifests/v1"`) {
			t.Errorf("the failure was not logged:\n%s", log)
		}
	})
}

// TestMetrics: /metrics serves the request counters in the Prometheus text format,
// counting what was asked.
func TestMetrics(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		for range 3 {
			srv.Do(t, http.MethodGet, "/v2/", nil)
		}
		srv.Do(t, http.MethodGet, "/v2/nothing/here/manifests/v1", nil)
		srv.Do(t, http.MethodDelete, "/v2/", nil)
		r := srv.Want(t, http.StatusOK, http.MethodGet, "/metrics", nil)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^graft_http_requests_total\{endpoint="base",method="GET",status="200"\} 3$`),
			regexp.MustCompile(`(?m)^graft_http_requests_total\{endpoint="manifest",method="GET",status="404"\} 1$`),
			regexp.MustCompile(`(?m)^graft_http_requests_total\{endpoint="base",method="DELETE",status="405"\} 1$`),
			regexp.MustCompile(`(?m)^graft_http_request_duration_seconds_count\{endpoint="base",method="GET"\} 3$`),
			regexp.MustCompile(`(?m)^graft_gc_duration_seconds_count 0$`), // the registry's own
		} {
			if !want.Match(r.Body) {
				t.Errorf("/metrics does not match %s", want)
			}
		}
	})
}

// TestHeadWhereverGet: every endpoint that answers GET answers HEAD with the same
// status and headers, and no body; an error, with its status.
func TestHeadWhereverGet(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		im := apitest.NewImage(t, linuxAMD64, "a layer")
		srv.PushImage(t, "head/app", "v1", im)
		d := im.Desc().Digest.String()
		loc := srv.StartUpload(t, "head/app")
		for _, path := range []string{
			"/v2/", "/v2/_catalog", "/v2/head/app/tags/list", "/v2/head/app/manifests/v1", "/v2/head/app/blobs/" + im.Layers[0].Desc.Digest.String(),
			loc, "/v2/head/app/referrers/" + d, "/oras/artifacts/v1/head/app/manifests/" + d,
			"/oras/artifacts/v1/head/app/manifests/" + d + "/referrers", "/graft/v1/_repositories", "/graft/v1/head/app",
			"/graft/v1/head/app/_manifests", "/graft/v1/head/app/_manifests/v1",
			"/v2/head/app/manifests/v2", // and where GET fails
		} {
			get := srv.Do(t, http.MethodGet, path, nil)
			head := srv.Do(t, http.MethodHead, path, nil)
			if head.Status != get.Status || len(head.Body) != 0 {
				t.Errorf("HEAD %s: %v; GET answers %d", path, head, get.Status)
			}
			if get.Status >= 400 {
				continue // an error's HEAD is its status alone
			}
			for _, k := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Range", "Location", "Link"} {
				if head.Header.Get(k) != get.Header.Get(k) {
					t.Errorf("HEAD %s: %s %q, GET's is %q", path, k, head.Header.Get(k), get.Header.Get(k))
				}
			}
		}
	})
}

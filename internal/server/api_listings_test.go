package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/registrytest"
)

// jsonList is the JSON of a list of strings.
func jsonList(items []string) string {
	if len(items) == 0 {
		return "[]"
	}
	return `["` + strings.Join(items, `","`) + `"]`
}

// nextPage is the Link header of a listing at path whose page ended at last.
func nextPage(path string, q url.Values) string {
	return "<" + path + "?" + q.Encode() + `>; rel="next"`
}

// badNumbers are values of n no listing takes.
var badNumbers = []string{"-1", "abc", "1.5", "0x10", "1e3", "%2B1", "-99999999999999999999", ""}

// pagination checks a listing at path of want, in order, whose answer's body is
// body(page): walked whole and in pages of every size, after a last of each kind, with
// n=0, with an n larger than the registry serves, and with bad n.
func pagination(t *testing.T, srv *registrytest.Server, path string, want []string, body func(page []string) string) {
	t.Helper()
	call{name: "whole", method: http.MethodGet, target: path, status: http.StatusOK,
		answer: []byte(body(want)), headers: map[string]string{"Content-Type": "application/json", "Link": ""}}.check(t, srv)
	call{name: "HEAD", method: http.MethodHead, target: path, status: http.StatusOK, answer: []byte{},
		headers: map[string]string{"Content-Length": strconv.Itoa(len(body(want)))}}.check(t, srv)
	for n := 1; n <= len(want)+1; n++ {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			target := fmt.Sprintf("%s?n=%d", path, n)
			for i := 0; ; i += n {
				page := want[i:min(i+n, len(want))]
				link := ""
				if i+n < len(want) {
					link = nextPage(path, url.Values{"n": {strconv.Itoa(n)}, "last": {page[len(page)-1]}})
				}
				r := call{method: http.MethodGet, target: target, status: http.StatusOK, answer: []byte(body(page)),
					headers: map[string]string{"Link": link}}.check(t, srv)
				if link == "" || t.Failed() {
					return
				}
				target = apitest.NextLink(t, r)
			}
		})
	}
	for _, last := range []string{want[0], want[len(want)/2], want[len(want)-1], "", "~"} {
		var after []string
		for _, x := range want {
			if x > last {
				after = append(after, x)
			}
		}
		call{name: "last=" + last, method: http.MethodGet, target: path + "?" + url.Values{"last": {last}}.Encode(),
			status: http.StatusOK, answer: []byte(body(after))}.check(t, srv)
	}
	for _, n := range []string{"0", "0&last=" + url.QueryEscape(want[0])} {
		call{name: "n=" + n, method: http.MethodGet, target: path + "?n=" + n, status: http.StatusOK,
			answer: []byte(body(nil)), headers: map[string]string{"Link": ""}}.check(t, srv)
	}
	for _, n := range []string{"10000", "10001", "9223372036854775807", "99999999999999999999"} {
		call{name: "n=" + n, method: http.MethodGet, target: path + "?n=" + n, status: http.StatusOK,
			answer: []byte(body(want)), headers: map[string]string{"Link": ""}}.check(t, srv)
	}
	for _, n := range badNumbers {
		if n == "" {
			continue // n= asks for the default
		}
		call{name: "n=" + n, method: http.MethodGet, target: path + "?n=" + n, status: http.StatusBadRequest,
			code: "PAGINATION_NUMBER_INVALID", message: "n must be a non-negative integer"}.check(t, srv)
	}
}

func TestTagList(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const repo = "tags/app"
		im := apitest.NewImage(t, linuxAMD64, "tagged layer")
		// Tags whose lexical order is not their push order, and that sort differently
		// by number, case or punctuation.
		tags := []string{"v10", "v2", "v1", "V1", "1.0", "1.0-rc1", "1.0.1", "_private", "a", "A", "z.z", "latest"}
		srv.PushImage(t, repo, tags[0], im)
		for _, tag := range tags[1:] {
			srv.PushManifest(t, repo, tag, im.Manifest)
		}
		want := slices.Sorted(slices.Values(tags))
		pagination(t, srv, "/v2/"+repo+"/tags/list", want, func(page []string) string {
			return `{"name":"` + repo + `","tags":` + jsonList(page) + `}`
		})

		// A repository of blobs only has no tags; one that does not exist no list.
		srv.PushBlob(t, "tags/blobs", []byte("a blob"))
		run(t, srv, []call{
			{name: "blobs only", method: http.MethodGet, target: "/v2/tags/blobs/tags/list", status: http.StatusOK,
				answer: []byte(`{"name":"tags/blobs","tags":[]}`)},
			{name: "unknown repository", method: http.MethodGet, target: "/v2/tags/none/tags/list", status: http.StatusNotFound,
				code: "NAME_UNKNOWN", message: "repository tags/none is not known"},
			{name: "unknown repository, n=0", method: http.MethodGet, target: "/v2/tags/none/tags/list?n=0",
				status: http.StatusNotFound, code: "NAME_UNKNOWN"},
			{name: "invalid name", method: http.MethodGet, target: "/v2/Tags/tags/list", status: http.StatusBadRequest,
				code: "NAME_INVALID", message: "invalid repository name"},
		})
	})
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		// Names that sort differently by component than by byte.
		names := []string{"zeta", "alpha", "alpha/beta", "alpha-beta", "alpha.beta", "alpha_beta", "a/b/c/d", "b", "m/n"}
		for i, name := range names {
			if i%2 == 0 {
				srv.PushImage(t, name, "v1", apitest.NewImage(t, linuxAMD64, "layer of "+name))
			} else {
				srv.PushBlob(t, name, []byte("only a blob in "+name)) // enough to make a repository
			}
		}
		pagination(t, srv, "/v2/_catalog", slices.Sorted(slices.Values(names)), func(page []string) string {
			return `{"repositories":` + jsonList(page) + `}`
		})
	})
}

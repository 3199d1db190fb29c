package metadata

import (
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
)

func TestBadRequests(t *testing.T) {
	t.Parallel()
	c := start(t)
	r := c.repo("meta/bad")
	img := r.image(ocispec.Platform{OS: "linux", Architecture: "amd64"}, "a layer")
	r.tag(img, "v1")
	r.check("after the push")

	const (
		base     = "/graft/v1/meta/bad"
		unknown  = "/graft/v1/meta/unknown"
		invalid  = "/graft/v1/Meta/Bad"
		patch    = `{"writeEnabled": false}`
		shortHex = "sha256:abc"
	)
	absent := digest.FromString("never pushed").String()
	tests := []struct {
		name    string
		method  string
		target  string
		body    string
		status  int
		code    string
		mention string // a word the error message must hold
	}{
		{"unknown repository", "GET", unknown, "", 404, "NAME_UNKNOWN", ""},
		{"unknown repository, HEAD", "HEAD", unknown, "", 404, "", ""},
		{"unknown repository, PATCH", "PATCH", unknown, patch, 404, "NAME_UNKNOWN", ""},
		{"unknown repository, its manifests", "GET", unknown + "/_manifests", "", 404, "NAME_UNKNOWN", ""},
		{"unknown repository, filtered", "GET", unknown + "/_manifests?tagged=true&n=5", "", 404, "NAME_UNKNOWN", ""},
		{"unknown repository, a manifest by tag", "GET", unknown + "/_manifests/v1", "", 404, "NAME_UNKNOWN", ""},
		{"unknown repository, a manifest by digest", "GET", unknown + "/_manifests/" + absent, "", 404, "NAME_UNKNOWN", ""},
		{"unknown repository, PATCH a manifest", "PATCH", unknown + "/_manifests/" + absent, patch, 404, "NAME_UNKNOWN", ""},

		{"invalid name", "GET", invalid, "", 400, "NAME_INVALID", ""},
		{"invalid name, trailing slash", "GET", base + "/", "", 400, "NAME_INVALID", ""},
		{"invalid name, PATCH", "PATCH", invalid, patch, 400, "NAME_INVALID", ""},
		{"invalid name, manifests", "GET", invalid + "/_manifests", "", 400, "NAME_INVALID", ""},
		{"invalid name, a manifest", "GET", invalid + "/_manifests/v1", "", 400, "NAME_INVALID", ""},
		{"invalid name, PATCH a manifest", "PATCH", invalid + "/_manifests/v1", patch, 400, "NAME_INVALID", ""},

		{"short digest", "GET", base + "/_manifests/" + shortHex, "", 400, "DIGEST_INVALID", ""},
		{"unknown algorithm", "GET", base + "/_manifests/md5:d41d8cd98f00b204e9800998ecf8427e", "", 400, "DIGEST_INVALID", ""},
		{"upper-case hex", "GET", base + "/_manifests/" + strings.ToUpper(absent[:7]) + strings.ToUpper(absent[7:]), "", 400, "DIGEST_INVALID", ""},
		{"short digest, PATCH", "PATCH", base + "/_manifests/" + shortHex, patch, 400, "DIGEST_INVALID", ""},
		{"short digest in last", "GET", base + "/_manifests?last=" + shortHex, "", 400, "DIGEST_INVALID", ""},
		{"a tag in last", "GET", base + "/_manifests?last=v1", "", 400, "DIGEST_INVALID", ""},

		{"absent digest", "GET", base + "/_manifests/" + absent, "", 404, "MANIFEST_UNKNOWN", ""},
		{"absent digest, HEAD", "HEAD", base + "/_manifests/" + absent, "", 404, "", ""},
		{"absent tag", "GET", base + "/_manifests/v2", "", 404, "MANIFEST_UNKNOWN", ""},
		{"invalid tag", "GET", base + "/_manifests/-v1", "", 404, "MANIFEST_UNKNOWN", ""},
		{"absent digest, PATCH", "PATCH", base + "/_manifests/" + absent, patch, 404, "MANIFEST_UNKNOWN", ""},
		{"absent tag, PATCH", "PATCH", base + "/_manifests/v2", patch, 404, "MANIFEST_UNKNOWN", ""},

		{"negative n", "GET", base + "/_manifests?n=-1", "", 400, "PAGINATION_NUMBER_INVALID", ""},
		{"n not a number", "GET", base + "/_manifests?n=abc", "", 400, "PAGINATION_NUMBER_INVALID", ""},
		{"n a fraction", "GET", base + "/_manifests?n=1.5", "", 400, "PAGINATION_NUMBER_INVALID", ""},
		{"negative n, repositories", "GET", "/graft/v1/_repositories?n=-1", "", 400, "PAGINATION_NUMBER_INVALID", ""},
		{"n not a number, repositories", "GET", "/graft/v1/_repositories?n=abc", "", 400, "PAGINATION_NUMBER_INVALID", ""},

		{"tagged=maybe", "GET", base + "/_manifests?tagged=maybe", "", 400, "", "tagged"},
		{"hasSubject=2", "GET", base + "/_manifests?hasSubject=2", "", 400, "", "hasSubject"},
		{"hasSubject=yes with a good tagged", "GET", base + "/_manifests?tagged=true&hasSubject=yes", "", 400, "", "hasSubject"},

		{"POST repositories", "POST", "/graft/v1/_repositories", "", 405, "UNSUPPORTED", ""},
		{"PATCH repositories", "PATCH", "/graft/v1/_repositories", patch, 405, "UNSUPPORTED", ""},
		{"DELETE repositories", "DELETE", "/graft/v1/_repositories", "", 405, "UNSUPPORTED", ""},
		{"POST repository", "POST", base, patch, 405, "UNSUPPORTED", ""},
		{"PUT repository", "PUT", base, patch, 405, "UNSUPPORTED", ""},
		{"POST manifests", "POST", base + "/_manifests", patch, 405, "UNSUPPORTED", ""},
		{"PATCH manifests", "PATCH", base + "/_manifests", patch, 405, "UNSUPPORTED", ""},
		{"DELETE manifests", "DELETE", base + "/_manifests", "", 405, "UNSUPPORTED", ""},
		{"PUT manifest", "PUT", base + "/_manifests/v1", patch, 405, "UNSUPPORTED", ""},
		{"DELETE manifest", "DELETE", base + "/_manifests/v1", "", 405, "UNSUPPORTED", ""},
		{"DELETE manifest by digest", "DELETE", base + "/_manifests/" + img.Digest.String(), "", 405, "UNSUPPORTED", ""},
		{"POST manifest", "POST", base + "/_manifests/v1", patch, 405, "UNSUPPORTED", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &client{t: t, srv: c.srv}
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			resp := c.do(tt.method, tt.target, body, "Content-Type", "application/json")
			if apitest.CheckError(t, tt.method+" "+tt.target, resp, tt.status, tt.code) && tt.mention != "" {
				if errs, _ := resp.Errors(); !strings.Contains(errs[0].Message, tt.mention) {
					t.Errorf("%s %s: error %q does not name %s", tt.method, tt.target, errs[0].Message, tt.mention)
				}
			}
		})
	}

	// A refused PATCH changes nothing, not even the attributes it named before the
	// fault.
	t.Run("refused PATCH", func(t *testing.T) {
		c := &client{t: t, srv: c.srv}
		r.c = c
		bodies := []string{
			``,
			`{`,
			`not json`,
			`[{"writeEnabled": false}]`,
			`"writeEnabled"`,
			`{"writeEnabled": false, "bogus": true}`,
			`{"writeEnabled": "false"}`,
			`{"writeEnabled": 0}`,
			`{"readEnabled": false, "deleteEnabled": "no"}`,
			`{"listEnabled": false} {"readEnabled": false}`,
		}
		for _, path := range []string{"meta/bad", "meta/bad/_manifests/v1", "meta/bad/_manifests/" + img.Digest.String()} {
			for _, b := range bodies {
				resp := c.do(http.MethodPatch, "/graft/v1/"+path, []byte(b), "Content-Type", "application/json")
				apitest.CheckError(t, "PATCH "+path+" with "+b, resp, http.StatusBadRequest, "")
			}
		}
		if rp := r.check("after the refused requests"); rp.ChangeableAttributes != allEnabled {
			t.Errorf("repository attributes %+v after refused PATCHes, want all enabled", rp.ChangeableAttributes)
		}
		// The locks they named are not in force either.
		r.deleteTag("v1")
		r.check("after deleting v1")
	})

	// Bodies a lenient JSON decoder takes. Each subtest has a repository of its own,
	// so that a body wrongly taken changes nothing the others check.
	for _, tt := range []struct {
		name   string
		repo   string
		bodies []string
	}{
		// The four attributes are named as the API spells them; any other key is
		// unknown, however close.
		{"misspelled attribute", "meta/case", []string{`{"writeenabled": false}`, `{"WriteEnabled": false}`, `{"DELETEENABLED": false}`}},
		// null is no boolean, and a body of null no object.
		{"null", "meta/null", []string{`null`, `{"writeEnabled": null}`}},
		// A stray closing bracket makes the body invalid JSON.
		{"stray bracket", "meta/stray", []string{`{"writeEnabled": false}]`, `{"readEnabled": false}}`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &client{t: t, srv: c.srv}
			r := c.repo(tt.repo)
			img := r.image(ocispec.Platform{OS: "linux", Architecture: "amd64"}, "a layer")
			for _, path := range []string{r.name, r.name + "/_manifests/" + img.Digest.String()} {
				for _, b := range tt.bodies {
					resp := c.do(http.MethodPatch, "/graft/v1/"+path, []byte(b), "Content-Type", "application/json")
					apitest.CheckError(t, "PATCH "+path+" with "+b, resp, http.StatusBadRequest, "")
				}
			}
			if rp := c.repository(r.name); rp.ChangeableAttributes != allEnabled {
				t.Errorf("repository attributes %+v, want all enabled", rp.ChangeableAttributes)
			}
			if m := c.manifest(r.name, img.Digest.String()); m.ChangeableAttributes != allEnabled {
				t.Errorf("manifest attributes %+v, want all enabled", m.ChangeableAttributes)
			}
		})
	}
}

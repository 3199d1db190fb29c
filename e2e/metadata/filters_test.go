package metadata

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/apitest"
)

func TestManifestFilters(t *testing.T) {
	t.Parallel()
	c := start(t)
	f := pushFixture(c, "meta/filters")
	r := f.r
	r.check("after the pushes")

	tests := []struct {
		name  string
		query url.Values
		keep  func(m *pushed, tagged bool) bool
	}{
		{"everything", url.Values{}, func(*pushed, bool) bool { return true }},
		{"tagged", url.Values{"tagged": {"true"}}, func(_ *pushed, tagged bool) bool { return tagged }},
		{"untagged", url.Values{"tagged": {"false"}}, func(_ *pushed, tagged bool) bool { return !tagged }},
		{"with subject", url.Values{"hasSubject": {"true"}}, func(m *pushed, _ bool) bool { return m.Subject != "" }},
		{"without subject", url.Values{"hasSubject": {"false"}}, func(m *pushed, _ bool) bool { return m.Subject == "" }},
		{"images", url.Values{"artifactType": {ocispec.MediaTypeImageConfig}},
			func(m *pushed, _ bool) bool { return m.ArtifactType == ocispec.MediaTypeImageConfig }},
		{"signatures", url.Values{"artifactType": {typeSignature}},
			func(m *pushed, _ bool) bool { return m.ArtifactType == typeSignature }},
		{"config media type as artifact type", url.Values{"artifactType": {typeSBOMConfig}},
			func(m *pushed, _ bool) bool { return m == f.sbom }},
		{"unknown artifact type", url.Values{"artifactType": {"application/vnd.example.none"}},
			func(*pushed, bool) bool { return false }},
		{"untagged without subject", url.Values{"tagged": {"false"}, "hasSubject": {"false"}},
			func(m *pushed, tagged bool) bool { return !tagged && m.Subject == "" }},
		{"tagged images", url.Values{"tagged": {"true"}, "artifactType": {ocispec.MediaTypeImageConfig}},
			func(m *pushed, tagged bool) bool { return tagged && m.ArtifactType == ocispec.MediaTypeImageConfig }},
		{"untagged images", url.Values{"tagged": {"false"}, "artifactType": {ocispec.MediaTypeImageConfig}},
			func(m *pushed, tagged bool) bool { return !tagged && m.ArtifactType == ocispec.MediaTypeImageConfig }},
		{"sboms with subject", url.Values{"hasSubject": {"true"}, "artifactType": {typeSBOM}},
			func(m *pushed, _ bool) bool { return m == f.indexSBOM }},
		{"tagged with subject", url.Values{"tagged": {"true"}, "hasSubject": {"true"}},
			func(*pushed, bool) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &client{t: t, srv: c.srv}
			want := r.wantList(tt.keep)
			// Whole, then in pages of 1 and 2: every page must keep the filters.
			for _, n := range []string{"", "1", "2"} {
				q := url.Values{}
				for k, v := range tt.query {
					q[k] = v
				}
				if n != "" {
					q.Set("n", n)
				}
				got, pages := c.manifests(r.name, q)
				if !slices.EqualFunc(got, want, func(a, b manifestInfo) bool { return equalInfo(a.untimed(), b) }) {
					t.Errorf("?%s listed %v, want %v", q.Encode(), digestsOf(got), digestsOf(want))
				}
				wantPages := 1
				if n != "" && len(want) > 0 {
					size := map[string]int{"1": 1, "2": 2}[n]
					wantPages = (len(want) + size - 1) / size
				}
				if pages != wantPages {
					t.Errorf("?%s took %d pages, want %d", q.Encode(), pages, wantPages)
				}
			}
		})
	}
	if len(r.wantList(nil)) < 8 {
		t.Fatalf("the fixture has %d manifests; the pages above test too little", len(r.wantList(nil)))
	}
}

func TestManifestPagination(t *testing.T) {
	t.Parallel()
	c := start(t)
	f := pushFixture(c, "meta/pages")
	r := f.r
	all := r.wantList(nil)

	// The Link of a filtered page carries the filters and the page size.
	q := url.Values{"tagged": {"false"}, "artifactType": {ocispec.MediaTypeImageConfig}, "n": {"1"}}
	resp := c.want(http.StatusOK, http.MethodGet, "/graft/v1/"+r.name+"/_manifests?"+q.Encode(), nil)
	link := apitest.NextLink(t, resp)
	u, err := url.Parse(link)
	if err != nil || link == "" {
		t.Fatalf("Link %q: %v", link, err)
	}
	if u.Path != "/graft/v1/"+r.name+"/_manifests" {
		t.Errorf("Link path %q", u.Path)
	}
	lq := u.Query()
	var first manifestList
	apitest.Decode(t, "first page", resp.Body, &first)
	for k, want := range map[string]string{"tagged": "false", "artifactType": ocispec.MediaTypeImageConfig, "n": "1",
		"last": first.Manifests[0].Digest.String()} {
		if got := lq.Get(k); got != want {
			t.Errorf("Link %q: %s=%q, want %q", link, k, got, want)
		}
	}

	// last starts after a digest, whether or not it is in the repository.
	for _, tt := range []struct {
		name string
		last digest.Digest
		want []manifestInfo
	}{
		{"after the first", all[0].Digest, all[1:]},
		{"after the last", all[len(all)-1].Digest, nil},
		{"after an absent digest", digest.Digest("sha256:" + "0000000000000000000000000000000000000000000000000000000000000000"), all},
		{"after the largest digest", digest.Digest("sha256:" + "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"), nil},
	} {
		got, _ := c.manifests(r.name, url.Values{"last": {tt.last.String()}})
		if !slices.Equal(digestsOf(got), digestsOf(tt.want)) {
			t.Errorf("%s: listed %v, want %v", tt.name, digestsOf(got), digestsOf(tt.want))
		}
	}

	// n=0 answers an empty list and no Link, even with filters.
	for _, query := range []string{"n=0", "n=0&tagged=true", "n=0&last=" + all[0].Digest.String()} {
		resp := c.want(http.StatusOK, http.MethodGet, "/graft/v1/"+r.name+"/_manifests?"+query, nil)
		var page manifestList
		apitest.Decode(t, query, resp.Body, &page)
		if page.Manifests == nil || len(page.Manifests) != 0 || resp.Header.Get("Link") != "" {
			t.Errorf("?%s: %v, Link %q; want an empty list and no Link", query, resp, resp.Header.Get("Link"))
		}
	}

	// A huge n is clamped, not refused.
	for _, n := range []string{"10001", "99999999999999999999999"} {
		got, pages := c.manifests(r.name, url.Values{"n": {n}})
		if pages != 1 || len(got) != len(all) {
			t.Errorf("n=%s: %d manifests in %d pages, want %d in 1", n, len(got), pages, len(all))
		}
	}

	// A page reflects the repository as it is when asked: a manifest pushed between
	// pages before the cursor is not listed, one after it is.
	got := []digest.Digest{}
	resp = c.want(http.StatusOK, http.MethodGet, "/graft/v1/"+r.name+"/_manifests?n=3", nil)
	var page manifestList
	apitest.Decode(t, "first page", resp.Body, &page)
	got = append(got, digestsOf(page.Manifests)...)
	added := r.image(ocispec.Platform{OS: "linux", Architecture: "riscv64"}, "pushed between two pages")
	for target := apitest.NextLink(t, resp); target != ""; target = apitest.NextLink(t, resp) {
		resp = c.want(http.StatusOK, http.MethodGet, target, nil)
		var page manifestList
		apitest.Decode(t, target, resp.Body, &page)
		got = append(got, digestsOf(page.Manifests)...)
	}
	want := digestsOf(r.wantList(nil))
	if added.Digest < page.Manifests[len(page.Manifests)-1].Digest {
		want = slices.DeleteFunc(want, func(d digest.Digest) bool { return d == added.Digest })
	}
	if !slices.Equal(got, want) {
		t.Errorf("walking pages around a push listed %v, want %v", got, want)
	}
}

func digestsOf(ms []manifestInfo) []digest.Digest {
	ds := []digest.Digest{}
	for _, m := range ms {
		ds = append(ds, m.Digest)
	}
	return ds
}

package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"oras.land/oras-go/v2/registry"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/graftest"
)

// listPages walks a listing from target and returns its entries in the order the
// pages gave them; every page must hold at most n entries.
func listPages(t *testing.T, srv *graftest.Server, target string, n int, entries func(body []byte) []string) ([]string, int) {
	t.Helper()
	pages := srv.Pages(t, target, 100)
	var all []string
	for i, p := range pages {
		got := entries(p.Body)
		if n > 0 && len(got) > n {
			t.Errorf("page %d of %s holds %d entries, more than n=%d", i, target, len(got), n)
		}
		if len(got) == 0 && len(pages) > 1 {
			t.Errorf("page %d of %s is empty", i, target)
		}
		all = append(all, got...)
	}
	return all, len(pages)
}

func tagsOf(t *testing.T) func([]byte) []string {
	return func(body []byte) []string {
		var l struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		apitest.Decode(t, "tag list", body, &l)
		return l.Tags
	}
}

func reposOf(t *testing.T) func([]byte) []string {
	return func(body []byte) []string {
		var l struct {
			Repositories []string `json:"repositories"`
		}
		apitest.Decode(t, "catalog", body, &l)
		return l.Repositories
	}
}

func TestTagsList(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)
	const name = "tagged/app"
	repo := repository(t, srv, name)
	im := apitest.NewImage(t, linuxAMD64, "tagged layer")
	copyImage(t, repo, im, "latest")
	other := apitest.NewImage(t, linuxARM64, "another tagged layer")
	copyImage(t, repo, other, "arm")

	// Tags whose lexical order is not the order of their pushes, and that sort
	// differently by number, case or punctuation.
	tags := []string{"v10", "v2", "v1", "V1", "1.0", "1.0-rc1", "1.0.1", "_private", "a", "A", "z.z", "latest", "arm"}
	for _, tag := range tags[:len(tags)-2] {
		if err := repo.Tag(t.Context(), im.Desc(), tag); err != nil {
			t.Fatalf("tag %s: %v", tag, err)
		}
	}
	want := slices.Clone(tags)
	slices.Sort(want)

	all, pages := listPages(t, srv, "/v2/"+name+"/tags/list", 0, tagsOf(t))
	if !slices.Equal(all, want) || pages != 1 {
		t.Errorf("tags list: %q in %d pages, want %q in 1", all, pages, want)
	}
	r := srv.Do(t, http.MethodGet, "/v2/"+name+"/tags/list", nil)
	var l struct{ Name string }
	apitest.Decode(t, "tag list", r.Body, &l)
	if l.Name != name {
		t.Errorf("tag list name is %q, want %q", l.Name, name)
	}

	for _, n := range []int{1, 2, 3, 5, len(want) - 1, len(want), len(want) + 1} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			all, pages := listPages(t, srv, fmt.Sprintf("/v2/%s/tags/list?n=%d", name, n), n, tagsOf(t))
			if !slices.Equal(all, want) {
				t.Errorf("walking the pages gave %q, want %q", all, want)
			}
			if wantPages := (len(want) + n - 1) / n; pages != wantPages {
				t.Errorf("%d pages, want %d", pages, wantPages)
			}
		})
	}

	t.Run("last", func(t *testing.T) {
		for _, last := range []string{want[0], want[4], "b", "v", want[len(want)-1], "~"} {
			q := url.Values{"last": {last}}
			got, _ := listPages(t, srv, "/v2/"+name+"/tags/list?"+q.Encode(), 0, tagsOf(t))
			var exp []string
			for _, tag := range want {
				if tag > last {
					exp = append(exp, tag)
				}
			}
			if !slices.Equal(got, exp) {
				t.Errorf("last=%s: %q, want %q", last, got, exp)
			}
		}
	})

	t.Run("n=0", func(t *testing.T) {
		r := srv.Do(t, http.MethodGet, "/v2/"+name+"/tags/list?n=0", nil)
		apitest.WantStatus(t, "n=0", r, http.StatusOK)
		var raw map[string]any
		apitest.Decode(t, "n=0", r.Body, &raw)
		if list, ok := raw["tags"].([]any); !ok || len(list) != 0 {
			t.Errorf("n=0: tags is %#v, want an empty list", raw["tags"])
		}
		if link := r.Header.Get("Link"); link != "" {
			t.Errorf("n=0: Link %q", link)
		}
	})

	t.Run("unknown repository", func(t *testing.T) {
		for _, q := range []string{"", "?n=0", "?n=10"} {
			r := srv.Do(t, http.MethodGet, "/v2/no/such/repo/tags/list"+q, nil)
			apitest.WantError(t, "tags of an unknown repository"+q, r, http.StatusNotFound, "NAME_UNKNOWN")
		}
	})

	t.Run("oras-go", func(t *testing.T) {
		repo := repository(t, srv, name)
		repo.TagListPageSize = 4
		var got []string
		calls := 0
		err := repo.Tags(t.Context(), "", func(page []string) error {
			calls++
			got = append(got, page...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) || calls != (len(want)+3)/4 {
			t.Errorf("oras-go Tags: %q in %d pages, want %q in %d", got, calls, want, (len(want)+3)/4)
		}
	})
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	srv := graftest.Start(t)

	// Names that sort differently by component than by byte.
	names := []string{"zeta", "alpha", "alpha/beta", "alpha-beta", "alpha.beta", "alpha_beta", "a/b/c/d", "b", "m/n", "library/app"}
	for i, name := range names {
		im := apitest.NewImage(t, linuxAMD64, "layer of "+name)
		if i%2 == 0 {
			copyImage(t, repository(t, srv, name), im, "v1")
		} else {
			// Pushing a apitest.Blob is enough to create a repository.
			srv.PushBlob(t, name, []byte("only a apitest.Blob in "+name))
		}
	}
	want := slices.Clone(names)
	slices.Sort(want)

	all, _ := listPages(t, srv, "/v2/_catalog", 0, reposOf(t))
	if !slices.Equal(all, want) {
		t.Errorf("catalog: %q, want %q", all, want)
	}
	for _, n := range []int{1, 3, len(want), len(want) + 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			all, pages := listPages(t, srv, fmt.Sprintf("/v2/_catalog?n=%d", n), n, reposOf(t))
			if !slices.Equal(all, want) {
				t.Errorf("walking the pages gave %q, want %q", all, want)
			}
			if wantPages := (len(want) + n - 1) / n; pages != wantPages {
				t.Errorf("%d pages, want %d", pages, wantPages)
			}
		})
	}
	t.Run("last", func(t *testing.T) {
		got, _ := listPages(t, srv, "/v2/_catalog?last=alpha", 0, reposOf(t))
		i := slices.Index(want, "alpha")
		if !slices.Equal(got, want[i+1:]) {
			t.Errorf("last=alpha: %q, want %q", got, want[i+1:])
		}
	})
	t.Run("n=0", func(t *testing.T) {
		r := srv.Do(t, http.MethodGet, "/v2/_catalog?n=0", nil)
		apitest.WantStatus(t, "n=0", r, http.StatusOK)
		var raw map[string]any
		apitest.Decode(t, "n=0", r.Body, &raw)
		if list, ok := raw["repositories"].([]any); !ok || len(list) != 0 {
			t.Errorf("n=0: repositories is %#v, want an empty list", raw["repositories"])
		}
	})
	t.Run("oras-go", func(t *testing.T) {
		reg := registryClient(t, srv)
		reg.RepositoryListPageSize = 3
		var got []string
		if err := reg.Repositories(t.Context(), "", func(page []string) error {
			got = append(got, page...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("oras-go Repositories: %q, want %q", got, want)
		}
		// And the tags of a tagged one, through the registry client.
		r, err := reg.Repository(t.Context(), "zeta")
		if err != nil {
			t.Fatal(err)
		}
		tags, err := registry.Tags(t.Context(), r)
		if err != nil || !slices.Equal(tags, []string{"v1"}) {
			t.Errorf("tags of zeta: %q, %v", tags, err)
		}
	})
}

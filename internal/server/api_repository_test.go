package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/graft-registry/graft/internal/apitest"
	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/registrytest"
)

// DELETE /graft/v1/<name> removes the repository with every graph in it: gone from
// the catalog and the metadata API, its blobs no longer readable there; refused while
// anything in it is locked; a later push creates it anew.
func TestDeleteRepository(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		const gone, kept = "gone/app", "kept/app"
		im := apitest.NewImage(t, linuxAMD64, "a shared layer")
		srv.PushImage(t, gone, "v1", im)
		ref := apitest.NewReferrer(t, im.Desc(), linuxAMD64, "an sbom")
		srv.PushImage(t, gone, ref.Desc().Digest.String(), ref)
		srv.PushImage(t, kept, "v1", im)
		layer := im.Layers[0].Desc.Digest.String()

		r := srv.Want(t, http.StatusOK, http.MethodDelete, "/graft/v1/"+gone, nil)
		var deleted struct {
			Name      string `json:"name"`
			Manifests int64  `json:"manifests"`
			Tags      int64  `json:"tags"`
		}
		if err := json.Unmarshal(r.Body, &deleted); err != nil || deleted.Name != gone || deleted.Manifests != 2 || deleted.Tags != 1 {
			t.Errorf("the answer to the delete: %s (%v), want %s with 2 manifests and 1 tag", r.Body, err, gone)
		}
		if got := srv.Catalog(t); !slices.Equal(got, []string{kept}) {
			t.Errorf("catalog after the delete: %v, want [%s]", got, kept)
		}
		run(t, srv, []call{
			{method: http.MethodGet, target: "/graft/v1/" + gone, status: http.StatusNotFound, code: "NAME_UNKNOWN"},
			{method: http.MethodDelete, target: "/graft/v1/" + gone, status: http.StatusNotFound, code: "NAME_UNKNOWN"},
			{method: http.MethodGet, target: "/v2/" + gone + "/manifests/v1", status: http.StatusNotFound, code: "MANIFEST_UNKNOWN"},
			{method: http.MethodGet, target: "/v2/" + gone + "/blobs/" + layer, status: http.StatusNotFound, code: "BLOB_UNKNOWN"},
			{method: http.MethodGet, target: "/v2/" + kept + "/blobs/" + layer, status: http.StatusOK},
			{method: http.MethodGet, target: "/v2/" + kept + "/manifests/v1", status: http.StatusOK},
		})
		var repos struct {
			Repositories []struct {
				Name string `json:"name"`
			} `json:"repositories"`
		}
		apitest.Decode(t, "repositories", srv.Want(t, http.StatusOK, http.MethodGet, "/graft/v1/_repositories", nil).Body, &repos)
		if len(repos.Repositories) != 1 || repos.Repositories[0].Name != kept {
			t.Errorf("the metadata API lists %+v after the delete, want %s alone", repos.Repositories, kept)
		}

		// Pushed again, it is there anew.
		srv.PushImage(t, gone, "v2", im)
		if got := srv.Catalog(t); !slices.Equal(got, []string{gone, kept}) {
			t.Errorf("catalog after a push to the deleted name: %v", got)
		}
		var rp struct {
			ManifestCount int64 `json:"manifestCount"`
			TagCount      int64 `json:"tagCount"`
		}
		apitest.Decode(t, "repository", srv.Want(t, http.StatusOK, http.MethodGet, "/graft/v1/"+gone, nil).Body, &rp)
		if rp.ManifestCount != 1 || rp.TagCount != 1 {
			t.Errorf("the repository pushed again counts %+v, want 1 manifest and 1 tag", rp)
		}
		srv.Want(t, http.StatusNotFound, http.MethodGet, "/v2/"+gone+"/manifests/v1", nil)
	})
}

// A repository with anything locked in it stays.
func TestDeleteRepositoryLocked(t *testing.T) {
	t.Parallel()
	registrytest.Each(t, func(t *testing.T, srv *registrytest.Server) {
		im := apitest.NewImage(t, linuxAMD64, "a layer")
		srv.PushImage(t, "locked/manifest", "v1", im)
		srv.PushImage(t, "locked/repo", "v1", im)
		srv.Want(t, http.StatusOK, http.MethodPatch, "/graft/v1/locked/manifest/_manifests/v1", []byte(`{"deleteEnabled":false}`),
			"Content-Type", "application/json")
		srv.Want(t, http.StatusOK, http.MethodPatch, "/graft/v1/locked/repo", []byte(`{"writeEnabled":false}`),
			"Content-Type", "application/json")
		run(t, srv, []call{
			{method: http.MethodDelete, target: "/graft/v1/locked/manifest", status: http.StatusForbidden, code: "DENIED"},
			{method: http.MethodDelete, target: "/graft/v1/locked/repo", status: http.StatusForbidden, code: "DENIED"},
			{method: http.MethodGet, target: "/v2/locked/manifest/manifests/v1", status: http.StatusOK},
			{method: http.MethodGet, target: "/v2/locked/repo/manifests/v1", status: http.StatusOK},
		})
	})
}

// Replicas cache repository ids: after one deletes a repository, another pushes to the
// same name, and both see it, with its new content only.
func TestDeleteRepositoryReplicas(t *testing.T) {
	t.Parallel()
	a := registrytest.Start(t, registrytest.Postgres)
	b := registrytest.Start(t, registrytest.Postgres, func(c *config.Config) {
		c.Metadata.Postgres.URL = a.Config.Metadata.Postgres.URL
	})
	const repo = "shared/app"
	first := apitest.NewImage(t, linuxAMD64, "first")
	a.PushImage(t, repo, "v1", first)
	b.PushBlob(t, repo, []byte("b knows the repository")) // b caches its id

	a.Want(t, http.StatusOK, http.MethodDelete, "/graft/v1/"+repo, nil)
	b.Want(t, http.StatusNotFound, http.MethodGet, "/graft/v1/"+repo, nil)

	second := apitest.NewImage(t, linuxAMD64, "second")
	b.PushImage(t, repo, "v2", second)
	for name, srv := range map[string]*registrytest.Server{"a": a, "b": b} {
		if got := srv.Catalog(t); !slices.Equal(got, []string{repo}) {
			t.Errorf("replica %s: catalog %v", name, got)
		}
		if tags := srv.Tags(t, repo); !slices.Equal(tags, []string{"v2"}) {
			t.Errorf("replica %s: tags %v, want [v2]", name, tags)
		}
		srv.Want(t, http.StatusNotFound, http.MethodGet, "/v2/"+repo+"/manifests/v1", nil)
	}
	// a, whose cached id is the repository's still, pushes to it too.
	a.PushImage(t, repo, "v3", first)
	if tags := b.Tags(t, repo); !slices.Equal(tags, []string{"v2", "v3"}) {
		t.Errorf("tags after a pushed again: %v", tags)
	}
}

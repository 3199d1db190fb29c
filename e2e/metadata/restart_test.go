package metadata

import (
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestAttributesSurviveRestart(t *testing.T) {
	t.Parallel()
	c := start(t)
	f := pushFixture(c, "persist/app")
	r := f.r
	r.tag(f.untagged, "latest")
	r.deleteTag("v1")
	r.deleteBlob(digest.FromString("the untagged image's own layer"))
	hidden := c.repo("persist/hidden")
	hidden.tag(hidden.image(linux, "layer of the hidden repository"), "v1")

	r.patchRepository(`{"deleteEnabled": false}`, attributes{DeleteEnabled: false, WriteEnabled: true, ReadEnabled: true, ListEnabled: true})
	hidden.patchRepository(`{"listEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: true, ListEnabled: false})
	r.patchManifest(f.untagged, "latest", `{"writeEnabled": false, "readEnabled": false}`,
		attributes{DeleteEnabled: true, WriteEnabled: false, ReadEnabled: false, ListEnabled: true})
	r.patchManifest(f.index, "", `{"listEnabled": false}`, attributes{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: true, ListEnabled: false})
	r.check("before the restart")
	hidden.check("before the restart")

	repos := c.repositories(100)
	list, _ := c.manifests(r.name, nil)
	c.srv.Stop()
	c.srv.Restart()

	// Everything reads as it did, times included.
	if got := c.repositories(100); !reflect.DeepEqual(got, repos) {
		t.Errorf("repositories after the restart:\n %+v\nbefore:\n %+v", got, repos)
	}
	got, _ := c.manifests(r.name, nil)
	if !slices.EqualFunc(got, list, equalInfo) {
		t.Errorf("manifests after the restart:\n %+v\nbefore:\n %+v", got, list)
	}
	r.check("after the restart")
	hidden.check("after the restart")

	// The locks still hold.
	r.deniedPull("latest")
	c.denied(http.MethodPut, manifestPath(r.name, "latest"), f.image.Body, "Content-Type", f.image.MediaType)
	c.denied(http.MethodDelete, manifestPath(r.name, f.sbom.Digest.String()), nil)
	c.denied(http.MethodDelete, blobPath(r.name, digest.FromString("first layer of the image")), nil)
	if cat := c.srv.Catalog(c.t); slices.Contains(cat, hidden.name) || !slices.Contains(cat, r.name) {
		t.Errorf("catalog %q: want %s hidden and %s listed", cat, hidden.name, r.name)
	}
	if tags := c.srv.Tags(c.t, r.name); !slices.Equal(tags, []string{"latest"}) {
		t.Errorf("tags %q, want [latest]: multi names a hidden manifest", tags)
	}

	// The counters go on from where they were.
	r.tag(r.image(linux, "pushed after the restart"), "after")
	r.patchRepository(`{"deleteEnabled": true}`, allEnabled)
	r.deleteManifest(f.image, []*pushed{f.signature}, nil)
	r.check("after changes made after the restart")
}

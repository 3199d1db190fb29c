package storetest

import (
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/metastore"
)

// testPulls: a pull moves the last pull time of the manifest, and of the tag it came
// by while the tag still names it; an older pull never moves it back; the tag listing
// shows every tag with its manifest and times.
func testPulls(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	const repo = "pulls/app"
	a, b := image(repo, "a"), image(repo, "b")
	put(t, s, a, b)
	setTag(t, s, repo, "v1", a.Digest)
	setTag(t, s, repo, "v2", b.Digest)
	if m := getManifest(t, s, repo, a.Digest); !m.LastPulled.IsZero() {
		t.Fatalf("a manifest never pulled was last pulled at %v", m.LastPulled)
	}
	record := func(p metastore.Pull) {
		t.Helper()
		if err := s.RecordPulls(ctx, []metastore.Pull{p}); err != nil {
			t.Fatalf("RecordPulls(%+v): %v", p, err)
		}
	}
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	record(metastore.Pull{Repo: repo, Digest: a.Digest, Tag: "v1", At: t2})
	record(metastore.Pull{Repo: repo, Digest: a.Digest, At: t1}) // older: no change
	record(metastore.Pull{Repo: repo, Digest: b.Digest, At: t1})
	// v2 moved to a since it was pulled as b: the tag's time stays
	setTag(t, s, repo, "v2", a.Digest)
	record(metastore.Pull{Repo: repo, Digest: b.Digest, Tag: "v2", At: t2})
	record(metastore.Pull{Repo: repo, Digest: image(repo, "gone").Digest, Tag: "v1", At: t2}) // nothing there
	if m := getManifest(t, s, repo, a.Digest); !m.LastPulled.Equal(t2) {
		t.Errorf("a was last pulled at %v, want %v", m.LastPulled, t2)
	}
	if m := getManifest(t, s, repo, b.Digest); !m.LastPulled.Equal(t2) {
		t.Errorf("b was last pulled at %v, want %v", m.LastPulled, t2)
	}
	if n := nodeOf(t, s, repo, a.Digest); !n.LastPulled.Equal(t2) {
		t.Errorf("the node of a was last pulled at %v, want %v", n.LastPulled, t2)
	}
	list, err := s.TagList(ctx, repo, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "v1" || list[1].Name != "v2" {
		t.Fatalf("TagList = %+v", list)
	}
	if v1 := list[0]; v1.Digest != a.Digest || !v1.LastPulled.Equal(t2) || v1.Updated.IsZero() {
		t.Errorf("v1 = %+v, want a, pulled at %v", v1, t2)
	}
	if v2 := list[1]; v2.Digest != a.Digest || !v2.LastPulled.IsZero() {
		t.Errorf("v2 = %+v, want a, never pulled as a", v2)
	}
	// Unlisted manifests' tags are in the full listing.
	update(t, s, func(tx metastore.Tx) error {
		return tx.SetManifestAttributes(ctx, repo, a.Digest, metastore.Attributes{DeleteEnabled: true, WriteEnabled: true, ReadEnabled: true})
	})
	if list, err := s.TagList(ctx, repo, "v1", 10); err != nil || len(list) != 1 || list[0].Name != "v2" {
		t.Errorf("TagList after v1 = %+v, %v; want v2", list, err)
	}
}

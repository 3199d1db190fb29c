package storetest

import (
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
)

// testMoveTag: MoveTag reports what the tag named before, with that manifest's
// attributes, and a caller's refusal rolls the move back.
func testMoveTag(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	m1, m2 := image("r", "1"), image("r", "2")
	put(t, s, m1, m2)
	move := func(tag string, d digest.Digest) metastore.TagMove {
		t.Helper()
		var mv metastore.TagMove
		update(t, s, func(tx metastore.Tx) error {
			var err error
			mv, err = tx.MoveTag(ctx, "r", tag, d)
			return err
		})
		return mv
	}
	named := func(tag string) digest.Digest {
		t.Helper()
		m, err := s.Tag(ctx, "r", tag)
		if err != nil {
			t.Fatalf("Tag(%s): %v", tag, err)
		}
		return m.Digest
	}

	if mv := move("latest", m1.Digest); mv.Previous != "" {
		t.Errorf("MoveTag of a new tag: previous %s, want none", mv.Previous)
	}
	if mv := move("latest", m1.Digest); mv.Previous != m1.Digest {
		t.Errorf("MoveTag to the manifest the tag names: previous %q, want %s", mv.Previous, m1.Digest)
	}
	if mv := move("latest", m2.Digest); mv.Previous != m1.Digest || mv.Attributes != metastore.Enabled {
		t.Errorf("MoveTag off m1 = %+v, want previous %s with %+v", mv, m1.Digest, metastore.Enabled)
	}

	locked := metastore.Attributes{DeleteEnabled: true, ReadEnabled: true, ListEnabled: true}
	update(t, s, func(tx metastore.Tx) error { return tx.SetManifestAttributes(ctx, "r", m2.Digest, locked) })
	refused := errors.New("locked")
	var mv metastore.TagMove
	err := s.Update(ctx, func(tx metastore.Tx) error {
		var err error
		if mv, err = tx.MoveTag(ctx, "r", "latest", m1.Digest); err != nil {
			return err
		}
		if !mv.Attributes.WriteEnabled {
			return refused
		}
		return nil
	})
	if !errors.Is(err, refused) || mv.Previous != m2.Digest || mv.Attributes != locked {
		t.Errorf("MoveTag off a locked manifest = %+v, %v; want previous %s with %+v", mv, err, m2.Digest, locked)
	}
	if d := named("latest"); d != m2.Digest {
		t.Errorf("after a refused move, latest names %s, want %s", d, m2.Digest)
	}
	// The counts of the refused move were rolled back with it.
	for _, c := range []struct {
		d    digest.Digest
		tags int64
	}{{m1.Digest, 0}, {m2.Digest, 1}} {
		got, err := s.Manifest(ctx, "r", c.d)
		if err != nil {
			t.Fatalf("Manifest(%s): %v", c.d, err)
		}
		if got.TagCount != c.tags {
			t.Errorf("manifest %s has %d tags, want %d", c.d, got.TagCount, c.tags)
		}
	}

	err = s.Update(ctx, func(tx metastore.Tx) error {
		_, err := tx.MoveTag(ctx, "r", "other", image("r", "absent").Digest)
		return err
	})
	wantNotFound(t, "MoveTag to a manifest not in the repository", err)
}

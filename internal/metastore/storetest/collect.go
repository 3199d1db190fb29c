package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/metastore"
)

// The contract of what garbage collection and access tokens need of a store.

// tick separates two instants of the store's clock from the suite's, which may differ
// by the precision of a SQL timestamp.
const tick = 20 * time.Millisecond

func mark(t *testing.T) time.Time {
	t.Helper()
	time.Sleep(tick)
	m := time.Now()
	time.Sleep(tick)
	return m
}

func testNodes(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	a, b := image("r", "a"), image("r", "b")
	ix := index("r", "ix", a, b)
	sig := artifact("r", "sig", typeSignature, a.Digest)
	link(t, s, "r", 100, a.References[0].Digest, a.References[1].Digest, b.References[0].Digest, b.References[1].Digest,
		sig.References[0].Digest, sig.References[1].Digest)
	before := mark(t)
	put(t, s, a, b, ix, sig)
	setTag(t, s, "r", "v1", ix.Digest)
	update(t, s, func(tx metastore.Tx) error {
		return tx.SetManifestAttributes(ctx, "r", b.Digest, metastore.Attributes{ReadEnabled: true, ListEnabled: true})
	})
	after := mark(t)

	var got []metastore.Node
	var from digest.Digest
	for {
		page, err := s.Nodes(ctx, "r", from, 3)
		if err != nil {
			t.Fatalf("Nodes: %v", err)
		}
		got = append(got, page...)
		if len(page) < 3 {
			break
		}
		from = page[len(page)-1].Digest
	}
	want := map[digest.Digest]metastore.Node{
		a.Digest:   {Digest: a.Digest, DeleteEnabled: true, Size: a.Size},
		b.Digest:   {Digest: b.Digest, Size: b.Size},
		ix.Digest:  {Digest: ix.Digest, Children: sorted(a.Digest, b.Digest), Tagged: true, DeleteEnabled: true, Size: ix.Size},
		sig.Digest: {Digest: sig.Digest, Subject: a.Digest, DeleteEnabled: true, Size: sig.Size},
	}
	if len(got) != len(want) {
		t.Fatalf("Nodes returned %d manifests, want %d: %+v", len(got), len(want), got)
	}
	for i, n := range got {
		if i > 0 && got[i-1].Digest >= n.Digest {
			t.Errorf("Nodes not in digest order: %s after %s", n.Digest, got[i-1].Digest)
		}
		w, ok := want[n.Digest]
		if !ok {
			t.Errorf("Nodes returned unknown manifest %s", n.Digest)
			continue
		}
		if n.Updated.Before(before) || n.Updated.After(after) {
			t.Errorf("node %s updated at %v, want between %v and %v", n.Digest, n.Updated, before, after)
		}
		n.Children = sorted(n.Children...)
		n.Updated = time.Time{}
		if len(n.Children) == 0 {
			n.Children = nil
		}
		if len(w.Children) == 0 {
			w.Children = nil
		}
		if !reflect.DeepEqual(n, w) {
			t.Errorf("node %s = %+v, want %+v", n.Digest, n, w)
		}
	}
	if ns, err := s.Nodes(ctx, "nothing", "", 10); err != nil || len(ns) != 0 {
		t.Errorf("Nodes of an unknown repository = %v, %v; want none", ns, err)
	}
}

func unreferenced(t *testing.T, r metastore.Reader, repo string, tm time.Time) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	var from digest.Digest
	for {
		page, err := r.UnreferencedBlobs(t.Context(), repo, tm, from, 2)
		if err != nil {
			t.Fatalf("UnreferencedBlobs: %v", err)
		}
		out = append(out, page...)
		if len(page) < 2 {
			return out
		}
		from = page[len(page)-1]
	}
}

func testUnreferencedBlobs(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	a := image("r", "a")
	x, y, z := digest.FromString("x"), digest.FromString("y"), digest.FromString("z")
	start := mark(t)
	link(t, s, "r", 10, x, y, z, a.References[0].Digest, a.References[1].Digest)
	// Another repository naming x does not make r's link referenced.
	other := manifestOf("o", a2x(x))
	link(t, s, "o", 10, other.References[0].Digest, x)
	put(t, s, a, other)
	linked := mark(t)

	if got := unreferenced(t, s, "r", start); len(got) != 0 {
		t.Errorf("UnreferencedBlobs before any link = %v, want none", got)
	}
	if got, want := unreferenced(t, s, "r", linked), sorted(x, y, z); !slices.Equal(got, want) {
		t.Errorf("UnreferencedBlobs = %v, want %v", got, want)
	}

	// Deleting a manifest releases its blobs: their grace period starts again.
	update(t, s, func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, "r", a.Digest) })
	released := mark(t)
	if got, want := unreferenced(t, s, "r", linked), sorted(x, y, z); !slices.Equal(got, want) {
		t.Errorf("UnreferencedBlobs(before the delete) = %v, want %v", got, want)
	}
	all := sorted(x, y, z, a.References[0].Digest, a.References[1].Digest)
	if got := unreferenced(t, s, "r", released); !slices.Equal(got, all) {
		t.Errorf("UnreferencedBlobs(after the delete) = %v, want %v", got, all)
	}
	// Linking again, too.
	link(t, s, "r", 10, y)
	if got, want := unreferenced(t, s, "r", released), sorted(x, z, a.References[0].Digest, a.References[1].Digest); !slices.Equal(got, want) {
		t.Errorf("UnreferencedBlobs after linking y again = %v, want %v", got, want)
	}

	sizeBefore := repository(t, s, "r").Size
	var did []bool
	update(t, s, func(tx metastore.Tx) error {
		did = did[:0]
		for _, c := range []struct {
			d  digest.Digest
			tm time.Time
		}{{x, start}, {x, released}, {y, released}, {z, released}, {z, released}} {
			ok, err := tx.UnlinkUnreferenced(ctx, "r", c.d, c.tm)
			if err != nil {
				return err
			}
			did = append(did, ok)
		}
		return nil
	})
	if want := []bool{false, true, false, true, false}; !slices.Equal(did, want) {
		t.Errorf("UnlinkUnreferenced(x before its link, x, y linked again, z, z again) = %v, want %v", did, want)
	}
	for _, d := range []digest.Digest{x, z} {
		if _, err := s.Blob(ctx, "r", d); !isNotFound(err) {
			t.Errorf("Blob(r, %s) after UnlinkUnreferenced = %v, want ErrNotFound", d, err)
		}
	}
	if _, err := s.Blob(ctx, "o", x); err != nil {
		t.Errorf("Blob(o, x): %v; unlinking from r must leave o alone", err)
	}
	if got, want := repository(t, s, "r").Size, sizeBefore-20; got != want {
		t.Errorf("repository size after unlinking two blobs of 10 bytes = %d, want %d", got, want)
	}
	// A referenced link stays, however old.
	b := image("r", "b")
	link(t, s, "r", 10, b.References[0].Digest, b.References[1].Digest)
	put(t, s, b)
	update(t, s, func(tx metastore.Tx) error {
		ok, err := tx.UnlinkUnreferenced(ctx, "r", b.References[0].Digest, time.Now().Add(time.Hour))
		if ok {
			return errors.New("UnlinkUnreferenced took a blob that a manifest names")
		}
		return err
	})
}

// a2x is an image manifest whose layer is x.
func a2x(x digest.Digest) ocispec.Manifest {
	return ocispec.Manifest{
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("config other"), Size: 10},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: x, Size: 10}},
	}
}

func repository(t *testing.T, r metastore.Reader, repo string) *metastore.Repository {
	t.Helper()
	rp, err := r.Repository(t.Context(), repo)
	if err != nil {
		t.Fatalf("Repository(%s): %v", repo, err)
	}
	return rp
}

func unlinked(t *testing.T, r metastore.Reader) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	var from digest.Digest
	for {
		page, err := r.UnlinkedBlobs(t.Context(), from, 2)
		if err != nil {
			t.Fatalf("UnlinkedBlobs: %v", err)
		}
		out = append(out, page...)
		if len(page) < 2 {
			return out
		}
		from = page[len(page)-1]
	}
}

func testSweepBlob(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	x, y, z, w := digest.FromString("x"), digest.FromString("y"), digest.FromString("z"), digest.FromString("w")
	start := mark(t)
	link(t, s, "r", 10, x)
	claim(t, s, y, 10)
	claim(t, s, w, 10)
	claimed := mark(t)
	if got, want := unlinked(t, s), sorted(y, w); !slices.Equal(got, want) {
		t.Errorf("UnlinkedBlobs = %v, want %v", got, want)
	}

	sweep := func(d digest.Digest, tm time.Time, fail error) (bool, int, error) {
		calls := 0
		ok, err := s.SweepBlob(ctx, d, tm, func(context.Context) error { calls++; return fail })
		return ok, calls, err
	}
	if ok, calls, err := sweep(x, claimed, nil); ok || calls != 0 || err != nil {
		t.Errorf("SweepBlob(a linked blob) = %v, %d calls of del, %v; want false, 0, nil", ok, calls, err)
	}
	if ok, calls, err := sweep(y, start, nil); ok || calls != 0 || err != nil {
		t.Errorf("SweepBlob(a blob claimed after t) = %v, %d calls, %v; want false, 0, nil", ok, calls, err)
	}
	boom := errors.New("boom")
	if ok, _, err := sweep(w, claimed, boom); ok || !errors.Is(err, boom) {
		t.Errorf("SweepBlob with a failing del = %v, %v; want false and its error", ok, err)
	}
	if ok, calls, err := sweep(y, claimed, nil); !ok || calls != 1 || err != nil {
		t.Errorf("SweepBlob(an unlinked blob claimed before t) = %v, %d calls, %v; want true, 1, nil", ok, calls, err)
	}
	if ok, calls, err := sweep(z, claimed, nil); !ok || calls != 1 || err != nil {
		t.Errorf("SweepBlob(a blob the store never knew) = %v, %d calls, %v; want true, 1, nil", ok, calls, err)
	}
	if got, want := unlinked(t, s), []digest.Digest{w}; !slices.Equal(got, want) {
		t.Errorf("UnlinkedBlobs after the sweeps = %v, want %v (a failed del keeps the record)", got, want)
	}

	// A claim waits for a sweep in progress, so the sweep never removes what the claim
	// is about to commit.
	released := make(chan struct{})
	started := make(chan struct{})
	var claimDone atomic.Bool
	sweepErr := make(chan error, 1)
	go func() {
		_, err := s.SweepBlob(ctx, w, claimed, func(context.Context) error {
			close(started)
			<-released
			return nil
		})
		sweepErr <- err
	}()
	<-started
	claimErr := make(chan error, 1)
	go func() {
		claimErr <- s.Update(ctx, func(tx metastore.Tx) error {
			_, err := tx.ClaimBlob(ctx, w, 10)
			return err
		})
		claimDone.Store(true)
	}()
	time.Sleep(200 * time.Millisecond)
	if claimDone.Load() {
		t.Error("ClaimBlob returned while a SweepBlob of the same blob was removing it")
	}
	close(released)
	if err := <-sweepErr; err != nil {
		t.Fatalf("SweepBlob: %v", err)
	}
	if err := <-claimErr; err != nil {
		t.Fatalf("ClaimBlob: %v", err)
	}
	if got := unlinked(t, s); !slices.Equal(got, []digest.Digest{w}) {
		t.Errorf("UnlinkedBlobs after a claim that followed a sweep = %v, want [%s]", got, w)
	}
	if ok, calls, err := sweep(w, claimed, nil); ok || calls != 0 || err != nil {
		t.Errorf("SweepBlob(a blob claimed again) = %v, %d calls, %v; want false, 0, nil", ok, calls, err)
	}
}

// claim claims blob d, of size bytes, and returns the claim's time.
func claim(t *testing.T, s metastore.Store, d digest.Digest, size int64) time.Time {
	t.Helper()
	var at time.Time
	update(t, s, func(tx metastore.Tx) error {
		var err error
		at, err = tx.ClaimBlob(t.Context(), d, size)
		return err
	})
	return at
}

// testClaimHeld: a claim holds until a sweep with a later t runs, of whatever blob, even
// one that fails; a claim never moves a blob's claim time back, so that a later claim
// of the same blob keeps its own hold.
func testClaimHeld(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	x, y := digest.FromString("held x"), digest.FromString("held y")
	held := func(d digest.Digest, at time.Time) bool {
		t.Helper()
		var ok bool
		update(t, s, func(tx metastore.Tx) error {
			var err error
			ok, err = tx.ClaimHeld(ctx, d, at)
			return err
		})
		return ok
	}
	first := claim(t, s, x, 1)
	if first.IsZero() {
		t.Fatal("ClaimBlob returned the zero time")
	}
	if !held(x, first) {
		t.Error("ClaimHeld = false for a claim no sweep followed")
	}
	before := mark(t)
	later := claim(t, s, x, 1)
	if !later.After(before) {
		t.Fatalf("a claim after %v returned %v", before, later)
	}
	// A sweep of another blob, with a t between the two claims, that fails: the
	// first claim may have been swept by it, the second not.
	boom := errors.New("boom")
	if _, err := s.SweepBlob(ctx, y, before, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("SweepBlob with a failing del: %v", err)
	}
	if held(x, first) {
		t.Error("ClaimHeld = true for a claim made before the t of a sweep")
	}
	if !held(x, later) {
		t.Error("ClaimHeld = false for a claim made after the t of every sweep")
	}
	// An earlier sweep changes nothing.
	if _, err := s.SweepBlob(ctx, y, first, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if !held(x, later) {
		t.Error("ClaimHeld = false after a sweep with an earlier t")
	}

	// A claim dated before the blob's claim time (a replica whose clock is behind)
	// leaves that time alone: the later claim's hold does not shrink.
	c, ok := s.(interface{ SetClock(func() time.Time) })
	if !ok {
		return
	}
	_, stamped, err := s.BlobState(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	c.SetClock(func() time.Time { return first })
	defer c.SetClock(time.Now)
	claim(t, s, x, 1)
	if _, got, err := s.BlobState(ctx, x); err != nil || !got.Equal(stamped) {
		t.Errorf("after a claim dated %v, BlobState's claim time = %v, %v; want %v", first, got, err, stamped)
	}
}

func testTokens(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	if _, err := s.Token(ctx, "ci"); !isNotFound(err) {
		t.Errorf("Token of an empty store = %v, want ErrNotFound", err)
	}
	ci := metastore.Token{Name: "ci", Hash: "h1", Repositories: []string{"team/*", "base"},
		Actions: []string{"pull", "push"}, Created: t0, Expires: t0.Add(720 * time.Hour)}
	bot := metastore.Token{Name: "bot", Hash: "h2", Repositories: []string{"*"}, Actions: []string{"pull"}, Created: t0}
	update(t, s, func(tx metastore.Tx) error {
		if err := tx.CreateToken(ctx, &ci); err != nil {
			return err
		}
		return tx.CreateToken(ctx, &bot)
	})
	err := s.Update(ctx, func(tx metastore.Tx) error {
		return tx.CreateToken(ctx, &metastore.Token{Name: "ci", Hash: "other", Created: t0})
	})
	if !errors.Is(err, metastore.ErrExists) {
		t.Errorf("CreateToken of an existing name = %v, want ErrExists", err)
	}
	got, err := s.Token(ctx, "ci")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if !tokenEqual(*got, ci) {
		t.Errorf("Token(ci) = %+v, want %+v", *got, ci)
	}
	all, err := s.Tokens(ctx)
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	if len(all) != 2 || !tokenEqual(all[0], bot) || !tokenEqual(all[1], ci) {
		t.Errorf("Tokens = %+v, want bot then ci", all)
	}
	update(t, s, func(tx metastore.Tx) error { return tx.DeleteToken(ctx, "ci") })
	if _, err := s.Token(ctx, "ci"); !isNotFound(err) {
		t.Errorf("Token after DeleteToken = %v, want ErrNotFound", err)
	}
	err = s.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteToken(ctx, "ci") })
	if !isNotFound(err) {
		t.Errorf("DeleteToken of a missing token = %v, want ErrNotFound", err)
	}
}

func tokenEqual(a, b metastore.Token) bool {
	return a.Name == b.Name && a.Hash == b.Hash && slices.Equal(a.Repositories, b.Repositories) &&
		slices.Equal(a.Actions, b.Actions) && a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires)
}

func testRepositoryAttributes(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	if _, err := s.RepositoryAttributes(ctx, "r"); !isNotFound(err) {
		t.Errorf("RepositoryAttributes of a missing repository = %v, want ErrNotFound", err)
	}
	link(t, s, "r", 10, digest.FromString("x"))
	if a, err := s.RepositoryAttributes(ctx, "r"); err != nil || a != metastore.Enabled {
		t.Errorf("RepositoryAttributes of a new repository = %+v, %v; want everything enabled", a, err)
	}
	locked := metastore.Attributes{ReadEnabled: true, ListEnabled: true}
	update(t, s, func(tx metastore.Tx) error {
		if err := tx.SetRepositoryAttributes(ctx, "r", locked); err != nil {
			return err
		}
		if a, err := tx.RepositoryAttributes(ctx, "r"); err != nil || a != locked {
			return fmt.Errorf("RepositoryAttributes in the transaction that set them = %+v, %v", a, err)
		}
		return nil
	})
	if a, err := s.RepositoryAttributes(ctx, "r"); err != nil || a != locked {
		t.Errorf("RepositoryAttributes = %+v, %v; want %+v", a, err, locked)
	}
}

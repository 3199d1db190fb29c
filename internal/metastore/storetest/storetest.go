// Package storetest is the contract test suite of metastore.Store: every implementation
// runs it, and a new one is correct when it passes.
//
// Times in the suite are whole microseconds, the precision of the SQL databases a
// store may sit on.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/metastore"
)

// Run runs the suite. open returns a new, empty store; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) metastore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s metastore.Store)
	}{
		{"Blobs", testBlobs},
		{"MissingBlobs", testMissingBlobs},
		{"MissingManifests", testMissingManifests},
		{"Sizes", testSizes},
		{"LockingManifest", testLockingManifest},
		{"ManifestRoundTrip", testManifestRoundTrip},
		{"PlatformRoundTrip", testPlatformRoundTrip},
		{"PutManifestAgain", testPutManifestAgain},
		{"Content", testContent},
		{"ManifestsPerRepository", testManifestsPerRepository},
		{"Tags", testTags},
		{"TagOrder", testTagOrder},
		{"MoveTag", testMoveTag},
		{"Repositories", testRepositories},
		{"RepositoryExists", testRepositoryExists},
		{"Referrers", testReferrers},
		{"Parents", testParents},
		{"DeleteManifest", testDeleteManifest},
		{"Manifests", testManifests},
		{"Counts", testCounts},
		{"Stats", testStats},
		{"DeleteRepository", testDeleteRepository},
		{"Attributes", testAttributes},
		{"Uploads", testUploads},
		{"UpdateRollback", testUpdateRollback},
		{"UpdatePanic", testUpdatePanic},
		{"UpdateIsolation", testUpdateIsolation},
		{"UpdateVisibility", testUpdateVisibility},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"UpdateSerializable", testUpdateSerializable},
		{"Nodes", testNodes},
		{"UnreferencedBlobs", testUnreferencedBlobs},
		{"SweepBlob", testSweepBlob},
		{"ClaimHeld", testClaimHeld},
		{"Tokens", testTokens},
		{"RepositoryAttributes", testRepositoryAttributes},
		{"TagEdges", testTagEdges},
		{"TagEdgeFilter", testTagEdgeFilter},
		{"KindCounts", testKindCounts},
		{"Kinds", testKinds},
		{"Pulls", testPulls},
		{"Events", testEvents},
		{"EventsConcurrent", testEventsConcurrent},
		{"Consumers", testConsumers},
		{"PruneEvents", testPruneEvents},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// t0 is the suite's epoch.
var t0 = time.Date(2025, 6, 7, 8, 9, 10, 123_456_000, time.UTC)

const (
	typeSBOM      = "application/spdx+json"
	typeSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"
)

// image returns an image manifest of repo, distinct for each name, naming a config
// and one layer.
func image(repo, name string) *metastore.Manifest {
	return manifestOf(repo, ocispec.Manifest{
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("config " + name), Size: 100},
		Layers: []ocispec.Descriptor{
			{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("layer " + name), Size: 1000},
		},
		Annotations: map[string]string{ocispec.AnnotationTitle: name},
	})
}

// artifact returns a manifest of repo of artifactType that refers to subject.
func artifact(repo, name, artifactType string, subject digest.Digest) *metastore.Manifest {
	v := ocispec.Manifest{
		ArtifactType: artifactType,
		Config:       ocispec.DescriptorEmptyJSON,
		Layers: []ocispec.Descriptor{
			{MediaType: artifactType, Digest: digest.FromString("artifact " + name), Size: 10},
		},
		Annotations: map[string]string{ocispec.AnnotationTitle: name},
	}
	if subject != "" {
		v.Subject = &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject, Size: 500}
	}
	return manifestOf(repo, v)
}

func manifestOf(repo string, v ocispec.Manifest) *metastore.Manifest {
	v.SchemaVersion = 2
	v.MediaType = ocispec.MediaTypeImageManifest
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	m := &metastore.Manifest{
		Repo:            repo,
		Digest:          digest.FromBytes(b),
		MediaType:       v.MediaType,
		Size:            int64(len(b)),
		Content:         b,
		ArtifactType:    v.ArtifactType,
		ConfigMediaType: v.Config.MediaType,
		Annotations:     v.Annotations,
	}
	if m.ArtifactType == "" {
		m.ArtifactType = v.Config.MediaType
	}
	if v.Subject != nil {
		m.Subject = v.Subject.Digest
	}
	for _, d := range append([]ocispec.Descriptor{v.Config}, v.Layers...) {
		m.References = append(m.References, metastore.Reference{Digest: d.Digest, Size: d.Size})
	}
	return m
}

// index returns an image index of repo listing children.
func index(repo, name string, children ...*metastore.Manifest) *metastore.Manifest {
	v := ocispec.Index{
		MediaType:   ocispec.MediaTypeImageIndex,
		Annotations: map[string]string{ocispec.AnnotationTitle: name},
	}
	v.SchemaVersion = 2
	for _, c := range children {
		v.Manifests = append(v.Manifests, ocispec.Descriptor{MediaType: c.MediaType, Digest: c.Digest, Size: c.Size})
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	m := &metastore.Manifest{
		Repo:        repo,
		Digest:      digest.FromBytes(b),
		MediaType:   v.MediaType,
		Size:        int64(len(b)),
		Content:     b,
		Annotations: v.Annotations,
	}
	for _, c := range children {
		m.References = append(m.References, metastore.Reference{Digest: c.Digest, Size: c.Size, Manifest: true})
	}
	return m
}

func update(t *testing.T, s metastore.Store, fn func(tx metastore.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func put(t *testing.T, s metastore.Store, ms ...*metastore.Manifest) {
	t.Helper()
	update(t, s, func(tx metastore.Tx) error {
		for _, m := range ms {
			if err := tx.PutManifest(t.Context(), m); err != nil {
				return fmt.Errorf("PutManifest(%s): %w", m.Digest, err)
			}
		}
		return nil
	})
}

func setTag(t *testing.T, s metastore.Store, repo, tag string, d digest.Digest) {
	t.Helper()
	update(t, s, func(tx metastore.Tx) error { return tx.SetTag(t.Context(), repo, tag, d) })
}

func link(t *testing.T, s metastore.Store, repo string, size int64, ds ...digest.Digest) {
	t.Helper()
	update(t, s, func(tx metastore.Tx) error {
		for _, d := range ds {
			if err := tx.LinkBlob(t.Context(), repo, d, size); err != nil {
				return err
			}
		}
		return nil
	})
}

func isNotFound(err error) bool { return errors.Is(err, metastore.ErrNotFound) }

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !isNotFound(err) {
		t.Errorf("%s: error = %v, want ErrNotFound", what, err)
	}
}

func getManifest(t *testing.T, r metastore.Reader, repo string, d digest.Digest) *metastore.Manifest {
	t.Helper()
	m, err := r.Manifest(t.Context(), repo, d)
	if err != nil {
		t.Fatalf("Manifest(%s, %s): %v", repo, d, err)
	}
	return m
}

func tagged(t *testing.T, r metastore.Reader, repo, tag string) digest.Digest {
	t.Helper()
	m, err := r.TaggedManifest(t.Context(), repo, tag)
	if err != nil {
		t.Fatalf("TaggedManifest(%s, %s): %v", repo, tag, err)
	}
	return m.Digest
}

// checkManifest compares what a store returned with what was stored: every field
// stored, Content when withContent, and the times when want has them.
func checkManifest(t *testing.T, got, want *metastore.Manifest, withContent bool) {
	t.Helper()
	if got.Repo != want.Repo || got.Digest != want.Digest || got.MediaType != want.MediaType ||
		got.Size != want.Size || got.ArtifactType != want.ArtifactType ||
		got.ConfigMediaType != want.ConfigMediaType || got.Subject != want.Subject {
		t.Errorf("manifest read back as\n%+v\nwant\n%+v", brief(got), brief(want))
	}
	if !annotationsEqual(got.Annotations, want.Annotations) {
		t.Errorf("manifest %s: annotations %v, want %v", want.Digest, got.Annotations, want.Annotations)
	}
	if !reflect.DeepEqual(got.Platform, want.Platform) {
		t.Errorf("manifest %s: platform %+v, want %+v", want.Digest, got.Platform, want.Platform)
	}
	if withContent && string(got.Content) != string(want.Content) {
		t.Errorf("manifest %s: content\n%q\nwant\n%q", want.Digest, clip(got.Content), clip(want.Content))
	}
	if !want.Created.IsZero() && !got.Created.Equal(want.Created) {
		t.Errorf("manifest %s: created %v, want %v", want.Digest, got.Created, want.Created)
	}
	if !want.Updated.IsZero() && !got.Updated.Equal(want.Updated) {
		t.Errorf("manifest %s: updated %v, want %v", want.Digest, got.Updated, want.Updated)
	}
}

// brief is m without its content, for messages.
func brief(m *metastore.Manifest) metastore.Manifest {
	c := *m
	c.Content = nil
	return c
}

func clip(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// annotationsEqual treats nil and empty alike: JSON and SQL cannot tell them apart.
func annotationsEqual(a, b map[string]string) bool {
	return len(a) == 0 && len(b) == 0 || maps.Equal(a, b)
}

func descriptorsEqual(a, b []ocispec.Descriptor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.MediaType != y.MediaType || x.Digest != y.Digest || x.Size != y.Size ||
			x.ArtifactType != y.ArtifactType || !annotationsEqual(x.Annotations, y.Annotations) {
			return false
		}
	}
	return true
}

// sorted returns ds in digest order.
func sorted(ds ...digest.Digest) []digest.Digest {
	return slices.Sorted(slices.Values(ds))
}

// sameSet reports whether a and b hold the same digests, in any order.
func sameSet(a, b []digest.Digest) bool {
	return slices.Equal(sorted(a...), sorted(b...))
}

// pages walks a listing n at a time, `after` the last item of each page, until a page
// comes back empty, and returns everything listed.
func pages(t *testing.T, n int, page func(after string, n int) ([]string, error)) []string {
	t.Helper()
	var all []string
	after := ""
	for {
		p, err := page(after, n)
		if err != nil {
			t.Fatalf("listing after %q: %v", after, err)
		}
		if len(p) > n {
			t.Fatalf("listing after %q, %d at most: got %d", after, n, len(p))
		}
		if len(p) == 0 {
			return all
		}
		if p[0] <= after {
			t.Fatalf("listing after %q starts with %q", after, p[0])
		}
		all = append(all, p...)
		after = p[len(p)-1]
	}
}

func testBlobs(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	b1, b2 := digest.FromString("blob 1"), digest.FromString("blob 2")
	link(t, s, "a", 10, b1)
	link(t, s, "a", 10, b1) // linking twice is harmless

	if size, err := s.Blob(ctx, "a", b1); err != nil || size != 10 {
		t.Errorf("Blob(a, b1) = %d, %v; want 10, nil", size, err)
	}
	_, err := s.Blob(ctx, "b", b1)
	wantNotFound(t, "Blob through a repository it was not linked to", err)
	_, err = s.Blob(ctx, "a", b2)
	wantNotFound(t, "Blob(a, b2) never linked", err)
	if r, err := s.BlobRepository(ctx, b1); err != nil || r != "a" {
		t.Errorf("BlobRepository(b1) = %q, %v; want a", r, err)
	}
	_, err = s.BlobRepository(ctx, b2)
	wantNotFound(t, "BlobRepository of a blob never linked", err)

	link(t, s, "b", 10, b1)
	update(t, s, func(tx metastore.Tx) error { return tx.UnlinkBlob(ctx, "a", b1) })
	_, err = s.Blob(ctx, "a", b1)
	wantNotFound(t, "Blob after UnlinkBlob", err)
	if size, err := s.Blob(ctx, "b", b1); err != nil || size != 10 {
		t.Errorf("Blob(b, b1) after unlinking it from a = %d, %v; want 10, nil", size, err)
	}
	if r, err := s.BlobRepository(ctx, b1); err != nil || r != "b" {
		t.Errorf("BlobRepository(b1) = %q, %v; want b", r, err)
	}

	for _, c := range []struct {
		repo string
		d    digest.Digest
	}{{"a", b1}, {"a", b2}, {"never", b1}} {
		err := s.Update(ctx, func(tx metastore.Tx) error { return tx.UnlinkBlob(ctx, c.repo, c.d) })
		wantNotFound(t, fmt.Sprintf("UnlinkBlob(%s, %s) not linked", c.repo, c.d), err)
	}

	update(t, s, func(tx metastore.Tx) error { return tx.UnlinkBlob(ctx, "b", b1) })
	_, err = s.BlobRepository(ctx, b1)
	wantNotFound(t, "BlobRepository of a blob unlinked everywhere", err)
}

func testLockingManifest(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	a, b, other := image("r", "a"), image("r", "b"), image("o", "a") // a and other name the same blobs
	ix := index("r", "ix", a)
	config, layer := a.References[0].Digest, a.References[1].Digest
	link(t, s, "r", 100, config, layer, b.References[0].Digest, b.References[1].Digest)
	link(t, s, "o", 100, config, layer)
	put(t, s, a, b, ix, other)
	locking := func(repo string, d digest.Digest) (digest.Digest, error) {
		var m digest.Digest
		err := s.Update(ctx, func(tx metastore.Tx) error {
			var err error
			m, err = tx.LockingManifest(ctx, repo, d)
			return err
		})
		if m2, err2 := s.LockingManifest(ctx, repo, d); m2 != m || isNotFound(err2) != isNotFound(err) {
			t.Errorf("LockingManifest(%s, %s) = %s, %v in a transaction, %s, %v outside", repo, d, m, err, m2, err2)
		}
		return m, err
	}
	for _, d := range []digest.Digest{config, layer, a.Digest, digest.FromString("unknown")} {
		_, err := locking("r", d)
		wantNotFound(t, fmt.Sprintf("LockingManifest(r, %s) with nothing locked", d), err)
	}
	for _, locked := range []metastore.Attributes{
		{WriteEnabled: true, ReadEnabled: true, ListEnabled: true},
		{DeleteEnabled: true, ReadEnabled: true, ListEnabled: true},
	} {
		update(t, s, func(tx metastore.Tx) error { return tx.SetManifestAttributes(ctx, "r", a.Digest, locked) })
		for _, d := range []digest.Digest{config, layer} {
			if m, err := locking("r", d); err != nil || m != a.Digest {
				t.Errorf("LockingManifest(r, %s) with a locked %+v = %s, %v; want %s", d, locked, m, err, a.Digest)
			}
			// Another repository's lock is not this one's.
			_, err := locking("o", d)
			wantNotFound(t, fmt.Sprintf("LockingManifest(o, %s) with r's manifest locked", d), err)
		}
		// b's blobs, and a itself (a child, not a blob, of the index), are not locked.
		for _, d := range []digest.Digest{b.References[0].Digest, a.Digest} {
			_, err := locking("r", d)
			wantNotFound(t, fmt.Sprintf("LockingManifest(r, %s) of a blob no locked manifest names", d), err)
		}
	}
	update(t, s, func(tx metastore.Tx) error { return tx.SetManifestAttributes(ctx, "r", a.Digest, metastore.Enabled) })
	_, err := locking("r", layer)
	wantNotFound(t, "LockingManifest once unlocked", err)
}

func testMissingBlobs(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	d := make([]digest.Digest, 5)
	for i := range d {
		d[i] = digest.FromString(fmt.Sprint("blob ", i))
	}
	link(t, s, "a", 1, d[0], d[2])
	link(t, s, "b", 1, d[1])
	tests := []struct {
		repo     string
		ask      []digest.Digest
		wantMiss []digest.Digest
	}{
		{"a", d[:4], []digest.Digest{d[1], d[3]}},
		{"a", []digest.Digest{d[2], d[0]}, nil},
		{"a", nil, nil},
		{"b", d[:3], []digest.Digest{d[0], d[2]}},
		{"c", d, d},
	}
	for _, tt := range tests {
		got, err := s.MissingBlobs(ctx, tt.repo, tt.ask)
		if err != nil {
			t.Fatalf("MissingBlobs: %v", err)
		}
		if !sameSet(got, tt.wantMiss) {
			t.Errorf("MissingBlobs(%s, %v) = %v, want %v", tt.repo, tt.ask, got, tt.wantMiss)
		}
	}
}

// testSizes: BlobSizes and ManifestSizes answer the sizes of what a repository has, the
// real size of a blob whose claim guessed another, and nothing for the rest.
func testSizes(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	b1, b2, guessed := digest.FromString("blob 1"), digest.FromString("blob 2"), digest.FromString("guessed")
	link(t, s, "a", 11, b1)
	link(t, s, "b", 22, b2)
	claim(t, s, guessed, 0)
	link(t, s, "a", 33, guessed)
	m0, m1 := image("a", "0"), image("b", "1")
	put(t, s, m0, m1)
	ask := []digest.Digest{b1, b2, guessed, m0.Digest, m1.Digest, digest.FromString("unknown")}
	for _, tc := range []struct {
		repo             string
		blobs, manifests map[digest.Digest]int64
	}{
		{"a", map[digest.Digest]int64{b1: 11, guessed: 33}, map[digest.Digest]int64{m0.Digest: m0.Size}},
		{"b", map[digest.Digest]int64{b2: 22}, map[digest.Digest]int64{m1.Digest: m1.Size}},
		{"c", map[digest.Digest]int64{}, map[digest.Digest]int64{}},
	} {
		for _, r := range []metastore.Reader{s, nil} {
			var blobs, manifests map[digest.Digest]int64
			read := func(r metastore.Reader) error {
				var err error
				if blobs, err = r.BlobSizes(ctx, tc.repo, ask); err != nil {
					return err
				}
				manifests, err = r.ManifestSizes(ctx, tc.repo, ask)
				return err
			}
			if r != nil {
				if err := read(r); err != nil {
					t.Fatalf("sizes in %s: %v", tc.repo, err)
				}
			} else {
				update(t, s, func(tx metastore.Tx) error { return read(tx) })
			}
			if !maps.Equal(blobs, tc.blobs) || !maps.Equal(manifests, tc.manifests) {
				t.Errorf("sizes in %s (in a transaction: %v): blobs %v, manifests %v; want %v, %v",
					tc.repo, r == nil, blobs, manifests, tc.blobs, tc.manifests)
			}
		}
	}
	if got, err := s.BlobSizes(ctx, "a", nil); err != nil || len(got) != 0 {
		t.Errorf("BlobSizes of nothing = %v, %v", got, err)
	}
}

func testMissingManifests(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	m := []*metastore.Manifest{image("a", "0"), image("a", "1"), image("b", "2")}
	put(t, s, m...)
	link(t, s, "a", 1, digest.FromString("a blob"))
	tests := []struct {
		repo     string
		ask      []digest.Digest
		wantMiss []digest.Digest
	}{
		{"a", []digest.Digest{m[0].Digest, m[1].Digest, m[2].Digest}, []digest.Digest{m[2].Digest}},
		{"a", []digest.Digest{m[1].Digest}, nil},
		{"a", []digest.Digest{digest.FromString("a blob")}, []digest.Digest{digest.FromString("a blob")}},
		{"a", nil, nil},
		{"b", []digest.Digest{m[0].Digest, m[2].Digest}, []digest.Digest{m[0].Digest}},
		{"c", []digest.Digest{m[0].Digest}, []digest.Digest{m[0].Digest}},
	}
	for _, tt := range tests {
		got, err := s.MissingManifests(ctx, tt.repo, tt.ask)
		if err != nil {
			t.Fatalf("MissingManifests: %v", err)
		}
		if !sameSet(got, tt.wantMiss) {
			t.Errorf("MissingManifests(%s, %v) = %v, want %v", tt.repo, tt.ask, got, tt.wantMiss)
		}
	}
}

func testManifestRoundTrip(t *testing.T, s metastore.Store) {
	img := image("r", "image")
	img.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	img.Created, img.Updated = t0, t0.Add(time.Second)

	art := artifact("r", "sbom", typeSBOM, img.Digest)
	art.Annotations["org.example.unicode"] = "é ✓ \"quoted\" \x00 nul"
	art.Created, art.Updated = t0.Add(time.Minute), t0.Add(time.Minute)

	// Content is kept byte for byte, whitespace and key order included.
	raw := []byte("{\n  \"schemaVersion\": 2,\n\t\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\" ,\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\",\"size\":2},\"layers\":[], \"z\":\"\\u00e9\"}\r\n")
	bare := &metastore.Manifest{
		Repo: "r", Digest: digest.FromBytes(raw), MediaType: ocispec.MediaTypeImageManifest,
		Size: int64(len(raw)), Content: raw, ArtifactType: ocispec.MediaTypeEmptyJSON,
		ConfigMediaType: ocispec.MediaTypeEmptyJSON, Created: t0, Updated: t0,
	}

	docker := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}`)
	dockerM := &metastore.Manifest{
		Repo: "other/repo", Digest: digest.FromBytes(docker),
		MediaType: "application/vnd.docker.distribution.manifest.v2+json",
		Size:      int64(len(docker)), Content: docker,
		ConfigMediaType: "application/vnd.docker.container.image.v1+json",
		ArtifactType:    "application/vnd.docker.container.image.v1+json",
		Platform:        &ocispec.Platform{OS: "linux", Architecture: "amd64"},
	}

	// A large manifest: many layers and annotations.
	big := ocispec.Manifest{Config: ocispec.DescriptorEmptyJSON, Annotations: map[string]string{}}
	for i := range 2000 {
		big.Layers = append(big.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString(fmt.Sprint(i)), Size: int64(i)})
		big.Annotations[fmt.Sprintf("org.example.key-%04d", i)] = strings.Repeat("v", i%97)
	}
	bigM := manifestOf("r", big)

	idx := index("r", "index", img)

	for _, m := range []*metastore.Manifest{img, art, bare, dockerM, bigM, idx} {
		put(t, s, m)
		checkManifest(t, getManifest(t, s, m.Repo, m.Digest), m, true)
	}
	// And again, once every manifest is in.
	for _, m := range []*metastore.Manifest{img, art, bare, dockerM, bigM, idx} {
		checkManifest(t, getManifest(t, s, m.Repo, m.Digest), m, true)
	}
}

// testPlatformRoundTrip stores a platform with every field an image config may name
// (Windows images name their OS version).
func testPlatformRoundTrip(t *testing.T, s metastore.Store) {
	m := image("r", "windows")
	m.Platform = &ocispec.Platform{
		OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5329",
		OSFeatures: []string{"win32k"},
	}
	put(t, s, m)
	checkManifest(t, getManifest(t, s, "r", m.Digest), m, true)
}

func testPutManifestAgain(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	subject := image("r", "subject")
	m := artifact("r", "sig", typeSignature, subject.Digest)
	m.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	m.Created, m.Updated = t0, t0
	put(t, s, subject, m)
	setTag(t, s, "r", "sig", m.Digest)
	before := getManifest(t, s, "r", m.Digest)
	beforeRepo, err := s.Repository(ctx, "r")
	if err != nil {
		t.Fatalf("Repository: %v", err)
	}

	// The same digest again, with times and fields that differ: only Updated moves.
	again := *m
	again.Created, again.Updated = t0.Add(time.Hour), t0.Add(2*time.Hour)
	again.ArtifactType = "application/example"
	again.Annotations = map[string]string{"changed": "yes"}
	again.Platform = nil
	again.Subject = ""
	put(t, s, &again)

	got := getManifest(t, s, "r", m.Digest)
	want := *before
	want.Updated = again.Updated
	checkManifest(t, got, &want, true)
	if got.TagCount != before.TagCount || got.TotalSize != before.TotalSize || got.Attributes != before.Attributes {
		t.Errorf("counts and attributes moved: %+v, want %+v", brief(got), brief(before))
	}
	if d := tagged(t, s, "r", "sig"); d != m.Digest {
		t.Errorf("tag sig names %s, want %s", d, m.Digest)
	}
	refs, err := s.Referrers(ctx, "r", subject.Digest, "", "", 100)
	if err != nil {
		t.Fatalf("Referrers: %v", err)
	}
	if want := []ocispec.Descriptor{m.Descriptor()}; !descriptorsEqual(refs, want) {
		t.Errorf("Referrers after the second put = %v, want %v", refs, want)
	}
	afterRepo, err := s.Repository(ctx, "r")
	if err != nil {
		t.Fatalf("Repository: %v", err)
	}
	if afterRepo.ManifestCount != beforeRepo.ManifestCount || afterRepo.TagCount != beforeRepo.TagCount || afterRepo.Size != beforeRepo.Size {
		t.Errorf("repository counts after the second put = %+v, want %+v", afterRepo, beforeRepo)
	}
}

func testManifestsPerRepository(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	ma := image("a", "shared")
	mb := *ma
	mb.Repo = "b"
	mb.Annotations = map[string]string{"in": "b"}
	put(t, s, ma)

	_, err := s.Manifest(ctx, "b", ma.Digest)
	wantNotFound(t, "Manifest of another repository", err)
	put(t, s, &mb)
	setTag(t, s, "a", "only-in-a", ma.Digest)
	checkManifest(t, getManifest(t, s, "b", ma.Digest), &mb, true)

	_, err = s.TaggedManifest(ctx, "b", "only-in-a")
	wantNotFound(t, "TaggedManifest through another repository's tag", err)
	if tags, err := s.TagsOf(ctx, "b", ma.Digest); err != nil || len(tags) != 0 {
		t.Errorf("TagsOf in b = %v, %v; want none", tags, err)
	}

	update(t, s, func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, "a", ma.Digest) })
	_, err = s.Manifest(ctx, "a", ma.Digest)
	wantNotFound(t, "Manifest after DeleteManifest", err)
	checkManifest(t, getManifest(t, s, "b", ma.Digest), &mb, true)
}

func testTags(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	m1, m2 := image("r", "1"), image("r", "2")
	put(t, s, m1, m2)
	tagsOf := func(d digest.Digest) []string {
		t.Helper()
		tags, err := s.TagsOf(ctx, "r", d)
		if err != nil {
			t.Fatalf("TagsOf: %v", err)
		}
		return tags
	}

	_, err := s.TaggedManifest(ctx, "r", "latest")
	wantNotFound(t, "TaggedManifest of a tag never set", err)
	_, err = s.Tag(ctx, "r", "latest")
	wantNotFound(t, "Tag of a tag never set", err)
	if tags := tagsOf(m1.Digest); len(tags) != 0 {
		t.Errorf("TagsOf an untagged manifest = %v", tags)
	}

	setTag(t, s, "r", "v1", m1.Digest)
	setTag(t, s, "r", "latest", m1.Digest)
	setTag(t, s, "r", "latest", m1.Digest) // again: no change
	got, err := s.TaggedManifest(ctx, "r", "latest")
	if err != nil {
		t.Fatalf("TaggedManifest: %v", err)
	}
	checkManifest(t, got, m1, true)
	meta, err := s.Tag(ctx, "r", "latest")
	if err != nil {
		t.Fatalf("Tag: %v", err)
	}
	checkManifest(t, meta, m1, false)
	if len(meta.Content) != 0 {
		t.Errorf("Tag returned the content")
	}
	if tags := tagsOf(m1.Digest); !slices.Equal(tags, []string{"latest", "v1"}) {
		t.Errorf("TagsOf = %v, want [latest v1]", tags)
	}

	// The tag moves.
	setTag(t, s, "r", "latest", m2.Digest)
	if d := tagged(t, s, "r", "latest"); d != m2.Digest {
		t.Errorf("latest names %s after the move, want %s", d, m2.Digest)
	}
	if tags := tagsOf(m1.Digest); !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("TagsOf the old manifest = %v, want [v1]", tags)
	}
	if tags := tagsOf(m2.Digest); !slices.Equal(tags, []string{"latest"}) {
		t.Errorf("TagsOf the new manifest = %v, want [latest]", tags)
	}

	update(t, s, func(tx metastore.Tx) error { return tx.DeleteTag(ctx, "r", "v1") })
	_, err = s.TaggedManifest(ctx, "r", "v1")
	wantNotFound(t, "TaggedManifest of a deleted tag", err)
	if tags := tagsOf(m1.Digest); len(tags) != 0 {
		t.Errorf("TagsOf after DeleteTag = %v", tags)
	}
	getManifest(t, s, "r", m1.Digest) // the manifest stays

	for _, c := range []struct{ repo, tag string }{{"r", "v1"}, {"r", "never"}, {"never", "latest"}} {
		err := s.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteTag(ctx, c.repo, c.tag) })
		wantNotFound(t, fmt.Sprintf("DeleteTag(%s, %s) not set", c.repo, c.tag), err)
	}

	// A tag names a manifest of its own repository only.
	other := image("other", "x")
	put(t, s, other)
	for _, c := range []struct {
		repo string
		d    digest.Digest
	}{{"r", other.Digest}, {"r", digest.FromString("nothing")}, {"never", m1.Digest}} {
		err := s.Update(ctx, func(tx metastore.Tx) error { return tx.SetTag(ctx, c.repo, "bad", c.d) })
		wantNotFound(t, fmt.Sprintf("SetTag(%s, bad, %s) to a manifest not in the repository", c.repo, c.d), err)
		_, err = s.TaggedManifest(ctx, c.repo, "bad")
		wantNotFound(t, "TaggedManifest of a refused tag", err)
	}
	if tags, err := s.Tags(ctx, "r", "", 100); err != nil || !slices.Equal(tags, []string{"latest"}) {
		t.Errorf("Tags = %v, %v; want [latest]", tags, err)
	}
}

func testTagOrder(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	m := image("r", "tagged")
	put(t, s, m)
	// Byte order: upper case before '_' before lower case; '-' < '.' < digits.
	want := []string{"0", "1.10", "1.9", "A", "B", "Z", "_x", "a", "a-1", "a.1", "a1", "a_1", "b", "latest", "v1", "v1.0", "v1.0-rc1", "v10", "v2", strings.Repeat("z", 128)}
	shuffled := slices.Clone(want)
	slices.Reverse(shuffled)
	update(t, s, func(tx metastore.Tx) error {
		for _, tag := range shuffled {
			if err := tx.SetTag(ctx, "r", tag, m.Digest); err != nil {
				return err
			}
		}
		return nil
	})
	// A tag of another repository is not listed.
	put(t, s, image("r2", "x"))
	setTag(t, s, "r2", "elsewhere", image("r2", "x").Digest)

	got, err := s.Tags(ctx, "r", "", 1000)
	if err != nil {
		t.Fatalf("Tags: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Tags = %q\nwant %q", got, want)
	}
	for _, n := range []int{1, 2, 3, 7, len(want) - 1, len(want), len(want) + 1} {
		all := pages(t, n, func(after string, n int) ([]string, error) { return s.Tags(ctx, "r", after, n) })
		if !slices.Equal(all, want) {
			t.Errorf("Tags %d at a time = %q\nwant %q", n, all, want)
		}
	}
	// After a tag that is not there.
	if got, err := s.Tags(ctx, "r", "a0", 3); err != nil || !slices.Equal(got, []string{"a1", "a_1", "b"}) {
		t.Errorf(`Tags after "a0", 3 = %q, %v; want [a1 a_1 b]`, got, err)
	}
	if got, err := s.Tags(ctx, "r", want[len(want)-1], 10); err != nil || len(got) != 0 {
		t.Errorf("Tags after the last = %q, %v; want none", got, err)
	}
	if got, err := s.Tags(ctx, "never", "", 10); err != nil || len(got) != 0 {
		t.Errorf("Tags of an unknown repository = %q, %v; want none", got, err)
	}
	if got, err := s.TagsOf(ctx, "r", m.Digest); err != nil || !slices.Equal(got, want) {
		t.Errorf("TagsOf = %q, %v\nwant %q", got, err, want)
	}
}

func testRepositories(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	want := []string{"a", "a-b", "a.b", "a/b", "a/b/c", "a_b", "ab", "b", "library/alpine", "z/y/x"}
	shuffled := slices.Clone(want)
	slices.Reverse(shuffled)
	update(t, s, func(tx metastore.Tx) error {
		for i, r := range shuffled {
			var err error
			if i%2 == 0 {
				err = tx.LinkBlob(ctx, r, digest.FromString(r), 1)
			} else {
				err = tx.PutManifest(ctx, image(r, r))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.Repositories(ctx, "", 1000)
	if err != nil {
		t.Fatalf("Repositories: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Repositories = %q\nwant %q", got, want)
	}
	for _, n := range []int{1, 2, 3, len(want), len(want) + 1} {
		all := pages(t, n, func(after string, n int) ([]string, error) { return s.Repositories(ctx, after, n) })
		if !slices.Equal(all, want) {
			t.Errorf("Repositories %d at a time = %q\nwant %q", n, all, want)
		}
		all = pages(t, n, func(after string, n int) ([]string, error) {
			rs, err := s.RepositoryList(ctx, after, n)
			names := make([]string, len(rs))
			for i, r := range rs {
				names[i] = r.Name
			}
			return names, err
		})
		if !slices.Equal(all, want) {
			t.Errorf("RepositoryList %d at a time = %q\nwant %q", n, all, want)
		}
	}
	if got, err := s.Repositories(ctx, "a/b", 2); err != nil || !slices.Equal(got, []string{"a/b/c", "a_b"}) {
		t.Errorf(`Repositories after "a/b", 2 = %q, %v; want [a/b/c a_b]`, got, err)
	}
}

func testRepositoryExists(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	exists := func(repo string) bool {
		t.Helper()
		ok, err := repositoryExists(ctx, s, repo)
		if err != nil {
			t.Fatalf("Repository(%s): %v", repo, err)
		}
		return ok
	}
	if exists("a") {
		t.Error("Repository in an empty store = true")
	}
	// Queries do not create repositories, nor do rolled back writes.
	s.MissingBlobs(ctx, "a", []digest.Digest{digest.FromString("x")})
	s.Tags(ctx, "a", "", 10)
	s.Referrers(ctx, "a", digest.FromString("x"), "", "", 10)
	errUndo := errors.New("undo")
	s.Update(ctx, func(tx metastore.Tx) error {
		tx.LinkBlob(ctx, "a", digest.FromString("x"), 1)
		tx.PutManifest(ctx, image("a", "x"))
		return errUndo
	})
	if exists("a") {
		t.Error("Repository exists = true after reads and a rolled back Update")
	}

	link(t, s, "a", 1, digest.FromString("x"))
	put(t, s, image("b/c", "x"))
	if !exists("a") || !exists("b/c") {
		t.Error("Repository exists = false for a repository with content")
	}
	if exists("b") || exists("A") || exists("a/") {
		t.Error("Repository exists = true for a name that only resembles one")
	}
	// "Ever had": emptying a repository does not forget it.
	update(t, s, func(tx metastore.Tx) error {
		if err := tx.UnlinkBlob(ctx, "a", digest.FromString("x")); err != nil {
			return err
		}
		return tx.DeleteManifest(ctx, "b/c", image("b/c", "x").Digest)
	})
	if !exists("a") || !exists("b/c") {
		t.Error("Repository exists = false for a repository that had content")
	}
}

func testReferrers(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	subject := image("r", "subject")
	ghost := digest.FromString("a subject never pushed")
	var want []*metastore.Manifest
	for i := range 7 {
		typ := typeSBOM
		if i%3 == 0 {
			typ = typeSignature
		}
		want = append(want, artifact("r", fmt.Sprint("referrer ", i), typ, subject.Digest))
	}
	// An image manifest can be a referrer too, typed by its config.
	imgRef := image("r", "image referrer")
	imgRef.Subject = subject.Digest
	want = append(want, imgRef)
	noAnnotations := artifact("r", "bare", typeSBOM, subject.Digest)
	noAnnotations.Annotations = nil
	want = append(want, noAnnotations)

	noise := []*metastore.Manifest{
		artifact("other", "same subject, other repository", typeSBOM, subject.Digest),
		artifact("r", "other subject", typeSBOM, digest.FromString("another subject")),
		artifact("r", "no subject", typeSBOM, ""),
		index("r", "index", subject),
	}
	ghostRef := artifact("r", "referrer of a ghost", typeSignature, ghost)
	put(t, s, append(append([]*metastore.Manifest{subject, ghostRef}, want...), noise...)...)

	referrers := func(subject digest.Digest, typ string, after digest.Digest, n int) []ocispec.Descriptor {
		t.Helper()
		ds, err := s.Referrers(ctx, "r", subject, typ, after, n)
		if err != nil {
			t.Fatalf("Referrers: %v", err)
		}
		return ds
	}
	descriptors := func(typ string) []ocispec.Descriptor {
		var ds []ocispec.Descriptor
		for _, m := range want {
			if typ == "" || m.ArtifactType == typ {
				ds = append(ds, m.Descriptor())
			}
		}
		slices.SortFunc(ds, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
		return ds
	}

	for _, typ := range []string{"", typeSBOM, typeSignature, ocispec.MediaTypeImageConfig, "application/unknown"} {
		wantDs := descriptors(typ)
		if got := referrers(subject.Digest, typ, "", 1000); !descriptorsEqual(got, wantDs) {
			t.Errorf("Referrers(type %q) =\n%v\nwant\n%v", typ, got, wantDs)
		}
		for _, n := range []int{1, 2, 3, len(wantDs) + 1} {
			all := pages(t, n, func(after string, n int) ([]string, error) {
				var out []string
				for _, d := range referrers(subject.Digest, typ, digest.Digest(after), n) {
					out = append(out, string(d.Digest))
				}
				return out, nil
			})
			var wantAll []string
			for _, d := range wantDs {
				wantAll = append(wantAll, string(d.Digest))
			}
			if !slices.Equal(all, wantAll) {
				t.Errorf("Referrers(type %q) %d at a time = %v, want %v", typ, n, all, wantAll)
			}
		}
	}

	// The subject need not exist.
	if got, want := referrers(ghost, "", "", 10), []ocispec.Descriptor{ghostRef.Descriptor()}; !descriptorsEqual(got, want) {
		t.Errorf("Referrers of a subject never pushed = %v, want %v", got, want)
	}
	if got := referrers(digest.FromString("no referrers"), "", "", 10); len(got) != 0 {
		t.Errorf("Referrers of a manifest without referrers = %v", got)
	}
	// Another repository sees only its own.
	got, err := s.Referrers(ctx, "other", subject.Digest, "", "", 10)
	if want := []ocispec.Descriptor{noise[0].Descriptor()}; err != nil || !descriptorsEqual(got, want) {
		t.Errorf("Referrers in another repository = %v, %v; want %v", got, err, want)
	}
	if got, err := s.Referrers(ctx, "never", subject.Digest, "", "", 10); err != nil || len(got) != 0 {
		t.Errorf("Referrers in an unknown repository = %v, %v; want none", got, err)
	}
}

func testParents(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	c1, c2 := image("r", "child 1"), image("r", "child 2")
	i1, i2 := index("r", "index 1", c1, c2), index("r", "index 2", c1)
	nested := index("r", "nested", i1)
	c1b := *c1
	c1b.Repo = "b"
	ib := index("b", "index b", &c1b)
	put(t, s, c1, c2, i1, i2, nested, &c1b, ib)

	parents := func(repo string, d digest.Digest) []digest.Digest {
		t.Helper()
		ps, err := s.Parents(ctx, repo, d)
		if err != nil {
			t.Fatalf("Parents: %v", err)
		}
		return ps
	}
	tests := []struct {
		repo string
		d    digest.Digest
		want []digest.Digest
	}{
		{"r", c1.Digest, []digest.Digest{i1.Digest, i2.Digest}},
		{"r", c2.Digest, []digest.Digest{i1.Digest}},
		{"r", i1.Digest, []digest.Digest{nested.Digest}},
		{"r", nested.Digest, nil},
		{"r", c1.References[1].Digest, nil}, // a layer: a blob, not a child
		{"b", c1.Digest, []digest.Digest{ib.Digest}},
		{"never", c1.Digest, nil},
	}
	for _, tt := range tests {
		if got := parents(tt.repo, tt.d); !sameSet(got, tt.want) {
			t.Errorf("Parents(%s, %s) = %v, want %v", tt.repo, tt.d, got, tt.want)
		}
	}
	update(t, s, func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, "r", i1.Digest) })
	if got, want := parents("r", c1.Digest), []digest.Digest{i2.Digest}; !sameSet(got, want) {
		t.Errorf("Parents after deleting a parent = %v, want %v", got, want)
	}
	if got := parents("r", c2.Digest); len(got) != 0 {
		t.Errorf("Parents after deleting the only parent = %v", got)
	}
}

func testDeleteManifest(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	subject := image("r", "subject")
	m := artifact("r", "sig", typeSignature, subject.Digest)
	keep := artifact("r", "sbom", typeSBOM, subject.Digest)
	put(t, s, subject, m, keep)
	for _, tag := range []string{"t1", "t2"} {
		setTag(t, s, "r", tag, m.Digest)
	}
	setTag(t, s, "r", "kept", keep.Digest)

	update(t, s, func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, "r", m.Digest) })

	_, err := s.Manifest(ctx, "r", m.Digest)
	wantNotFound(t, "Manifest after DeleteManifest", err)
	for _, tag := range []string{"t1", "t2"} {
		_, err := s.TaggedManifest(ctx, "r", tag)
		wantNotFound(t, "TaggedManifest of a tag of a deleted manifest", err)
	}
	if tags, err := s.Tags(ctx, "r", "", 100); err != nil || !slices.Equal(tags, []string{"kept"}) {
		t.Errorf("Tags = %v, %v; want [kept]", tags, err)
	}
	if tags, err := s.TagsOf(ctx, "r", m.Digest); err != nil || len(tags) != 0 {
		t.Errorf("TagsOf a deleted manifest = %v, %v", tags, err)
	}
	refs, err := s.Referrers(ctx, "r", subject.Digest, "", "", 100)
	if want := []ocispec.Descriptor{keep.Descriptor()}; err != nil || !descriptorsEqual(refs, want) {
		t.Errorf("Referrers after DeleteManifest = %v, %v; want %v", refs, err, want)
	}
	if miss, err := s.MissingManifests(ctx, "r", []digest.Digest{m.Digest, keep.Digest}); err != nil || !sameSet(miss, []digest.Digest{m.Digest}) {
		t.Errorf("MissingManifests = %v, %v; want [%s]", miss, err, m.Digest)
	}

	for _, c := range []struct {
		repo string
		d    digest.Digest
	}{{"r", m.Digest}, {"never", keep.Digest}} {
		err := s.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, c.repo, c.d) })
		wantNotFound(t, fmt.Sprintf("DeleteManifest(%s, %s) absent", c.repo, c.d), err)
	}

	// Put again, it comes back without its old tags.
	put(t, s, m)
	if tags, err := s.TagsOf(ctx, "r", m.Digest); err != nil || len(tags) != 0 {
		t.Errorf("TagsOf a manifest put again = %v, %v; want none", tags, err)
	}
	refs, err = s.Referrers(ctx, "r", subject.Digest, "", "", 100)
	if want := descriptorsOf(keep, m); err != nil || !descriptorsEqual(refs, want) {
		t.Errorf("Referrers after putting it again = %v, %v; want %v", refs, err, want)
	}
}

// descriptorsOf returns the descriptors of ms in digest order.
func descriptorsOf(ms ...*metastore.Manifest) []ocispec.Descriptor {
	var ds []ocispec.Descriptor
	for _, m := range ms {
		ds = append(ds, m.Descriptor())
	}
	slices.SortFunc(ds, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return ds
}

func testManifests(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	a, b := image("r", "a"), image("r", "b")
	r1 := artifact("r", "r1", typeSBOM, a.Digest)
	r2 := artifact("r", "r2", typeSignature, a.Digest)
	r3 := artifact("r", "r3", typeSBOM, digest.FromString("ghost"))
	loose := artifact("r", "loose", typeSBOM, "")
	idx := index("r", "index", a, b)
	all := []*metastore.Manifest{a, b, r1, r2, r3, loose, idx}
	put(t, s, all...)
	put(t, s, image("other", "a"))
	tags := map[digest.Digest]int64{a.Digest: 2, r2.Digest: 1, idx.Digest: 1}
	update(t, s, func(tx metastore.Tx) error {
		for _, c := range []struct {
			tag string
			d   digest.Digest
		}{{"a", a.Digest}, {"latest", a.Digest}, {"sig", r2.Digest}, {"index", idx.Digest}} {
			if err := tx.SetTag(ctx, "r", c.tag, c.d); err != nil {
				return err
			}
		}
		return nil
	})

	yes, no := true, false
	filters := []metastore.Filter{
		{},
		{Tagged: &yes},
		{Tagged: &no},
		{HasSubject: &yes},
		{HasSubject: &no},
		{ArtifactType: typeSBOM},
		{ArtifactType: ocispec.MediaTypeImageConfig},
		{ArtifactType: "application/unknown"},
		{Tagged: &no, HasSubject: &yes},
		{Tagged: &yes, HasSubject: &yes, ArtifactType: typeSignature},
		{HasSubject: &no, ArtifactType: typeSBOM},
	}
	for _, f := range filters {
		var want []string
		for _, m := range all {
			if (f.Tagged == nil || *f.Tagged == (tags[m.Digest] > 0)) &&
				(f.HasSubject == nil || *f.HasSubject == (m.Subject != "")) &&
				(f.ArtifactType == "" || f.ArtifactType == m.ArtifactType) {
				want = append(want, string(m.Digest))
			}
		}
		slices.Sort(want)
		name := filterString(f)
		for _, n := range []int{1, 2, 100} {
			got := pages(t, n, func(after string, n int) ([]string, error) {
				ms, err := s.Manifests(ctx, "r", f, digest.Digest(after), n)
				var out []string
				for _, m := range ms {
					if len(m.Content) != 0 {
						t.Errorf("Manifests(%s) returned the content of %s", name, m.Digest)
					}
					if m.TagCount != tags[m.Digest] {
						t.Errorf("Manifests(%s): %s has %d tags, want %d", name, m.Digest, m.TagCount, tags[m.Digest])
					}
					out = append(out, string(m.Digest))
				}
				return out, err
			})
			if !slices.Equal(got, want) {
				t.Errorf("Manifests(%s) %d at a time = %v\nwant %v", name, n, got, want)
			}
		}
	}

	// The metadata is that of the manifests.
	ms, err := s.Manifests(ctx, "r", metastore.Filter{}, "", 100)
	if err != nil {
		t.Fatalf("Manifests: %v", err)
	}
	for _, got := range ms {
		i := slices.IndexFunc(all, func(m *metastore.Manifest) bool { return m.Digest == got.Digest })
		if i < 0 {
			t.Errorf("Manifests listed %s, never put", got.Digest)
			continue
		}
		checkManifest(t, &got, all[i], false)
	}
	if ms, err := s.Manifests(ctx, "never", metastore.Filter{}, "", 100); err != nil || len(ms) != 0 {
		t.Errorf("Manifests of an unknown repository = %v, %v", ms, err)
	}
}

func filterString(f metastore.Filter) string {
	var parts []string
	if f.Tagged != nil {
		parts = append(parts, fmt.Sprint("tagged=", *f.Tagged))
	}
	if f.HasSubject != nil {
		parts = append(parts, fmt.Sprint("hasSubject=", *f.HasSubject))
	}
	if f.ArtifactType != "" {
		parts = append(parts, "artifactType="+f.ArtifactType)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func testCounts(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	repo := func() metastore.Repository {
		t.Helper()
		r, err := s.Repository(ctx, "r")
		if err != nil {
			t.Fatalf("Repository: %v", err)
		}
		return *r
	}
	check := func(manifests, tags, size int64) {
		t.Helper()
		r := repo()
		if r.Name != "r" || r.ManifestCount != manifests || r.TagCount != tags || r.Size != size {
			t.Errorf("Repository = %s: %d manifests, %d tags, %d bytes; want %d, %d, %d",
				r.Name, r.ManifestCount, r.TagCount, r.Size, manifests, tags, size)
		}
		if r.Updated.Before(r.Created) {
			t.Errorf("Repository updated %v, before it was created %v", r.Updated, r.Created)
		}
	}
	manifest := func(d digest.Digest, tags, total int64) {
		t.Helper()
		m := getManifest(t, s, "r", d)
		if m.TagCount != tags || m.TotalSize != total {
			t.Errorf("manifest %s: %d tags, total size %d; want %d, %d", d, m.TagCount, m.TotalSize, tags, total)
		}
	}

	_, err := s.Repository(ctx, "r")
	wantNotFound(t, "Repository unknown", err)

	m1, m2 := image("r", "1"), image("r", "2")
	cfg, layer := m1.References[0], m1.References[1]
	link(t, s, "r", cfg.Size, cfg.Digest)
	link(t, s, "r", layer.Size, layer.Digest)
	link(t, s, "r", layer.Size, layer.Digest) // again: counted once
	blobs := cfg.Size + layer.Size
	check(0, 0, blobs)

	put(t, s, m1)
	check(1, 0, blobs+m1.Size)
	manifest(m1.Digest, 0, m1.Size+blobs)
	// m2's blobs are not in the repository: their sizes are as the manifest says.
	put(t, s, m2)
	check(2, 0, blobs+m1.Size+m2.Size)
	manifest(m2.Digest, 0, m2.Size+m2.References[0].Size+m2.References[1].Size)
	idx := index("r", "index", m1, m2)
	put(t, s, idx)
	idxTotal := idx.Size + (m1.Size + blobs) + (m2.Size + m2.References[0].Size + m2.References[1].Size)
	manifest(idx.Digest, 0, idxTotal)
	size := blobs + m1.Size + m2.Size + idx.Size
	check(3, 0, size)

	setTag(t, s, "r", "a", m1.Digest)
	setTag(t, s, "r", "b", m1.Digest)
	setTag(t, s, "r", "b", m1.Digest)
	check(3, 2, size)
	manifest(m1.Digest, 2, m1.Size+blobs)

	setTag(t, s, "r", "b", m2.Digest) // a move
	check(3, 2, size)
	manifest(m1.Digest, 1, m1.Size+blobs)
	manifest(m2.Digest, 1, m2.Size+m2.References[0].Size+m2.References[1].Size)

	put(t, s, m1) // again: nothing counted
	check(3, 2, size)

	// Rolled back: nothing counted.
	errUndo := errors.New("undo")
	err = s.Update(ctx, func(tx metastore.Tx) error {
		tx.SetTag(ctx, "r", "c", m1.Digest)
		tx.DeleteManifest(ctx, "r", m2.Digest)
		tx.LinkBlob(ctx, "r", digest.FromString("more"), 5000)
		tx.PutManifest(ctx, image("r", "3"))
		return errUndo
	})
	if !errors.Is(err, errUndo) {
		t.Fatalf("Update = %v, want %v", err, errUndo)
	}
	check(3, 2, size)

	update(t, s, func(tx metastore.Tx) error { return tx.DeleteTag(ctx, "r", "a") })
	check(3, 1, size)
	manifest(m1.Digest, 0, m1.Size+blobs)

	update(t, s, func(tx metastore.Tx) error { return tx.DeleteManifest(ctx, "r", m2.Digest) })
	size -= m2.Size
	check(2, 0, size)

	update(t, s, func(tx metastore.Tx) error { return tx.UnlinkBlob(ctx, "r", layer.Digest) })
	size -= layer.Size
	check(2, 0, size)

	rs, err := s.RepositoryList(ctx, "", 10)
	if err != nil || len(rs) != 1 || !reflect.DeepEqual(rs[0], repo()) {
		t.Errorf("RepositoryList = %+v, %v; want [%+v]", rs, err, repo())
	}
}

func testAttributes(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	m1, m2 := image("r", "1"), image("r", "2")
	// Whatever a caller leaves in the fields, a new manifest has every attribute.
	m1.Attributes = metastore.Attributes{}
	put(t, s, m1, m2)
	put(t, s, image("z", "other"))
	setTag(t, s, "r", "one", m1.Digest)
	setTag(t, s, "r", "two", m2.Digest)

	checkAttrs := func(d digest.Digest, want, wantRepo metastore.Attributes) {
		t.Helper()
		m := getManifest(t, s, "r", d)
		if m.Attributes != want || m.RepoAttributes != wantRepo {
			t.Errorf("manifest %s: attributes %+v, repository's %+v; want %+v, %+v", d, m.Attributes, m.RepoAttributes, want, wantRepo)
		}
		for _, tag := range []string{"one", "two"} {
			if tm, err := s.Tag(ctx, "r", tag); err == nil && tm.Digest == d && (tm.Attributes != want || tm.RepoAttributes != wantRepo) {
				t.Errorf("Tag(%s): attributes %+v, repository's %+v; want %+v, %+v", tag, tm.Attributes, tm.RepoAttributes, want, wantRepo)
			}
		}
		r, err := s.Repository(ctx, "r")
		if err != nil {
			t.Fatalf("Repository: %v", err)
		}
		if r.Attributes != wantRepo {
			t.Errorf("Repository attributes %+v, want %+v", r.Attributes, wantRepo)
		}
	}
	checkAttrs(m1.Digest, metastore.Enabled, metastore.Enabled)

	// Every combination, for the manifest and for the repository.
	for i := range 16 {
		a := metastore.Attributes{DeleteEnabled: i&1 != 0, WriteEnabled: i&2 != 0, ReadEnabled: i&4 != 0, ListEnabled: i&8 != 0}
		ra := metastore.Attributes{DeleteEnabled: i&8 != 0, WriteEnabled: i&4 != 0, ReadEnabled: i&2 != 0, ListEnabled: i&1 != 0}
		update(t, s, func(tx metastore.Tx) error {
			if err := tx.SetManifestAttributes(ctx, "r", m1.Digest, a); err != nil {
				return err
			}
			return tx.SetRepositoryAttributes(ctx, "r", ra)
		})
		checkAttrs(m1.Digest, a, ra)
		checkAttrs(m2.Digest, metastore.Enabled, ra)
	}

	// Putting the manifest again keeps its attributes.
	locked := metastore.Attributes{ReadEnabled: true, ListEnabled: true}
	update(t, s, func(tx metastore.Tx) error { return tx.SetManifestAttributes(ctx, "r", m1.Digest, locked) })
	put(t, s, m1)
	checkAttrs(m1.Digest, locked, metastore.Enabled)

	// ListEnabled hides a manifest's tags from Tags and a repository from Repositories.
	update(t, s, func(tx metastore.Tx) error {
		return tx.SetManifestAttributes(ctx, "r", m1.Digest, metastore.Attributes{ReadEnabled: true})
	})
	if tags, err := s.Tags(ctx, "r", "", 10); err != nil || !slices.Equal(tags, []string{"two"}) {
		t.Errorf("Tags with manifest one unlisted = %v, %v; want [two]", tags, err)
	}
	if d := tagged(t, s, "r", "one"); d != m1.Digest {
		t.Errorf("TaggedManifest of an unlisted manifest's tag = %s, want %s", d, m1.Digest)
	}
	update(t, s, func(tx metastore.Tx) error {
		return tx.SetRepositoryAttributes(ctx, "r", metastore.Attributes{ReadEnabled: true})
	})
	if rs, err := s.Repositories(ctx, "", 10); err != nil || !slices.Equal(rs, []string{"z"}) {
		t.Errorf("Repositories with r unlisted = %v, %v; want [z]", rs, err)
	}
	if rs, err := s.RepositoryList(ctx, "", 10); err != nil || len(rs) != 2 || rs[0].Name != "r" || rs[1].Name != "z" {
		t.Errorf("RepositoryList with r unlisted = %+v, %v; want r and z", rs, err)
	}
	update(t, s, func(tx metastore.Tx) error {
		return tx.SetRepositoryAttributes(ctx, "r", metastore.Enabled)
	})
	if rs, err := s.Repositories(ctx, "", 10); err != nil || !slices.Equal(rs, []string{"r", "z"}) {
		t.Errorf("Repositories with r listed again = %v, %v; want [r z]", rs, err)
	}

	err := s.Update(ctx, func(tx metastore.Tx) error { return tx.SetRepositoryAttributes(ctx, "never", metastore.Enabled) })
	wantNotFound(t, "SetRepositoryAttributes of an unknown repository", err)
	for _, c := range []struct {
		repo string
		d    digest.Digest
	}{{"r", digest.FromString("nothing")}, {"z", m1.Digest}, {"never", m1.Digest}} {
		err := s.Update(ctx, func(tx metastore.Tx) error { return tx.SetManifestAttributes(ctx, c.repo, c.d, metastore.Enabled) })
		wantNotFound(t, fmt.Sprintf("SetManifestAttributes(%s, %s) of an unknown manifest", c.repo, c.d), err)
	}
}

func testUploads(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	ups := []metastore.Upload{
		{ID: "u0", Repo: "r", Owner: "user:alice", Created: t0, Modified: t0},
		{ID: "u1", Repo: "r", Owner: "user:bob", Created: t0, Modified: t0.Add(time.Second)},
		{ID: "u2", Repo: "other/repo", Owner: "user:alice", Created: t0.Add(time.Second), Modified: t0.Add(2 * time.Second)},
	}
	update(t, s, func(tx metastore.Tx) error {
		for _, u := range ups {
			if err := tx.CreateUpload(ctx, &u); err != nil {
				return err
			}
		}
		return nil
	})
	for _, want := range ups {
		got, err := s.Upload(ctx, want.ID)
		if err != nil {
			t.Fatalf("Upload(%s): %v", want.ID, err)
		}
		if !uploadEqual(*got, want) {
			t.Errorf("Upload(%s) = %+v, want %+v", want.ID, *got, want)
		}
	}
	_, err := s.Upload(ctx, "never")
	wantNotFound(t, "Upload unknown", err)

	stale := func(before time.Time, n int, want ...metastore.Upload) {
		t.Helper()
		got, err := s.StaleUploads(ctx, before, n)
		if err != nil {
			t.Fatalf("StaleUploads: %v", err)
		}
		if len(got) > n {
			t.Errorf("StaleUploads(%v, %d) returned %d", before, n, len(got))
		}
		for _, g := range got {
			if !slices.ContainsFunc(want, func(u metastore.Upload) bool { return uploadEqual(g, u) }) {
				t.Errorf("StaleUploads(%v, %d) returned %+v, not stale", before, n, g)
			}
		}
		if len(got) != min(n, len(want)) {
			t.Errorf("StaleUploads(%v, %d) = %+v, want %d of %+v", before, n, got, min(n, len(want)), want)
		}
	}
	// Empty: never written since created (u0 only), created strictly before the time.
	empty := func(before time.Time, n int, want ...metastore.Upload) {
		t.Helper()
		got, err := s.EmptyUploads(ctx, before, n)
		if err != nil {
			t.Fatalf("EmptyUploads: %v", err)
		}
		if len(got) != len(want) || len(got) > 0 && !uploadEqual(got[0], want[0]) {
			t.Errorf("EmptyUploads(%v, %d) = %+v, want %+v", before, n, got, want)
		}
	}
	empty(t0, 10)
	empty(t0.Add(time.Hour), 10, ups[0])
	empty(t0.Add(time.Hour), 0)
	open := func(repo, owner string, upTo, wantRepo, wantOwner int) {
		t.Helper()
		r, o, err := s.OpenUploads(ctx, repo, owner, upTo)
		if err != nil || r != wantRepo || o != wantOwner {
			t.Errorf("OpenUploads(%s, %s, %d) = %d, %d, %v; want %d, %d", repo, owner, upTo, r, o, err, wantRepo, wantOwner)
		}
	}
	open("r", "user:alice", 10, 2, 2)
	open("r", "user:alice", 1, 1, 1) // counted up to 1
	open("other/repo", "user:bob", 10, 1, 1)
	open("nothing", "nobody", 10, 0, 0)

	stale(t0, 10)
	stale(t0.Add(time.Second), 10, ups[0]) // strictly before
	stale(t0.Add(time.Hour), 10, ups...)
	stale(t0.Add(time.Hour), 2, ups...)
	stale(t0.Add(time.Hour), 1, ups...)

	touched := t0.Add(time.Minute)
	update(t, s, func(tx metastore.Tx) error { return tx.TouchUpload(ctx, "u0", touched) })
	ups[0].Modified = touched
	if got, err := s.Upload(ctx, "u0"); err != nil || !uploadEqual(*got, ups[0]) {
		t.Errorf("Upload after TouchUpload = %+v, %v; want %+v", got, err, ups[0])
	}
	stale(t0.Add(time.Minute), 10, ups[1], ups[2])
	empty(t0.Add(time.Hour), 10) // written now
	err = s.Update(ctx, func(tx metastore.Tx) error { return tx.TouchUpload(ctx, "never", touched) })
	wantNotFound(t, "TouchUpload unknown", err)

	update(t, s, func(tx metastore.Tx) error { return tx.DeleteUpload(ctx, "u1") })
	_, err = s.Upload(ctx, "u1")
	wantNotFound(t, "Upload after DeleteUpload", err)
	err = s.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteUpload(ctx, "u1") })
	wantNotFound(t, "DeleteUpload again", err)
	stale(t0.Add(time.Hour), 10, ups[0], ups[2])
	open("r", "user:bob", 10, 1, 0)
}

func uploadEqual(a, b metastore.Upload) bool {
	return a.ID == b.ID && a.Repo == b.Repo && a.Owner == b.Owner && a.Created.Equal(b.Created) && a.Modified.Equal(b.Modified)
}

// state is what a test reads back to tell whether an Update changed anything.
type state struct {
	Tags       []string
	Manifests  []string
	Blobs      []digest.Digest // missing of a fixed list
	Referrers  []digest.Digest
	Upload     string
	Repository metastore.Repository
	Exists     bool
}

func readState(ctx context.Context, r metastore.Reader, subject digest.Digest, blobs []digest.Digest) (state, error) {
	var st state
	var err error
	if st.Tags, err = r.Tags(ctx, "r", "", 100); err != nil {
		return st, err
	}
	for _, tag := range st.Tags {
		m, err := r.TaggedManifest(ctx, "r", tag)
		if err != nil {
			return st, err
		}
		st.Manifests = append(st.Manifests, tag+"="+string(m.Digest))
	}
	ms, err := r.Manifests(ctx, "r", metastore.Filter{}, "", 100)
	if err != nil {
		return st, err
	}
	for _, m := range ms {
		st.Manifests = append(st.Manifests, fmt.Sprintf("%s %d tags %v", m.Digest, m.TagCount, m.Attributes))
	}
	if st.Blobs, err = r.MissingBlobs(ctx, "r", blobs); err != nil {
		return st, err
	}
	refs, err := r.Referrers(ctx, "r", subject, "", "", 100)
	if err != nil {
		return st, err
	}
	for _, d := range refs {
		st.Referrers = append(st.Referrers, d.Digest)
	}
	for _, id := range []string{"old", "new"} {
		u, err := r.Upload(ctx, id)
		if err == nil {
			st.Upload += fmt.Sprintf("%s@%d ", u.ID, u.Modified.UnixMicro())
		}
	}
	rp, err := r.Repository(ctx, "r")
	if err != nil {
		return st, err
	}
	st.Repository = *rp
	st.Exists, err = repositoryExists(ctx, r, "new")
	return st, err
}

func mustReadState(t *testing.T, r metastore.Reader, subject digest.Digest, blobs []digest.Digest) state {
	t.Helper()
	st, err := readState(t.Context(), r, subject, blobs)
	if err != nil {
		t.Fatalf("reading the state: %v", err)
	}
	return st
}

type codedError struct{ code int }

func (e *codedError) Error() string { return fmt.Sprint("code ", e.code) }

func testUpdateRollback(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	old, subject := image("r", "old"), image("r", "subject")
	oldBlob, newBlob := digest.FromString("old blob"), digest.FromString("new blob")
	put(t, s, old, subject)
	setTag(t, s, "r", "latest", old.Digest)
	link(t, s, "r", 3, oldBlob)
	update(t, s, func(tx metastore.Tx) error {
		return tx.CreateUpload(ctx, &metastore.Upload{ID: "old", Repo: "r", Created: t0, Modified: t0})
	})
	blobs := []digest.Digest{oldBlob, newBlob}
	before := mustReadState(t, s, subject.Digest, blobs)

	// writeAll changes everything a Tx can change; it stops at the first error.
	writeAll := func(tx metastore.Tx) error {
		m := artifact("r", "new", typeSBOM, subject.Digest)
		for _, step := range []func() error{
			func() error { return tx.LinkBlob(ctx, "r", newBlob, 5) },
			func() error { return tx.UnlinkBlob(ctx, "r", oldBlob) },
			func() error { return tx.PutManifest(ctx, m) },
			func() error { return tx.SetTag(ctx, "r", "latest", m.Digest) },
			func() error { return tx.SetTag(ctx, "r", "new", m.Digest) },
			func() error { return tx.DeleteManifest(ctx, "r", old.Digest) },
			func() error {
				return tx.CreateUpload(ctx, &metastore.Upload{ID: "new", Repo: "r", Created: t0, Modified: t0})
			},
			func() error { return tx.TouchUpload(ctx, "old", t0.Add(time.Hour)) },
			func() error { return tx.SetManifestAttributes(ctx, "r", m.Digest, metastore.Attributes{}) },
			func() error { return tx.SetRepositoryAttributes(ctx, "r", metastore.Attributes{ListEnabled: true}) },
			func() error { return tx.LinkBlob(ctx, "new", newBlob, 5) },
		} {
			if err := step(); err != nil {
				return err
			}
		}
		// The transaction sees its own writes. (fn may run outside the test's
		// goroutine: it reports, it does not stop the test.)
		st, err := readState(ctx, tx, subject.Digest, blobs)
		if err != nil {
			return err
		}
		if reflect.DeepEqual(st, before) {
			t.Error("the transaction does not see its own writes")
		}
		return nil
	}

	errPlain := errors.New("plain")
	tests := []struct {
		name  string
		fn    func(tx metastore.Tx) error
		check func(err error) bool
	}{
		{"sentinel", func(tx metastore.Tx) error {
			if err := writeAll(tx); err != nil {
				return err
			}
			return errPlain
		}, func(err error) bool { return err == errPlain }},
		{"wrapped", func(tx metastore.Tx) error {
			if err := writeAll(tx); err != nil {
				return err
			}
			return fmt.Errorf("context: %w", &codedError{42})
		}, func(err error) bool {
			var ce *codedError
			return errors.As(err, &ce) && ce.code == 42
		}},
		{"store error", func(tx metastore.Tx) error {
			if err := writeAll(tx); err != nil {
				return err
			}
			return tx.DeleteTag(ctx, "r", "never set")
		}, isNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Update(ctx, tt.fn)
			if !tt.check(err) {
				t.Fatalf("Update = %v, not the error fn returned", err)
			}
			if after := mustReadState(t, s, subject.Digest, blobs); !reflect.DeepEqual(after, before) {
				t.Errorf("state after a failed Update:\n%+v\nwant\n%+v", after, before)
			}
		})
	}

	// The same writes, committed, do change the state: the comparison can fail.
	update(t, s, writeAll)
	if after := mustReadState(t, s, subject.Digest, blobs); reflect.DeepEqual(after, before) {
		t.Error("a committed Update did not change the state")
	}
}

func testUpdatePanic(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	m := image("r", "in a panicking update")
	err := s.Update(ctx, func(tx metastore.Tx) error {
		if err := tx.PutManifest(ctx, m); err != nil {
			return err
		}
		if err := tx.SetTag(ctx, "r", "latest", m.Digest); err != nil {
			return err
		}
		panic("fn panicked")
	})
	if err == nil {
		t.Fatal("Update of a panicking fn returned nil")
	}
	_, err = s.Manifest(ctx, "r", m.Digest)
	wantNotFound(t, "Manifest written before the panic", err)
	if ok, err := repositoryExists(ctx, s, "r"); err != nil || ok {
		t.Errorf("Repository exists after the panic = %v, %v; want false", ok, err)
	}

	// The store goes on.
	put(t, s, m)
	setTag(t, s, "r", "latest", m.Digest)
	if d := tagged(t, s, "r", "latest"); d != m.Digest {
		t.Errorf("latest = %s, want %s", d, m.Digest)
	}
}

func testUpdateIsolation(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	subject := image("r", "subject")
	put(t, s, subject)
	m := artifact("r", "sig", typeSignature, subject.Digest)
	b := digest.FromString("blob")
	update(t, s, func(tx metastore.Tx) error {
		if err := tx.LinkBlob(ctx, "r", b, 1); err != nil {
			return err
		}
		if err := tx.PutManifest(ctx, m); err != nil {
			return err
		}
		if err := tx.SetTag(ctx, "r", "sig", m.Digest); err != nil {
			return err
		}
		// The transaction reads its writes ... (fn may run outside the test's
		// goroutine: it reports, it does not stop the test.)
		if got, err := tx.Manifest(ctx, "r", m.Digest); err != nil {
			t.Errorf("in the Tx, Manifest: %v", err)
		} else {
			checkManifest(t, got, m, true)
		}
		if got, err := tx.TaggedManifest(ctx, "r", "sig"); err != nil || got.Digest != m.Digest {
			t.Errorf("in the Tx, TaggedManifest(sig) = %v, %v; want %s", got, err, m.Digest)
		}
		if size, err := tx.Blob(ctx, "r", b); err != nil || size != 1 {
			t.Errorf("in the Tx, Blob = %d, %v; want 1", size, err)
		}
		if refs, err := tx.Referrers(ctx, "r", subject.Digest, "", "", 10); err != nil || len(refs) != 1 {
			t.Errorf("in the Tx, Referrers = %v, %v; want one", refs, err)
		}
		// ... the store, the latest commit only.
		_, err := s.Manifest(ctx, "r", m.Digest)
		wantNotFound(t, "Store.Manifest of an uncommitted manifest", err)
		_, err = s.TaggedManifest(ctx, "r", "sig")
		wantNotFound(t, "Store.TaggedManifest of an uncommitted tag", err)
		_, err = s.Blob(ctx, "r", b)
		wantNotFound(t, "Store.Blob of an uncommitted link", err)
		if refs, err := s.Referrers(ctx, "r", subject.Digest, "", "", 10); err != nil || len(refs) != 0 {
			t.Errorf("Store.Referrers during the Update = %v, %v; want none", refs, err)
		}
		return nil
	})
	checkManifest(t, getManifest(t, s, "r", m.Digest), m, true)
	if d := tagged(t, s, "r", "sig"); d != m.Digest {
		t.Errorf("after the commit, sig = %s, want %s", d, m.Digest)
	}
}

// testUpdateVisibility reads each write back through the Store as soon as its Update
// returns, from several goroutines.
func testUpdateVisibility(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	const goroutines, rounds = 8, 20
	var ms []*metastore.Manifest
	for i := range rounds {
		ms = append(ms, image("r", fmt.Sprint(i)))
	}
	put(t, s, ms...)
	var wg sync.WaitGroup
	for g := range goroutines {
		tag := fmt.Sprint("g", g)
		wg.Go(func() {
			for i, m := range ms {
				if err := s.Update(ctx, func(tx metastore.Tx) error { return tx.SetTag(ctx, "r", tag, m.Digest) }); err != nil {
					t.Errorf("Update: %v", err)
					return
				}
				got, err := s.TaggedManifest(ctx, "r", tag)
				if err != nil || got.Digest != m.Digest {
					t.Errorf("round %d: TaggedManifest(%s) right after the Update = %v, %v; want %s", i, tag, got, err, m.Digest)
					return
				}
				up := metastore.Upload{ID: fmt.Sprint(tag, "-", i), Repo: "r", Created: t0, Modified: t0}
				if err := s.Update(ctx, func(tx metastore.Tx) error { return tx.CreateUpload(ctx, &up) }); err != nil {
					t.Errorf("Update: %v", err)
					return
				}
				if _, err := s.Upload(ctx, up.ID); err != nil {
					t.Errorf("Upload(%s) right after the Update: %v", up.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// testUpdateConcurrent runs many Updates at once, some failing: each must get its own
// outcome, and the store must hold exactly the writes of those that succeeded.
func testUpdateConcurrent(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	const n = 64
	type outcome int
	const (
		commit outcome = iota
		fail
		panics
	)
	want := func(i int) outcome {
		switch i % 4 {
		case 1:
			return fail
		case 3:
			if i%8 == 7 {
				return panics
			}
		}
		return commit
	}
	ms := make([]*metastore.Manifest, n)
	errs := make([]error, n)
	for i := range n {
		ms[i] = image("r", fmt.Sprint(i))
		errs[i] = fmt.Errorf("update %d failed", i)
	}
	got := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i] = s.Update(ctx, func(tx metastore.Tx) error {
				for _, step := range []func() error{
					func() error { return tx.LinkBlob(ctx, "r", digest.FromString(fmt.Sprint("blob ", i)), int64(i)) },
					func() error { return tx.PutManifest(ctx, ms[i]) },
					func() error { return tx.SetTag(ctx, "r", fmt.Sprintf("t%02d", i), ms[i].Digest) },
					func() error {
						return tx.CreateUpload(ctx, &metastore.Upload{ID: fmt.Sprint("u", i), Repo: "r", Created: t0, Modified: t0})
					},
				} {
					if err := step(); err != nil {
						return err
					}
				}
				switch want(i) {
				case fail:
					return errs[i]
				case panics:
					panic(fmt.Sprint("update ", i, " panicked"))
				}
				return nil
			})
		})
	}
	close(start)
	wg.Wait()

	var wantTags []string
	var committed int64
	for i := range n {
		switch want(i) {
		case commit:
			if got[i] != nil {
				t.Errorf("Update %d = %v, want nil", i, got[i])
			}
			wantTags = append(wantTags, fmt.Sprintf("t%02d", i))
			committed++
		case fail:
			if !errors.Is(got[i], errs[i]) {
				t.Errorf("Update %d = %v, want %v", i, got[i], errs[i])
			}
		case panics:
			if got[i] == nil || slices.ContainsFunc(errs, func(e error) bool { return errors.Is(got[i], e) }) {
				t.Errorf("Update %d panicked, returned %v", i, got[i])
			}
		}
		ok := want(i) == commit
		_, err := s.Manifest(ctx, "r", ms[i].Digest)
		if (err == nil) != ok || err != nil && !isNotFound(err) {
			t.Errorf("Update %d (committed %v): Manifest error %v", i, ok, err)
		}
		_, err = s.Blob(ctx, "r", digest.FromString(fmt.Sprint("blob ", i)))
		if (err == nil) != ok || err != nil && !isNotFound(err) {
			t.Errorf("Update %d (committed %v): Blob error %v", i, ok, err)
		}
		_, err = s.Upload(ctx, fmt.Sprint("u", i))
		if (err == nil) != ok || err != nil && !isNotFound(err) {
			t.Errorf("Update %d (committed %v): Upload error %v", i, ok, err)
		}
	}
	if tags, err := s.Tags(ctx, "r", "", 1000); err != nil || !slices.Equal(tags, wantTags) {
		t.Errorf("Tags = %v, %v\nwant %v", tags, err, wantTags)
	}
	r, err := s.Repository(ctx, "r")
	if err != nil {
		t.Fatalf("Repository: %v", err)
	}
	if r.ManifestCount != committed || r.TagCount != committed {
		t.Errorf("Repository counts %d manifests, %d tags; want %d of each", r.ManifestCount, r.TagCount, committed)
	}
}

// testUpdateSerializable has concurrent Updates each read how many tags there are and
// add the next: under serializable transactions every count is read once, so the
// tags are n000 up to the number of Updates, none lost.
func testUpdateSerializable(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	const n = 32
	m := image("r", "counted")
	put(t, s, m)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			err := s.Update(ctx, func(tx metastore.Tx) error {
				tags, err := tx.Tags(ctx, "r", "", 1000)
				if err != nil {
					return err
				}
				return tx.SetTag(ctx, "r", fmt.Sprintf("n%03d", len(tags)), m.Digest)
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("n%03d", i))
	}
	if tags, err := s.Tags(ctx, "r", "", 1000); err != nil || !slices.Equal(tags, want) {
		t.Errorf("Tags = %v, %v\nwant %v", tags, err, want)
	}
}

// testContent: the pull lookups serve a manifest's bytes with its read attributes and
// those of its repository, by digest and by tag, only in the manifest's repository.
func testContent(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	m := image("r", "content")
	put(t, s, m, image("other", "elsewhere"))
	setTag(t, s, "r", "v1", m.Digest)
	check := func(what string, c *metastore.Content, err error, read, repoRead bool) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if c.Digest != m.Digest || c.MediaType != m.MediaType || c.Size != m.Size || !bytes.Equal(c.Bytes, m.Content) {
			t.Errorf("%s = {%s %s %d %d bytes}, want {%s %s %d %d bytes}", what,
				c.Digest, c.MediaType, c.Size, len(c.Bytes), m.Digest, m.MediaType, m.Size, len(m.Content))
		}
		if c.ReadEnabled != read || c.RepoReadEnabled != repoRead {
			t.Errorf("%s: ReadEnabled %v, RepoReadEnabled %v; want %v, %v", what, c.ReadEnabled, c.RepoReadEnabled, read, repoRead)
		}
	}
	c, err := s.Content(ctx, "r", m.Digest)
	check("Content", c, err, true, true)
	c, err = s.TaggedContent(ctx, "r", "v1")
	check("TaggedContent", c, err, true, true)

	locked := metastore.Enabled
	locked.ReadEnabled = false
	update(t, s, func(tx metastore.Tx) error { return tx.SetManifestAttributes(ctx, "r", m.Digest, locked) })
	c, err = s.Content(ctx, "r", m.Digest)
	check("Content of a read-locked manifest", c, err, false, true)
	update(t, s, func(tx metastore.Tx) error { return tx.SetRepositoryAttributes(ctx, "r", locked) })
	c, err = s.TaggedContent(ctx, "r", "v1")
	check("TaggedContent in a read-locked repository", c, err, false, false)

	_, err = s.Content(ctx, "other", m.Digest)
	wantNotFound(t, "Content through another repository", err)
	_, err = s.TaggedContent(ctx, "other", "v1")
	wantNotFound(t, "TaggedContent through another repository", err)
	_, err = s.Content(ctx, "r", digest.FromString("never pushed"))
	wantNotFound(t, "Content of an unknown manifest", err)
	_, err = s.TaggedContent(ctx, "r", "v2")
	wantNotFound(t, "TaggedContent of an unknown tag", err)
}

// repositoryExists reports whether r knows repo.
func repositoryExists(ctx context.Context, r metastore.Reader, repo string) (bool, error) {
	_, err := r.Repository(ctx, repo)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

package registry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/pattern"
)

// mirrored is an image as an upstream registry has it: the manifest's bytes, and the
// blobs it names.
type mirrored struct {
	desc          ocispec.Descriptor
	body          []byte
	config, layer []byte
}

func mirroredImage(t *testing.T, name string, subject *ocispec.Descriptor) mirrored {
	t.Helper()
	m := mirrored{config: []byte(`{"architecture":"arm64","os":"linux","name":"` + name + `"}`), layer: []byte("layer of " + name)}
	v := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(m.config), Size: int64(len(m.config))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(m.layer), Size: int64(len(m.layer))}},
		Subject:   subject,
	}
	v.SchemaVersion = 2
	var err error
	if m.body, err = json.Marshal(v); err != nil {
		t.Fatal(err)
	}
	m.desc = ocispec.Descriptor{MediaType: v.MediaType, Digest: digest.FromBytes(m.body), Size: int64(len(m.body))}
	return m
}

func mirrorOnly(repo string) string {
	if strings.HasPrefix(repo, "hub/") {
		return "repository " + repo + " belongs to mirror hub/"
	}
	return ""
}

func wantCode(t *testing.T, what string, err error, code errcode.Code) {
	t.Helper()
	if !errcode.Is(err, code) {
		t.Errorf("%s: %v, want %s", what, err, code.Name)
	}
}

// TestFiller checks what a pull-through mirror writes: a manifest before its blobs,
// blobs verified before they are readable, and nothing a client may write there.
func TestFiller(t *testing.T) {
	t.Parallel()
	for _, dep := range deployments(t) {
		t.Run(dep.name, func(t *testing.T) {
			r := dep.open(t)
			r.opts.ReadOnly = mirrorOnly
			ctx := t.Context()
			g := &graph{t: t, r: r, ctx: ctx}
			f := r.Filler()
			const repo = "hub/library/app"
			img := mirroredImage(t, "app", nil)
			sbom := mirroredImage(t, "sbom", &img.desc)

			if err := f.PutManifest(ctx, repo, "v1", img.desc.MediaType, img.body, img.desc.Digest); err != nil {
				t.Fatalf("PutManifest without its blobs: %v", err)
			}
			if err := f.PutManifest(ctx, repo, "", sbom.desc.MediaType, sbom.body, sbom.desc.Digest); err != nil {
				t.Fatalf("PutManifest of a referrer: %v", err)
			}
			if m, err := r.GetManifest(ctx, repo, "v1"); err != nil || m.Digest != img.desc.Digest {
				t.Fatalf("GetManifest(v1) = %v, %v; want %s", m, err, img.desc.Digest)
			}
			if refs, err := r.Referrers(ctx, repo, img.desc.Digest.String(), "", "", 0); err != nil || len(refs.Index.Manifests) != 1 {
				t.Errorf("Referrers = %v, %v; want the SBOM", refs, err)
			}
			layer := digest.FromBytes(img.layer)
			if g.readable(repo, layer) {
				t.Errorf("a blob the mirror has not fetched is readable")
			}
			wrong := img.body[:len(img.body)-1]
			wantCode(t, "PutManifest of content that does not match the digest",
				f.PutManifest(ctx, repo, "v2", img.desc.MediaType, wrong, img.desc.Digest), errcode.DigestInvalid)

			// Blobs: the content must be what the digest says, or nothing is kept.
			err := f.PutBlob(ctx, repo, layer, int64(len(img.layer)), bytes.NewReader(bytes.ToUpper(img.layer)))
			wantCode(t, "PutBlob of the wrong content", err, errcode.DigestInvalid)
			if g.readable(repo, layer) || g.stored(layer) {
				t.Errorf("a blob of the wrong content was kept")
			}
			wantCode(t, "PutBlob of the wrong size", f.PutBlob(ctx, repo, layer, int64(len(img.layer))+1, bytes.NewReader(img.layer)), errcode.SizeInvalid)
			if err := f.PutBlob(ctx, repo, layer, int64(len(img.layer)), bytes.NewReader(img.layer)); err != nil {
				t.Fatalf("PutBlob: %v", err)
			}
			if !g.readable(repo, layer) {
				t.Errorf("a blob the mirror stored is not readable")
			}

			// A blob another repository brought is linked, not fetched again.
			config := g.blob("team/app", string(img.config)).Digest
			if ok, err := f.LinkBlob(ctx, repo, config); err != nil || !ok || !g.readable(repo, config) {
				t.Errorf("LinkBlob of a stored blob = %v, %v; readable %v", ok, err, g.readable(repo, config))
			}
			if ok, err := f.LinkBlob(ctx, repo, digest.FromString("nowhere")); err != nil || ok {
				t.Errorf("LinkBlob of a blob the store lacks = %v, %v; want false", ok, err)
			}

			// Mounting from the mirror gives what it holds, and nothing it has not fetched.
			sbomLayer := digest.FromBytes(sbom.layer)
			if _, ok, err := r.MountBlob(ctx, "team/app", repo, layer.String()); err != nil || !ok {
				t.Errorf("MountBlob of a fetched blob = %v, %v", ok, err)
			}
			if _, ok, err := r.MountBlob(ctx, "team/app", repo, sbomLayer.String()); err != nil || ok {
				t.Errorf("MountBlob of a blob the mirror has not fetched = %v, %v; want false", ok, err)
			}

			// Clients read, and change nothing.
			push := mirroredImage(t, "pushed", nil)
			_, err = r.PutManifest(ctx, repo, "v9", push.desc.MediaType, push.body, nil)
			wantCode(t, "a client's PutManifest", err, errcode.Denied)
			if err == nil || !strings.Contains(err.Error(), "mirror hub/") {
				t.Errorf("the refusal %v does not name the mirror", err)
			}
			_, err = r.StartUpload(ctx, repo, "client")
			wantCode(t, "StartUpload", err, errcode.Denied)
			_, err = r.PutBlob(ctx, repo, layer.String(), Chunk{Body: bytes.NewReader(img.layer), Start: -1, Length: int64(len(img.layer))})
			wantCode(t, "PutBlob", err, errcode.Denied)
			_, _, err = r.MountBlob(ctx, repo, "team/app", config.String())
			wantCode(t, "MountBlob into the mirror", err, errcode.Denied)
			wantCode(t, "DeleteBlob", r.DeleteBlob(ctx, repo, layer.String()), errcode.Denied)
			for _, ref := range []string{"v1", img.desc.Digest.String()} {
				_, err = r.DeleteManifest(ctx, repo, ref)
				wantCode(t, "DeleteManifest "+ref, err, errcode.Denied)
				_, err = r.DeletePlan(ctx, repo, ref)
				wantCode(t, "DeletePlan "+ref, err, errcode.Denied)
			}
			if _, err := r.Tags(ctx, repo, "", 10); err != nil {
				t.Errorf("Tags: %v", err)
			}

			// Garbage collection: the tag keeps the image and its SBOM; the blobs the
			// mirror never fetched are nothing to it.
			later(r, 2*time.Hour)
			if _, err := r.GC(ctx, GCOptions{Delay: time.Hour}); err != nil {
				t.Fatalf("GC: %v", err)
			}
			if !g.exists(repo, img.desc.Digest) || !g.exists(repo, sbom.desc.Digest) || !g.readable(repo, layer) {
				t.Fatalf("GC removed a tagged mirrored image, or its referrer or blob")
			}
			// Retention lets the tag go; the graph goes with it, blobs and all.
			keep, err := pattern.Repositories([]string{"hub/**"})
			if err != nil {
				t.Fatal(err)
			}
			r.opts.Retention = []RetentionPolicy{{Name: "cache", Repositories: keep, DeleteTagsOlderThan: time.Minute}}
			rep, err := r.GC(ctx, GCOptions{Delay: time.Hour})
			if err != nil {
				t.Fatalf("GC with retention: %v", err)
			}
			if g.exists(repo, img.desc.Digest) || g.exists(repo, sbom.desc.Digest) || g.readable(repo, layer) {
				t.Errorf("retention kept a mirrored image whose tag went: %+v", rep)
			}
			// team/app's links, which no manifest of it names, went too
			if g.stored(layer) {
				t.Errorf("GC kept the bytes of a blob no repository reads")
			}
		})
	}
}

// TestFillerKeepsLockedTags checks that a tag an immutable rule or a lock holds does
// not move when upstream moves it.
func TestFillerKeepsLockedTags(t *testing.T) {
	t.Parallel()
	r := openEmbedded(t)
	r.opts.ReadOnly = mirrorOnly
	repos, _ := pattern.Repositories([]string{"hub/**"})
	tags, _ := pattern.Tags([]string{"v*"})
	r.opts.ImmutableTags = []ImmutableTags{{Repositories: repos, Tags: tags}}
	ctx := t.Context()
	f := r.Filler()
	one, two := mirroredImage(t, "one", nil), mirroredImage(t, "two", nil)
	if err := f.PutManifest(ctx, "hub/app", "v1", one.desc.MediaType, one.body, one.desc.Digest); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "moving an immutable tag", f.PutManifest(ctx, "hub/app", "v1", two.desc.MediaType, two.body, two.desc.Digest), errcode.Denied)
	if err := f.PutManifest(ctx, "hub/app", "latest", two.desc.MediaType, two.body, two.desc.Digest); err != nil {
		t.Errorf("a tag no rule holds: %v", err)
	}
	if m, err := r.GetManifest(ctx, "hub/app", "v1"); err != nil || m.Digest != one.desc.Digest {
		t.Errorf("v1 = %v, %v; want %s", m, err, one.desc.Digest)
	}
}

// TestFillerPublishes checks that what a mirror fetches reaches the outbox as a push
// does: a manifest with its tag, then the tag moved to another.
func TestFillerPublishes(t *testing.T) {
	t.Parallel()
	r := openEmbedded(t)
	r.opts.ReadOnly = mirrorOnly
	r.opts.Events = true
	ctx := t.Context()
	f := r.Filler()
	const repo = "hub/library/app"
	v1, v2 := mirroredImage(t, "v1", nil), mirroredImage(t, "v2", nil)
	for _, m := range []mirrored{v1, v2} {
		if err := f.PutManifest(ctx, repo, "latest", m.desc.MediaType, m.body, m.desc.Digest); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.meta.SequenceEvents(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := r.meta.Events(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range got {
		if e.Repo != repo {
			t.Errorf("event %s of repository %s, want %s", e.Type, e.Repo, repo)
		}
		types = append(types, e.Type)
	}
	want := []string{events.ManifestPushed, events.ManifestPushed, events.TagMoved}
	if strings.Join(types, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v", types, want)
	}
}

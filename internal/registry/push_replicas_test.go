package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/blobstore/s3"
	"github.com/graft-registry/graft/internal/metastore/postgres"
	"github.com/graft-registry/graft/internal/scaletest"
)

// TestPushesToDistinctTagsDoNotConflict: replicas on one PostgreSQL database pushing
// manifests to distinct tags of one repository at once never conflict, so never retry:
// the push transaction reads nothing another push writes.
func TestPushesToDistinctTagsDoNotConflict(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := scaletest.NewS3(t)
	url := scaletest.NewPostgres(t)
	blobs, err := s3.Open(ctx, s3.Options{Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket,
		Prefix: c.Prefix, ForcePathStyle: true, AccessKey: c.AccessKey, SecretKey: c.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	const replicas, clients, pushes = 3, 8, 25
	var (
		regs   []*Registry
		stores []*postgres.Store
	)
	for range replicas {
		meta, err := postgres.Open(ctx, postgres.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { meta.Close() })
		stores = append(stores, meta)
		regs = append(regs, New(blobs, meta, Options{Cascade: true, Events: true}))
	}

	const repo = "push/distinct"
	config, layer := []byte(`{"architecture":"amd64","os":"linux"}`), []byte("layer")
	for _, b := range [][]byte{config, layer} {
		chunk := Chunk{Body: bytes.NewReader(b), Start: -1, Length: int64(len(b))}
		if _, err := regs[0].PutBlob(ctx, repo, digest.FromBytes(b).String(), chunk); err != nil {
			t.Fatal(err)
		}
	}
	var before int64
	for _, s := range stores {
		before += s.TxStats().Retries
	}

	var wg sync.WaitGroup
	for w := range replicas * clients {
		r := regs[w%replicas]
		wg.Go(func() {
			for i := range pushes {
				if err := pushDistinct(ctx, r, repo, fmt.Sprintf("w%d-%d", w, i), config, layer); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	var retries int64
	for _, s := range stores {
		retries += s.TxStats().Retries
	}
	if retries -= before; retries != 0 {
		t.Errorf("%d pushes to distinct tags retried %d times after a conflict, want 0", replicas*clients*pushes, retries)
	}
	tags, err := regs[1].Tags(ctx, repo, "", MaxPage)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags.Items) != replicas*clients*pushes {
		t.Errorf("%d tags after %d pushes", len(tags.Items), replicas*clients*pushes)
	}
}

// pushDistinct pushes an image manifest of its own, naming config and layer, as tag.
func pushDistinct(ctx context.Context, r *Registry, repo, tag string, config, layer []byte) error {
	v := ocispec.Manifest{
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers:      []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}},
		Annotations: map[string]string{"tag": tag},
	}
	v.SchemaVersion = 2
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := r.PutManifest(ctx, repo, tag, ocispec.MediaTypeImageManifest, b, nil); err != nil {
		return fmt.Errorf("push %s: %w", tag, err)
	}
	return nil
}

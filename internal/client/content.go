package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
)

// maxManifestSize bounds what graft reads as a manifest, as registries bound what
// they store (graft refuses manifests over 4 MiB).
const maxManifestSize = 4 << 20

// FetchManifest returns the manifest ref names in target, byte for byte as stored.
func FetchManifest(ctx context.Context, target oras.ReadOnlyTarget, ref Reference) (ocispec.Descriptor, []byte, error) {
	if ref.Reference == "" {
		return ocispec.Descriptor{}, nil, &UsageError{Err: fmt.Errorf("%s: name a tag or digest", ref)}
	}
	desc, b, err := oras.FetchBytes(ctx, target, ref.Reference, oras.FetchBytesOptions{MaxBytes: maxManifestSize})
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetching manifest %s: %w", ref, err)
	}
	return desc, b, nil
}

// FetchConfig returns the config blob of the image manifest ref names in target.
func FetchConfig(ctx context.Context, target oras.ReadOnlyTarget, ref Reference) (ocispec.Descriptor, []byte, error) {
	desc, b, err := FetchManifest(ctx, target, ref)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest && desc.MediaType != mediaTypeDockerManifest {
		return ocispec.Descriptor{}, nil, &UsageError{Err: fmt.Errorf("%s is a %s, which has no config: name an image manifest", ref, desc.MediaType)}
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("decoding manifest %s: %w", ref, err)
	}
	config, err := content.FetchAll(ctx, target, m.Config)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetching the config %s of %s: %w", m.Config.Digest, ref, err)
	}
	return m.Config, config, nil
}

// PutManifest stores body as a manifest of mediaType in target: tagged when ref names
// a tag, by digest otherwise (a digest in ref must be body's). mediaType defaults to the
// mediaType field of body.
func PutManifest(ctx context.Context, target oras.Target, ref Reference, mediaType string, body []byte) (ocispec.Descriptor, error) {
	if mediaType == "" {
		var m struct {
			MediaType string `json:"mediaType"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return ocispec.Descriptor{}, &UsageError{Err: fmt.Errorf("the manifest is not JSON: %w", err)}
		}
		if m.MediaType == "" {
			return ocispec.Descriptor{}, &UsageError{Err: errors.New("the manifest has no mediaType field: pass --media-type")}
		}
		mediaType = m.MediaType
	}
	desc := content.NewDescriptorFromBytes(mediaType, body)
	if d, ok := ref.Digest(); ok && d != desc.Digest {
		return ocispec.Descriptor{}, &UsageError{Err: fmt.Errorf("the manifest's digest is %s, not %s", desc.Digest, d)}
	}
	var err error
	if tag := ref.Tag(); tag != "" {
		desc, err = oras.TagBytes(ctx, target, mediaType, body, tag)
	} else {
		desc, err = oras.PushBytes(ctx, target, mediaType, body)
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("putting manifest %s: %w", ref, err)
	}
	return desc, nil
}

// DeleteManifest deletes the one manifest desc. On graft the registry's cascade may
// remove its referrers too; the result says.
func DeleteManifest(ctx context.Context, target Target, desc ocispec.Descriptor) (DeleteResult, error) {
	if repo, ok := target.(*remote.Repository); ok {
		return deleteOnServer(ctx, repo, &Node{Descriptor: desc})
	}
	return deleteBottomUp(ctx, target, &Node{Descriptor: desc}, DeleteResult{Deleted: []digest.Digest{}, Locked: []digest.Digest{}})
}

// blobDigest returns the digest ref names, which a blob verb needs.
func blobDigest(ref Reference) (digest.Digest, error) {
	d, ok := ref.Digest()
	if !ok {
		return "", &UsageError{Err: fmt.Errorf("%s: name a blob by digest: REPOSITORY@sha256:…", ref)}
	}
	return d, nil
}

// FetchBlob opens the blob ref names in repo.
func FetchBlob(ctx context.Context, repo *remote.Repository, ref Reference) (ocispec.Descriptor, io.ReadCloser, error) {
	d, err := blobDigest(ref)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	desc, rc, err := repo.Blobs().FetchReference(ctx, d.String())
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetching blob %s: %w", ref, err)
	}
	// the registry's word on the digest is not enough: verify what arrives
	return desc, verifyingReader{rc, content.NewVerifyReader(rc, desc)}, nil
}

type verifyingReader struct {
	io.Closer
	vr *content.VerifyReader
}

func (r verifyingReader) Read(p []byte) (int, error) {
	n, err := r.vr.Read(p)
	if err == io.EOF {
		if verr := r.vr.Verify(); verr != nil {
			return n, verr
		}
	}
	return n, err
}

// PushBlob uploads the file at path to repo and returns its descriptor.
func PushBlob(ctx context.Context, repo *remote.Repository, path, mediaType string) (ocispec.Descriptor, error) {
	f, err := os.Open(path)
	if err != nil {
		return ocispec.Descriptor{}, &UsageError{Err: err}
	}
	defer f.Close()
	d, err := digest.FromReader(f)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("reading %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("reading %s: %w", path, err)
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: fi.Size()}
	if exists, err := repo.Blobs().Exists(ctx, desc); err == nil && exists {
		return desc, nil
	}
	if err := repo.Blobs().Push(ctx, desc, f); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pushing blob %s: %w", path, err)
	}
	return desc, nil
}

// DeleteBlob deletes the blob ref names in repo.
func DeleteBlob(ctx context.Context, repo *remote.Repository, ref Reference) error {
	d, err := blobDigest(ref)
	if err != nil {
		return err
	}
	desc, err := repo.Blobs().Resolve(ctx, d.String())
	if err != nil {
		return fmt.Errorf("resolving blob %s: %w", ref, err)
	}
	if err := repo.Blobs().Delete(ctx, desc); err != nil {
		return fmt.Errorf("deleting blob %s: %w", ref, err)
	}
	return nil
}

// Tags lists the tags of the repository or layout target.
func Tags(ctx context.Context, target Target) ([]string, error) {
	lister, ok := target.(registry.TagLister)
	if !ok {
		return nil, fmt.Errorf("%T cannot list tags", target)
	}
	tags, err := registry.Tags(ctx, lister)
	if err != nil {
		return nil, fmt.Errorf("listing tags: %w", err)
	}
	if tags == nil {
		tags = []string{}
	}
	return tags, nil
}

// AddTags tags the manifest ref names with tags.
func AddTags(ctx context.Context, target Target, ref Reference, tags []string) (ocispec.Descriptor, error) {
	if ref.Reference == "" {
		return ocispec.Descriptor{}, &UsageError{Err: fmt.Errorf("%s: name a tag or digest to tag", ref)}
	}
	desc, err := oras.TagN(ctx, target, ref.Reference, tags, oras.DefaultTagNOptions)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("tagging %s: %w", ref, err)
	}
	return desc, nil
}

// Repositories lists the repositories of reg.
func Repositories(ctx context.Context, reg *remote.Registry) ([]string, error) {
	repos, err := registry.Repositories(ctx, reg)
	if err != nil {
		return nil, fmt.Errorf("listing the repositories of %s: %w", reg.Reference.Registry, err)
	}
	if repos == nil {
		repos = []string{}
	}
	return repos, nil
}

package client

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/file"
)

// Media types graft picks when the user names none, the ones oras picks, so that an
// artifact pushed by either looks the same.
const (
	DefaultLayerMediaType   = ocispec.MediaTypeImageLayer
	DefaultArtifactType     = "application/vnd.unknown.artifact.v1"
	DefaultConfigMediaType  = ocispec.MediaTypeImageConfig
	sourceDateEpochVariable = "SOURCE_DATE_EPOCH"
)

// A File is a file pushed as a blob, with the media type it is pushed as.
type File struct {
	Path      string
	MediaType string
}

// ParseFile parses FILE[:MEDIATYPE]. The part after the last colon is a media type
// only if it looks like one (type/subtype), so file names with colons still work.
func ParseFile(arg, defaultMediaType string) File {
	if i := strings.LastIndex(arg, ":"); i > 0 && strings.Contains(arg[i+1:], "/") {
		return File{Path: arg[:i], MediaType: arg[i+1:]}
	}
	return File{Path: arg, MediaType: defaultMediaType}
}

// PushOptions describe the manifest Push packs.
type PushOptions struct {
	// ArtifactType is the manifest's artifactType; DefaultArtifactType when empty and
	// there is no Config.
	ArtifactType string
	// Annotations are the manifest's annotations. Without org.opencontainers.image.created,
	// it is set to SOURCE_DATE_EPOCH, if set, or to now.
	Annotations map[string]string
	// Config is the config blob; the empty config ({}) when nil, as artifacts have.
	Config *File
	// Subject makes the manifest a referrer of that manifest.
	Subject *ocispec.Descriptor
	// Tag tags the manifest in the destination; untagged when empty.
	Tag string
	// Progress draws bars for the uploads; nil draws none.
	Progress *Progress
}

// Push packs files as the layers of an OCI image manifest (image-spec v1.1: with an
// artifactType and the empty config unless a config is given) and pushes the manifest
// and its blobs to dst. Each layer carries its file's base name as
// org.opencontainers.image.title, which Pull names the file by.
func Push(ctx context.Context, dst oras.Target, files []File, opts PushOptions) (ocispec.Descriptor, error) {
	store, err := file.New("")
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("preparing the files: %w", err)
	}
	defer store.Close()

	layers := make([]ocispec.Descriptor, 0, len(files))
	for _, f := range files {
		desc, err := store.Add(ctx, filepath.Base(f.Path), f.MediaType, f.Path)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("adding %s: %w", f.Path, err)
		}
		layers = append(layers, desc)
	}
	pack := oras.PackManifestOptions{Layers: layers, Subject: opts.Subject}
	if opts.Config != nil {
		desc, err := store.Add(ctx, filepath.Base(opts.Config.Path), opts.Config.MediaType, opts.Config.Path)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("adding config %s: %w", opts.Config.Path, err)
		}
		// a config is not a file to unpack: no title
		desc.Annotations = nil
		pack.ConfigDescriptor = &desc
	}
	artifactType := opts.ArtifactType
	if artifactType == "" && opts.Config == nil {
		artifactType = DefaultArtifactType
	}
	if pack.ManifestAnnotations, err = withCreated(opts.Annotations); err != nil {
		return ocispec.Descriptor{}, err
	}
	root, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, artifactType, pack)
	if err != nil {
		return ocispec.Descriptor{}, &UsageError{Err: fmt.Errorf("packing the manifest: %w", err)}
	}
	if err := copyRoot(ctx, withProgress(store, opts.Progress), dst, root, opts.Tag, oras.DefaultCopyGraphOptions); err != nil {
		return ocispec.Descriptor{}, err
	}
	return root, nil
}

// withCreated returns annotations with org.opencontainers.image.created set: to
// SOURCE_DATE_EPOCH when that is set, so that the same inputs push the same digests,
// as reproducible builds expect; PackManifest sets the current time otherwise.
func withCreated(annotations map[string]string) (map[string]string, error) {
	epoch := os.Getenv(sourceDateEpochVariable)
	if _, ok := annotations[ocispec.AnnotationCreated]; ok || epoch == "" {
		return annotations, nil
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("%s=%q is not a number of seconds: %w", sourceDateEpochVariable, epoch, err)}
	}
	out := maps.Clone(annotations)
	if out == nil {
		out = map[string]string{}
	}
	out[ocispec.AnnotationCreated] = time.Unix(sec, 0).UTC().Format(time.RFC3339)
	return out, nil
}

// copyRoot copies the graph of root from src to dst and tags it tag, unless tag is
// empty. A tagged root is pushed once, by tag, as oras.Copy does.
func copyRoot(ctx context.Context, src oras.ReadOnlyGraphTarget, dst oras.Target, root ocispec.Descriptor, tag string, opts oras.CopyGraphOptions) error {
	if tag == "" {
		if err := oras.CopyGraph(ctx, src, dst, root, opts); err != nil {
			return fmt.Errorf("pushing %s: %w", root.Digest, err)
		}
		return nil
	}
	if _, err := oras.Copy(ctx, pinned{src, root}, root.Digest.String(), dst, tag, oras.CopyOptions{CopyGraphOptions: opts}); err != nil {
		return fmt.Errorf("pushing %s as %s: %w", root.Digest, tag, err)
	}
	return nil
}

// pinned resolves the digest of root to root itself, so that oras.Copy can start from
// a descriptor a store cannot resolve by digest (a file store knows only tags).
type pinned struct {
	oras.ReadOnlyGraphTarget
	root ocispec.Descriptor
}

func (p pinned) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	if ref == p.root.Digest.String() {
		return p.root, nil
	}
	return p.ReadOnlyGraphTarget.Resolve(ctx, ref)
}

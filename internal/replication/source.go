package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"

	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/registry"
)

// source is a repository of this registry as oras-go reads a graph: straight from the
// registry service, so that replication needs no credentials of its own registry and
// pays no HTTP round trip on its side. It is read-only.
type source struct {
	reg  *registry.Registry
	repo string
}

// Fetch opens a blob or a manifest: the registry serves a manifest through the blob
// path too.
func (s source) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	b, err := s.reg.OpenBlob(ctx, s.repo, desc.Digest.String())
	if err != nil {
		return nil, notFound(err, desc.Digest.String())
	}
	if b.URL == "" {
		return b.Blob, nil
	}
	// blobs in an S3 store that redirects reads: read the presigned URL
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s from the store: %w", desc.Digest, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("reading blob %s from the store: %s", desc.Digest, resp.Status)
	}
	return resp.Body, nil
}

func (s source) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	_, _, err := s.reg.StatBlob(ctx, s.repo, desc.Digest.String())
	if err != nil {
		if err := notFound(err, desc.Digest.String()); errors.Is(err, errdef.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Resolve resolves a tag or a digest to its manifest's descriptor.
func (s source) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	m, err := s.reg.GetManifest(ctx, s.repo, ref)
	if err != nil {
		return ocispec.Descriptor{}, notFound(err, ref)
	}
	return ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size}, nil
}

// Predecessors are the referrers of node: the tag-schema artifacts are found by
// resolving their tags, as for any registry.
func (s source) Predecessors(ctx context.Context, node ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	after := ""
	for {
		page, err := s.reg.Referrers(ctx, s.repo, node.Digest.String(), "", after, 0)
		if err != nil {
			return nil, notFound(err, node.Digest.String())
		}
		out = append(out, page.Index.Manifests...)
		if page.Next == "" {
			return out, nil
		}
		after = page.Next.String()
	}
}

// notFound makes the registry's answer that ref is not there the error oras-go takes
// for it.
func notFound(err error, ref string) error {
	var e *errcode.Error
	if errors.As(err, &e) {
		switch e.Code {
		case errcode.BlobUnknown, errcode.ManifestUnknown, errcode.NameUnknown:
			return fmt.Errorf("%s: %w: %w", ref, errdef.ErrNotFound, err)
		}
	}
	return err
}

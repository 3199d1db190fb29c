// Package manifest parses and validates the manifests a registry accepts: OCI image
// manifests and indexes, Docker schema 2 manifests and manifest lists, and the two
// artifact manifests early clients push. It reduces each to what the registry indexes:
// the blobs and child manifests it references, its subject, and its artifact type.
package manifest

import (
	"bytes"
	_ "crypto/sha512" // digests of sha384 and sha512 in descriptors
	"encoding/json"
	"errors"
	"fmt"
	"mime"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types that no spec package defines.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	// MediaTypeArtifact is the artifact manifest of the OCI 1.1 release candidates.
	MediaTypeArtifact = "application/vnd.oci.artifact.manifest.v1+json"
	// MediaTypeORASArtifact is the ORAS artifact manifest.
	MediaTypeORASArtifact = "application/vnd.cncf.oras.artifact.manifest.v1+json"

	mediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// MaxSize is the largest manifest the registry accepts, as the spec suggests.
const MaxSize = 4 << 20

// Kind is the shape of a manifest.
type Kind int

const (
	// Image manifests have a config and layers (OCI image manifest, Docker schema 2).
	Image Kind = iota + 1
	// Index manifests list other manifests (OCI image index, Docker manifest list).
	Index
	// Artifact manifests have blobs and no config (the two artifact manifests).
	Artifact
)

var kinds = map[string]Kind{
	ocispec.MediaTypeImageManifest: Image,
	MediaTypeDockerManifest:        Image,
	ocispec.MediaTypeImageIndex:    Index,
	MediaTypeDockerManifestList:    Index,
	MediaTypeArtifact:              Artifact,
	MediaTypeORASArtifact:          Artifact,
}

// Manifest is what the registry needs to know of a parsed manifest.
type Manifest struct {
	MediaType string
	Kind      Kind
	// ArtifactType is the manifest's artifactType, else its config's media type (the
	// value the referrers API lists).
	ArtifactType string
	// Config is the config descriptor of an image manifest.
	Config *ocispec.Descriptor
	// Blobs are the descriptors whose content must exist in the repository: the config
	// and layers of an image, the blobs of an artifact. Non-distributable layers are
	// left out: clients never push them.
	Blobs []ocispec.Descriptor
	// Manifests are the children of an index.
	Manifests []ocispec.Descriptor
	// Subject is the manifest this one refers to, if any.
	Subject     *ocispec.Descriptor
	Annotations map[string]string
}

// Error is a manifest that fails to parse or validate.
type Error struct{ Reason string }

func (e *Error) Error() string { return "invalid manifest: " + e.Reason }

func invalid(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// wire is every field any of the accepted manifests has; decoding once into it and
// checking which fields are present by kind keeps the parser one pass.
type wire struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Blobs         []ocispec.Descriptor `json:"blobs"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
	FSLayers      []json.RawMessage    `json:"fsLayers"` // Docker schema 1: refused
}

// Parse parses body, sent with the Content-Type contentType, and validates it.
//
// The media type is the Content-Type, or the body's mediaType field when the
// Content-Type is empty or generic JSON; when both are given they must agree.
func Parse(contentType string, body []byte) (*Manifest, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return nil, invalid("not a JSON manifest: %s", jsonReason(err))
	}
	// dec.More is no test for this: it stops at a stray '}' or ']'.
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, invalid("trailing data after the JSON object")
	}
	if w.FSLayers != nil {
		return nil, invalid("Docker schema 1 manifests are not supported")
	}

	mediaType, err := resolveMediaType(contentType, &w)
	if err != nil {
		return nil, err
	}
	m := &Manifest{MediaType: mediaType, Kind: kinds[mediaType], Annotations: w.Annotations, ArtifactType: w.ArtifactType}

	switch m.Kind {
	case Image:
		if err := schemaVersion2(w.SchemaVersion); err != nil {
			return nil, err
		}
		if w.Config == nil {
			return nil, invalid("an image manifest needs a config")
		}
		if w.Manifests != nil || w.Blobs != nil {
			return nil, invalid("an image manifest has no manifests or blobs")
		}
		if err := checkDescriptor("config", w.Config); err != nil {
			return nil, err
		}
		m.Config = w.Config
		m.Blobs = append(m.Blobs, *w.Config)
		for i := range w.Layers {
			if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), &w.Layers[i]); err != nil {
				return nil, err
			}
			if !nonDistributable(w.Layers[i].MediaType) {
				m.Blobs = append(m.Blobs, w.Layers[i])
			}
		}
		if m.ArtifactType == "" {
			m.ArtifactType = w.Config.MediaType
		}
	case Index:
		if err := schemaVersion2(w.SchemaVersion); err != nil {
			return nil, err
		}
		if w.Config != nil || w.Layers != nil || w.Blobs != nil {
			return nil, invalid("an index has no config, layers or blobs")
		}
		for i := range w.Manifests {
			if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), &w.Manifests[i]); err != nil {
				return nil, err
			}
		}
		m.Manifests = w.Manifests
	case Artifact:
		if w.Config != nil || w.Layers != nil || w.Manifests != nil {
			return nil, invalid("an artifact manifest has no config, layers or manifests")
		}
		if w.ArtifactType == "" && mediaType == MediaTypeORASArtifact {
			return nil, invalid("an ORAS artifact manifest needs an artifactType")
		}
		for i := range w.Blobs {
			if err := checkDescriptor(fmt.Sprintf("blobs[%d]", i), &w.Blobs[i]); err != nil {
				return nil, err
			}
		}
		m.Blobs = w.Blobs
	}
	if w.Subject != nil {
		if err := checkDescriptor("subject", w.Subject); err != nil {
			return nil, err
		}
		m.Subject = w.Subject
	}
	return m, nil
}

func resolveMediaType(contentType string, w *wire) (string, error) {
	header := ""
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return "", invalid("malformed Content-Type")
		}
		if mt != "application/json" && mt != "application/octet-stream" {
			header = mt
		}
	}
	switch {
	case header != "" && w.MediaType != "" && header != w.MediaType:
		return "", invalid("Content-Type %q differs from the manifest's mediaType %q", truncate(header), truncate(w.MediaType))
	case header != "":
	case w.MediaType != "":
		header = w.MediaType
	case w.Manifests != nil:
		header = ocispec.MediaTypeImageIndex
	case w.Config != nil:
		header = ocispec.MediaTypeImageManifest
	default:
		return "", invalid("no media type: set Content-Type or the manifest's mediaType")
	}
	if _, ok := kinds[header]; !ok {
		return "", invalid("unsupported manifest media type %q", truncate(header))
	}
	return header, nil
}

func schemaVersion2(v *int) error {
	if v == nil || *v != 2 {
		return invalid("schemaVersion must be 2")
	}
	return nil
}

// checkDescriptor checks what the image spec requires of a descriptor: a media type, a
// valid digest, a size, and embedded data that matches both.
func checkDescriptor(field string, d *ocispec.Descriptor) error {
	if d.MediaType == "" {
		return invalid("%s: mediaType is required", field)
	}
	if err := d.Digest.Validate(); err != nil {
		return invalid("%s: digest %q is invalid", field, truncate(string(d.Digest)))
	}
	if d.Size < 0 {
		return invalid("%s: size is negative", field)
	}
	if d.Data != nil {
		if int64(len(d.Data)) != d.Size {
			return invalid("%s: data is %d bytes, size says %d", field, len(d.Data), d.Size)
		}
		if d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
			return invalid("%s: data does not match the digest", field)
		}
	}
	return nil
}

func nonDistributable(mediaType string) bool {
	switch mediaType {
	// deprecated in image-spec v1.1, still found in images pushed before it
	case ocispec.MediaTypeImageLayerNonDistributable,
		ocispec.MediaTypeImageLayerNonDistributableGzip,
		ocispec.MediaTypeImageLayerNonDistributableZstd,
		mediaTypeDockerForeignLayer:
		return true
	}
	return false
}

// jsonReason describes a decoding error without echoing the input.
func jsonReason(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	default:
		return "malformed JSON"
	}
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

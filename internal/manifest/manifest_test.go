package manifest_test

import (
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/manifest"
)

const (
	dockerConfig     = "application/vnd.docker.container.image.v1+json"
	dockerLayer      = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerForeign    = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	sbomType         = "application/spdx+json"
	signatureType    = "application/vnd.dev.cosign.artifact.sig.v1+json"
	orasArtifactType = "application/vnd.example.sbom"
)

// obj is a JSON object under construction; building manifests as maps lets a case
// add, drop or corrupt any field without a struct that would normalize it away.
type obj = map[string]any

func blob(mediaType, content string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromString(content), Size: int64(len(content))}
}

var (
	config   = blob(ocispec.MediaTypeImageConfig, `{"architecture":"amd64","os":"linux"}`)
	layer1   = blob(ocispec.MediaTypeImageLayerGzip, "layer one")
	layer2   = blob(ocispec.MediaTypeImageLayerZstd, "layer two")
	empty    = blob(ocispec.MediaTypeEmptyJSON, "{}")
	sbom     = blob(sbomType, `{"spdxVersion":"SPDX-2.3"}`)
	child1   = blob(ocispec.MediaTypeImageManifest, "manifest amd64")
	child2   = blob(ocispec.MediaTypeImageManifest, "manifest arm64")
	subject  = blob(ocispec.MediaTypeImageManifest, "the subject")
	dConfig  = blob(dockerConfig, `{"architecture":"arm64"}`)
	dLayer   = blob(dockerLayer, "docker layer")
	dForeign = blob(dockerForeign, "windows base layer")
	dChild   = blob(manifest.MediaTypeDockerManifest, "docker manifest amd64")
)

// image, index and artifact build a fresh object each time, so that a case can change
// its own without touching another's.
func image(mediaType string) obj {
	o := obj{"schemaVersion": 2, "config": config, "layers": []ocispec.Descriptor{layer1, layer2}}
	if mediaType != "" {
		o["mediaType"] = mediaType
	}
	return o
}

func index(mediaType string) obj {
	o := obj{"schemaVersion": 2, "manifests": []ocispec.Descriptor{child1, child2}}
	if mediaType != "" {
		o["mediaType"] = mediaType
	}
	return o
}

func artifact(mediaType string) obj {
	return obj{"mediaType": mediaType, "artifactType": orasArtifactType, "blobs": []ocispec.Descriptor{sbom}}
}

// with returns a copy of o with each key set to the value after it; a nil value
// removes the key.
func with(o obj, kv ...any) obj {
	c := make(obj, len(o)+len(kv)/2)
	for k, v := range o {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha512Blob(mediaType, content string) ocispec.Descriptor {
	sum := sha512.Sum512([]byte(content))
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.NewDigestFromBytes(digest.SHA512, sum[:]), Size: int64(len(content))}
}

func sha384Blob(mediaType, content string) ocispec.Descriptor {
	sum := sha512.Sum384([]byte(content))
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.NewDigestFromBytes(digest.SHA384, sum[:]), Size: int64(len(content))}
}

func withData(d ocispec.Descriptor, data string) ocispec.Descriptor {
	d.Data = []byte(data)
	return d
}

func TestParse(t *testing.T) {
	sub := subject
	cfg := config
	dcfg := dConfig
	emptyCfg := empty
	cfg512 := sha512Blob(ocispec.MediaTypeImageConfig, "sha512 config")
	layer384 := sha384Blob(ocispec.MediaTypeImageLayer, "sha384 layer")
	ndLayers := []ocispec.Descriptor{
		layer1,
		blob(ocispec.MediaTypeImageLayerNonDistributable, "nd"),
		blob(ocispec.MediaTypeImageLayerNonDistributableGzip, "nd gzip"),
		blob(ocispec.MediaTypeImageLayerNonDistributableZstd, "nd zstd"),
		dForeign,
		layer2,
	}
	inlineConfig := withData(blob(ocispec.MediaTypeImageConfig, `{"os":"linux"}`), `{"os":"linux"}`)
	annotations := map[string]string{ocispec.AnnotationCreated: "2024-01-02T03:04:05Z", "com.example.key": "value"}

	tests := []struct {
		name        string
		contentType string
		body        any
		want        manifest.Manifest
	}{
		{
			name:        "OCI image",
			contentType: ocispec.MediaTypeImageManifest,
			body:        image(ocispec.MediaTypeImageManifest),
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageManifest, Kind: manifest.Image,
				ArtifactType: ocispec.MediaTypeImageConfig, Config: &cfg,
				Blobs: []ocispec.Descriptor{config, layer1, layer2},
			},
		},
		{
			name:        "OCI image with artifactType, subject and annotations",
			contentType: ocispec.MediaTypeImageManifest,
			body: obj{
				"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest,
				"artifactType": sbomType, "config": empty, "layers": []ocispec.Descriptor{sbom},
				"subject": subject, "annotations": annotations,
			},
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageManifest, Kind: manifest.Image,
				ArtifactType: sbomType, Config: &emptyCfg, Blobs: []ocispec.Descriptor{empty, sbom},
				Subject: &sub, Annotations: annotations,
			},
		},
		{
			// An artifact packed as an image without artifactType: the referrers API
			// lists the config's media type.
			name:        "OCI image artifact typed by its config",
			contentType: ocispec.MediaTypeImageManifest,
			body: obj{
				"schemaVersion": 2, "config": blob(signatureType, "{}"),
				"layers":  []ocispec.Descriptor{blob("application/vnd.dev.cosign.simplesigning.v1+json", "sig")},
				"subject": subject,
			},
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageManifest, Kind: manifest.Image, ArtifactType: signatureType,
				Config:  ptr(blob(signatureType, "{}")),
				Blobs:   []ocispec.Descriptor{blob(signatureType, "{}"), blob("application/vnd.dev.cosign.simplesigning.v1+json", "sig")},
				Subject: &sub,
			},
		},
		{
			name:        "OCI image without layers",
			contentType: ocispec.MediaTypeImageManifest,
			body:        with(image(""), "layers", []ocispec.Descriptor{}),
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageManifest, Kind: manifest.Image,
				ArtifactType: ocispec.MediaTypeImageConfig, Config: &cfg, Blobs: []ocispec.Descriptor{config},
			},
		},
		{
			name:        "OCI index",
			contentType: ocispec.MediaTypeImageIndex,
			body:        index(ocispec.MediaTypeImageIndex),
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageIndex, Kind: manifest.Index,
				Manifests: []ocispec.Descriptor{child1, child2},
			},
		},
		{
			name:        "OCI index with artifactType and subject",
			contentType: ocispec.MediaTypeImageIndex,
			body:        with(index(ocispec.MediaTypeImageIndex), "artifactType", sbomType, "subject", subject),
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageIndex, Kind: manifest.Index, ArtifactType: sbomType,
				Manifests: []ocispec.Descriptor{child1, child2}, Subject: &sub,
			},
		},
		{
			name:        "OCI index without manifests",
			contentType: ocispec.MediaTypeImageIndex,
			body:        obj{"schemaVersion": 2, "manifests": []ocispec.Descriptor{}},
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageIndex, Kind: manifest.Index, Manifests: []ocispec.Descriptor{},
			},
		},
		{
			name:        "Docker schema 2 manifest",
			contentType: manifest.MediaTypeDockerManifest,
			body: obj{
				"schemaVersion": 2, "mediaType": manifest.MediaTypeDockerManifest,
				"config": dConfig, "layers": []ocispec.Descriptor{dLayer},
			},
			want: manifest.Manifest{
				MediaType: manifest.MediaTypeDockerManifest, Kind: manifest.Image, ArtifactType: dockerConfig,
				Config: &dcfg, Blobs: []ocispec.Descriptor{dConfig, dLayer},
			},
		},
		{
			name:        "Docker manifest list",
			contentType: manifest.MediaTypeDockerManifestList,
			body: obj{
				"schemaVersion": 2, "mediaType": manifest.MediaTypeDockerManifestList,
				"manifests": []ocispec.Descriptor{dChild},
			},
			want: manifest.Manifest{
				MediaType: manifest.MediaTypeDockerManifestList, Kind: manifest.Index,
				Manifests: []ocispec.Descriptor{dChild},
			},
		},
		{
			name:        "OCI artifact manifest",
			contentType: manifest.MediaTypeArtifact,
			body:        with(artifact(manifest.MediaTypeArtifact), "artifactType", sbomType, "subject", subject),
			want: manifest.Manifest{
				MediaType: manifest.MediaTypeArtifact, Kind: manifest.Artifact, ArtifactType: sbomType,
				Blobs: []ocispec.Descriptor{sbom}, Subject: &sub,
			},
		},
		{
			// The artifact manifest of the release candidates had an optional artifactType.
			name:        "OCI artifact manifest without artifactType or blobs",
			contentType: manifest.MediaTypeArtifact,
			body:        obj{"mediaType": manifest.MediaTypeArtifact, "subject": subject},
			want:        manifest.Manifest{MediaType: manifest.MediaTypeArtifact, Kind: manifest.Artifact, Subject: &sub},
		},
		{
			name:        "ORAS artifact manifest",
			contentType: manifest.MediaTypeORASArtifact,
			body:        with(artifact(manifest.MediaTypeORASArtifact), "subject", subject),
			want: manifest.Manifest{
				MediaType: manifest.MediaTypeORASArtifact, Kind: manifest.Artifact, ArtifactType: orasArtifactType,
				Blobs: []ocispec.Descriptor{sbom}, Subject: &sub,
			},
		},
		{
			name:        "non-distributable layers are not blobs",
			contentType: ocispec.MediaTypeImageManifest,
			body:        with(image(""), "layers", ndLayers),
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageManifest, Kind: manifest.Image,
				ArtifactType: ocispec.MediaTypeImageConfig, Config: &cfg,
				Blobs: []ocispec.Descriptor{config, layer1, layer2},
			},
		},
		{
			name:        "Docker foreign layers are not blobs",
			contentType: manifest.MediaTypeDockerManifest,
			body:        obj{"schemaVersion": 2, "config": dConfig, "layers": []ocispec.Descriptor{dForeign, dLayer}},
			want: manifest.Manifest{
				MediaType: manifest.MediaTypeDockerManifest, Kind: manifest.Image, ArtifactType: dockerConfig,
				Config: &dcfg, Blobs: []ocispec.Descriptor{dConfig, dLayer},
			},
		},
		{
			name:        "sha512 and sha384 digests",
			contentType: ocispec.MediaTypeImageManifest,
			body:        obj{"schemaVersion": 2, "config": cfg512, "layers": []ocispec.Descriptor{layer384}},
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageManifest, Kind: manifest.Image,
				ArtifactType: ocispec.MediaTypeImageConfig, Config: &cfg512,
				Blobs: []ocispec.Descriptor{cfg512, layer384},
			},
		},
		{
			name:        "embedded data matching size and digest",
			contentType: ocispec.MediaTypeImageManifest,
			body:        obj{"schemaVersion": 2, "config": inlineConfig, "layers": []ocispec.Descriptor{}},
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageManifest, Kind: manifest.Image,
				ArtifactType: ocispec.MediaTypeImageConfig, Config: &inlineConfig,
				Blobs: []ocispec.Descriptor{inlineConfig},
			},
		},

		// Media type resolution.
		{
			name:        "generic JSON Content-Type uses the body's mediaType",
			contentType: "application/json",
			body:        index(ocispec.MediaTypeImageIndex),
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageIndex, Kind: manifest.Index, Manifests: []ocispec.Descriptor{child1, child2},
			},
		},
		{
			name:        "generic JSON Content-Type with parameters",
			contentType: "application/json; charset=utf-8",
			body:        artifact(manifest.MediaTypeORASArtifact),
			want: manifest.Manifest{
				MediaType: manifest.MediaTypeORASArtifact, Kind: manifest.Artifact,
				ArtifactType: orasArtifactType, Blobs: []ocispec.Descriptor{sbom},
			},
		},
		{
			name:        "octet-stream Content-Type uses the body's mediaType",
			contentType: "application/octet-stream",
			body:        image(manifest.MediaTypeDockerManifest),
			want: manifest.Manifest{
				MediaType: manifest.MediaTypeDockerManifest, Kind: manifest.Image,
				ArtifactType: ocispec.MediaTypeImageConfig, Config: &cfg,
				Blobs: []ocispec.Descriptor{config, layer1, layer2},
			},
		},
		{
			name:        "no Content-Type uses the body's mediaType",
			contentType: "",
			body:        index(manifest.MediaTypeDockerManifestList),
			want: manifest.Manifest{
				MediaType: manifest.MediaTypeDockerManifestList, Kind: manifest.Index,
				Manifests: []ocispec.Descriptor{child1, child2},
			},
		},
		{
			name:        "Content-Type alone",
			contentType: manifest.MediaTypeDockerManifest,
			body:        image(""),
			want: manifest.Manifest{
				MediaType: manifest.MediaTypeDockerManifest, Kind: manifest.Image,
				ArtifactType: ocispec.MediaTypeImageConfig, Config: &cfg,
				Blobs: []ocispec.Descriptor{config, layer1, layer2},
			},
		},
		{
			name:        "Content-Type with parameters agreeing with the body",
			contentType: ocispec.MediaTypeImageManifest + "; charset=utf-8",
			body:        image(ocispec.MediaTypeImageManifest),
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageManifest, Kind: manifest.Image,
				ArtifactType: ocispec.MediaTypeImageConfig, Config: &cfg,
				Blobs: []ocispec.Descriptor{config, layer1, layer2},
			},
		},
		{
			name:        "neither: a config makes an OCI image",
			contentType: "",
			body:        image(""),
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageManifest, Kind: manifest.Image,
				ArtifactType: ocispec.MediaTypeImageConfig, Config: &cfg,
				Blobs: []ocispec.Descriptor{config, layer1, layer2},
			},
		},
		{
			name:        "neither: manifests make an OCI index",
			contentType: "application/json",
			body:        index(""),
			want: manifest.Manifest{
				MediaType: ocispec.MediaTypeImageIndex, Kind: manifest.Index, Manifests: []ocispec.Descriptor{child1, child2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := manifest.Parse(tt.contentType, encode(t, tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse =\n%s\nwant\n%s", dump(got), dump(&tt.want))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func dump(m *manifest.Manifest) string {
	b, _ := json.MarshalIndent(m, "", "  ")
	return string(b)
}

func TestParseRejects(t *testing.T) {
	img := encode(t, image(ocispec.MediaTypeImageManifest))
	badDigest := func(d digest.Digest) ocispec.Descriptor {
		b := layer1
		b.Digest = d
		return b
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		reason      string // a part of the reason that shows which rule refused it
	}{
		{"empty body", "", "", "not a JSON manifest"},
		{"not JSON", ocispec.MediaTypeImageManifest, "schemaVersion: 2", "not a JSON manifest"},
		{"truncated JSON", ocispec.MediaTypeImageManifest, string(img[:len(img)-1]), "not a JSON manifest"},
		{"array", ocispec.MediaTypeImageManifest, "[]", "not a JSON manifest"},
		{"string", ocispec.MediaTypeImageManifest, `"manifest"`, "not a JSON manifest"},
		{"null", "", "null", "no media type"},
		{"trailing object", "", string(img) + "{}", "trailing data"},
		{"trailing garbage", "", string(img) + " x", "trailing data"},
		{"trailing number", "", string(img) + "\n1", "trailing data"},
		{"trailing closing brace", "", string(img) + "}", "trailing data"},
		{"trailing closing bracket", "", string(img) + "]", "trailing data"},

		{"OCI image without schemaVersion", "", enc(t, with(image(ocispec.MediaTypeImageManifest), "schemaVersion", nil)), "schemaVersion"},
		{"OCI image schemaVersion 1", "", enc(t, with(image(ocispec.MediaTypeImageManifest), "schemaVersion", 1)), "schemaVersion"},
		{"OCI image schemaVersion 3", "", enc(t, with(image(ocispec.MediaTypeImageManifest), "schemaVersion", 3)), "schemaVersion"},
		{"OCI image schemaVersion string", "", enc(t, with(image(ocispec.MediaTypeImageManifest), "schemaVersion", "2")), "wrong type"},
		{"OCI index without schemaVersion", "", enc(t, with(index(ocispec.MediaTypeImageIndex), "schemaVersion", nil)), "schemaVersion"},
		{"Docker manifest schemaVersion 1", "", enc(t, with(image(manifest.MediaTypeDockerManifest), "schemaVersion", 1)), "schemaVersion"},
		{"Docker list schemaVersion 0", "", enc(t, with(index(manifest.MediaTypeDockerManifestList), "schemaVersion", 0)), "schemaVersion"},

		{"OCI image without config", ocispec.MediaTypeImageManifest, enc(t, with(image(""), "config", nil)), "config"},
		{"Docker manifest without config", manifest.MediaTypeDockerManifest, enc(t, with(image(""), "config", nil)), "config"},
		{"config without mediaType", "", enc(t, with(image(""), "config", obj{"digest": config.Digest, "size": config.Size})), "config: mediaType"},
		{"config without digest", "", enc(t, with(image(""), "config", obj{"mediaType": config.MediaType, "size": config.Size})), "config: digest"},
		{"layer with empty mediaType", "", enc(t, with(image(""), "layers", []ocispec.Descriptor{layer1, blob("", "x")})), "layers[1]: mediaType"},
		{"layer with short digest", "", enc(t, with(image(""), "layers", []ocispec.Descriptor{badDigest("sha256:abc")})), "layers[0]: digest"},
		{"layer with uppercase digest", "", enc(t, with(image(""), "layers", []ocispec.Descriptor{badDigest(digest.Digest(strings.ToUpper(string(layer1.Digest))))})), "layers[0]: digest"},
		{"layer with uppercase hex", "", enc(t, with(image(""), "layers", []ocispec.Descriptor{badDigest(digest.Digest("sha256:" + strings.ToUpper(layer1.Digest.Encoded())))})), "layers[0]: digest"},
		{"layer with unknown algorithm", "", enc(t, with(image(""), "layers", []ocispec.Descriptor{badDigest(digest.Digest("md5:" + strings.Repeat("a", 32)))})), "layers[0]: digest"},
		{"layer with digest without algorithm", "", enc(t, with(image(""), "layers", []ocispec.Descriptor{badDigest(digest.Digest(layer1.Digest.Encoded()))})), "layers[0]: digest"},
		{"layer with sha512 length under sha256", "", enc(t, with(image(""), "layers", []ocispec.Descriptor{badDigest(digest.Digest("sha256:" + strings.Repeat("a", 128)))})), "layers[0]: digest"},
		{"layer with negative size", "", enc(t, with(image(""), "layers", []ocispec.Descriptor{{MediaType: layer1.MediaType, Digest: layer1.Digest, Size: -1}})), "layers[0]: size"},
		{"layer with fractional size", "", enc(t, with(image(""), "layers", []obj{{"mediaType": layer1.MediaType, "digest": layer1.Digest, "size": 1.5}})), "wrong type"},
		{"data longer than size", "", enc(t, with(image(""), "config", withData(blob(ocispec.MediaTypeImageConfig, "{}"), "{} "))), "config: data"},
		{"data shorter than size", "", enc(t, with(image(""), "config", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("{}"), Size: 3, Data: []byte("{}")})), "config: data"},
		{"data not matching digest", "", enc(t, with(image(""), "config", withData(blob(ocispec.MediaTypeImageConfig, "{}"), "[]"))), "config: data"},
		{"data not base64", "", enc(t, with(image(""), "config", obj{"mediaType": ocispec.MediaTypeImageConfig, "digest": config.Digest, "size": 2, "data": "!!"})), "not a JSON manifest"},
		{"index entry with invalid digest", "", enc(t, with(index(ocispec.MediaTypeImageIndex), "manifests", []ocispec.Descriptor{child1, {MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:", Size: 1}})), "manifests[1]: digest"},
		{"index entry with negative size", "", enc(t, with(index(ocispec.MediaTypeImageIndex), "manifests", []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: child1.Digest, Size: -5}})), "manifests[0]: size"},
		{"artifact blob without mediaType", "", enc(t, with(artifact(manifest.MediaTypeArtifact), "blobs", []ocispec.Descriptor{blob("", "x")})), "blobs[0]: mediaType"},
		{"subject with invalid digest", "", enc(t, with(image(""), "subject", badDigest("sha256:zz"))), "subject: digest"},
		{"subject with negative size", "", enc(t, with(index(""), "subject", ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: -1})), "subject: size"},

		{"Docker schema 1", "", `{"schemaVersion":1,"name":"library/busybox","tag":"latest","architecture":"amd64","fsLayers":[{"blobSum":"` + string(layer1.Digest) + `"}],"history":[]}`, "schema 1"},
		{"Docker schema 1 signed", "application/vnd.docker.distribution.manifest.v1+prettyjws", `{"schemaVersion":1,"fsLayers":[],"signatures":[]}`, "schema 1"},
		{"Docker schema 1 media type", "application/vnd.docker.distribution.manifest.v1+json", `{"schemaVersion":1,"name":"a","tag":"b"}`, "unsupported"},
		{"unknown Content-Type", ocispec.MediaTypeImageLayer, enc(t, image("")), "unsupported"},
		{"unknown body mediaType", "", enc(t, image(ocispec.MediaTypeImageConfig)), "unsupported"},
		{"unknown mediaType with generic Content-Type", "application/json", enc(t, image("text/plain")), "unsupported"},
		{"descriptor media type", ocispec.MediaTypeDescriptor, enc(t, obj{"digest": layer1.Digest, "size": layer1.Size}), "unsupported"},
		{"Content-Type differs from mediaType", ocispec.MediaTypeImageIndex, string(img), "differs"},
		{"Docker Content-Type, OCI mediaType", manifest.MediaTypeDockerManifest, string(img), "differs"},
		{"malformed Content-Type", "application/vnd.oci.image.manifest.v1+json;;", string(img), "Content-Type"},
		{"no media type and no structure", "", enc(t, artifact("")), "no media type"},
		{"ORAS artifact without artifactType", manifest.MediaTypeORASArtifact, enc(t, with(artifact(manifest.MediaTypeORASArtifact), "artifactType", nil)), "artifactType"},

		{"image with manifests", "", enc(t, with(image(ocispec.MediaTypeImageManifest), "manifests", []ocispec.Descriptor{child1})), "image manifest has no"},
		{"image with blobs", "", enc(t, with(image(ocispec.MediaTypeImageManifest), "blobs", []ocispec.Descriptor{sbom})), "image manifest has no"},
		{"Docker manifest with manifests", "", enc(t, with(image(manifest.MediaTypeDockerManifest), "manifests", []ocispec.Descriptor{})), "image manifest has no"},
		{"index with layers", "", enc(t, with(index(ocispec.MediaTypeImageIndex), "layers", []ocispec.Descriptor{layer1})), "index has no"},
		{"index with config", "", enc(t, with(index(ocispec.MediaTypeImageIndex), "config", config)), "index has no"},
		{"index with blobs", "", enc(t, with(index(ocispec.MediaTypeImageIndex), "blobs", []ocispec.Descriptor{})), "index has no"},
		{"Docker list with config", "", enc(t, with(index(manifest.MediaTypeDockerManifestList), "config", config)), "index has no"},
		{"config and manifests without mediaType", "", enc(t, with(index(""), "config", config)), "index has no"},
		{"artifact with config", "", enc(t, with(artifact(manifest.MediaTypeArtifact), "config", config)), "artifact manifest has no"},
		{"artifact with layers", "", enc(t, with(artifact(manifest.MediaTypeORASArtifact), "layers", []ocispec.Descriptor{layer1})), "artifact manifest has no"},
		{"artifact with manifests", "", enc(t, with(artifact(manifest.MediaTypeArtifact), "manifests", []ocispec.Descriptor{child1})), "artifact manifest has no"},

		{"layers of the wrong JSON type", "", enc(t, with(image(""), "layers", obj{})), "wrong type"},
		{"size of the wrong JSON type", "", enc(t, with(image(""), "config", obj{"mediaType": config.MediaType, "digest": config.Digest, "size": "2"})), "wrong type"},
		{"annotations of the wrong JSON type", "", enc(t, with(image(""), "annotations", obj{"a": 1})), "wrong type"},
		{"mediaType of the wrong JSON type", "", enc(t, with(image(""), "mediaType", 2)), "wrong type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.Parse(tt.contentType, []byte(tt.body))
			if err == nil {
				t.Fatalf("Parse accepted %.200q as %s (kind %d)", tt.body, m.MediaType, m.Kind)
			}
			var merr *manifest.Error
			if !errors.As(err, &merr) {
				t.Fatalf("Parse error %v (%T) is not a *manifest.Error", err, err)
			}
			if !strings.Contains(merr.Reason, tt.reason) {
				t.Errorf("Parse error %q does not mention %q", err, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), "invalid manifest: ") {
				t.Errorf("Error() = %q, want the invalid manifest prefix", err)
			}
		})
	}
}

func enc(t testing.TB, v any) string {
	t.Helper()
	return string(encode(t, v))
}

// TestParseErrorIsBounded checks that no error text echoes an attacker-sized part of
// the request: reasons end up in responses and logs.
func TestParseErrorIsBounded(t *testing.T) {
	const maxError = 512
	long := strings.Repeat("x", 64<<10)
	longType := "application/vnd." + long + "+json"
	tests := []struct {
		name        string
		contentType string
		body        string
	}{
		{"digest", "", enc(t, with(image(""), "config", obj{"mediaType": config.MediaType, "digest": "sha256:" + long, "size": 1}))},
		{"unknown algorithm", "", enc(t, with(image(""), "config", obj{"mediaType": config.MediaType, "digest": long + ":abc", "size": 1}))},
		{"syntax error after a long string", "", `{"annotations":{"a":"` + long + `"},}`},
		{"unterminated string", "", `{"mediaType":"` + long},
		{"wrong type of a long key", "", `{"annotations":{"` + long + `":1}}`},
		{"unknown body mediaType", "", enc(t, with(image(""), "mediaType", longType))},
		{"unknown Content-Type", longType, enc(t, image(""))},
		{"Content-Type differs from a long mediaType", ocispec.MediaTypeImageManifest, enc(t, with(image(""), "mediaType", longType))},
		{"long Content-Type differs from mediaType", longType, enc(t, image(ocispec.MediaTypeImageManifest))},
		{"malformed long Content-Type", long + ";;", enc(t, image(""))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := manifest.Parse(tt.contentType, []byte(tt.body))
			if err == nil {
				t.Fatal("Parse accepted the manifest")
			}
			if n := len(err.Error()); n > maxError {
				t.Errorf("error text is %d bytes, want at most %d: %.200q…", n, maxError, err)
			}
		})
	}
}

// TestParseOnlyOneJSONValue checks what the trailing-data rule promises for every
// kind of trailing byte: what Parse accepts is exactly one JSON value.
func TestParseOnlyOneJSONValue(t *testing.T) {
	img := encode(t, image(ocispec.MediaTypeImageManifest))
	for _, trailer := range []string{"", " ", "\n\t ", "}", "]", " }", "\n]", "}}", ",", ":", "{}", "[]", "0", "x", `""`} {
		body := append(slices.Clone(img), trailer...)
		_, err := manifest.Parse("", body)
		if valid := json.Valid(body); (err == nil) != valid {
			t.Errorf("Parse(manifest+%q): err = %v, but the body is valid JSON: %t", trailer, err, valid)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	err := &manifest.Error{Reason: "because"}
	if got, want := err.Error(), "invalid manifest: because"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("put: %w", err)
	var merr *manifest.Error
	if !errors.As(wrapped, &merr) || merr != err {
		t.Errorf("errors.As(%v) did not find the *manifest.Error", wrapped)
	}
}

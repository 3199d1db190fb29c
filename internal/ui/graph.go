package ui

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/graft-registry/graft/internal/artifact"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/manifest"
	"github.com/graft-registry/graft/internal/registry"
)

// The graph of a manifest as the picture shows it: the manifest, the manifests an
// index lists, and every artifact attached below them, recursively. An artifact is
// attached by its subject (the referrers API) or by the referrers tag schema (a tag
// sha256-<hex>.sig, or an index tagged sha256-<hex>); the picture draws the two kinds
// of edge apart.

// edgeKind is how two manifests of a graph are joined.
type edgeKind int

const (
	// edgeChild joins an index to a manifest it lists.
	edgeChild edgeKind = iota
	// edgeSubject joins a manifest to a referrer that names it as its subject.
	edgeSubject
	// edgeTag joins a manifest to an artifact the referrers tag schema attaches to it.
	edgeTag
)

// graphNode is a manifest of a graph, or a group of referrers drawn as one.
type graphNode struct {
	Digest       digest.Digest
	Kind         artifact.Kind
	MediaType    string
	ArtifactType string
	// Type is what the picture says the manifest is, beside its kind.
	Type string
	Tags []string
	// Platform is what an index says of a manifest it lists, else what its config says.
	Platform *ocispec.Platform
	// Missing is set for a manifest an index lists that is not in the repository.
	Missing bool
	// Count, when above 0, makes the node a group: Count referrers of Subject with
	// the artifact type ArtifactType (AtLeast: that many, and more not read).
	Count   int
	AtLeast bool
	Subject digest.Digest
}

// graphEdge joins node From (above) to node To (below).
type graphEdge struct {
	From, To int
	Kind     edgeKind
}

// graph is a manifest's graph, its root first.
type graph struct {
	Nodes []*graphNode
	Edges []graphEdge
	// Cut is set when there was more to show than a picture holds.
	Cut bool
}

// graphLimits bound what a picture shows, and so what building it costs.
type graphLimits struct {
	// Nodes bounds the nodes of the picture.
	Nodes int
	// Group is the most referrers of one artifact type under one manifest drawn one by
	// one; more are drawn as a group.
	Group int
	// Referrers bounds the referrers of one manifest that are read.
	Referrers int
}

var pictureLimits = graphLimits{Nodes: 80, Group: 5, Referrers: 2 * registry.ReferrersPage}

// loaded is a manifest with what its pages need.
type loaded struct {
	Info *registry.ManifestInfo
	// Parsed is nil when the manifest is locked for reads.
	Parsed *manifest.Manifest
	Kind   artifact.Kind
}

// load reads manifest ref (a tag or digest) of repo.
func (h *Handler) load(ctx context.Context, repo, ref string) (*loaded, error) {
	info, err := h.reg.ManifestInfo(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	m := &loaded{Info: info}
	c, err := h.reg.GetManifest(ctx, repo, info.Digest.String())
	switch {
	case err == nil:
		if m.Parsed, err = manifest.Parse(c.MediaType, c.Bytes); err != nil {
			return nil, err
		}
	case !isCode(err, errcode.Denied):
		return nil, err
	}
	m.Kind = h.kindOf(ctx, &info.Manifest, m.Parsed)
	return m, nil
}

// typeName is the media type that says best what m is: an image's or an index's own,
// an artifact's artifactType; for an artifact pushed as an image (cosign's tag-schema
// signatures) the type of its first layer, the image config's type saying nothing.
func (m *loaded) typeName() string {
	i := m.Info
	switch {
	case m.Kind == artifact.Image || m.Kind == artifact.Index:
		return i.MediaType
	case i.ArtifactType != "" && i.ArtifactType != i.ConfigMediaType:
		return i.ArtifactType
	case m.Parsed != nil && (i.ConfigMediaType == ocispec.MediaTypeImageConfig || i.ConfigMediaType == manifest.MediaTypeDockerConfig) && len(m.Parsed.Blobs) > 1:
		return m.Parsed.Blobs[1].MediaType
	case i.ArtifactType != "":
		return i.ArtifactType
	}
	return i.MediaType
}

func isCode(err error, c errcode.Code) bool {
	var e *errcode.Error
	return errors.As(err, &e) && e.Code == c
}

func notFound(err error) bool {
	return isCode(err, errcode.ManifestUnknown) || isCode(err, errcode.NameUnknown)
}

// graphBuilder walks a graph breadth first.
type graphBuilder struct {
	h    *Handler
	ctx  context.Context
	repo string
	lim  graphLimits
	g    *graph
	// at is each manifest's node; parsed the content of those still to expand, nil
	// for one locked for reads.
	at     map[digest.Digest]int
	joined map[[2]int]bool
	parsed map[int]*manifest.Manifest
	queue  []int
}

// buildGraph returns the graph under root, a manifest of repo.
func (h *Handler) buildGraph(ctx context.Context, repo string, root *loaded, lim graphLimits) (*graph, error) {
	b := &graphBuilder{h: h, ctx: ctx, repo: repo, lim: lim, g: &graph{},
		at: map[digest.Digest]int{}, joined: map[[2]int]bool{}, parsed: map[int]*manifest.Manifest{}}
	b.add(root, nil)
	for len(b.queue) > 0 {
		i := b.queue[0]
		b.queue = b.queue[1:]
		if err := b.expand(i); err != nil {
			return nil, err
		}
	}
	return b.g, nil
}

// full reports whether the picture holds no more nodes.
func (b *graphBuilder) full() bool {
	if len(b.g.Nodes) >= b.lim.Nodes {
		b.g.Cut = true
		return true
	}
	return false
}

// add adds manifest m as a node to expand, described by desc when an index lists it.
func (b *graphBuilder) add(m *loaded, desc *ocispec.Descriptor) int {
	n := &graphNode{Digest: m.Info.Digest, Kind: m.Kind, MediaType: m.Info.MediaType, ArtifactType: m.Info.ArtifactType,
		Type: m.typeName(), Tags: m.Info.Tags, Platform: m.Info.Platform}
	if desc != nil && desc.Platform != nil {
		n.Platform = desc.Platform
	}
	i := b.node(n)
	b.at[n.Digest] = i
	b.parsed[i] = m.Parsed // nil when locked for reads: its referrers still show
	b.queue = append(b.queue, i)
	return i
}

func (b *graphBuilder) node(n *graphNode) int {
	b.g.Nodes = append(b.g.Nodes, n)
	return len(b.g.Nodes) - 1
}

func (b *graphBuilder) join(from, to int, k edgeKind) {
	if b.joined[[2]int{from, to}] || b.joined[[2]int{to, from}] {
		return
	}
	b.joined[[2]int{from, to}] = true
	b.g.Edges = append(b.g.Edges, graphEdge{From: from, To: to, Kind: k})
}

// attach joins manifest d below node from, adding it unless it is there already.
// desc is what an index says of it.
func (b *graphBuilder) attach(from int, d digest.Digest, k edgeKind, desc *ocispec.Descriptor) error {
	if i, ok := b.at[d]; ok {
		b.join(from, i, k)
		return nil
	}
	if b.full() {
		return nil
	}
	m, err := b.h.load(b.ctx, b.repo, d.String())
	if notFound(err) && desc != nil {
		i := b.node(&graphNode{Digest: d, MediaType: desc.MediaType, ArtifactType: desc.ArtifactType,
			Type: desc.MediaType, Platform: desc.Platform, Missing: true, Kind: artifact.Artifact})
		b.at[d] = i
		b.join(from, i, k)
		return nil
	}
	if notFound(err) {
		return nil // deleted since it was listed
	}
	if err != nil {
		return err
	}
	b.join(from, b.add(m, desc), k)
	return nil
}

// expand adds what hangs under node i: the manifests it lists, its referrers (grouped
// by artifact type where there are many), and its tag-schema artifacts.
func (b *graphBuilder) expand(i int) error {
	n, parsed := b.g.Nodes[i], b.parsed[i]
	delete(b.parsed, i)
	if parsed != nil {
		for k := range parsed.Manifests {
			c := &parsed.Manifests[k]
			if err := b.attach(i, c.Digest, edgeChild, c); err != nil {
				return err
			}
		}
	}
	groups, cut, err := b.referrers(n.Digest)
	if err != nil {
		return err
	}
	for _, grp := range groups {
		room := b.lim.Nodes - len(b.g.Nodes)
		if len(grp) <= b.lim.Group && len(grp) <= room || len(grp) == 1 {
			for _, d := range grp {
				if err := b.attach(i, d.Digest, edgeSubject, nil); err != nil {
					return err
				}
			}
			continue
		}
		if b.full() {
			break
		}
		first, err := b.h.load(b.ctx, b.repo, grp[0].Digest.String())
		if err != nil && !notFound(err) {
			return err
		}
		g := &graphNode{Digest: grp[0].Digest, Kind: artifact.Artifact, MediaType: grp[0].MediaType,
			ArtifactType: grp[0].ArtifactType, Type: grp[0].ArtifactType, Count: len(grp), AtLeast: cut, Subject: n.Digest}
		if first != nil {
			g.Kind = first.Kind
		}
		b.join(i, b.node(g), edgeSubject)
	}
	tagged, err := b.h.tagArtifacts(b.ctx, b.repo, n.Digest)
	if err != nil {
		return err
	}
	for _, d := range tagged {
		if err := b.attach(i, d, edgeTag, nil); err != nil {
			return err
		}
	}
	return nil
}

// referrers returns the referrers of d by artifact type, in the order the types first
// appear, and whether there were more than were read.
func (b *graphBuilder) referrers(d digest.Digest) (groups [][]ocispec.Descriptor, cut bool, err error) {
	at := map[string]int{}
	read, after := 0, ""
	for {
		page, err := b.h.reg.Referrers(b.ctx, b.repo, d.String(), "", after, registry.ReferrersPage)
		if err != nil {
			return nil, false, err
		}
		for _, r := range page.Index.Manifests {
			k, ok := at[r.ArtifactType]
			if !ok {
				k = len(groups)
				at[r.ArtifactType] = k
				groups = append(groups, nil)
			}
			groups[k] = append(groups[k], r)
		}
		read += len(page.Index.Manifests)
		if page.Next == "" {
			return groups, false, nil
		}
		if read >= b.lim.Referrers {
			return groups, true, nil
		}
		after = page.Next.String()
	}
}

// tagArtifacts returns the manifests of repo that the referrers tag schema attaches
// to d: those tagged <algorithm>-<hex>.<suffix> (cosign's .sig, .att and .sbom), its
// fallback index tagged <algorithm>-<hex> and what that lists, as the registry records
// them.
func (h *Handler) tagArtifacts(ctx context.Context, repo string, d digest.Digest) ([]digest.Digest, error) {
	var out []digest.Digest
	var after digest.Digest
	for {
		page, more, err := h.reg.TagArtifacts(ctx, repo, d, after, registry.ReferrersPage)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if !more || len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1]
	}
}

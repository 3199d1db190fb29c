package client

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Output formats of discover.
const (
	FormatTree  = "tree"
	FormatTable = "table"
	FormatJSON  = "json"
)

// WriteGraph writes the graph under root, found in repo (a repository or layout
// reference), in format.
func WriteGraph(w io.Writer, format string, repo Reference, root *Node) error {
	switch format {
	case FormatTree, "":
		return WriteTree(w, repo, root)
	case FormatTable:
		return WriteTable(w, root)
	case FormatJSON:
		return WriteGraphJSON(w, repo, root)
	}
	return &UsageError{Err: fmt.Errorf("unknown output format %q: want %s, %s or %s", format, FormatTree, FormatTable, FormatJSON)}
}

// WriteTree writes the graph as oras discover -o tree does: the root, then under each
// manifest its artifacts grouped by artifact type, each type with the digests of its
// artifacts. An artifact known by a tag of the tag schema says which:
// "sha256:… (tag sha256-<hex>.sig)", or "(tag sha256-<hex> index)" for one listed in
// a fallback index that the referrers API does not list.
func WriteTree(w io.Writer, repo Reference, root *Node) error {
	var b strings.Builder
	b.WriteString(repo.WithReference(root.Digest.String()).String())
	b.WriteByte('\n')
	writeBranches(&b, "", treeOf(root))
	_, err := io.WriteString(w, b.String())
	return err
}

type branch struct {
	label    string
	children []branch
}

// treeOf groups n's referrers by artifact type; Discover sorted them by type, so each
// group is a run.
func treeOf(n *Node) []branch {
	var out []branch
	for _, r := range n.Referrers {
		artifactType := artifactTypeOf(r.Descriptor)
		if len(out) == 0 || out[len(out)-1].label != artifactType {
			out = append(out, branch{label: artifactType})
		}
		group := &out[len(out)-1]
		label := r.Digest.String()
		if note := tagNote(r); note != "" {
			label += " (" + note + ")"
		}
		group.children = append(group.children, branch{label: label, children: treeOf(r)})
	}
	return out
}

// tagNote names the tag-schema tag n is known by, or "".
func tagNote(n *Node) string {
	switch {
	case n.Tag != "":
		return "tag " + n.Tag
	case n.IndexTag != "":
		return "tag " + n.IndexTag + " index"
	}
	return ""
}

// edgeNote says how n was found: "subject", "tag sha256-<hex>.sig", ….
func edgeNote(n *Node) string {
	note := tagNote(n)
	switch {
	case n.Edge == EdgeTag && note != "":
		return note
	case note != "":
		return string(n.Edge) + ", " + note
	}
	return string(n.Edge)
}

func writeBranches(b *strings.Builder, prefix string, branches []branch) {
	for i, br := range branches {
		connector, indent := "├── ", "│   "
		if i == len(branches)-1 {
			connector, indent = "└── ", "    "
		}
		b.WriteString(prefix + connector + br.label + "\n")
		writeBranches(b, prefix+indent, br.children)
	}
}

// artifactTypeOf is what a referrer is: its artifact type, which the referrers API
// fills from the config's media type when the manifest has none.
func artifactTypeOf(d ocispec.Descriptor) string {
	if d.ArtifactType != "" {
		return d.ArtifactType
	}
	return d.MediaType
}

// WriteTable writes one row per artifact, depth first; an artifact type is indented by
// two spaces per level below the root. The last column says how the artifact was
// found: as a referrer (subject) or by a tag of the tag schema (tag sha256-<hex>.sig).
func WriteTable(w io.Writer, root *Node) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ARTIFACT TYPE\tDIGEST\tSIZE\tEDGE")
	var rows func(n *Node, level int)
	rows = func(n *Node, level int) {
		for _, r := range n.Referrers {
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\n", strings.Repeat("  ", level), artifactTypeOf(r.Descriptor), r.Digest, strconv.FormatInt(r.Size, 10), edgeNote(r))
			rows(r, level+1)
		}
	}
	rows(root, 0)
	return tw.Flush()
}

// graphJSON is the JSON form of a node, the one oras discover --format json prints, so
// that scripts written for either read both, and how the node was found: "edge" is
// "subject" for a referrer, "tag" for an artifact known by a tag of the tag schema,
// which "tag" names (the artifact's own) or "indexTag" (a fallback index's).
type graphJSON struct {
	Reference string `json:"reference"`
	ocispec.Descriptor
	Edge      Edge        `json:"edge,omitempty"`
	Tag       string      `json:"tag,omitempty"`
	IndexTag  string      `json:"indexTag,omitempty"`
	Referrers []graphJSON `json:"referrers"`
}

func toJSON(repo Reference, n *Node) graphJSON {
	out := graphJSON{
		Reference:  repo.WithReference(n.Digest.String()).String(),
		Descriptor: n.Descriptor,
		Edge:       n.Edge,
		Tag:        n.Tag,
		IndexTag:   n.IndexTag,
		Referrers:  []graphJSON{},
	}
	for _, r := range n.Referrers {
		out.Referrers = append(out.Referrers, toJSON(repo, r))
	}
	return out
}

// WriteGraphJSON writes the graph as indented JSON.
func WriteGraphJSON(w io.Writer, repo Reference, root *Node) error {
	return WriteJSON(w, toJSON(repo, root))
}

// WriteJSON writes v as indented JSON and a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

package ui

import (
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/graft-registry/graft/internal/artifact"
)

// picture is a graph laid out for its SVG template.
type picture struct {
	Width, Height float64
	Nodes         []pictureNode
	Edges         []pictureEdge
	// Kinds are the edge kinds present, for the legend.
	Subject, Child, Tag bool
}

type pictureNode struct {
	X, Y, W, H float64
	// BoxW and BoxH are the extent of the node's box inside its bounds, which leave
	// room for the focus ring; TextW is how far its text may run.
	BoxW, BoxH, TextW float64
	// URL is the node's page; "" for a manifest that is not there.
	URL   string
	Kind  artifact.Kind
	Root  bool
	Group bool
	Lines []pictureLine
	// Label says all the lines say, for screen readers and as a tooltip.
	Label string
}

type pictureLine struct {
	Text  string
	Class string
	X, Y  float64
}

type pictureEdge struct {
	// D is the SVG path.
	D     string
	Class string
	From  int
	To    int
}

// Node sizes and spacing of the picture, in CSS pixels.
const (
	nodeWidth  = 210
	nodeHeight = 78
	lineHeight = 16
	// nodeChars and monoChars are the characters a line of a node holds, in the
	// proportional and the monospace font.
	nodeChars = 29
	monoChars = 25
)

var pictureSpacing = spacing{Node: 20, Layer: 52, Margin: 10}

// draw lays g out and describes each node, manifests of repo.
func draw(repo string, g *graph) *picture {
	sizes := make([]size, len(g.Nodes))
	links := make([]link, len(g.Edges))
	for i := range sizes {
		sizes[i] = size{W: nodeWidth, H: nodeHeight}
	}
	for i, e := range g.Edges {
		links[i] = link{From: e.From, To: e.To}
	}
	p := layoutGraph(sizes, links, pictureSpacing)
	pic := &picture{Width: math.Ceil(p.Width), Height: math.Ceil(p.Height)}
	for i, n := range g.Nodes {
		b := p.Nodes[i]
		pn := pictureNode{X: round(b.X), Y: round(b.Y), W: b.W, H: b.H, BoxW: b.W - 4, BoxH: b.H - 4, TextW: b.W - 10,
			Kind: n.Kind, Root: i == 0, Group: n.Count > 0}
		var lines []pictureLine
		add := func(text, class string, max int) {
			lines = append(lines, pictureLine{Text: clipText(text, max), Class: class, X: 16, Y: float64(21 + lineHeight*len(lines))})
		}
		var label []string
		switch {
		case n.Count > 0:
			more := ""
			if n.AtLeast {
				more = "+"
			}
			head := fmt.Sprintf("%d%s × %s", n.Count, more, kindName(n.Kind, n.Count))
			add(head, "k", nodeChars)
			add(n.ArtifactType, "t", nodeChars)
			add("show all", "a", nodeChars)
			pn.URL = manifestURL(repo, n.Subject.String()) + "?referrers=" + url.QueryEscape(n.ArtifactType)
			label = []string{head, n.ArtifactType}
		default:
			head := kindName(n.Kind, 1)
			if n.Platform != nil {
				head += " · " + platformString(n.Platform)
			}
			add(head, "k", nodeChars)
			what := n.Type
			add(what, "t", nodeChars)
			add(shortDigest(n.Digest.String()), "d", monoChars)
			switch {
			case n.Missing:
				add("not in the repository", "m", nodeChars)
			case len(n.Tags) > 0:
				short := make([]string, len(n.Tags))
				for k, t := range n.Tags {
					short[k] = shortTag(t)
				}
				add(strings.Join(short, ", "), "g", nodeChars)
			}
			if !n.Missing {
				pn.URL = manifestURL(repo, n.Digest.String())
			}
			label = []string{head, what, n.Digest.String()}
			if len(n.Tags) > 0 {
				label = append(label, "tags "+strings.Join(n.Tags, ", "))
			}
		}
		pn.Lines = lines
		pn.Label = strings.Join(label, ", ")
		pic.Nodes = append(pic.Nodes, pn)
	}
	kinds := map[[2]int]edgeKind{}
	for _, e := range g.Edges {
		kinds[[2]int{e.From, e.To}] = e.Kind
	}
	for _, r := range p.Edges {
		k, ok := kinds[[2]int{r.From, r.To}]
		if !ok {
			k = kinds[[2]int{r.To, r.From}]
		}
		class := "edge-subject"
		switch k {
		case edgeChild:
			class, pic.Child = "edge-child", true
		case edgeTag:
			class, pic.Tag = "edge-tag", true
		default:
			pic.Subject = true
		}
		pic.Edges = append(pic.Edges, pictureEdge{D: pathOf(r.Points), Class: class, From: r.From, To: r.To})
	}
	return pic
}

// pathOf is an SVG path through pts, top down: straight where it runs straight down,
// else a curve that leaves and arrives vertically.
func pathOf(pts []point) string {
	var b strings.Builder
	fmt.Fprintf(&b, "M%.1f %.1f", pts[0].X, pts[0].Y)
	for i := 1; i < len(pts); i++ {
		p, q := pts[i-1], pts[i]
		if p.X == q.X {
			fmt.Fprintf(&b, " L%.1f %.1f", q.X, q.Y)
			continue
		}
		mid := (p.Y + q.Y) / 2
		fmt.Fprintf(&b, " C%.1f %.1f %.1f %.1f %.1f %.1f", p.X, mid, q.X, mid, q.X, q.Y)
	}
	return b.String()
}

func round(x float64) float64 { return math.Round(x*10) / 10 }

// clipText cuts s to max characters, ending it with an ellipsis when cut.
func clipText(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max-1]) + "…"
}

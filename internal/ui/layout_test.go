package ui

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

var testSpacing = spacing{Node: 20, Layer: 40, Margin: 10}

func boxes(n int) []size {
	out := make([]size, n)
	for i := range out {
		out[i] = size{W: 100, H: 50}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 0.5 }

func TestLayoutLayers(t *testing.T) {
	// 0 → 1 → 3, 0 → 2, and 0 → 3 across a layer
	p := layoutGraph(boxes(4), []link{{0, 1}, {0, 2}, {1, 3}, {0, 3}}, testSpacing)
	layers := []int{p.Nodes[0].Layer, p.Nodes[1].Layer, p.Nodes[2].Layer, p.Nodes[3].Layer}
	if !slices.Equal(layers, []int{0, 1, 1, 2}) {
		t.Fatalf("layers %v, want [0 1 1 2]", layers)
	}
	for _, n := range p.Nodes {
		if want := testSpacing.Margin + float64(n.Layer)*(50+testSpacing.Layer); !near(n.Y, want) {
			t.Errorf("a node of layer %d at y=%v, want %v", n.Layer, n.Y, want)
		}
	}
	for _, e := range p.Edges {
		from, to := p.Nodes[e.From], p.Nodes[e.To]
		first, last := e.Points[0], e.Points[len(e.Points)-1]
		if !near(first.X, from.CX()) || !near(first.Y, from.Y+from.H) || !near(last.X, to.CX()) || !near(last.Y, to.Y) {
			t.Errorf("edge %d→%d runs %v, not from the bottom of %+v to the top of %+v", e.From, e.To, e.Points, from, to)
		}
		if want := 2 + 2*(to.Layer-from.Layer-1); len(e.Points) != want {
			t.Errorf("edge %d→%d has %d points, want %d", e.From, e.To, len(e.Points), want)
		}
	}
	// the long edge passes layer 1 beside its nodes, not through them
	for _, e := range p.Edges {
		if e.From == 0 && e.To == 3 {
			x := e.Points[1].X
			for _, v := range []int{1, 2} {
				if b := p.Nodes[v]; x > b.X-dummyWidth/2 && x < b.X+b.W+dummyWidth/2 {
					t.Errorf("the edge 0→3 passes layer 1 at x=%v, through node %d (%v–%v)", x, v, b.X, b.X+b.W)
				}
			}
		}
	}
}

// TestLayoutRandom: on random acyclic graphs, edges point down, nodes of a layer
// never overlap, and the picture holds every node.
func TestLayoutRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		n := 1 + rng.IntN(40)
		var links []link
		for range rng.IntN(2 * n) {
			a, b := rng.IntN(n), rng.IntN(n)
			if a < b {
				links = append(links, link{a, b})
			}
		}
		sizes := make([]size, n)
		for j := range sizes {
			sizes[j] = size{W: 40 + float64(rng.IntN(200)), H: 30 + float64(rng.IntN(40))}
		}
		p := layoutGraph(sizes, links, testSpacing)
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkPlacement(t, p, sizes, links) })
	}
}

func checkPlacement(t *testing.T, p *placement, sizes []size, links []link) {
	t.Helper()
	if len(p.Nodes) != len(sizes) {
		t.Fatalf("%d nodes placed, want %d", len(p.Nodes), len(sizes))
	}
	for _, e := range links {
		if p.Nodes[e.To].Layer <= p.Nodes[e.From].Layer {
			t.Errorf("edge %d→%d goes from layer %d to %d", e.From, e.To, p.Nodes[e.From].Layer, p.Nodes[e.To].Layer)
		}
	}
	for i, a := range p.Nodes {
		if a.W != sizes[i].W || a.H != sizes[i].H {
			t.Errorf("node %d is %vx%v, want %vx%v", i, a.W, a.H, sizes[i].W, sizes[i].H)
		}
		if a.X < testSpacing.Margin-0.01 || a.X+a.W > p.Width-testSpacing.Margin+0.01 || a.Y+a.H > p.Height {
			t.Errorf("node %d at %+v leaves the %vx%v picture", i, a, p.Width, p.Height)
		}
		for j, b := range p.Nodes[i+1:] {
			if a.Layer == b.Layer && a.X < b.X+b.W+testSpacing.Node-0.01 && b.X < a.X+a.W+testSpacing.Node-0.01 {
				t.Errorf("nodes %d and %d of layer %d overlap: %+v, %+v", i, i+1+j, a.Layer, a, b)
			}
		}
	}
}

// TestLayoutUncrosses: sources 0 and 1 over 2 and 3, where depth-first order alone
// would cross 1→2 with 0→3.
func TestLayoutUncrosses(t *testing.T) {
	links := []link{{0, 2}, {0, 3}, {1, 2}}
	p := layoutGraph(boxes(4), links, testSpacing)
	if n := crossingsOf(p); n != 0 {
		t.Fatalf("%d crossings: %+v", n, p.Nodes)
	}
}

// crossingsOf counts the pairs of edges between the same two layers whose ends are in
// opposite orders.
func crossingsOf(p *placement) int {
	n := 0
	for i, a := range p.Edges {
		for _, b := range p.Edges[i+1:] {
			a0, a1, b0, b1 := a.Points[0], a.Points[len(a.Points)-1], b.Points[0], b.Points[len(b.Points)-1]
			if a0.Y == b0.Y && a1.Y == b1.Y && (a0.X-b0.X)*(a1.X-b1.X) < 0 {
				n++
			}
		}
	}
	return n
}

// TestLayoutCentres: a node sits over the middle of its children, and a chain stands
// straight.
func TestLayoutCentres(t *testing.T) {
	p := layoutGraph(boxes(7), []link{{0, 1}, {0, 2}, {0, 3}, {3, 4}, {4, 5}, {4, 6}}, testSpacing)
	mid := (p.Nodes[1].CX() + p.Nodes[2].CX() + p.Nodes[3].CX()) / 3
	if !near(p.Nodes[0].CX(), mid) {
		t.Errorf("the root is at %v, its children's middle at %v", p.Nodes[0].CX(), mid)
	}
	if mid := (p.Nodes[5].CX() + p.Nodes[6].CX()) / 2; !near(p.Nodes[4].CX(), mid) {
		t.Errorf("node 4 is at %v, its children's middle at %v", p.Nodes[4].CX(), mid)
	}
	if n := crossingsOf(p); n != 0 {
		t.Errorf("%d crossings in a tree", n)
	}
	chain := layoutGraph(boxes(3), []link{{0, 1}, {1, 2}}, testSpacing)
	if x := chain.Nodes[0].CX(); !near(chain.Nodes[1].CX(), x) || !near(chain.Nodes[2].CX(), x) {
		t.Errorf("a chain is not straight: %+v", chain.Nodes)
	}
}

// TestLayoutSiblingOrder: siblings keep the order they were given in, when nothing
// else decides it (an index's platforms, referrers by digest).
func TestLayoutSiblingOrder(t *testing.T) {
	p := layoutGraph(boxes(5), []link{{0, 3}, {0, 1}, {0, 4}, {0, 2}}, testSpacing)
	xs := []float64{p.Nodes[3].X, p.Nodes[1].X, p.Nodes[4].X, p.Nodes[2].X}
	if !slices.IsSorted(xs) {
		t.Errorf("siblings out of order: %v", xs)
	}
}

func TestLayoutCycleAndOddInput(t *testing.T) {
	links := []link{{0, 1}, {1, 2}, {2, 0}, {1, 1}, {0, 1}, {5, 0}, {-1, 2}}
	p := layoutGraph(boxes(3), links, testSpacing)
	if l := []int{p.Nodes[0].Layer, p.Nodes[1].Layer, p.Nodes[2].Layer}; !slices.Equal(l, []int{0, 1, 2}) {
		t.Errorf("layers of a cycle: %v", l)
	}
	if len(p.Edges) != 3 {
		t.Errorf("%d edges routed, want 3: %+v", len(p.Edges), p.Edges)
	}
	empty := layoutGraph(nil, nil, testSpacing)
	if len(empty.Nodes) != 0 || empty.Width != 2*testSpacing.Margin {
		t.Errorf("empty layout: %+v", empty)
	}
}

func TestLayoutDeterministic(t *testing.T) {
	links := []link{{0, 1}, {0, 2}, {1, 3}, {2, 3}, {0, 4}, {4, 5}, {0, 5}}
	a := layoutGraph(boxes(6), links, testSpacing)
	for range 10 {
		if b := layoutGraph(boxes(6), links, testSpacing); !reflect.DeepEqual(a, b) {
			t.Fatalf("two layouts of one graph differ:\n%+v\n%+v", a, b)
		}
	}
}

func TestIsotonic(t *testing.T) {
	got := isotonic([]float64{1, 3, 2, 0, 5}, []float64{1, 1, 1, 1, 1})
	want := []float64{1, 5.0 / 3, 5.0 / 3, 5.0 / 3, 5}
	for i := range want {
		if !near(got[i], want[i]) {
			t.Fatalf("isotonic: %v, want %v", got, want)
		}
	}
}

func BenchmarkLayoutFanOut(b *testing.B) {
	const n = 1000
	links := make([]link, 0, n)
	for i := 1; i <= n; i++ {
		links = append(links, link{0, i})
	}
	sizes := boxes(n + 1)
	for b.Loop() {
		layoutGraph(sizes, links, testSpacing)
	}
}

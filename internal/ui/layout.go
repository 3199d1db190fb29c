package ui

import (
	"cmp"
	"slices"
)

// A layered (Sugiyama) layout of a directed graph, drawn top down: every edge points
// to a lower layer, nodes of a layer sit side by side in an order that keeps edges
// from crossing, and each node sits near the middle of its neighbours. Graphs of
// manifests are small, nearly trees, and acyclic; the layout still ends on any input.

// size is the extent of a node to place.
type size struct{ W, H float64 }

// link is an edge of the graph to lay out, by node index.
type link struct{ From, To int }

// point is a position in the picture.
type point struct{ X, Y float64 }

// box is a placed node: its top-left corner, extent and layer.
type box struct {
	X, Y, W, H float64
	Layer      int
}

// CX is the node's horizontal middle.
func (b box) CX() float64 { return b.X + b.W/2 }

// route is a placed edge: from the bottom of its upper node to the top of its lower
// one, through the layers between.
type route struct {
	From, To int
	Points   []point
}

// placement is a finished layout.
type placement struct {
	Nodes         []box
	Edges         []route
	Width, Height float64
}

// spacing is the room a layout leaves.
type spacing struct {
	// Node is the horizontal gap between neighbours in a layer, Layer the vertical gap
	// between layers, Margin the room around the picture.
	Node, Layer, Margin float64
}

const (
	// sweeps bounds the passes of crossing reduction and of positioning.
	sweeps = 12
	// dummyWidth is the room an edge takes where it passes through a layer.
	dummyWidth = 12
)

// layoutGraph lays out nodes of the given sizes, joined by links, in layers.
func layoutGraph(sizes []size, links []link, sp spacing) *placement {
	n := len(sizes)
	l := &layered{sizes: slices.Clone(sizes), real: n}
	edges := l.acyclic(n, links)
	l.assignLayers(edges)
	l.splitLongEdges(edges)
	l.order()
	l.position(sp)
	return l.finish(sp, edges)
}

// layered is a layout in progress: the graph's nodes, then one dummy node for every
// layer a long edge passes through.
type layered struct {
	sizes []size
	real  int // nodes before real are the graph's, the rest dummies
	layer []int
	// down and up are the neighbours of each node in the next and the previous layer.
	down, up [][]int
	// rows are the nodes of each layer, in order; pos is each node's index in its row.
	rows [][]int
	pos  []int
	x    []float64 // horizontal middle of each node
	// chains are the dummies of each long edge, top down, by edge index.
	chains map[int][]int
}

// acyclic returns the links without self-loops and duplicates, each turned to point
// downward: a link that closes a cycle (found depth-first, in input order) is turned
// around.
func (l *layered) acyclic(n int, links []link) []link {
	out := make([]link, 0, len(links))
	seen := map[link]bool{}
	adj := make([][]int, n)
	for _, e := range links {
		if e.From == e.To || e.From < 0 || e.To < 0 || e.From >= n || e.To >= n || seen[e] {
			continue
		}
		seen[e] = true
		adj[e.From] = append(adj[e.From], len(out))
		out = append(out, e)
	}
	const (
		unvisited = iota
		active
		done
	)
	state := make([]int, n)
	var visit func(v int)
	visit = func(v int) {
		state[v] = active
		for _, i := range adj[v] {
			w := out[i].To
			switch state[w] {
			case unvisited:
				visit(w)
			case active:
				out[i] = link{From: w, To: v}
			}
		}
		state[v] = done
	}
	for v := range n {
		if state[v] == unvisited {
			visit(v)
		}
	}
	// turning an edge may have made a duplicate of another
	uniq := out[:0]
	clear(seen)
	for _, e := range out {
		if !seen[e] {
			seen[e] = true
			uniq = append(uniq, e)
		}
	}
	return uniq
}

// assignLayers puts every node one layer below the lowest of its predecessors (the
// longest path from a source), sources at the top.
func (l *layered) assignLayers(edges []link) {
	n := len(l.sizes)
	l.layer = make([]int, n)
	indeg := make([]int, n)
	out := make([][]int, n)
	for _, e := range edges {
		indeg[e.To]++
		out[e.From] = append(out[e.From], e.To)
	}
	queue := make([]int, 0, n)
	for v := range n {
		if indeg[v] == 0 {
			queue = append(queue, v)
		}
	}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range out[v] {
			l.layer[w] = max(l.layer[w], l.layer[v]+1)
			if indeg[w]--; indeg[w] == 0 {
				queue = append(queue, w)
			}
		}
	}
}

// splitLongEdges replaces every edge that spans more than one layer by a chain of
// dummy nodes, one per layer between, so that each edge joins adjacent layers.
func (l *layered) splitLongEdges(edges []link) {
	l.chains = map[int][]int{}
	add := func(from, to int) {
		l.down[from] = append(l.down[from], to)
		l.up[to] = append(l.up[to], from)
	}
	l.down = make([][]int, len(l.sizes))
	l.up = make([][]int, len(l.sizes))
	for i, e := range edges {
		prev := e.From
		for y := l.layer[e.From] + 1; y < l.layer[e.To]; y++ {
			d := len(l.sizes)
			l.sizes = append(l.sizes, size{W: dummyWidth})
			l.layer = append(l.layer, y)
			l.down = append(l.down, nil)
			l.up = append(l.up, nil)
			l.chains[i] = append(l.chains[i], d)
			add(prev, d)
			prev = d
		}
		add(prev, e.To)
	}
}

// order arranges each layer to reduce crossings: first in depth-first order from the
// sources, which keeps the input's order of siblings, then by sweeps of the
// barycentre heuristic, keeping the best order seen.
func (l *layered) order() {
	n := len(l.sizes)
	layers := 0
	for _, y := range l.layer {
		layers = max(layers, y+1)
	}
	l.rows = make([][]int, layers)
	l.pos = make([]int, n)
	placed := make([]bool, n)
	var visit func(v int)
	visit = func(v int) {
		placed[v] = true
		l.pos[v] = len(l.rows[l.layer[v]])
		l.rows[l.layer[v]] = append(l.rows[l.layer[v]], v)
		for _, w := range l.down[v] {
			if !placed[w] {
				visit(w)
			}
		}
	}
	for v := range n {
		if len(l.up[v]) == 0 && !placed[v] {
			visit(v)
		}
	}
	best := l.snapshot()
	fewest := l.crossings()
	for i := 0; i < sweeps && fewest > 0; i++ {
		if i%2 == 0 {
			for y := 1; y < layers; y++ {
				l.sortRow(y, l.up)
			}
		} else {
			for y := layers - 2; y >= 0; y-- {
				l.sortRow(y, l.down)
			}
		}
		if c := l.crossings(); c < fewest {
			fewest, best = c, l.snapshot()
		}
	}
	l.restore(best)
}

// sortRow orders layer y by the mean position of each node's neighbours in adj; a
// node without neighbours keeps its place.
func (l *layered) sortRow(y int, adj [][]int) {
	row := l.rows[y]
	key := make(map[int]float64, len(row))
	for _, v := range row {
		key[v] = float64(l.pos[v])
		if len(adj[v]) > 0 {
			sum := 0.0
			for _, w := range adj[v] {
				sum += float64(l.pos[w])
			}
			key[v] = sum / float64(len(adj[v]))
		}
	}
	slices.SortStableFunc(row, func(a, b int) int { return cmp.Compare(key[a], key[b]) })
	for i, v := range row {
		l.pos[v] = i
	}
}

func (l *layered) snapshot() [][]int {
	out := make([][]int, len(l.rows))
	for i, r := range l.rows {
		out[i] = slices.Clone(r)
	}
	return out
}

func (l *layered) restore(rows [][]int) {
	l.rows = rows
	for _, r := range rows {
		for i, v := range r {
			l.pos[v] = i
		}
	}
}

// crossings counts the pairs of edges that cross between adjacent layers: the
// inversions of the lower ends when the edges are sorted by their upper ends.
func (l *layered) crossings() int {
	total := 0
	for y := 0; y+1 < len(l.rows); y++ {
		var ends [][2]int
		for _, v := range l.rows[y] {
			for _, w := range l.down[v] {
				ends = append(ends, [2]int{l.pos[v], l.pos[w]})
			}
		}
		slices.SortFunc(ends, func(a, b [2]int) int {
			if c := cmp.Compare(a[0], b[0]); c != 0 {
				return c
			}
			return cmp.Compare(a[1], b[1])
		})
		tree := make([]int, len(l.rows[y+1])+1) // a Fenwick tree of lower ends seen
		for i, e := range ends {
			seen := 0
			for j := e[1] + 1; j > 0; j -= j & -j {
				seen += tree[j]
			}
			total += i - seen // earlier edges that end to the right of this one
			for j := e[1] + 1; j < len(tree); j += j & -j {
				tree[j]++
			}
		}
	}
	return total
}

// position sets each node's horizontal middle: packed side by side, then moved by
// sweeps toward the mean of its neighbours above (downward sweeps) or below (upward
// ones), as close as the order and the gaps allow. The last sweep is upward, so that
// a node sits over the middle of what hangs under it.
func (l *layered) position(sp spacing) {
	l.x = make([]float64, len(l.sizes))
	for _, row := range l.rows {
		x := 0.0
		for _, v := range row {
			l.x[v] = x + l.sizes[v].W/2
			x += l.sizes[v].W + sp.Node
		}
	}
	for i := range sweeps {
		upward := i%2 == 1
		for y := range l.rows {
			if upward {
				l.placeRow(l.rows[len(l.rows)-1-y], l.down, sp.Node)
			} else {
				l.placeRow(l.rows[y], l.up, sp.Node)
			}
		}
	}
}

// placeRow moves the nodes of row as close to the mean of their neighbours in adj as
// their order and gaps allow, in the least-squares sense.
func (l *layered) placeRow(row []int, adj [][]int, gap float64) {
	want := make([]float64, len(row))
	weight := make([]float64, len(row))
	for i, v := range row {
		want[i], weight[i] = l.x[v], 0.01 // a node without neighbours stays put
		if len(adj[v]) > 0 {
			sum := 0.0
			for _, w := range adj[v] {
				sum += l.x[w]
			}
			want[i], weight[i] = sum/float64(len(adj[v])), 1
			if v >= l.real {
				weight[i] = 4 // keep long edges straight
			}
		}
	}
	offset := make([]float64, len(row))
	for i := 1; i < len(row); i++ {
		offset[i] = offset[i-1] + (l.sizes[row[i-1]].W+l.sizes[row[i]].W)/2 + gap
	}
	for i := range want {
		want[i] -= offset[i]
	}
	got := isotonic(want, weight)
	for i, v := range row {
		l.x[v] = got[i] + offset[i]
	}
}

// isotonic returns the non-decreasing sequence closest to want in weighted least
// squares (pool adjacent violators).
func isotonic(want, weight []float64) []float64 {
	type block struct {
		mean, weight float64
		n            int
	}
	var blocks []block
	for i := range want {
		b := block{mean: want[i], weight: weight[i], n: 1}
		for len(blocks) > 0 && blocks[len(blocks)-1].mean >= b.mean {
			p := blocks[len(blocks)-1]
			blocks = blocks[:len(blocks)-1]
			w := p.weight + b.weight
			b = block{mean: (p.mean*p.weight + b.mean*b.weight) / w, weight: w, n: p.n + b.n}
		}
		blocks = append(blocks, b)
	}
	out := make([]float64, 0, len(want))
	for _, b := range blocks {
		for range b.n {
			out = append(out, b.mean)
		}
	}
	return out
}

// finish places the layers one under another, moves the picture into its margins and
// routes the edges.
func (l *layered) finish(sp spacing, edges []link) *placement {
	p := &placement{Nodes: make([]box, l.real)}
	if len(l.sizes) == 0 {
		p.Width, p.Height = 2*sp.Margin, 2*sp.Margin
		return p
	}
	left := l.x[0] - l.sizes[0].W/2
	right := left
	for v, s := range l.sizes {
		left = min(left, l.x[v]-s.W/2)
		right = max(right, l.x[v]+s.W/2)
	}
	top := make([]float64, len(l.rows)+1)
	top[0] = sp.Margin
	for y, row := range l.rows {
		h := 0.0
		for _, v := range row {
			h = max(h, l.sizes[v].H)
		}
		top[y+1] = top[y] + h + sp.Layer
	}
	p.Width = right - left + 2*sp.Margin
	p.Height = top[len(l.rows)] - sp.Layer + sp.Margin
	shift := sp.Margin - left
	for v := range l.real {
		s := l.sizes[v]
		p.Nodes[v] = box{X: l.x[v] - s.W/2 + shift, Y: top[l.layer[v]], W: s.W, H: s.H, Layer: l.layer[v]}
	}
	for i, e := range edges {
		from, to := p.Nodes[e.From], p.Nodes[e.To]
		pts := []point{{from.CX(), from.Y + from.H}}
		for _, d := range l.chains[i] {
			x := l.x[d] + shift
			// through the layer's full height, so the edge never cuts a node's corner
			pts = append(pts, point{x, top[l.layer[d]]}, point{x, top[l.layer[d]+1] - sp.Layer})
		}
		pts = append(pts, point{to.CX(), to.Y})
		p.Edges = append(p.Edges, route{From: e.From, To: e.To, Points: pts})
	}
	return p
}

package web

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// The map's geometry, in SVG pixels. Node labels are set in a monospace
// font so that their width can be known here: charWidth is the advance of
// a 12 px monospace glyph (DejaVu Sans Mono, Liberation Mono: 7.2 px),
// rounded up.
const (
	charWidth   = 7.4
	nodeHeight  = 38
	minNodeW    = 150
	maxNodeW    = 330
	gutter      = 40 // between columns: the vertical runs of edges
	rowGap      = 44 // between rows: the horizontal runs of edges
	tierGap     = 64 // between tiers: room for a group's title as well
	margin      = 16
	maxColumns  = 8  // without a screen to fit (Fit): the widest grid
	minColumns  = 2  // the narrowest grid Fit tries (a phone upright)
	groupPad    = 10 // a group's frame around its nodes, inside the gutter
	groupTitleH = 16
)

// GraphGroup is a frame drawn around components that belong together:
// a namespace's services, the data stores of one kind.
type GraphGroup struct {
	Name string `json:"name"`
	Box
}

// Box is a rectangle on the map.
type Box struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// cell is a node's place in the grid before it becomes pixels.
type cell struct{ row, col int }

// layout places every node on a grid and routes every edge along the
// free space between the grid's cells, so that no edge ever crosses a
// box: tiers top to bottom as the documents draw the system (the entry,
// the load balancers, APISIX, the services grouped by namespace, the data
// layer grouped by kind), each tier one or more rows of the grid. An edge
// leaves its source's bottom into the gap under its row, runs along that
// gap to the gutter beside its target's column, along the gutter to the
// gap next to the target's row, and into the target: gaps and gutters
// hold no boxes, whatever the rows and columns.
func (g *Graph) layout() { g.layoutColumns(maxColumns) }

// Fit lays the map out again for a screen of w×h pixels: of the grids
// from minColumns to maxColumns columns wide, the one that, scaled to fit
// the screen whole, is drawn largest. A wide screen gets a wide grid; a
// laptop's or a phone's a narrower and taller one, so that the map uses
// the height it has instead of shrinking to the width.
func (g *Graph) Fit(w, h float64) {
	best, bestScale := -1, 0.0
	for c := minColumns; c <= maxColumns; c++ {
		try := g.relaid(c)
		if try.Width == 0 || try.Height == 0 {
			return
		}
		// Ties go to the wider grid: fewer rows, shorter edges.
		if s := min(w/try.Width, h/try.Height); s >= bestScale {
			best, bestScale = c, s
		}
	}
	*g = g.relaid(best)
}

// relaid is a copy of g laid out on a grid columns wide.
func (g *Graph) relaid(columns int) Graph {
	c := Graph{Nodes: slices.Clone(g.Nodes), Edges: slices.Clone(g.Edges)}
	c.layoutColumns(columns)
	return c
}

// layoutColumns is layout on a grid at most maxCols columns wide (the
// entry tiers and the stores widen it where they need to): services
// first, by namespace then name, since the columns they take set the
// grid's width; then the stores under their services; then the entry
// tiers, bottom up, above theirs; then pixels, and the edges' routes.
func (g *Graph) layoutColumns(maxCols int) {
	if len(g.Nodes) == 0 {
		return
	}
	gr := newGrid(g, maxCols)
	gr.placeServices()
	gr.placeStores()
	gr.placeEntries()
	rowTop, gapH, colX := gr.pixels()
	g.route(gr.cells, gr.idx, rowTop, gapH, colX, gr.nodeW)
}

// grid is a layout in the making: every node's tier and cell, and the
// rows each tier takes.
type grid struct {
	g       *Graph
	maxCols int
	idx     map[string]int // node id → index
	nodeW   float64
	// Tiers: the entry components by their rank among themselves
	// (edgeRanks), then services, then stores.
	edgeRanks          []int
	tierOf             []int
	svcTier, storeTier int
	parents, children  [][]int
	cells              []cell
	placed             []bool
	groups             []groupSpan
	rowBase, columns   int
	tierRows           map[int][2]int // tier → first row, row count
}

func newGrid(g *Graph, maxCols int) *grid {
	gr := &grid{g: g, maxCols: maxCols, idx: make(map[string]int, len(g.Nodes)), tierOf: make([]int, len(g.Nodes)),
		parents: make([][]int, len(g.Nodes)), children: make([][]int, len(g.Nodes)),
		cells: make([]cell, len(g.Nodes)), placed: make([]bool, len(g.Nodes)), tierRows: map[int][2]int{}}
	longest := 0
	for i := range g.Nodes {
		n := &g.Nodes[i]
		gr.idx[n.ID] = i
		n.Label = n.ID
		if n.Kind == "service" {
			if ns, name, ok := strings.Cut(n.ID, "/"); ok {
				n.Group, n.Label = ns, name
			}
		}
		longest = max(longest, len([]rune(n.Label)))
	}
	gr.nodeW = math.Ceil(min(maxNodeW, max(minNodeW, float64(longest)*charWidth+20)))
	for _, n := range g.Nodes {
		if n.Kind != "service" && n.Kind != "store" && !slices.Contains(gr.edgeRanks, n.Rank) {
			gr.edgeRanks = append(gr.edgeRanks, n.Rank)
		}
	}
	slices.Sort(gr.edgeRanks)
	gr.svcTier, gr.storeTier = len(gr.edgeRanks), len(gr.edgeRanks)+1
	for i, n := range g.Nodes {
		switch n.Kind {
		case "service":
			gr.tierOf[i] = gr.svcTier
		case "store":
			gr.tierOf[i] = gr.storeTier
		default:
			gr.tierOf[i] = slices.Index(gr.edgeRanks, n.Rank)
		}
	}
	for _, e := range g.Edges {
		s, okS := gr.idx[e.Source]
		t, okT := gr.idx[e.Target]
		if okS && okT {
			gr.children[s] = append(gr.children[s], t)
			gr.parents[t] = append(gr.parents[t], s)
		}
	}
	return gr
}

// members are the nodes of tier.
func (gr *grid) members(tier int) []int {
	var out []int
	for i := range gr.g.Nodes {
		if gr.tierOf[i] == tier {
			out = append(out, i)
		}
	}
	return out
}

// bary is the mean column of the nodes of near already placed; +Inf
// when none is.
func (gr *grid) bary(near []int) float64 {
	sum, n := 0.0, 0
	for _, j := range near {
		if gr.placed[j] {
			sum += float64(gr.cells[j].col)
			n++
		}
	}
	if n == 0 {
		return math.Inf(1)
	}
	return sum / float64(n)
}

// placeServices packs the services in blocks by namespace, and counts
// the rows of the entry tiers, which are laid out later but come first.
func (gr *grid) placeServices() {
	g := gr.g
	svcBlocks := blocksBy(gr.members(gr.svcTier), func(i int) string { return g.Nodes[i].Group })
	for _, b := range svcBlocks {
		slices.SortFunc(b.nodes, func(x, y int) int { return strings.Compare(g.Nodes[x].Label, g.Nodes[y].Label) })
	}
	columns, svcRows := packBlocks(svcBlocks, gr.maxCols)
	entryRows := make([]int, len(gr.edgeRanks))
	for t := range gr.edgeRanks {
		n := len(gr.members(t))
		columns = max(columns, min(n, gr.maxCols))
		entryRows[t] = (n + gr.maxCols - 1) / gr.maxCols
	}
	for t := range gr.edgeRanks {
		gr.tierRows[t] = [2]int{gr.rowBase, entryRows[t]}
		gr.rowBase += entryRows[t]
	}
	gr.tierRows[gr.svcTier] = [2]int{gr.rowBase, svcRows}
	gr.groups = append(gr.groups, placeBlocks(svcBlocks, svcRows, gr.rowBase, 0, gr.cells, gr.placed)...)
	gr.rowBase += svcRows
	gr.columns = columns
}

// placeStores packs the stores in blocks by kind, each block under the
// services that use it.
func (gr *grid) placeStores() {
	g := gr.g
	stores := gr.members(gr.storeTier)
	for _, i := range stores {
		g.Nodes[i].Group = g.Nodes[i].storeKind
	}
	storeBlocks := blocksBy(stores, func(i int) string { return g.Nodes[i].Group })
	for _, b := range storeBlocks {
		slices.SortStableFunc(b.nodes, func(x, y int) int { return cmp.Compare(gr.bary(gr.parents[x]), gr.bary(gr.parents[y])) })
		b.bary = gr.bary(gr.parents[b.nodes[0]])
	}
	slices.SortStableFunc(storeBlocks, func(a, b *block) int { return cmp.Compare(a.bary, b.bary) })
	storeCols, storeRows := packBlocks(storeBlocks, max(gr.columns, gr.maxCols))
	gr.columns = max(gr.columns, storeCols)
	gr.tierRows[gr.storeTier] = [2]int{gr.rowBase, storeRows}
	gr.groups = append(gr.groups, placeBlocks(storeBlocks, storeRows, gr.rowBase, (gr.columns-storeCols)/2, gr.cells, gr.placed)...)
	gr.rowBase += storeRows
}

// placeEntries lays the entry tiers out bottom up, each component as
// near its children as its row allows.
func (gr *grid) placeEntries() {
	columns := gr.columns
	for t := len(gr.edgeRanks) - 1; t >= 0; t-- {
		m := gr.members(t)
		want := make(map[int]float64, len(m))
		for _, i := range m {
			want[i] = gr.bary(gr.children[i])
			if math.IsInf(want[i], 1) {
				want[i] = float64(columns-1) / 2
			}
		}
		slices.SortStableFunc(m, func(x, y int) int { return cmp.Compare(want[x], want[y]) })
		first := gr.tierRows[t][0]
		for r := 0; r*columns < len(m); r++ {
			row := m[r*columns : min(len(m), (r+1)*columns)]
			for k, c := range rowColumns(row, want, columns) {
				gr.cells[row[k]], gr.placed[row[k]] = cell{row: first + r, col: c}, true
			}
		}
	}
}

// rowColumns places one row's nodes each as near its wanted column as
// the row allows: greedy left to right, then pushed back inside the grid
// from the right.
func rowColumns(row []int, want map[int]float64, columns int) []int {
	cols := make([]int, len(row))
	for k, i := range row {
		c := max(0, int(math.Round(want[i])))
		if k > 0 {
			c = max(c, cols[k-1]+1)
		}
		cols[k] = c
	}
	for k := len(row) - 1; k >= 0; k-- {
		limit := columns - (len(row) - k)
		if cols[k] > limit {
			cols[k] = limit
		}
		if k+1 < len(row) && cols[k] >= cols[k+1] {
			cols[k] = cols[k+1] - 1
		}
	}
	return cols
}

// pixels turns cells into boxes and frames: row r's top is after r gaps,
// and a gap is a tier gap where a tier starts.
func (gr *grid) pixels() (rowTop, gapH []float64, colX func(int) float64) {
	g, rows, nodeW := gr.g, gr.rowBase, gr.nodeW
	gapH = make([]float64, rows+1) // gapH[r] is the gap above row r
	tierStart := map[int]bool{}
	for _, tr := range gr.tierRows {
		tierStart[tr[0]] = true
	}
	for r := range gapH {
		switch {
		case r == 0 || r == rows:
			gapH[r] = rowGap
		case tierStart[r]:
			gapH[r] = tierGap
		default:
			gapH[r] = rowGap
		}
	}
	rowTop = make([]float64, rows)
	y := float64(margin)
	for r := range rows {
		y += gapH[r]
		rowTop[r] = y
		y += nodeHeight
	}
	g.Height = y + gapH[rows] + margin
	colX = func(c int) float64 { return margin + gutter + float64(c)*(nodeW+gutter) }
	g.Width = colX(gr.columns) + margin
	for i := range g.Nodes {
		c := gr.cells[i]
		g.Nodes[i].Box = Box{X: colX(c.col), Y: rowTop[c.row], W: nodeW, H: nodeHeight}
	}
	for _, s := range gr.groups {
		top := rowTop[s.row0] - groupPad - groupTitleH
		g.Groups = append(g.Groups, GraphGroup{Name: s.name, Box: Box{
			X: colX(s.col0) - groupPad, Y: top,
			W: float64(s.cols)*(nodeW+gutter) - gutter + 2*groupPad,
			H: rowTop[s.row0+s.rows-1] + nodeHeight + groupPad - top,
		}})
	}
	return rowTop, gapH, colX
}

// route draws each edge as a polyline through the gaps and gutters. Runs
// that share a gap or a gutter are spread over lanes, one per source (or,
// entering a target, one per target), so that a bus of links from one
// component reads as one.
func (g *Graph) route(cells []cell, idx map[string]int, rowTop, gapH []float64, colX func(int) float64, nodeW float64) {
	type plan struct {
		exitGap, entryGap, gut int
		down, direct           bool
	}
	plans := make([]plan, len(g.Edges))
	keys := map[int][]string{} // by gap row, or -1-column for a gutter
	use := func(where int, key string) {
		if !slices.Contains(keys[where], key) {
			keys[where] = append(keys[where], key)
		}
	}
	for k, e := range g.Edges {
		s, t := cells[idx[e.Source]], cells[idx[e.Target]]
		p := plan{exitGap: s.row + 1, down: t.row > s.row}
		if p.down {
			p.entryGap = t.row
		} else {
			p.entryGap = t.row + 1
		}
		p.direct = p.exitGap == p.entryGap
		use(p.exitGap, "s:"+e.Source)
		if !p.direct {
			// The gutter on the target's side nearer the source.
			p.gut = t.col
			if s.col > t.col {
				p.gut = t.col + 1
			}
			use(-1-p.gut, "s:"+e.Source)
			use(p.entryGap, "t:"+e.Target)
		}
		plans[k] = p
	}
	for w := range keys {
		slices.Sort(keys[w])
	}
	laneAt := func(where int, key string, from, span float64) float64 {
		ks := keys[where]
		i := slices.Index(ks, key)
		return from + span*(float64(i)+1)/float64(len(ks)+1)
	}
	gapY := func(gap int, key string) float64 {
		top := margin + 0.0
		if gap > 0 {
			top = rowTop[gap-1] + nodeHeight
		}
		h := gapH[min(gap, len(gapH)-1)]
		if gap < len(rowTop) && gap > 0 && h > rowGap {
			// A tier gap: the group titles sit in its lower part.
			h -= groupPad + groupTitleH
		}
		return math.Round(laneAt(gap, key, top, h)*10) / 10
	}
	for k := range g.Edges {
		e, p := &g.Edges[k], plans[k]
		sb, tb := g.Nodes[idx[e.Source]].Box, g.Nodes[idx[e.Target]].Box
		sx, tx := sb.X+sb.W/2, tb.X+tb.W/2
		ty := tb.Y
		if !p.down {
			ty = tb.Y + tb.H
		}
		y1 := gapY(p.exitGap, "s:"+e.Source)
		pts := [][2]float64{{sx, sb.Y + sb.H}, {sx, y1}}
		if p.direct {
			pts = append(pts, [2]float64{tx, y1}, [2]float64{tx, ty})
		} else {
			gx := colX(p.gut) - gutter + laneAt(-1-p.gut, "s:"+e.Source, groupPad, gutter-2*groupPad)
			gx = math.Round(gx*10) / 10
			y2 := gapY(p.entryGap, "t:"+e.Target)
			pts = append(pts, [2]float64{gx, y1}, [2]float64{gx, y2}, [2]float64{tx, y2}, [2]float64{tx, ty})
		}
		e.Points = pts
	}
}

// block is a group's nodes, laid out as a rectangle of cells.
type block struct {
	name  string
	nodes []int
	bary  float64
}

// groupSpan is where a block landed in the grid.
type groupSpan struct {
	name                   string
	row0, rows, col0, cols int
}

func blocksBy(nodes []int, key func(int) string) []*block {
	var out []*block
	for _, i := range nodes {
		k := key(i)
		j := slices.IndexFunc(out, func(b *block) bool { return b.name == k })
		if j < 0 {
			out = append(out, &block{name: k})
			j = len(out) - 1
		}
		out[j].nodes = append(out[j].nodes, i)
	}
	return out
}

// packBlocks finds the fewest rows for which the blocks, side by side,
// fit in width columns; a block needs ceil(n/rows) columns.
func packBlocks(blocks []*block, width int) (columns, rows int) {
	if len(blocks) == 0 {
		return 0, 0
	}
	for rows = 1; ; rows++ {
		columns = 0
		for _, b := range blocks {
			columns += (len(b.nodes) + rows - 1) / rows
		}
		if columns <= width || columns == len(blocks) {
			return columns, rows
		}
	}
}

// placeBlocks fills each block's columns top to bottom, blocks left to
// right from column col.
func placeBlocks(blocks []*block, rows, row0, col int, cells []cell, placed []bool) []groupSpan {
	var spans []groupSpan
	for _, b := range blocks {
		cols := (len(b.nodes) + rows - 1) / rows
		used := (len(b.nodes) + cols - 1) / cols
		for k, i := range b.nodes {
			cells[i], placed[i] = cell{row: row0 + k/cols, col: col + k%cols}, true
		}
		if b.name != "" {
			spans = append(spans, groupSpan{name: b.name, row0: row0, rows: used, col0: col, cols: cols})
		}
		col += cols
	}
	return spans
}

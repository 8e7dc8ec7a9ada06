package exporter

import (
	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// walkSeries are the series a path's walks make beyond its hops'
// numbers: its chain, and its hops' evidence changes counted by kind.
// Kept by path id, so a reload that changes the path keeps them.
type walkSeries struct {
	// chainLbl is the chain info series' labels, rendered when the chain
	// changes; nil on a path without an entry.
	chainLbl      []byte
	chainKey      string
	chainMismatch bool
	changes       []changeCount
}

type changeCount struct {
	hop, change string
	lbl         []byte
	n           uint64
}

var (
	chainLabelNames  = []string{"expected", "observed", "path", "vantage", "verdict"}
	changeLabelNames = []string{"change", "hop", "path", "vantage"}
)

func (ws *walkSeries) observe(w status.Walk, p *targets.Path) {
	for _, ev := range w.Changes {
		ws.count(ev, p)
	}
	c := w.Status.Chain
	if c == nil {
		return
	}
	ws.chainMismatch = c.Verdict == chain.Mismatch
	// Rendered again only when a label changes.
	if key := chain.String(c.Expected) + " " + chain.String(c.Observed) + " " + c.Verdict; key != ws.chainKey || ws.chainLbl == nil {
		ws.chainKey = key
		ws.chainLbl = renderText(nil, chainLabelNames, []string{chain.String(c.Expected), chain.String(c.Observed), p.ID, p.Vantage, c.Verdict})
	}
}

func (ws *walkSeries) count(ev status.Event, p *targets.Path) {
	for i := range ws.changes {
		if c := &ws.changes[i]; c.hop == ev.Hop && c.change == ev.Change {
			c.n++
			return
		}
	}
	ws.changes = append(ws.changes, changeCount{hop: ev.Hop, change: ev.Change, n: 1,
		lbl: renderText(nil, changeLabelNames, []string{ev.Change, ev.Hop, p.ID, p.Vantage})})
}

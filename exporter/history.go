package exporter

import (
	"time"

	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/config"
)

// DefaultHistory is how many walks of each path are kept until the
// runner sets the topology's defaults.history.
const DefaultHistory = config.DefaultHistory

// maxEvents is how many evidence changes of each path are kept.
const maxEvents = 50

// Event is a change in what a hop showed between two walks: a new
// certificate, DNS answer set, leader or role, CloudFront POP, or chain.
type Event struct {
	Time   time.Time `json:"time"`
	Hop    string    `json:"hop"`
	Change string    `json:"change"`
	From   string    `json:"from"`
	To     string    `json:"to"`
}

// Evidence changes, by the detail that shows them.
var changeKinds = []struct{ change, detail string }{
	{"certificate", "cert.sha256"},
	{"dns_answer", "addresses"},
	{"leader", "leader"},
	{"leader", "controller"},
	{"role", "role"},
	{"pop", "header.x-amz-cf-pop"},
}

// Change kinds, for the counter's label.
const changeChain = "chain"

// pathHistory is what is kept of a path across walks and reloads: its
// last walks, the evidence changes between them, the changes counted per
// hop, and its chain's series. It is keyed by path id, so a reload that
// changes the path keeps it.
type pathHistory struct {
	walks  []PathStatus // oldest first, at most the exporter's history
	events []Event      // oldest first, at most maxEvents
	// changes count evidence changes per hop and kind; labels rendered
	// once.
	changes []changeCount
	// chainLbl is the chain info series' labels, rendered when the chain
	// changes; nil on a path without an entry.
	chainLbl      []byte
	chainMismatch bool
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

// record adds a walk, noting what changed since the previous one.
func (h *pathHistory) record(st PathStatus, keep int) {
	if n := len(h.walks); n > 0 {
		prev := &h.walks[n-1]
		when := time.Now()
		if st.LastWalk != nil {
			when = *st.LastWalk
		}
		for i := range st.Hops {
			if i >= len(prev.Hops) || prev.Hops[i].Name != st.Hops[i].Name {
				continue
			}
			for _, k := range changeKinds {
				from, to := prev.Hops[i].Details[k.detail], st.Hops[i].Details[k.detail]
				// A hop that failed before showing it changed nothing.
				if from != "" && to != "" && from != to {
					h.event(Event{Time: when, Hop: st.Hops[i].Name, Change: k.change, From: from, To: to}, st)
				}
			}
		}
		if a, b := prev.Chain, st.Chain; a != nil && b != nil && a.Verdict != chain.Unknown && b.Verdict != chain.Unknown &&
			chain.String(a.Observed) != chain.String(b.Observed) {
			h.event(Event{Time: when, Hop: b.Hop, Change: changeChain, From: chain.String(a.Observed), To: chain.String(b.Observed)}, st)
		}
	}
	h.walks = append(h.walks, st)
	if over := len(h.walks) - keep; over > 0 {
		h.walks = append(h.walks[:0:0], h.walks[over:]...)
	}
	if c := st.Chain; c != nil {
		h.chainMismatch = c.Verdict == chain.Mismatch
		h.chainLbl = renderText(h.chainLbl[:0:0], chainLabelNames, []string{chain.String(c.Expected), chain.String(c.Observed), st.ID, st.Vantage, c.Verdict})
	}
}

func (h *pathHistory) event(ev Event, st PathStatus) {
	h.events = append(h.events, ev)
	if over := len(h.events) - maxEvents; over > 0 {
		h.events = append(h.events[:0:0], h.events[over:]...)
	}
	for i := range h.changes {
		if c := &h.changes[i]; c.hop == ev.Hop && c.change == ev.Change {
			c.n++
			return
		}
	}
	h.changes = append(h.changes, changeCount{hop: ev.Hop, change: ev.Change, n: 1,
		lbl: renderText(nil, changeLabelNames, []string{ev.Change, ev.Hop, st.ID, st.Vantage})})
}

// PathHistory is one path's record as /api/v1/paths/{id} serves it.
type PathHistory struct {
	Status PathStatus `json:"status"`
	// Walks are the last walks, newest first, each with its hops'
	// evidence.
	Walks  []PathStatus `json:"walks"`
	Events []Event      `json:"events"`
	// Keep is how many walks are kept per path.
	Keep int `json:"keep"`
}

// History returns a path's last walks and evidence changes, newest
// first; ok is false for an unknown path.
func (e *Exporter) History(id string) (PathHistory, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	ps, ok := e.paths[id]
	if !ok {
		return PathHistory{}, false
	}
	out := PathHistory{Status: ps.status, Walks: []PathStatus{}, Events: []Event{}, Keep: e.keep}
	if h := e.history[id]; h != nil {
		for i := len(h.walks) - 1; i >= 0; i-- {
			out.Walks = append(out.Walks, h.walks[i])
		}
		for i := len(h.events) - 1; i >= 0; i-- {
			out.Events = append(out.Events, h.events[i])
		}
	}
	return out, true
}

// SetHistory sets how many walks of each path are kept (at least 1).
func (e *Exporter) SetHistory(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keep = max(n, 1)
	for _, h := range e.history {
		if over := len(h.walks) - e.keep; over > 0 {
			h.walks = append(h.walks[:0:0], h.walks[over:]...)
		}
	}
}

// recent is each hop's latency over the kept walks, oldest first (-1
// where the hop did not answer), for the hop health page's sparklines.
func (h *pathHistory) recent(hops int) [][]float64 {
	if h == nil {
		return nil
	}
	out := make([][]float64, hops)
	for _, w := range h.walks {
		for i := range out {
			v := -1.0
			if i < len(w.Hops) && (w.Hops[i].Verdict == VerdictOK || w.Hops[i].Verdict == VerdictFailed) {
				v = w.Hops[i].LatencyMS
			}
			out[i] = append(out[i], v)
		}
	}
	return out
}

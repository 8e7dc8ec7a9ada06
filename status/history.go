package status

import (
	"slices"
	"time"

	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/hop"
)

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

// changeChain is the change kind of a chain that showed other
// components than the walk before.
const changeChain = "chain"

// pathHistory is what is kept of a path across walks and reloads: its
// last walks and the evidence changes between them. It is keyed by path
// id, so a reload that changes the path keeps it.
type pathHistory struct {
	ring []walkRecord // the last walks, a ring of at most keep
	next int          // where the next walk goes once the ring is full
	last *walkRecord  // the newest walk
	// events are the last evidence changes, oldest first.
	events []Event
}

// walkRecord is one kept walk, compact: a hop's evidence is shared with
// the walk before when it is the same but for the ids that change on
// every request (trace id, CloudFront's request id), which are kept on
// their own. Measured at 1,000 hops, keeping each walk's status whole
// cost 9 MiB of the prober's memory.
//
// At 10,000 one-hop paths and 20 walks each the records are 400,000
// values, so their fields are small: the time in Unix nanoseconds, the
// verdicts a byte.
type walkRecord struct {
	at         int64 // Unix nanoseconds
	durationMS float64
	firstFail  string
	chain      *chain.Result
	hops       []hopRecord
	verdict    verdictCode
}

type hopRecord struct {
	name, err string
	latencyMS float64
	evidence  map[string]string // shared, never changed
	volatile  [len(volatileKeys)]string
	verdict   verdictCode
	first     bool
}

// verdictCode is a verdict as the history keeps it.
type verdictCode uint8

const (
	codePending verdictCode = iota
	codeOK
	codeFailed
	codeSkipped
	codeNotProbed
	codeBypassed
)

var verdictNames = [...]string{codePending: VerdictPending, codeOK: VerdictOK, codeFailed: VerdictFailed, codeSkipped: VerdictSkipped,
	codeNotProbed: VerdictNotProbed, codeBypassed: VerdictBypassed}

func codeOf(verdict string) verdictCode {
	if i := slices.Index(verdictNames[:], verdict); i >= 0 {
		return verdictCode(i)
	}
	return codePending // not a verdict a walk gives
}

func (c verdictCode) String() string { return verdictNames[c] }

// volatileKeys are evidence that differs on every request.
var volatileKeys = [...]string{hop.TraceIDDetail, hop.HeaderDetail("X-Amz-Cf-Id"), hop.HeaderDetail("X-Request-Id")}

func isVolatile(k string) bool { return slices.Contains(volatileKeys[:], k) }

// sameEvidence says whether two hops showed the same, volatile keys
// apart.
func sameEvidence(a, b map[string]string) bool {
	n := 0
	for k, v := range a {
		if isVolatile(k) {
			continue
		}
		n++
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	for k := range b {
		if !isVolatile(k) {
			n--
		}
	}
	return n == 0
}

// record adds a walk and returns what changed since the previous one.
func (h *pathHistory) record(st PathStatus, keep int) []Event {
	when := time.Now()
	if st.LastWalk != nil {
		when = *st.LastWalk
	}
	prev := h.last
	var changed []Event
	w := walkRecord{at: when.UnixNano(), verdict: codeOf(st.Verdict), durationMS: st.DurationMS, firstFail: st.FirstFailingHop, chain: st.Chain,
		hops: make([]hopRecord, len(st.Hops))}
	for i, hs := range st.Hops {
		r := hopRecord{name: hs.Name, verdict: codeOf(hs.Verdict), err: hs.Error, latencyMS: hs.LatencyMS, first: hs.FirstFail, evidence: hs.Details}
		for k, key := range volatileKeys {
			r.volatile[k] = hs.Details[key]
		}
		if prev != nil && i < len(prev.hops) && prev.hops[i].name == hs.Name {
			p := &prev.hops[i]
			// The changes the kind's registry entry names.
			for _, k := range hop.ChangesOf(hop.Kind(hs.Kind)) {
				from, to := p.evidence[k.Detail], hs.Details[k.Detail]
				// A hop that failed before showing it changed nothing.
				if from != "" && to != "" && from != to {
					changed = append(changed, Event{Time: when, Hop: hs.Name, Change: k.Name, From: from, To: to})
				}
			}
			if sameEvidence(p.evidence, hs.Details) {
				r.evidence = p.evidence
			}
			if r.err == p.err {
				// The same text: keep one copy of it, not one per walk.
				r.err = p.err
			}
		}
		w.hops[i] = r
	}
	if prev != nil {
		if a, b := prev.chain, st.Chain; a != nil && b != nil && a.Verdict != chain.Unknown && b.Verdict != chain.Unknown &&
			chain.String(a.Observed) != chain.String(b.Observed) {
			changed = append(changed, Event{Time: when, Hop: b.Hop, Change: changeChain, From: chain.String(a.Observed), To: chain.String(b.Observed)})
		}
	}
	h.push(w, keep)
	h.events = append(h.events, changed...)
	if over := len(h.events) - maxEvents; over > 0 {
		h.events = append(h.events[:0:0], h.events[over:]...)
	}
	return changed
}

// push adds a walk to the ring of at most keep.
func (h *pathHistory) push(w walkRecord, keep int) {
	if len(h.ring) < keep {
		if len(h.ring) == cap(h.ring) {
			// Grown by hand up to exactly keep: append's doubling (and
			// slices.Grow's, which appends) left the 20 kept walks in
			// room for 32.
			ring := make([]walkRecord, len(h.ring), min(keep, max(4, 2*cap(h.ring))))
			copy(ring, h.ring)
			h.ring = ring
		}
		h.ring = append(h.ring, w)
		h.last = &h.ring[len(h.ring)-1]
		return
	}
	h.ring[h.next] = w
	h.last = &h.ring[h.next]
	h.next = (h.next + 1) % len(h.ring)
}

// walks returns the kept walks, newest first.
func (h *pathHistory) walks() []*walkRecord {
	out := make([]*walkRecord, 0, len(h.ring))
	// Oldest is at next once the ring has wrapped (next is 0 before).
	for i := len(h.ring) - 1; i >= 0; i-- {
		out = append(out, &h.ring[(h.next+i)%len(h.ring)])
	}
	return out
}

// resize keeps the newest keep walks.
func (h *pathHistory) resize(keep int) {
	ws := h.walks()
	if len(ws) > keep {
		ws = ws[:keep]
	}
	ring := make([]walkRecord, 0, keep)
	for i := len(ws) - 1; i >= 0; i-- {
		ring = append(ring, *ws[i])
	}
	h.ring, h.next = ring, 0
	h.last = nil
	if len(ring) > 0 {
		h.last = &h.ring[len(ring)-1]
	}
}

// status rebuilds a kept walk as the JSON shows it; template is the
// path's current status, which names each hop's kind and target.
func (w *walkRecord) status(template PathStatus) PathStatus {
	st := PathStatus{ID: template.ID, Kind: template.Kind, Vantage: template.Vantage, Namespace: template.Namespace, Service: template.Service,
		Verdict: w.verdict.String(), FirstFailingHop: w.firstFail, DurationMS: w.durationMS, Chain: w.chain}
	at := time.Unix(0, w.at)
	st.LastWalk = &at
	for i, r := range w.hops {
		hs := HopStatus{Name: r.name, Verdict: r.verdict.String(), Error: r.err, LatencyMS: r.latencyMS, FirstFail: r.first}
		if i < len(template.Hops) && template.Hops[i].Name == r.name {
			hs.Kind, hs.Target = template.Hops[i].Kind, template.Hops[i].Target
		}
		if len(r.evidence) > 0 || r.volatile != [len(volatileKeys)]string{} {
			hs.Details = make(map[string]string, len(r.evidence)+len(volatileKeys))
			for k, v := range r.evidence {
				if !isVolatile(k) {
					hs.Details[k] = v
				}
			}
			for k, key := range volatileKeys {
				if r.volatile[k] != "" {
					hs.Details[key] = r.volatile[k]
				}
			}
		}
		st.Hops = append(st.Hops, hs)
	}
	return st
}

// recent is each hop's latency over the kept walks, oldest first (-1
// where the hop did not answer), for the hop health page's sparklines.
func (h *pathHistory) recent(hops int) [][]float64 {
	if h == nil {
		return nil
	}
	out := make([][]float64, hops)
	ws := h.walks()
	for k := len(ws) - 1; k >= 0; k-- {
		w := ws[k]
		for i := range out {
			v := -1.0
			if i < len(w.hops) && (w.hops[i].verdict == codeOK || w.hops[i].verdict == codeFailed) {
				v = w.hops[i].latencyMS
			}
			out[i] = append(out[i], v)
		}
	}
	return out
}

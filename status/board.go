package status

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Board is every path's last walk, its kept history and the evidence
// changes between walks: what the pages, the JSON API and the health
// endpoints read. The runner feeds it once per walk (Observe), and hands
// what it made of the walk on to the exporter.
type Board struct {
	// progress is when a walk last finished (unix nanoseconds); quiet is
	// how long without one means the scheduler is wedged (0: never).
	progress atomic.Int64
	quiet    atomic.Int64

	mu     sync.RWMutex
	stalls int
	order  []string
	paths  map[string]*entry
	walked map[string]bool
	ready  bool // every path was walked once; latched
	// history keeps each path's last walks and evidence changes, by id.
	history map[string]*pathHistory
	keep    int
	drift   []targets.DriftItem
}

// entry is one path's place on the board.
type entry struct {
	path *targets.Path // the running version; walks of any other are stale
	// described names each hop's target, once per path rather than on
	// every walk (describing was 2 % of the CPU at 10,000 hops); it is
	// replaced, never changed, so a walk may read it outside the lock.
	described []string
	status    PathStatus
}

// DefaultStallIntervals is how many of the shortest path interval may
// pass without a finished walk before /healthz fails.
const DefaultStallIntervals = 5

// NewBoard lists paths as pending.
func NewBoard(paths []*targets.Path) *Board {
	b := &Board{paths: map[string]*entry{}, walked: map[string]bool{}, history: map[string]*pathHistory{},
		keep: config.DefaultHistory, stalls: DefaultStallIntervals}
	b.progress.Store(time.Now().UnixNano())
	b.SetPaths(paths)
	return b
}

// SetPaths makes paths the listed set, as soon as it changes: a path
// that is new, or whose hops changed, is pending until its next walk (an
// unchanged hop keeps its last verdict); a path that is gone leaves the
// board and its history with it; an unchanged path (the same
// *targets.Path, targets.Reuse) keeps its entry untouched.
func (b *Board) SetPaths(paths []*targets.Path) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := make(map[string]*entry, len(paths))
	order := make([]string, 0, len(paths))
	for _, p := range paths {
		order = append(order, p.ID)
		if old, ok := b.paths[p.ID]; ok && old.path == p {
			next[p.ID] = old // unchanged: its last walk stands as it is
			continue
		}
		described := describe(p)
		e := &entry{path: p, described: described, status: pendingWith(p, described)}
		if old, ok := b.paths[p.ID]; ok && b.walked[p.ID] {
			e.status = carry(e.status, old.status)
		}
		next[p.ID] = e
	}
	for id := range b.walked {
		if _, keep := next[id]; !keep {
			delete(b.walked, id)
		}
	}
	for id := range b.history {
		if _, keep := next[id]; !keep {
			delete(b.history, id)
		}
	}
	b.paths, b.order = next, order
	b.setQuiet()
}

// carry keeps what the last walk said of the hops a changed path still
// has (same name and kind); the path's verdict too, unless the hop that
// broke it is gone (then it is pending until the next walk). A pod that
// joins or leaves a Service changes every path through it, and the other
// hops stay as they were.
func carry(st, old PathStatus) PathStatus {
	if samePlan(st, old) {
		old.Hops = slices.Clone(old.Hops)
		for i := range old.Hops {
			old.Hops[i].Target = st.Hops[i].Target // a target may have moved
		}
		return old
	}
	byName := map[[2]string]HopStatus{}
	for _, h := range old.Hops {
		byName[[2]string{h.Name, h.Kind}] = h
	}
	for i, h := range st.Hops {
		if o, ok := byName[[2]string{h.Name, h.Kind}]; ok && h.Verdict != VerdictSkipped {
			o.Target, o.Recent = h.Target, nil
			st.Hops[i] = o
		}
	}
	if old.FirstFailingHop != "" && !slices.ContainsFunc(st.Hops, func(h HopStatus) bool { return h.Name == old.FirstFailingHop }) {
		for i := range st.Hops {
			st.Hops[i].FirstFail = false
		}
		return st
	}
	st.Verdict, st.FirstFailingHop, st.LastWalk, st.DurationMS, st.Chain, st.Bypassed =
		old.Verdict, old.FirstFailingHop, old.LastWalk, old.DurationMS, old.Chain, old.Bypassed
	return st
}

// samePlan says whether two statuses list the same hops in order.
func samePlan(a, b PathStatus) bool {
	return slices.EqualFunc(a.Hops, b.Hops, func(x, y HopStatus) bool { return x.Name == y.Name && x.Kind == y.Kind })
}

// SetHistory sets how many walks of each path are kept (at least 1).
func (b *Board) SetHistory(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if max(n, 1) == b.keep {
		return
	}
	b.keep = max(n, 1)
	for _, h := range b.history {
		h.resize(b.keep)
	}
}

// SetDrift keeps the last drift check's differences for the map (at most
// MaxDriftKept).
func (b *Board) SetDrift(items []targets.DriftItem) {
	if len(items) > MaxDriftKept {
		items = items[:MaxDriftKept]
	}
	b.mu.Lock()
	b.drift = items
	b.mu.Unlock()
}

// MaxDriftKept is how many differences the map and the JSON keep.
const MaxDriftKept = 1000

// Walk is what a walk meant: the path's new status, and what its hops
// showed differently from the walk before.
type Walk struct {
	Status  PathStatus
	Changes []Event
}

// Observe records one walk and returns what it meant; ok is false for a
// walk of a path that a change since removed or replaced, which counts
// for nothing.
func (b *Board) Observe(r scheduler.PathResult) (w Walk, ok bool) {
	b.progress.Store(time.Now().UnixNano())
	current := func() *entry {
		if e := b.paths[r.Path.ID]; e != nil && e.path == r.Path {
			return e
		}
		return nil
	}
	b.mu.RLock()
	e := current()
	var described []string
	if e != nil {
		described = e.described
	}
	b.mu.RUnlock()
	if e == nil {
		return Walk{}, false
	}
	// Built outside the lock, which readers hold.
	st := statusFrom(r, described)
	b.mu.Lock()
	defer b.mu.Unlock()
	if e = current(); e == nil {
		return Walk{}, false
	}
	// A bypass is a change of state the log tells, as a break is.
	if was := e.status.Verdict; was != st.Verdict && (was == VerdictBypassed || st.Verdict == VerdictBypassed) && st.Chain != nil {
		if st.Verdict == VerdictBypassed {
			slog.Warn("gateway bypassed: the answer skipped a documented component", "path", st.ID, "skipped", strings.Join(st.Bypassed, ","),
				"expected", chain.String(st.Chain.Expected), "observed", chain.String(st.Chain.Observed))
		} else if st.Verdict == VerdictOK {
			slog.Info("gateway passed again", "path", st.ID, "observed", chain.String(st.Chain.Observed))
		}
	}
	e.status = st
	h := b.history[r.Path.ID]
	if h == nil {
		h = &pathHistory{}
		b.history[r.Path.ID] = h
	}
	changes := h.record(st, b.keep)
	b.walked[r.Path.ID] = true
	if len(b.walked) >= len(b.order) {
		b.ready = true
	}
	return Walk{Status: st, Changes: changes}, true
}

// Statuses returns every path's last status in topology order.
func (b *Board) Statuses() []PathStatus {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]PathStatus, 0, len(b.order))
	for _, id := range b.order {
		st := b.paths[id].status
		if rec := b.history[id].recent(len(st.Hops)); rec != nil {
			st.Hops = slices.Clone(st.Hops)
			for i := range st.Hops {
				st.Hops[i].Recent = rec[i]
			}
		}
		out = append(out, st)
	}
	return out
}

// Snapshot is what the map draws: the paths in topology order, their
// last statuses, and the last drift check's differences.
type Snapshot struct {
	Paths    []*targets.Path
	Statuses []PathStatus
	Drift    []targets.DriftItem
}

// Snapshot copies the board for the map.
func (b *Board) Snapshot() Snapshot {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s := Snapshot{Paths: make([]*targets.Path, 0, len(b.order)), Statuses: make([]PathStatus, 0, len(b.order)), Drift: b.drift}
	for _, id := range b.order {
		e := b.paths[id]
		s.Paths = append(s.Paths, e.path)
		s.Statuses = append(s.Statuses, e.status)
	}
	return s
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
func (b *Board) History(id string) (PathHistory, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	e, ok := b.paths[id]
	if !ok {
		return PathHistory{}, false
	}
	out := PathHistory{Status: e.status, Walks: []PathStatus{}, Events: []Event{}, Keep: b.keep}
	if h := b.history[id]; h != nil {
		for _, w := range h.walks() {
			out.Walks = append(out.Walks, w.status(e.status))
		}
		for i := len(h.events) - 1; i >= 0; i-- {
			out.Events = append(out.Events, h.events[i])
		}
	}
	return out, true
}

// Ready reports whether every path has been walked at least once since
// start. It stays true across reloads and discovery changes: a prober
// whose new paths are still pending is still worth scraping, and flapping
// readiness during a rollout would hide it from Prometheus.
func (b *Board) Ready() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.ready || len(b.walked) >= len(b.order)
}

// SetStallIntervals sets after how many of the shortest interval without
// a finished walk Live fails (0 turns the check off).
func (b *Board) SetStallIntervals(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stalls = n
	b.setQuiet()
}

// setQuiet derives the quiet limit from the paths; b.mu is held.
func (b *Board) setQuiet() {
	var shortest time.Duration
	for _, e := range b.paths {
		if iv := e.path.Interval; iv > 0 && (shortest == 0 || iv < shortest) {
			shortest = iv
		}
	}
	b.quiet.Store(int64(shortest) * int64(b.stalls))
}

// Live says whether the prober makes progress: liveness means walks,
// not only an HTTP server that answers. A scheduler that finished no
// walk for the stall limit is wedged, and the kubelet should restart it.
func (b *Board) Live(now time.Time) error {
	quiet := time.Duration(b.quiet.Load())
	if quiet <= 0 {
		return nil
	}
	if since := now.Sub(time.Unix(0, b.progress.Load())); since > quiet {
		return fmt.Errorf("no walk finished for %s (the limit is %s, --stall-intervals times the shortest interval): the scheduler is wedged", since.Round(time.Second), quiet)
	}
	return nil
}

// Package scheduler walks paths: once for the CLI (Walker.Walk) or at
// every path's interval for `probe serve` (Scheduler.Run). Start times
// are spread over the interval, probes share a concurrency cap, and a hop
// that several paths share is probed once per interval.
package scheduler

import (
	"container/heap"
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/targets"
)

// HopResult is the outcome of one hop in one walk.
type HopResult struct {
	hop.Result
	// Skipped is set when the hop is not reachable from this vantage.
	Skipped bool
	// Shared is set when the result came from another path's probe of the
	// same hop in this interval.
	Shared bool
	// NotProbed is set when no probe slot came free in time: the hop's
	// state is unknown, not failed.
	NotProbed bool
	// Attempts is how many times the hop was probed in this walk: 1, or
	// more when a failure was probed again (the path's Retries). A hop
	// that succeeded after more than one attempt recovered: it is not a
	// failure, and FirstError says what the first attempt saw.
	Attempts   int
	FirstError string
}

// Recovered reports whether the hop failed and then passed on a retry.
func (h *HopResult) Recovered() bool { return h.Success && h.Attempts > 1 }

// Hop verdicts, as the status, the metrics and the traces name them.
const (
	VerdictOK      = "ok"
	VerdictFailed  = "failed"
	VerdictSkipped = "skipped"
	// VerdictNotProbed: no probe slot came free in time; unknown, not failed.
	VerdictNotProbed = "not_probed"
)

// Verdict names the hop's outcome.
func (h *HopResult) Verdict() string {
	switch {
	case h.Skipped:
		return VerdictSkipped
	case h.NotProbed:
		return VerdictNotProbed
	case h.Success:
		return VerdictOK
	}
	return VerdictFailed
}

// PathResult is the outcome of one walk of a path.
type PathResult struct {
	Path *targets.Path
	Hops []HopResult
	// Success is true when no probed hop failed.
	Success bool
	// FirstFailing is the position of the hop that explains the failure,
	// or -1 when the path is healthy.
	FirstFailing int
	Start        time.Time
	Duration     time.Duration
	// Lag is how late the walk started against its plan.
	Lag time.Duration
}

// Failed reports whether hop i was probed and failed.
func (r *PathResult) Failed(i int) bool {
	h := &r.Hops[i]
	return !h.Skipped && !h.NotProbed && !h.Success
}

// Prober probes one hop within timeout and returns what it saw, its
// text scrubbed of secrets and bounded: probes.Run. The walker is handed
// it, so that scheduling links no protocol client.
type Prober func(ctx context.Context, kind hop.Kind, t *hop.Target, timeout time.Duration) hop.Result

// Walker probes the hops of paths under one concurrency cap, shared
// fairly: one target (an address, a data store) holds at most a share of
// the slots, so that a blackholed peer cannot starve unrelated paths.
type Walker struct {
	run     Prober
	tr      atomic.Pointer[tracerRef]
	mu      sync.Mutex
	sem     chan struct{}
	perPeer int
	// peers holds the semaphore of each peer with a probe waiting or in
	// flight; the last one out removes it, so peers that are gone (pods
	// replaced under discovery) leave nothing behind.
	peers map[string]*peerSlots
	cache hopCache
}

type peerSlots struct {
	sem   chan struct{}
	users int
}

// NewWalker caps the number of probes in flight at concurrency.
func NewWalker(concurrency int, run Prober) *Walker {
	w := &Walker{run: run, cache: hopCache{m: map[string]*cacheEntry{}}}
	w.Resize(concurrency)
	return w
}

// Resize changes the cap, for a reload that changed
// defaults.concurrency. Probes in flight finish under the old cap.
func (w *Walker) Resize(concurrency int) {
	concurrency = max(concurrency, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sem != nil && cap(w.sem) == concurrency {
		return
	}
	w.sem = make(chan struct{}, concurrency)
	// A quarter of the slots per peer, at least two: enough for the
	// hops of one component, too few to take every slot.
	w.perPeer = max(2, concurrency/4)
	w.peers = map[string]*peerSlots{}
}

// slots returns the global semaphore and the one of the hop's peer;
// done must be called when the probe no longer waits or runs.
func (w *Walker) slots(peer string) (global, own chan struct{}, done func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ps, ok := w.peers[peer]
	if !ok {
		ps = &peerSlots{sem: make(chan struct{}, w.perPeer)}
		w.peers[peer] = ps
	}
	ps.users++
	peers := w.peers
	return w.sem, ps.sem, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if ps.users--; ps.users == 0 && peers[peer] == ps {
			delete(peers, peer)
		}
	}
}

// Walk probes every hop of p concurrently and names the first failing
// hop. Shared hops probed within the path's interval are reused.
func (w *Walker) Walk(ctx context.Context, p *targets.Path) PathResult {
	res := PathResult{Path: p, Hops: make([]HopResult, len(p.Hops)), Start: time.Now()}
	ctx, walk := w.tracer().Start(ctx, "walk "+p.ID, trace.WithTimestamp(res.Start), trace.WithAttributes(
		attribute.String("hopprobe.path", p.ID), attribute.String("hopprobe.path_kind", p.Kind), attribute.String("hopprobe.vantage", p.Vantage),
		attribute.String("hopprobe.namespace", p.Namespace), attribute.String("hopprobe.service", p.Service)))
	defer func() {
		walk.SetAttributes(attribute.Bool("hopprobe.success", res.Success))
		if res.FirstFailing >= 0 {
			walk.SetAttributes(attribute.String("hopprobe.first_failing_hop", p.Hops[res.FirstFailing].Name))
			walk.SetStatus(codes.Error, "first failing hop: "+p.Hops[res.FirstFailing].Name)
		}
		walk.End(trace.WithTimestamp(res.Start.Add(res.Duration)))
	}()
	probeHop := func(i int) {
		h := &p.Hops[i]
		// The hop's span is the parent its probe request names in its
		// traceparent.
		hctx, span := w.tracer().Start(ctx, "hop "+h.Name, trace.WithSpanKind(trace.SpanKindClient))
		// Reuse is bounded a little below the interval so that each tick
		// of the path probes afresh.
		r, shared := w.cache.do(hctx, h.CacheKey(), p.Interval*9/10, p.BrokenInterval*9/10, func() HopResult {
			return w.confirm(hctx, h, p, res.Start.Add(p.Interval))
		})
		r.Shared = shared
		res.Hops[i] = r
		endHopSpan(span, h, r)
	}
	var wg sync.WaitGroup
	last := -1
	for i := range p.Hops {
		if h := &p.Hops[i]; h.Skip != "" {
			res.Hops[i] = HopResult{Skipped: true, Result: hop.Result{Error: h.Skip, Start: res.Start}}
			continue
		}
		if j := last; j >= 0 {
			wg.Go(func() { probeHop(j) })
		}
		last = i
	}
	// The last hop runs on the walk's own goroutine: most paths have
	// one hop, and a goroutine started per walk woke the runtime's other
	// thread for nothing.
	if last >= 0 {
		probeHop(last)
	}
	wg.Wait()
	res.Duration = time.Since(res.Start)
	res.FirstFailing = firstFailing(&res)
	res.Success = res.FirstFailing < 0
	return res
}

// SetTracer makes the walker trace each walk (nil: no traces; probe
// requests still carry fresh trace ids).
func (w *Walker) SetTracer(t trace.Tracer) {
	if t == nil {
		w.tr.Store(nil)
		return
	}
	w.tr.Store(&tracerRef{t})
}

type tracerRef struct{ t trace.Tracer }

func (w *Walker) tracer() trace.Tracer {
	if r := w.tr.Load(); r != nil {
		return r.t
	}
	return noopTracer
}

var noopTracer = noop.NewTracerProvider().Tracer("")

// endHopSpan records a hop's outcome and evidence on its span, and its
// phases as spans under it, laid end to end from the probe's start.
func endHopSpan(span trace.Span, h *targets.Hop, r HopResult) {
	if !span.IsRecording() {
		span.End()
		return
	}
	verdict := r.Verdict()
	attrs := []attribute.KeyValue{
		attribute.String("hopprobe.hop", h.Name), attribute.String("hopprobe.kind", string(h.Kind)),
		attribute.String("hopprobe.component", h.Node), attribute.String("hopprobe.target", h.Describe()),
		attribute.String("hopprobe.verdict", verdict), attribute.Bool("hopprobe.shared", r.Shared),
	}
	// Details are scrubbed of secrets and bounded by the Prober.
	for k, v := range r.Details {
		attrs = append(attrs, attribute.String("hopprobe.evidence."+k, v))
	}
	span.SetAttributes(attrs...)
	if verdict == VerdictFailed {
		span.SetStatus(codes.Error, r.Error)
	}
	start := r.Start
	if start.IsZero() {
		start = time.Now()
	}
	at := start
	tracer, parent := span.TracerProvider().Tracer(""), trace.ContextWithSpan(context.Background(), span)
	for _, ph := range r.Phases {
		_, ps := tracer.Start(parent, ph.Name, trace.WithTimestamp(at))
		at = at.Add(ph.Duration)
		ps.End(trace.WithTimestamp(at))
	}
	span.End(trace.WithTimestamp(start.Add(r.Duration)))
}

// probe runs one hop once a slot of its peer and a global slot are
// free; when none comes free within the interval the hop is reported
// as not probed (its own state), never as failed.
func (w *Walker) probe(ctx context.Context, h *targets.Hop, wait time.Duration) HopResult {
	t := time.NewTimer(wait)
	defer t.Stop()
	global, own, done := w.slots(peerOf(h))
	defer done()
	for _, sem := range []chan struct{}{own, global} {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-ctx.Done():
			return notProbed("shutting down")
		case <-t.C:
			return notProbed(fmt.Sprintf("no probe slot came free within %s (%d in all, %d per peer)", wait, cap(global), cap(own)))
		}
	}
	return HopResult{Result: w.run(ctx, h.Kind, &h.Target, h.Timeout)}
}

// confirm probes a hop and, while it fails, probes it again up to the
// path's Retries times, RetrySpacing apart, each on fresh connections
// (every probe dials its own). A retry is made only where it can finish
// (spacing plus timeout) before deadline, the walk's next start, so a
// hop that hangs costs at most its interval. The first success ends it:
// a single lost packet or a refused connection during a restart is a
// recovery, not a failure.
func (w *Walker) confirm(ctx context.Context, h *targets.Hop, p *targets.Path, deadline time.Time) HopResult {
	r := w.probe(ctx, h, p.Interval)
	r.Attempts = 1
	if r.NotProbed {
		return r
	}
	first := r.Error
	for r.Attempts <= p.Retries && !r.Success && ctx.Err() == nil {
		if time.Now().Add(p.RetrySpacing + h.Timeout).After(deadline) {
			break
		}
		t := time.NewTimer(p.RetrySpacing)
		select {
		case <-ctx.Done():
			t.Stop()
			return r
		case <-t.C:
		}
		next := w.probe(ctx, h, p.Interval)
		if next.NotProbed {
			break // no slot now: the failure seen stands
		}
		next.Attempts = r.Attempts + 1
		r = next
	}
	if r.Attempts > 1 && first != r.Error {
		r.FirstError = first
	}
	return r
}

// notProbed is the result of a hop that was not probed, and why.
func notProbed(why string) HopResult {
	return HopResult{NotProbed: true, Result: hop.Result{Start: time.Now(), Error: "not probed: " + why}}
}

// peerOf names what a hop talks to, for the per-peer share of slots.
func peerOf(h *targets.Hop) string {
	switch {
	case h.Target.Store != nil:
		return "store/" + h.Target.Store.Name
	case h.Target.Address != "":
		return h.Target.Address
	}
	return "resolver/" + h.Target.Resolver
}

// firstFailing finds the first failed hop in chain order, then follows
// its dependencies down while they failed too: when both the edge and the
// ALB behind it fail, the ALB is the one to page about.
func firstFailing(r *PathResult) int {
	for i := range r.Hops {
		if !r.Failed(i) {
			continue
		}
		for {
			next := -1
			for _, d := range r.Path.Hops[i].DependsOn {
				if r.Failed(d) {
					next = d
					break
				}
			}
			if next < 0 {
				return i
			}
			i = next
		}
	}
	return -1
}

// hopCache makes concurrent and repeated probes of one hop share a
// result. Entries older than their reuse window are swept out as the
// map grows, so hops that are gone (a pod replaced under discovery) do
// not stay in memory.
type hopCache struct {
	mu      sync.Mutex
	m       map[string]*cacheEntry
	sweepAt int
}

type cacheEntry struct {
	done chan struct{}
	res  HopResult
	at   time.Time
	ttl  time.Duration
}

// minSweep is the map size below which the cache is never swept.
const minSweep = 1024

// do runs the hop, or returns a result of it younger than ttl (failTTL
// for a failure, so that the faster walks of a broken path probe it
// again; a healthy hop is shared as long as ever).
func (c *hopCache) do(ctx context.Context, key string, ttl, failTTL time.Duration, run func() HopResult) (HopResult, bool) {
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		select {
		case <-e.done:
			reuse := ttl
			if !e.res.Success && failTTL > 0 {
				reuse = min(ttl, failTTL)
			}
			if time.Since(e.at) < reuse {
				c.mu.Unlock()
				return e.res, true
			}
		default:
			c.mu.Unlock()
			select {
			case <-e.done:
				return e.res, true
			case <-ctx.Done():
				return notProbed("shutting down"), false
			}
		}
	}
	e := &cacheEntry{done: make(chan struct{}), at: time.Now(), ttl: ttl}
	c.m[key] = e
	if len(c.m) > max(c.sweepAt, minSweep) {
		c.sweep()
	}
	c.mu.Unlock()
	e.res = run()
	close(e.done)
	return e.res, false
}

// sweep drops finished entries past their reuse window; c.mu is held.
// The next sweep waits until the map has doubled, which keeps the cost
// amortised constant per probe.
func (c *hopCache) sweep() {
	now := time.Now()
	for k, e := range c.m {
		select {
		case <-e.done:
			if now.Sub(e.at) >= e.ttl {
				delete(c.m, k)
			}
		default:
		}
	}
	c.sweepAt = 2 * len(c.m)
}

// Clock is what the scheduler reads time from. Wall places the grid
// (so that restarts, reloads and replicas share a rhythm); Elapsed, a
// monotonic reading, runs it, so that a step of the wall clock (NTP, a
// VM resumed) never stops the walks or makes them burst to catch up.
type Clock interface {
	Wall() time.Time
	Elapsed() time.Duration
}

type systemClock struct{ start time.Time }

func (c systemClock) Wall() time.Time        { return time.Now().Round(0) }
func (c systemClock) Elapsed() time.Duration { return time.Since(c.start) }

// Scheduler walks every path at its interval until its context ends.
type Scheduler struct {
	Walker *Walker
	// Paths are the paths walked from the start; Update changes them
	// while Run runs.
	Paths    []*targets.Path
	OnResult func(PathResult)
	// Clock is the system clock when nil.
	Clock Clock
	// Phase places this replica in every path's interval; nil is phase 0,
	// the grid every replica shares.
	Phase *Phase

	mu      sync.Mutex
	next    []*targets.Path // the latest Update, not yet taken by Run
	updated chan struct{}   // a token when next waits
}

// Update makes paths the walked set, in place and by key, without
// waiting for anything: a path that is the same *targets.Path as one
// walked keeps its place in the schedule and its walk in flight (hand
// unchanged paths over as the same pointers: targets.Reuse); a path that
// is gone, or replaced by another of its ID, has its walk in flight
// cancelled, and that walk reports nothing; a new path, or the new
// version of a changed one, takes its place on its grid. Before Run it
// sets the paths Run starts with.
func (s *Scheduler) Update(paths []*targets.Path) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = paths
	select {
	case s.updatedLocked() <- struct{}{}:
	default:
	}
}

// updates is the channel Update signals on.
func (s *Scheduler) updates() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updatedLocked()
}

// updatedLocked is the update channel, made on first use; s.mu is held.
func (s *Scheduler) updatedLocked() chan struct{} {
	if s.updated == nil {
		s.updated = make(chan struct{}, 1)
	}
	return s.updated
}

// taken returns the paths of the latest Update, nil when none waits.
func (s *Scheduler) taken() []*targets.Path {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.next
	s.next = nil
	return next
}

// Run blocks until ctx is done and every walk in flight has returned.
// One goroutine keeps every path's next start in a heap and starts each
// walk on its own goroutine when it is due: a sleeping path costs a heap
// entry, not a goroutine stack (10,000 paths would otherwise hold ~50 MiB
// of stacks).
func (s *Scheduler) Run(ctx context.Context) {
	clock := s.Clock
	if clock == nil {
		clock = systemClock{start: time.Now()}
	}
	l := &loop{s: s, ctx: ctx, clock: clock, broken: make(chan *slot, 64)}
	defer l.wg.Wait()
	paths := s.Paths
	if next := s.taken(); next != nil {
		paths = next
	}
	updated := s.updates()
	var rephased <-chan struct{}
	l.frac, rephased = s.Phase.get()
	l.q = make(startQueue, 0, len(paths))
	for _, p := range paths {
		l.place(p)
	}
	defer func() {
		for _, sl := range l.q {
			sl.cancel()
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Duration(math.MaxInt64)
		if l.q.Len() > 0 {
			wait = l.q[0].at - clock.Elapsed()
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-updated:
			if next := s.taken(); next != nil {
				l.update(next)
			}
		case <-rephased:
			l.frac, rephased = s.Phase.get()
			l.rephase()
		case sl := <-l.broken:
			l.soon(sl)
		case <-timer.C:
			l.startDue()
		}
		// The loop resets the timer (which drops a tick not yet read).
	}
}

// loop is one Run: the start queue and what runs it.
type loop struct {
	s     *Scheduler
	ctx   context.Context
	clock Clock
	q     startQueue
	frac  float64 // this replica's phase
	wg    sync.WaitGroup
	// A walk that found its path broken asks, through broken, for the
	// path's next start to come at its broken interval instead of the
	// next tick of its grid; once a walk passes, the grid takes over
	// again, so a healthy path is walked no more often than before.
	broken chan *slot
}

// place puts a path on its grid, with a context of its own that a later
// update cancels; a path without an interval is never walked.
func (l *loop) place(p *targets.Path) {
	if p.Interval <= 0 {
		return
	}
	wall, now := l.clock.Wall(), l.clock.Elapsed()
	at := now + firstDelay(wall, p.Interval, offset(p, l.frac))
	sctx, cancel := context.WithCancel(l.ctx)
	heap.Push(&l.q, &slot{path: p, at: at, grid: at, ctx: sctx, cancel: cancel})
}

// update makes next the walked paths, by key: the same *Path keeps its
// slot; every other slot leaves, its walk in flight cancelled.
func (l *loop) update(next []*targets.Path) {
	want := make(map[*targets.Path]bool, len(next))
	for _, p := range next {
		want[p] = true
	}
	kept := make(map[*targets.Path]bool, len(l.q))
	for i := 0; i < l.q.Len(); {
		if sl := l.q[i]; want[sl.path] {
			kept[sl.path] = true
			i++
		} else {
			sl.cancel()
			heap.Remove(&l.q, i)
			sl.index = -1
		}
	}
	for _, p := range next {
		if !kept[p] {
			l.place(p)
		}
	}
}

// rephase moves every path to its place on the grid at the new phase
// (another replica came or went). A start already due sooner keeps its
// time, so a change never delays a walk by more than it already was.
func (l *loop) rephase() {
	wall, now := l.clock.Wall(), l.clock.Elapsed()
	for _, sl := range l.q {
		sl.grid = now + firstDelay(wall, sl.path.Interval, offset(sl.path, l.frac))
		sl.at = min(sl.at, sl.grid)
	}
	heap.Init(&l.q)
}

// soon brings a broken path's next start to its broken interval.
func (l *loop) soon(sl *slot) {
	if sl.index < 0 {
		return // an update removed the path
	}
	if at := l.clock.Elapsed() + sl.path.BrokenInterval; at < sl.at {
		sl.at = at
		heap.Fix(&l.q, sl.index)
	}
}

// startDue starts the walk of every path that is due. A walk still
// running at its next tick skips that tick rather than overlapping
// itself or bursting to catch up later.
func (l *loop) startDue() {
	now := l.clock.Elapsed()
	for l.q.Len() > 0 && l.q[0].at <= now {
		sl := l.q[0]
		if sl.running.CompareAndSwap(false, true) {
			planned := sl.at
			l.wg.Go(func() { l.walk(sl, planned) })
		}
		// The next tick on the grid after now, in one step however long
		// the process was away. A start pulled forward for a broken path
		// leaves the grid where it was.
		if iv := sl.path.Interval; sl.grid <= now {
			sl.grid += (now-sl.grid)/iv*iv + iv
		}
		sl.at = sl.grid
		heap.Fix(&l.q, 0)
	}
}

// walk walks one path and reports it, unless the walk was stopped or an
// update removed or replaced the path meanwhile.
func (l *loop) walk(sl *slot, planned time.Duration) {
	defer sl.running.Store(false)
	lag := l.clock.Elapsed() - planned
	res := l.s.Walker.Walk(sl.ctx, sl.path)
	res.Lag = lag
	if ended(sl.ctx) {
		return
	}
	l.s.OnResult(res)
	if !res.Success && sl.path.BrokenInterval > 0 {
		select {
		case l.broken <- sl:
		case <-sl.ctx.Done():
		}
	}
}

// ended reports whether ctx is done or past its deadline: socket
// deadlines set from ctx fire a hair before ctx's own timer, so a walk
// cut by the deadline can return before ctx.Err says so, and its
// timeouts would read as the path's failure.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// slot is a path's place in the start queue.
type slot struct {
	path    *targets.Path
	at      time.Duration // the next start, on the clock's Elapsed scale
	grid    time.Duration // the next start on the path's own grid (interval and offset)
	index   int           // in the start queue; -1 once an update removed it
	running atomic.Bool
	// ctx is the path's walks' own: cancelled when an update removes or
	// replaces the path.
	ctx    context.Context
	cancel context.CancelFunc
}

// startQueue is a min-heap of slots by next start time.
type startQueue []*slot

func (q startQueue) Len() int           { return len(q) }
func (q startQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q startQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *startQueue) Push(x any) {
	sl := x.(*slot)
	sl.index = len(*q)
	*q = append(*q, sl)
}
func (q *startQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// firstDelay is how long from wall until the next instant on the path's
// own grid (every multiple of the interval since the zero time, plus the
// path's offset): in (0, interval].
func firstDelay(wall time.Time, interval, offset time.Duration) time.Duration {
	wall = wall.Round(0)
	d := offset - wall.Sub(wall.Truncate(interval))
	for d <= 0 {
		d += interval
	}
	return d
}

// offset is the path's place on its grid: its own spread plus this
// replica's phase.
func offset(p *targets.Path, frac float64) time.Duration {
	return (Offset(p.ID, p.Interval) + time.Duration(frac*float64(p.Interval))) % p.Interval
}

// Phase is this replica's share of an interval, in [0, 1): with n
// replicas at phases 0, 1/n, 2/n…, together they walk every path n
// times an interval, evenly spaced, where replicas on one grid would
// walk in lockstep. It is shared by every scheduler of a process, so a
// reload keeps it.
type Phase struct {
	mu      sync.Mutex
	frac    float64
	changed chan struct{}
}

// Set moves the replica to frac (taken modulo 1); a scheduler running
// moves every path's next start at once.
func (p *Phase) Set(frac float64) {
	frac -= math.Floor(frac)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changed != nil && frac == p.frac {
		return
	}
	p.frac = frac
	if p.changed != nil {
		close(p.changed)
	}
	p.changed = make(chan struct{})
}

// Get is the phase now.
func (p *Phase) Get() float64 {
	f, _ := p.get()
	return f
}

// get returns the phase and a channel closed when it changes; a nil
// Phase is 0 and never changes.
func (p *Phase) get() (float64, <-chan struct{}) {
	if p == nil {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.frac, p.changed
}

// Offset spreads paths over their interval, stable across restarts so
// that replicas and reloads keep the same rhythm.
func Offset(id string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(interval))
}

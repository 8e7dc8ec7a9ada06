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
	"sync"
	"sync/atomic"
	"time"

	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/targets"
)

// HopResult is the outcome of one hop in one walk.
type HopResult struct {
	probes.Result
	// Skipped is set when the hop is not reachable from this vantage.
	Skipped bool
	// Shared is set when the result came from another path's probe of the
	// same hop in this interval.
	Shared bool
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
func (r *PathResult) Failed(i int) bool { return !r.Hops[i].Skipped && !r.Hops[i].Success }

// Walker probes the hops of paths under one concurrency cap.
type Walker struct {
	sem   chan struct{}
	cache hopCache
}

// NewWalker caps the number of probes in flight at concurrency.
func NewWalker(concurrency int) *Walker {
	if concurrency < 1 {
		concurrency = 1
	}
	return &Walker{sem: make(chan struct{}, concurrency), cache: hopCache{m: map[string]*cacheEntry{}}}
}

// Walk probes every hop of p concurrently and names the first failing
// hop. Shared hops probed within the path's interval are reused.
func (w *Walker) Walk(ctx context.Context, p *targets.Path) PathResult {
	res := PathResult{Path: p, Hops: make([]HopResult, len(p.Hops)), Start: time.Now()}
	var wg sync.WaitGroup
	for i := range p.Hops {
		h := &p.Hops[i]
		if h.Skip != "" {
			res.Hops[i] = HopResult{Skipped: true, Result: probes.Result{Error: h.Skip, Start: res.Start}}
			continue
		}
		wg.Go(func() {
			// Reuse is bounded a little below the interval so that each
			// tick of the path probes afresh.
			r, shared := w.cache.do(ctx, h.Target.Key(h.Kind), p.Interval*9/10, func() probes.Result {
				return w.probe(ctx, h, p.Interval)
			})
			res.Hops[i] = HopResult{Result: r, Shared: shared}
		})
	}
	wg.Wait()
	res.Duration = time.Since(res.Start)
	res.FirstFailing = firstFailing(&res)
	res.Success = res.FirstFailing < 0
	return res
}

// probe runs one hop once a concurrency slot is free; a slot that does
// not free up within the interval counts as a lost probe.
func (w *Walker) probe(ctx context.Context, h *targets.Hop, wait time.Duration) probes.Result {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return probes.Result{Start: time.Now(), Error: "not probed: shutting down"}
	case <-t.C:
		return probes.Result{Start: time.Now(), Error: fmt.Sprintf("not probed: all %d probe slots stayed busy for %s", cap(w.sem), wait)}
	}
	defer func() { <-w.sem }()
	return probes.Run(ctx, h.Kind, &h.Target, h.Timeout)
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

// hopCache makes concurrent and repeated probes of one hop share a result.
type hopCache struct {
	mu sync.Mutex
	m  map[string]*cacheEntry
}

type cacheEntry struct {
	done chan struct{}
	res  probes.Result
	at   time.Time
}

func (c *hopCache) do(ctx context.Context, key string, ttl time.Duration, run func() probes.Result) (probes.Result, bool) {
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		select {
		case <-e.done:
			if time.Since(e.at) < ttl {
				c.mu.Unlock()
				return e.res, true
			}
		default:
			c.mu.Unlock()
			select {
			case <-e.done:
				return e.res, true
			case <-ctx.Done():
				return probes.Result{Start: time.Now(), Error: "not probed: shutting down"}, false
			}
		}
	}
	e := &cacheEntry{done: make(chan struct{}), at: time.Now()}
	c.m[key] = e
	c.mu.Unlock()
	e.res = run()
	close(e.done)
	return e.res, false
}

// Scheduler walks every path at its interval until its context ends.
type Scheduler struct {
	Walker   *Walker
	Paths    []*targets.Path
	OnResult func(PathResult)
}

// Run blocks until ctx is done and every walk in flight has returned.
// One goroutine keeps every path's next start in a heap and starts each
// walk on its own goroutine when it is due: a sleeping path costs a heap
// entry, not a goroutine stack (10,000 paths would otherwise hold ~50 MiB
// of stacks).
func (s *Scheduler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	q := make(startQueue, 0, len(s.Paths))
	now := time.Now()
	for _, p := range s.Paths {
		if p.Interval > 0 {
			q = append(q, &slot{path: p, at: firstStart(now, p.Interval, Offset(p.ID, p.Interval))})
		}
	}
	heap.Init(&q)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for q.Len() > 0 {
		timer.Reset(time.Until(q[0].at))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		for q.Len() > 0 && !q[0].at.After(now) {
			sl := q[0]
			// A walk still running at its next tick skips that tick rather
			// than overlapping itself or bursting to catch up later.
			if sl.running.CompareAndSwap(false, true) {
				planned := sl.at
				wg.Go(func() {
					defer sl.running.Store(false)
					res := s.Walker.Walk(ctx, sl.path)
					res.Lag = res.Start.Sub(planned)
					if ctx.Err() == nil {
						s.OnResult(res)
					}
				})
			}
			for !sl.at.After(now) {
				sl.at = sl.at.Add(sl.path.Interval)
			}
			heap.Fix(&q, 0)
		}
	}
	<-ctx.Done()
}

// slot is a path's place in the start queue.
type slot struct {
	path    *targets.Path
	at      time.Time
	running atomic.Bool
}

// startQueue is a min-heap of slots by next start time.
type startQueue []*slot

func (q startQueue) Len() int           { return len(q) }
func (q startQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q startQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *startQueue) Push(x any)        { *q = append(*q, x.(*slot)) }
func (q *startQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// firstStart is the next instant on the path's own grid (every multiple
// of the interval since the zero time, plus the path's offset), so that a
// restart, a reload or a second replica keeps the same rhythm.
func firstStart(now time.Time, interval, offset time.Duration) time.Time {
	if interval <= 0 {
		return now
	}
	t := now.Truncate(interval).Add(offset)
	if !t.After(now) {
		t = t.Add(interval)
	}
	return t
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

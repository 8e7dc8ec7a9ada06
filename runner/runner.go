// Package runner is the running prober: one version of the topology, and
// of what discovery sees, walked by the scheduler and exported, and the
// events that change it: a reload of the file, a change in the cluster,
// a drift check. `probe serve` wires it to signals, timers, the watch
// and the HTTP server; everything that decides what is probed is here.
package runner

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/live"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// DriftCheck compares a topology with the live side. inv is discovery's
// latest inventory, nil without discovery (the check then lists the
// cluster itself). documented and inCluster count the Services compared,
// -1 when the cluster was not read.
type DriftCheck func(ctx context.Context, cfg *config.Config, inv *live.KubeInventory) (items []targets.DriftItem, documented, inCluster int, err error)

// Options are what the flags say about the run.
type Options struct {
	// Vantage overrides the topology's vantage when set.
	Vantage string
	// Drift is nil when no live side is configured.
	Drift DriftCheck
	Log   *slog.Logger
	// Tracer, when set, traces every walk (--otlp-endpoint).
	Tracer trace.Tracer
	// Phase is this replica's place in every interval (nil: phase 0).
	Phase *scheduler.Phase
	// ShardIndex of Shards (--shard i/n): walk only that share of the
	// paths (targets.Shard); Shards of 0 or 1 walks them all.
	ShardIndex, Shards int
}

// Runner holds the running prober. Its event methods (Reload,
// Discovered, CheckDrift) are called from one goroutine, the serve loop;
// drift checks run beside it.
type Runner struct {
	opts   Options
	log    *slog.Logger
	board  *status.Board
	exp    *exporter.Exporter
	walker *scheduler.Walker

	cfg   *config.Config
	inv   *live.KubeInventory // discovery's last inventory, nil before its first list
	seen  *targets.Live       // what inv says of the documented Services
	paths []*targets.Path
	// sched walks the paths from Start to Stop; a reload or a discovery
	// change updates its paths in place.
	sched *scheduler.Scheduler
	stop  func()
	done  sync.WaitGroup

	states *pathStates

	checking atomic.Bool
	checks   sync.WaitGroup
}

// New expands cfg into its paths and builds their board and exporter; nothing is
// walked until Start. An error is a topology that cannot be expanded
// from the vantage asked for.
func New(cfg *config.Config, opts Options) (*Runner, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	r := &Runner{opts: opts, log: opts.Log, cfg: cfg,
		states: &pathStates{log: opts.Log, last: map[string]string{}},
		// One walker for every version of the topology: its concurrency
		// cap and shared-hop cache outlive reloads.
		walker: scheduler.NewWalker(cfg.Defaults.Concurrency, probes.Run)}
	r.walker.SetTracer(opts.Tracer)
	paths, err := r.expand(cfg, nil)
	if err != nil {
		return nil, err
	}
	r.paths = paths
	r.board = status.NewBoard(paths)
	r.board.SetHistory(cfg.Defaults.History)
	r.exp = exporter.New(paths)
	r.exp.CountPanics(probes.Kinds(), probes.PanicCount)
	r.exp.SetMetrics(cfg.Metrics)
	if opts.Drift != nil {
		r.exp.EnableDrift()
	}
	return r, nil
}

// Exporter holds the metrics of what the runner walks.
func (r *Runner) Exporter() *exporter.Exporter { return r.exp }

// Board holds what the walks meant, for the pages and the JSON API.
func (r *Runner) Board() *status.Board { return r.board }

// record takes one walk: the board says what it meant, and the exporter
// counts it.
func (r *Runner) record(res scheduler.PathResult) {
	if w, ok := r.board.Observe(res); ok {
		r.exp.Observe(res, w)
	}
	r.states.observe(res)
}

// Paths is how many paths the running topology has.
func (r *Runner) Paths() int { return len(r.paths) }

// Vantage is where the running topology is probed from.
func (r *Runner) Vantage() string { return r.vantage(r.cfg) }

func (r *Runner) vantage(cfg *config.Config) string {
	if r.opts.Vantage != "" {
		return r.opts.Vantage
	}
	return cfg.Vantage
}

func (r *Runner) expand(cfg *config.Config, seen *targets.Live) ([]*targets.Path, error) {
	paths, err := targets.ExpandLive(cfg, r.vantage(cfg), seen)
	return targets.Shard(paths, r.opts.ShardIndex, r.opts.Shards), err
}

// Start walks every path until ctx ends or Stop.
func (r *Runner) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	r.sched = &scheduler.Scheduler{Walker: r.walker, Paths: r.paths, Phase: r.opts.Phase, OnResult: r.record}
	r.done.Go(func() { r.sched.Run(ctx) })
	r.stop = cancel
}

// Stop ends the walks in flight and waits for them, at most the longest
// hop timeout and a second (graceStop): every probe ends within 100 ms
// of cancellation, and one that does not (a library computing what a
// peer asked for) is abandoned, counted and logged rather than wedge
// shutdown. Then it waits for drift checks.
func (r *Runner) Stop() {
	if r.stop != nil {
		r.stop()
		r.stop = nil // a second Stop waits for nothing
		if grace := longestTimeout(r.paths) + graceStop; !waitAtMost(&r.done, grace) {
			r.log.Warn("walks in flight did not end after cancellation; abandoned them so that shutdown goes on", "waited", grace)
			r.exp.WalksAbandoned()
		}
	}
	r.checks.Wait()
}

// graceStop is the second past the longest hop timeout that Stop waits
// for walks in flight.
const graceStop = time.Second

func longestTimeout(paths []*targets.Path) time.Duration {
	longest := time.Duration(0)
	for _, p := range paths {
		for _, h := range p.Hops {
			longest = max(longest, h.Timeout)
		}
	}
	return longest
}

// waitAtMost waits for wg, at most d; false when it gave up.
func waitAtMost(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// swap makes next the walked paths, in place: a path alike in every
// field to a running one stays that one (targets.Reuse), and keeps its
// schedule, its walk in flight, its status and its series. The board
// and the exporter take the change first, so that a removed hop leaves
// the status and /metrics, and a new one shows as pending, at once; the
// scheduler then cancels the walks of what left or changed, whose late
// results the board and the exporter refuse in any case.
func (r *Runner) swap(next []*targets.Path) {
	next = targets.Reuse(r.paths, next)
	r.board.SetPaths(next)
	r.exp.SetPaths(next)
	r.paths = next
	if r.sched != nil {
		r.sched.Update(next)
	}
}

// Reload reads the topology file again. A file that does not load is
// logged with its file:line reasons and the running topology stays;
// otherwise unchanged paths keep their series and rhythm.
func (r *Runner) Reload(ctx context.Context, why string) {
	next, err := config.Load(r.cfg.File)
	var paths []*targets.Path
	var seen *targets.Live
	if err == nil {
		if r.inv != nil {
			seen = live.LiveFrom(r.inv).Documented(next)
		}
		paths, err = r.expand(next, seen)
	}
	r.exp.Reloaded(err)
	if err != nil {
		r.log.Error("topology not reloaded; the running one stays", "trigger", why, "error", err)
		return
	}
	r.cfg, r.seen = next, seen
	r.walker.Resize(next.Defaults.Concurrency)
	r.exp.SetMetrics(next.Metrics)
	r.board.SetHistory(next.Defaults.History)
	r.swap(paths)
	r.log.Info("topology reloaded", "trigger", why, "paths", len(paths))
	for _, p := range next.Problems {
		r.log.Warn("a store's hops will fail", "problem", p.Error())
	}
	r.CheckDrift(ctx)
}

// Discovered takes discovery's latest inventory: the paths are rebuilt
// when what it says of the documented Services changed, and the first
// inventory (or a change) triggers a drift check against it.
func (r *Runner) Discovered(ctx context.Context, inv *live.KubeInventory) {
	first := r.inv == nil
	r.inv = inv
	seen := live.LiveFrom(inv).Documented(r.cfg)
	changed := !reflect.DeepEqual(seen, r.seen)
	if changed {
		next, err := r.expand(r.cfg, seen)
		if err != nil { // the vantage was checked when cfg loaded
			r.log.Error("discovery: paths not rebuilt", "error", err)
			return
		}
		r.seen = seen
		r.swap(next)
		r.log.Info("discovery changed the paths", "sees", seen.String(), "paths", len(next))
	}
	nodes, ready, notReady, omitted := seen.Counts()
	r.exp.SetDiscovery(nodes, live.CordonedNodes(inv), ready, notReady, omitted, changed)
	if changed || first {
		r.CheckDrift(ctx)
	}
}

// CheckDrift compares the running topology with the live side, beside
// the loop, unless none is configured or the last check still runs.
func (r *Runner) CheckDrift(ctx context.Context) {
	if r.opts.Drift == nil || !r.checking.CompareAndSwap(false, true) {
		return
	}
	cfg, inv := r.cfg, r.inv
	r.checks.Go(func() {
		defer r.checking.Store(false)
		items, documented, inCluster, err := r.opts.Drift(ctx, cfg, inv)
		r.exp.SetDrift(items, documented, inCluster, err)
		if err == nil {
			r.board.SetDrift(items)
		}
		if err != nil {
			r.log.Error("drift check failed", "error", err)
		} else if len(items) > 0 {
			r.log.Warn("topology drift", "differences", len(items))
		}
	})
}

// pathStates logs a path's changes of state (broken at a hop, another
// first failing hop, healthy again), not every walk of a broken path.
type pathStates struct {
	log  *slog.Logger
	mu   sync.Mutex
	last map[string]string // path ID → its first failing hop, "" when healthy
}

func (p *pathStates) observe(res scheduler.PathResult) {
	hop := ""
	if res.FirstFailing >= 0 {
		hop = res.Path.Hops[res.FirstFailing].Name
	}
	p.mu.Lock()
	was, seen := p.last[res.Path.ID]
	p.last[res.Path.ID] = hop
	p.mu.Unlock()
	switch {
	case hop != "" && hop != was:
		p.log.Warn("path broken", "path", res.Path.ID, "first_failing_hop", hop, "error", res.Hops[res.FirstFailing].Error)
	case hop == "" && was != "" && seen:
		p.log.Info("path recovered", "path", res.Path.ID, "was_failing_at", was)
	}
}

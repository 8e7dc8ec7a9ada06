package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/live"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// serve walks every path until ctx ends or SIGTERM, and reloads the
// topology on SIGHUP or when the file's content changes (a ConfigMap
// update swaps the file under the pod). A topology that does not load is
// logged with its file:line reasons and the running one is kept. With
// discovery the paths also follow the cluster (nodes, node ports, pods).
func serve(ctx context.Context, cfg *config.Config, vantageFlag, listen string, reloadEvery time.Duration, lopts liveOpts, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	vantageOf := func(c *config.Config) string {
		if vantageFlag != "" {
			return vantageFlag
		}
		return c.Vantage
	}
	// inv is discovery's last inventory and seen what it says of the
	// documented Services (both nil without discovery, or before its first
	// list); every generation of paths is built from the topology file and
	// seen, and drift checks read inv instead of listing the cluster again.
	var inv *live.KubeInventory
	var seen *targets.Live
	expand := func(c *config.Config) ([]*targets.Path, error) {
		return targets.ExpandLive(c, vantageOf(c), seen)
	}
	paths, err := expand(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	exp := exporter.New(paths)
	// Drift checks and discovery run beside the loop; every return ends
	// them (cancel runs before Wait) and waits for them.
	var checks sync.WaitGroup
	defer checks.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The watch hands over the latest inventory; one not yet taken is
	// replaced, never queued.
	discovered := make(chan *live.KubeInventory, 1)
	if lopts.discover {
		cs, err := kubeClient()
		if err != nil {
			fmt.Fprintf(stderr, "--discover: %v\n", err)
			return ExitBadArgs
		}
		exp.EnableDiscovery()
		// client-go logs through klog; its retries belong in our log.
		klog.SetSlogLogger(log.With("component", "client-go"))
		w := &live.KubeWatch{Settle: lopts.settle, Log: log}
		checks.Go(func() {
			w.Run(ctx, cs, func(next *live.KubeInventory) {
				select {
				case <-discovered:
				default:
				}
				discovered <- next
			})
		})
	}
	// Parsing a large topology leaves scratch memory behind; hand it back
	// before the long run so that RSS reflects the steady state.
	debug.FreeOSMemory()
	// One walker for every generation of the topology: its concurrency cap
	// and shared-hop cache outlive reloads.
	walker := scheduler.NewWalker(cfg.Defaults.Concurrency)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(stderr, "cannot listen on %s: %v\n", listen, err)
		return ExitBadArgs
	}
	srv := &http.Server{Handler: exp.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "error", err)
		}
	}()
	log.Info("serving", "config", cfg.File, "vantage", vantageOf(cfg), "paths", len(paths),
		"metrics", "http://"+ln.Addr().String()+"/metrics", "status", "http://"+ln.Addr().String()+"/api/v1/paths")

	gen := startGeneration(ctx, walker, paths, exp, log)
	current := cfg
	var checking atomic.Bool
	checkDrift := func() {
		if !lopts.enabled() || !checking.CompareAndSwap(false, true) {
			return // none configured, or the last check is still running
		}
		c, cached := current, inv
		checks.Go(func() {
			defer checking.Store(false)
			items, documented, liveCount, err := lopts.check(ctx, c, cached)
			exp.SetDrift(items, documented, liveCount, err)
			if err != nil {
				log.Error("drift check failed", "error", err)
			} else if len(items) > 0 {
				log.Warn("topology drift", "differences", len(items))
			}
		})
	}
	// With discovery the first drift check waits for its first list
	// rather than listing the cluster a second time.
	if !lopts.discover {
		checkDrift()
	}
	var driftTick <-chan time.Time
	if lopts.enabled() && lopts.every > 0 {
		t := time.NewTicker(lopts.every)
		defer t.Stop()
		driftTick = t.C
	}
	sum := fileSum(cfg.File)
	var tick <-chan time.Time
	if reloadEvery > 0 {
		t := time.NewTicker(reloadEvery)
		defer t.Stop()
		tick = t.C
	}
	swap := func(next []*targets.Path) {
		// The old generation's walks in flight are cancelled and dropped
		// before the exported set changes, so that no stale result lands
		// after it.
		gen.stop()
		exp.SetPaths(next)
		gen = startGeneration(ctx, walker, next, exp, log)
	}
	reload := func(why string) {
		next, err := config.Load(cfg.File)
		if err == nil {
			if inv != nil {
				seen = live.LiveFrom(inv).Documented(next)
			}
			paths, err = expand(next)
		}
		exp.Reloaded(err)
		if err != nil {
			log.Error("topology not reloaded; the running one stays", "trigger", why, "error", err)
			return
		}
		swap(paths)
		current = next
		log.Info("topology reloaded", "trigger", why, "paths", len(paths))
		checkDrift()
	}
	for {
		select {
		case <-ctx.Done():
			gen.stop()
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			log.Info("stopped")
			return ExitOK
		case <-driftTick:
			checkDrift()
		case next := <-discovered:
			first := inv == nil
			inv = next
			l := live.LiveFrom(inv).Documented(current)
			changed := !reflect.DeepEqual(l, seen)
			if changed {
				next, err := targets.ExpandLive(current, vantageOf(current), l)
				if err != nil { // the vantage was checked when current loaded
					log.Error("discovery: paths not rebuilt", "error", err)
					continue
				}
				seen, paths = l, next
				swap(paths)
				log.Info("discovery changed the paths", "sees", l.String(), "paths", len(paths))
			}
			nodes, ready, notReady, omitted := l.Counts() // l is Documented already
			exp.SetDiscovery(nodes, ready, notReady, omitted, changed)
			if changed || first {
				checkDrift()
			}
		case <-hup:
			sum = fileSum(cfg.File)
			reload("SIGHUP")
		case <-tick:
			if s := fileSum(cfg.File); s != nil && !bytes.Equal(s, sum) {
				sum = s
				reload("file changed")
			}
		}
	}
}

// generation is one scheduler run over one version of the topology.
type generation struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func startGeneration(ctx context.Context, w *scheduler.Walker, paths []*targets.Path, exp *exporter.Exporter, log *slog.Logger) *generation {
	ctx, cancel := context.WithCancel(ctx)
	g := &generation{cancel: cancel}
	s := &scheduler.Scheduler{Walker: w, Paths: paths, OnResult: func(r scheduler.PathResult) {
		exp.Observe(r)
		if !r.Success && r.FirstFailing >= 0 {
			h := r.Hops[r.FirstFailing]
			log.Warn("path broken", "path", r.Path.ID, "first_failing_hop", r.Path.Hops[r.FirstFailing].Name, "error", h.Error)
		}
	}}
	g.done.Go(func() { s.Run(ctx) })
	return g
}

func (g *generation) stop() {
	g.cancel()
	g.done.Wait()
}

// fileSum is the topology file's content hash, nil when it cannot be read
// (mid-swap): an unreadable moment is not a change.
func fileSum(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := sha256.Sum256(b)
	return s[:]
}

// liveOpts says where `probe serve` reads the live side: for drift
// checks, and for discovery.
type liveOpts struct {
	kube                 kubeSource
	apisixFile, adminURL string
	every                time.Duration

	discover bool
	settle   time.Duration
}

func (d liveOpts) enabled() bool { return d.kube.set() || d.apisixFile != "" || d.adminURL != "" }

// check compares cfg with the live side, and counts the Services compared
// (-1 when the cluster is not read). inv, when discovery has one, is the
// cluster; else the cluster is read.
func (d liveOpts) check(ctx context.Context, cfg *config.Config, inv *live.KubeInventory) (items []targets.DriftItem, documented, inCluster int, err error) {
	documented, inCluster = -1, -1 // unknown without the cluster
	if d.kube.set() {
		if inv == nil {
			inv, err = readKube(ctx, d.kube)
			if err != nil {
				return nil, 0, 0, err
			}
		}
		documented, inCluster = live.ServiceCounts(cfg, inv)
		items = append(items, live.KubeDrift(cfg, inv)...)
	}
	if d.apisixFile != "" || d.adminURL != "" {
		routes, _, err := readAPISIX(ctx, d.apisixFile, d.adminURL)
		if err != nil {
			return nil, 0, 0, err
		}
		items = append(items, live.RouteDrift(cfg, routes)...)
	}
	return items, documented, inCluster, nil
}

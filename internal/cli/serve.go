package cli

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/allinx/hopprobe/web"
	"github.com/prometheus/common/promslog"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
	"k8s.io/klog/v2"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/replicas"
	"github.com/allinx/hopprobe/live"
	"github.com/allinx/hopprobe/runner"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
	"github.com/allinx/hopprobe/tracing"
)

// serveOpts is what `probe serve`'s flags ask for.
type serveOpts struct {
	vantage     string // --vantage ("": the topology's)
	listen      string
	reloadEvery time.Duration
	stalls      int
	live        liveOpts
	otlp        string
	logLevel    *promslog.Level
	logFormat   *promslog.Format
	webConfig   string     // --web.config.file: TLS and basic auth (exporter-toolkit)
	probeListen string     // --web.probe-listen: /healthz and /readyz alone, without credentials
	replicasDNS string     // --replicas-dns: the replicas' headless Service, for the phase
	podIP       netip.Addr // --pod-ip: this replica among its answers
	shardIndex  int        // --shard I/N
	shards      int
}

// serve walks every path until ctx ends or SIGTERM, and reloads the
// topology on SIGHUP or when the file's content changes (a ConfigMap
// update swaps the file under the pod). A topology that does not load is
// logged with its file:line reasons and the running one is kept. With
// discovery the paths also follow the cluster (nodes, node ports, pods).
func serve(ctx context.Context, cfg *config.Config, o serveOpts, stderr io.Writer) int {
	log := promslog.New(&promslog.Config{Level: o.logLevel, Format: o.logFormat, Writer: stderr})
	slog.SetDefault(log)
	sv := &serving{o: o, cfg: cfg, log: log, stderr: stderr}
	// Every return undoes what was started, in reverse.
	defer sv.undo()
	opts, ok := sv.runnerOptions()
	if !ok {
		return ExitBadArgs
	}
	r, err := runner.New(cfg, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	sv.later(stop)
	sv.phase(ctx, opts.Phase)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	sv.later(func() { signal.Stop(hup) })
	ctx, cancel := context.WithCancel(ctx)
	discovered, ok := sv.discover(ctx, r, cancel)
	if !ok {
		return ExitBadArgs
	}
	// Parsing a large topology leaves scratch memory behind; hand it back
	// before the long run so that RSS reflects the steady state.
	debug.FreeOSMemory()
	if !sv.listen(r) {
		return ExitBadArgs
	}
	r.Start(ctx)
	sv.later(r.Stop)
	return sv.loop(ctx, r, hup, discovered)
}

// serving is `probe serve` while it starts and runs: what it started is
// undone in reverse when it returns.
type serving struct {
	o      serveOpts
	cfg    *config.Config
	log    *slog.Logger
	stderr io.Writer
	undos  []func()
}

// later runs f when serve returns, before whatever was started earlier.
func (sv *serving) later(f func()) { sv.undos = append(sv.undos, f) }

func (sv *serving) undo() {
	for i := len(sv.undos) - 1; i >= 0; i-- {
		sv.undos[i]()
	}
}

// runnerOptions are the runner's options from the flags, with tracing
// started when --otlp-endpoint asks for it.
func (sv *serving) runnerOptions() (runner.Options, bool) {
	o := sv.o
	opts := runner.Options{Vantage: o.vantage, Log: sv.log, Phase: &scheduler.Phase{}, ShardIndex: o.shardIndex, Shards: o.shards}
	if o.live.enabled() {
		opts.Drift = o.live.check
	}
	if o.otlp == "" {
		return opts, true
	}
	tp, err := tracing.Start(o.otlp, version(), cmp.Or(o.vantage, sv.cfg.Vantage))
	if err != nil {
		fmt.Fprintln(sv.stderr, err)
		return opts, false
	}
	sv.later(func() {
		// Send what is queued; a receiver that is gone costs at most this
		// long at shutdown.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			sv.log.Warn("sending the last traces failed", "error", err)
		}
	})
	opts.Tracer = tp.Tracer()
	sv.log.Info("tracing walks", "otlp_endpoint", o.otlp)
	return opts, true
}

// phase places this replica among the others, so that replicas walk at
// offset phases, not in lockstep; see package replicas for how one
// finds its place.
func (sv *serving) phase(ctx context.Context, phase *scheduler.Phase) {
	var phasing sync.WaitGroup
	sv.later(phasing.Wait)
	ctx, stop := context.WithCancel(ctx)
	sv.later(stop)
	if sv.o.replicasDNS != "" {
		phasing.Go(func() {
			replicas.Watch(ctx, net.DefaultResolver, sv.o.replicasDNS, sv.o.podIP, 30*time.Second, phase, sv.log)
		})
	} else if host, err := os.Hostname(); err == nil {
		phase.Set(replicas.FromName(host))
	}
}

// discover starts the watch of the cluster when --discover asks for it:
// it runs beside the loop and hands over the latest inventory, one not
// yet taken replaced, never queued. cancel ends it at return, before it
// is waited for.
func (sv *serving) discover(ctx context.Context, r *runner.Runner, cancel context.CancelFunc) (<-chan *live.KubeInventory, bool) {
	var watching sync.WaitGroup
	sv.later(watching.Wait)
	sv.later(cancel)
	discovered := make(chan *live.KubeInventory, 1)
	if !sv.o.live.discover {
		return discovered, true
	}
	cs, err := kubeClient()
	if err != nil {
		fmt.Fprintf(sv.stderr, "--discover: %v\n", err)
		return nil, false
	}
	r.Exporter().EnableDiscovery()
	// client-go logs through klog; its retries belong in our log.
	klog.SetSlogLogger(sv.log.With("component", "client-go"))
	w := &live.KubeWatch{Settle: sv.o.live.settle, Log: sv.log, Synced: r.Exporter().SetDiscoverySynced}
	watching.Go(func() {
		w.Run(ctx, cs, func(next *live.KubeInventory) {
			select {
			case <-discovered:
			default:
			}
			discovered <- next
		})
	})
	return discovered, true
}

// listen serves the pages, the JSON API and /metrics on --listen, and
// the health answers alone on --web.probe-listen.
func (sv *serving) listen(r *runner.Runner) bool {
	o := sv.o
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintf(sv.stderr, "cannot listen on %s: %v\n", o.listen, err)
		return false
	}
	r.Board().SetStallIntervals(o.stalls)
	handler := web.Handler(r.Board(), r.Exporter().MetricsHandler())
	// A scraper gets bounded time to send its request and to take the
	// answer; one that stalls loses its connection, never a walk.
	srv := newHTTPServer(handler)
	// TLS and basic auth, when --web.config.file asks for them, cover
	// every page of the listener: /metrics, the JSON API (which carries
	// certificates, response headers and internal addresses) and the pages.
	webFlags := &toolkitweb.FlagConfig{WebListenAddresses: &[]string{o.listen}, WebConfigFile: &o.webConfig}
	go func() {
		if err := toolkitweb.Serve(ln, srv, webFlags, sv.log); err != nil && !errors.Is(err, http.ErrServerClosed) {
			sv.log.Error("http server stopped", "error", err)
		}
	}()
	sv.later(func() { shutdown(srv) })
	// The kubelet cannot send credentials; with a web configuration that
	// asks for them, its probes go to a listener of their own that serves
	// the two health answers and nothing else.
	if o.probeListen != "" {
		pln, err := net.Listen("tcp", o.probeListen)
		if err != nil {
			fmt.Fprintf(sv.stderr, "cannot listen on %s (--web.probe-listen): %v\n", o.probeListen, err)
			return false
		}
		health := http.NewServeMux()
		health.Handle("GET /healthz", handler)
		health.Handle("GET /readyz", handler)
		psrv := newHTTPServer(health)
		go func() {
			if err := psrv.Serve(pln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				sv.log.Error("health server stopped", "error", err)
			}
		}()
		sv.later(func() { shutdown(psrv) })
	}
	sv.log.Info("serving", "config", sv.cfg.File, "vantage", r.Vantage(), "paths", r.Paths(),
		"metrics", "http://"+ln.Addr().String()+"/metrics", "status", "http://"+ln.Addr().String()+"/api/v1/paths")
	return true
}

// loop takes the running prober's events until ctx ends: drift checks on
// their timer, discovery's inventories, SIGHUP, and a changed topology
// file.
func (sv *serving) loop(ctx context.Context, r *runner.Runner, hup <-chan os.Signal, discovered <-chan *live.KubeInventory) int {
	o, file := sv.o, sv.cfg.File
	// With discovery the first drift check waits for its first list
	// rather than listing the cluster a second time.
	if !o.live.discover {
		r.CheckDrift(ctx)
	}
	var driftTick <-chan time.Time
	if o.live.enabled() && o.live.every > 0 {
		t := time.NewTicker(o.live.every)
		defer t.Stop()
		driftTick = t.C
	}
	sum := fileSum(file)
	var tick <-chan time.Time
	if o.reloadEvery > 0 {
		t := time.NewTicker(o.reloadEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			r.Stop()
			sv.log.Info("stopped")
			return ExitOK
		case <-driftTick:
			r.CheckDrift(ctx)
		case inv := <-discovered:
			r.Discovered(ctx, inv)
		case <-hup:
			sum = fileSum(file)
			r.Reload(ctx, "SIGHUP")
		case <-tick:
			if s := fileSum(file); s != nil && !bytes.Equal(s, sum) {
				sum = s
				r.Reload(ctx, "file changed")
			}
		}
	}
}

// newHTTPServer bounds what a client may take: time to send its request
// and to take the answer; one that stalls loses its connection.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
}

// shutdown lets a server's requests in flight finish, 5 s at most.
func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
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

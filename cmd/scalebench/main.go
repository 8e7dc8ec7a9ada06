// Command scalebench measures what hopprobe costs as the topology grows:
// it generates a topology of N HTTP hops against loopback servers, runs
// the real scheduler and exporter on it for a bounded time at a 15 s
// interval, and reports CPU per 1,000 probes, peak RSS, scheduling jitter
// (actual start − planned start) and probes lost.
//
//	go run ./cmd/scalebench -hops 100,1000,10000 -duration 45s
//
// Each size runs in its own child process so that peak RSS and CPU belong
// to that size alone; the HTTP peers run in the parent.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// memProfile, when set, receives a heap profile taken while the
// exporter still holds every series.
var memProfile string

// peers is how many loopback HTTP servers share the probes, so that no
// single listener or 4-tuple space becomes the bottleneck being measured.
const peers = 16

type result struct {
	Hops        int     `json:"hops"`
	Seconds     float64 `json:"seconds"`
	Probes      int     `json:"probes"`
	Failed      int     `json:"failed"`
	Lost        int     `json:"lost"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	CPUPer1000  float64 `json:"cpu_seconds_per_1000_probes"`
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	JitterP50MS float64 `json:"jitter_p50_ms"`
	JitterP99MS float64 `json:"jitter_p99_ms"`
	JitterMaxMS float64 `json:"jitter_max_ms"`
	Samples     int     `json:"samples_per_scrape"`
}

func main() {
	child := flag.Bool("child", false, "internal: run one size and print its result as JSON")
	hopsFlag := flag.String("hops", "100,1000,10000", "topology sizes (hops)")
	interval := flag.Duration("interval", 15*time.Second, "probe interval")
	duration := flag.Duration("duration", 45*time.Second, "measured time per size")
	addrs := flag.String("peers", "", "internal: comma-separated peer addresses")
	memprofile := flag.String("memprofile", "", "child: write a heap profile here at the end")
	blackbox := flag.String("blackbox", os.Getenv("BLACKBOX_EXPORTER"), "blackbox_exporter binary for a paired CPU-per-probe run ($BLACKBOX_EXPORTER)")
	childHTTP := flag.String("child-http", "", "internal: run the hopprobe side of the paired run against this peer")
	steadyMode := flag.Bool("steady", false, "steady state: the probe serve binary on N targets with scrapes, beside the paced and back-to-back floors (and $CLOUDPROBER)")
	cloudprober := flag.String("cloudprober", os.Getenv("CLOUDPROBER"), "cloudprober binary for the steady-state comparison ($CLOUDPROBER)")
	abOther := flag.String("ab", "", "with -steady: run this other probe binary at the same time as this tree's, on the same targets and peer, and compare CPU per walk and hop latency")
	steadyPeer := flag.Bool("steady-peer", false, "internal: run the steady-state run's counting peer")
	floorMode := flag.String("floor", "", "internal: run a floor (paced or b2b) and print CPU seconds per GET")
	floorPeer := flag.String("floor-peer", "", "internal: the floor's peer")
	floorN := flag.Int("floor-n", 2000, "internal: the floor's GETs")
	floorGap := flag.Duration("floor-gap", 0, "internal: the paced floor's gap")
	flag.Parse()
	if *steadyPeer {
		if err := runPeer(); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *floorMode != "" {
		if err := runFloor(*floorPeer, *floorN, *floorGap); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *steadyMode {
		self, err := os.Executable()
		if err != nil {
			log.Fatal(err)
		}
		var sizes []int
		for _, s := range strings.Split(*hopsFlag, ",") {
			if n, err := strconv.Atoi(s); err == nil && n > 0 {
				sizes = append(sizes, n)
			}
		}
		if *abOther != "" {
			if err := steadyAB(self, sizes, *interval, *duration, *abOther); err != nil {
				log.Fatal(err)
			}
			return
		}
		if err := steady(self, sizes, *interval, *duration, *cloudprober, *blackbox); err != nil {
			log.Fatal(err)
		}
		return
	}
	memProfile = *memprofile
	if *childHTTP != "" {
		if err := hopprobeHTTP(*childHTTP); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *child {
		n, _ := strconv.Atoi(*hopsFlag)
		r, err := runSize(n, strings.Split(*addrs, ","), *interval, *duration)
		if err != nil {
			log.Fatal(err)
		}

		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	servers, err := startPeers()
	if err != nil {
		log.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("hopprobe scale harness: %d loopback HTTP peers, interval %s, %s measured per size, GOMAXPROCS %d\n\n",
		len(servers), *interval, *duration, runtime.GOMAXPROCS(0))
	fmt.Println("| hops | probes | failed | lost | CPU s / 1,000 probes | peak RSS | jitter p50 | jitter p99 | jitter max | samples per scrape |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range strings.Split(*hopsFlag, ",") {
		if s == "" {
			continue
		}
		args := []string{"-child", "-hops", s, "-interval", interval.String(), "-duration", duration.String(), "-peers", strings.Join(servers, ",")}
		if *memprofile != "" {
			args = append(args, "-memprofile", *memprofile+"."+s)
		}
		cmd := exec.Command(self, args...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			log.Fatalf("size %s: %v", s, err)
		}
		var r result
		if err := json.Unmarshal(out, &r); err != nil {
			log.Fatalf("size %s: %v: %s", s, err, out)
		}
		fmt.Printf("| %d | %d | %d | %d | %.3f | %.0f MiB | %.2f ms | %.2f ms | %.2f ms | %d |\n",
			r.Hops, r.Probes, r.Failed, r.Lost, r.CPUPer1000, r.PeakRSSMiB, r.JitterP50MS, r.JitterP99MS, r.JitterMaxMS, r.Samples)
	}
	if *blackbox == "" {
		fmt.Println("\nblackbox_exporter: not compared (set BLACKBOX_EXPORTER=/path/to/blackbox_exporter)")
		return
	}
	if err := compareBlackbox(self, *blackbox, servers[0]); err != nil {
		log.Fatal(err)
	}
}

func startPeers() ([]string, error) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"status":"ok"}`) })
	var out []string
	for i := range peers {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", 2+i))
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// history sets the topology's defaults.history, so that what the walk
// history costs can be measured against a short one.
var history = flag.Int("history", 0, "walks of history kept per path (defaults.history; 0: the prober's default)")

// topology writes a topology of n HTTP services spread over the peers;
// each is its own path with one hop, every hop a distinct probe.
func topology(n int, addrs []string, interval time.Duration) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "vantage: cluster\ndefaults:\n  interval: %s\n  timeout: 2s\n  concurrency: 64\n", interval)
	if *history > 0 {
		fmt.Fprintf(&b, "  history: %d\n", *history)
	}
	b.WriteString("services:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc-%05d, namespace: bench, type: ClusterIP, health_path: /svc-%05d, ports: [{port: 8080, protocol: http, address: %q}]}\n",
			i, i, addrs[i%len(addrs)])
	}
	dir, err := os.MkdirTemp("", "hopprobe-scale-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "scale.yaml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

func runSize(n int, addrs []string, interval, duration time.Duration) (*result, error) {
	path, err := topology(n, addrs, interval)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(filepath.Dir(path))
	probes.RegisterKinds()
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	paths, err := targets.Expand(cfg, config.VantageCluster)
	if err != nil {
		return nil, err
	}
	hops := 0
	for _, p := range paths {
		hops += len(p.Hops)
	}
	board, exp := status.NewBoard(paths), exporter.New(paths)
	// As `probe serve` does: the parse's scratch memory goes back to the OS.
	debug.FreeOSMemory()
	log.Printf("%d hops: peak RSS after loading the topology %.0f MiB", hops, peakRSS())
	var mu sync.Mutex
	var lags []time.Duration
	walks := map[string]int{}
	probed, failed := 0, 0
	// The first interval is warm-up (every path takes its first step);
	// measurement covers the whole intervals after it.
	warm := time.Now().Add(interval)
	walker := scheduler.NewWalker(cfg.Defaults.Concurrency, probes.Run)
	s := &scheduler.Scheduler{Walker: walker, Paths: paths, OnResult: func(r scheduler.PathResult) {
		if w, ok := board.Observe(r); ok {
			exp.Observe(r, w)
		}
		if r.Start.Before(warm) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lags = append(lags, r.Lag)
		walks[r.Path.ID]++
		for _, h := range r.Hops {
			probed++
			if !h.Success {
				failed++
			}
		}
	}}
	ctx, cancel := signalContext(interval + duration)
	defer cancel()
	var cpu0 float64
	go func() {
		time.Sleep(time.Until(warm))
		cpu0 = cpuSeconds()
	}()
	var peakHeap, peakStack uint64
	peakG := 0
	go func() {
		for ctx.Err() == nil {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakHeap, peakStack = max(peakHeap, ms.HeapInuse), max(peakStack, ms.StackInuse)
			peakG = max(peakG, runtime.NumGoroutine())
			if os.Getenv("SCALEBENCH_TRACE") != "" {
				log.Printf("rss %.0f MiB heap in use %d MiB sys %d MiB released %d MiB", procStatus("VmRSS:"), ms.HeapInuse>>20, ms.Sys>>20, ms.HeapReleased>>20)
			}
			time.Sleep(time.Second)
		}
	}()
	// Prometheus scrapes every 15 s while the probes run.
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = exp.WriteMetrics(&lineCounter{})
			}
		}
	}()
	s.Run(ctx)
	cpu := cpuSeconds() - cpu0
	log.Printf("%d hops: peak heap in use %d MiB, peak stacks %d MiB, peak goroutines %d", hops, peakHeap>>20, peakStack>>20, peakG)
	if memProfile != "" {
		if f, err := os.Create(memProfile); err == nil {
			runtime.GC()
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	// One scrape, as Prometheus would make it, counted line by line.
	lines := &lineCounter{}
	if err := exp.WriteMetrics(lines); err != nil {
		return nil, err
	}
	series := lines.samples
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	q := func(f float64) float64 {
		if len(lags) == 0 {
			return 0
		}
		return float64(lags[min(len(lags)-1, int(f*float64(len(lags))))]) / 1e6
	}
	// Each path has one walk per interval in the measured window; a
	// missing one was lost (skipped tick or never scheduled).
	want := int(duration / interval)
	lost := 0
	for _, p := range paths {
		if got := walks[p.ID]; got < want {
			lost += (want - got) * len(p.Hops)
		}
	}
	r := &result{Hops: hops, Seconds: duration.Seconds(), Probes: probed, Failed: failed, Lost: lost, CPUSeconds: cpu,
		PeakRSSMiB: peakRSS(), JitterP50MS: q(0.5), JitterP99MS: q(0.99), Samples: series}
	if len(lags) > 0 {
		r.JitterMaxMS = float64(lags[len(lags)-1]) / 1e6
	}
	if probed > 0 {
		r.CPUPer1000 = cpu / float64(probed) * 1000
	}
	return r, nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSS() float64 { return procStatus("VmHWM:") }

// procStatus reads a size field of /proc/self/status in MiB.
func procStatus(field string) float64 { return procStatusOf(os.Getpid(), field) }

func signalContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// lineCounter counts the sample lines of a scrape.
type lineCounter struct {
	samples int
	atStart bool
	comment bool
}

func (c *lineCounter) Write(p []byte) (int, error) {
	for i, b := range p {
		if i == 0 && c.samples == 0 && !c.atStart && !c.comment {
			c.atStart = true
		}
		if c.atStart {
			c.comment = b == '#'
			c.atStart = false
		}
		if b == '\n' {
			if !c.comment {
				c.samples++
			}
			c.atStart = true
		}
	}
	return len(p), nil
}

package main

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The steady-state run (-steady): `probe serve` itself, the binary, on N
// HTTP targets at the interval, scraped like Prometheus scrapes it, with
// a neutral loopback peer that counts the probes (a process of its own:
// peer.go); then, in the same run and on the same peer, the floors: a
// bare Go GET on a fresh connection, paced at the prober's rate, and
// back to back. Each process's CPU comes from its own /proc counters.
// With CLOUDPROBER set, cloudprober runs the same targets and interval
// with its Prometheus surfacer, measured the same way.

// procCPU is a process's user+system CPU from /proc/PID/stat.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// procHWM is a process's peak RSS in MiB.
func procHWM(pid int) float64 { return procStatusOf(pid, "VmHWM:") }

// procStatusOf reads a size field of /proc/PID/status in MiB.
func procStatusOf(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

type steadyResult struct {
	name                    string
	probes                  int64
	cpu, perProbe           float64 // seconds
	rss, rssWindow, anon    float64 // MiB: peak, peak before the scrape burst, peak anonymous in the window
	p99, worst              time.Duration
	scrapeBytes, scrapeGzip int
	scrapeWall, scrapeCPU   time.Duration
	// lag1ms, lag5ms: the share of walks in the window that started
	// within 1 and 5 ms of their plan, from the prober's own
	// hopprobe_walk_lag_seconds; lagWalks is how many it counted (0 for
	// a prober that does not export it).
	lag1ms, lag5ms, lagWalks float64
}

// walkLag reads the cumulative buckets of hopprobe_walk_lag_seconds
// (summed over vantages) from a text scrape, keyed by upper bound; a
// prober without the family gives none.
func walkLag(url string) (map[float64]float64, error) {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", url, err)
	}
	out := map[float64]float64{}
	for _, m := range families["hopprobe_walk_lag_seconds"].GetMetric() {
		for _, b := range m.GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // the count stands for it
				out[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		out[math.Inf(1)] += float64(m.GetHistogram().GetSampleCount())
	}
	return out, nil
}

// scrape fetches /metrics as Prometheus does (text, gzip) and returns
// the bytes on the wire and the text's length.
func scrape(url string, gz bool) (wire, text int, err error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.Header.Get("Content-Encoding") != "gzip" {
		return len(raw), len(raw), nil
	}
	zr, err := gzip.NewReader(strings.NewReader(string(raw)))
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, zr)
	return len(raw), int(n), err
}

// measure runs a started prober through warm-up and the window, scraping
// every 15 s, then times 50 scrapes back to back for their CPU.
func measure(name string, pid int, metricsURL string, c *peerProc, interval, duration time.Duration) (*steadyResult, error) {
	time.Sleep(interval + 2*time.Second) // every target probed once: warm-up
	// The walk-lag readings bracket the window rather than fall in it:
	// each is a scrape, and its CPU would count against the probes.
	lag0, _ := walkLag(metricsURL)
	if err := c.arm(interval); err != nil {
		return nil, err
	}
	cpu0, t0 := procCPU(pid), time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var anon float64 // the process's own memory, sampled: RssAnon
	wg.Go(func() {
		for {
			anon = max(anon, procStatusOf(pid, "RssAnon:"))
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	wg.Go(func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_, _, _ = scrape(metricsURL, true)
			}
		}
	})
	time.Sleep(duration)
	close(stop)
	wg.Wait()
	seen, err := c.disarm()
	if err != nil {
		return nil, err
	}
	cpu, wall := procCPU(pid)-cpu0, time.Since(t0)
	r := &steadyResult{name: name, probes: seen.Hits, cpu: cpu, p99: seen.P99, worst: seen.Worst}
	if lag1, err := walkLag(metricsURL); err == nil && lag1[math.Inf(1)] > lag0[math.Inf(1)] {
		r.lagWalks = lag1[math.Inf(1)] - lag0[math.Inf(1)]
		r.lag1ms = (lag1[0.001] - lag0[0.001]) / r.lagWalks
		r.lag5ms = (lag1[0.005] - lag0[0.005]) / r.lagWalks
	}
	if r.probes > 0 {
		r.perProbe = cpu / float64(r.probes)
	}
	r.rssWindow, r.anon = procHWM(pid), anon
	if r.scrapeGzip, r.scrapeBytes, err = scrape(metricsURL, true); err != nil {
		return nil, fmt.Errorf("%s: scrape: %w", name, err)
	}
	// The CPU of a scrape: 50 back to back, less what probing costs in
	// that time (the window's rate).
	const n = 50
	c0, s0 := procCPU(pid), time.Now()
	for range n {
		if _, _, err := scrape(metricsURL, true); err != nil {
			return nil, err
		}
	}
	took := time.Since(s0)
	r.scrapeWall = took / n
	r.scrapeCPU = time.Duration(max(0, procCPU(pid)-c0-cpu/wall.Seconds()*took.Seconds()) / n * 1e9)
	r.rss = procHWM(pid)
	return r, nil
}

func steady(self string, sizes []int, interval, duration time.Duration, cloudprober, blackbox string) error {
	c, err := startPeerProc(self)
	if err != nil {
		return err
	}
	defer c.stop()
	addrs := c.addrs
	dir, err := os.MkdirTemp("", "hopprobe-steady-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	built, err := buildProbe(dir)
	if err != nil {
		return err
	}
	// The linker writes its output through mmap, and a freshly linked
	// binary's page-cache pages are mapped in larger runs: measured, the
	// same binary held 12 MiB more file-backed RSS than a cp of it (and
	// os.WriteFile's copy more still). An image's binary arrives as a
	// copy (tar), so the run uses a cp'd one; the anonymous RSS, the
	// process's own memory, is printed beside it.
	bin := filepath.Join(dir, "probe")
	if other := os.Getenv("PROBE_BIN"); other != "" {
		built = other // another build of probe, for an A/B run
	}
	if err := copyFile(built, bin); err != nil {
		return err
	}
	fmt.Printf("steady state: %d loopback peer listeners in one counting process, interval %s, %s measured after one interval of warm-up, a text+gzip scrape every 15 s\n\n", peers, interval, duration)
	fmt.Println("| hops | prober | probes counted | CPU per probe | paced floor | ratio | back-to-back floor | ratio | peak RSS (in the window; anonymous) | jitter p99 (max) | scrape text (gzip) | scrape wall | scrape CPU |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range sizes {
		topo, err := topology(n, addrs, interval)
		if err != nil {
			return err
		}
		listen, err := freePort()
		if err != nil {
			return err
		}
		cmd := exec.Command(bin, "serve", "--config", topo, "--listen", listen, "--reload-check", "0")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			return err
		}
		r, err := measure("hopprobe", cmd.Process.Pid, "http://"+listen+"/metrics", c, interval, duration)
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		os.RemoveAll(filepath.Dir(topo))
		if err != nil {
			return err
		}
		var cp, bb *steadyResult
		if cloudprober != "" {
			if cp, err = runCloudprober(cloudprober, dir, n, addrs, c, interval, duration); err != nil {
				return err
			}
		}
		if blackbox != "" {
			if bb, err = runBlackbox(blackbox, dir, n, addrs, c, interval, duration); err != nil {
				return err
			}
		}
		gap := interval / time.Duration(n)
		// The paced floor runs for about 20 s at the prober's rate (at
		// most 2,000 GETs), the peer timing its arrivals as it did the
		// prober's: what jitter a bare loop sees on this machine now.
		if err := c.arm(floorTargets * gap); err != nil {
			return err
		}
		paced, err := floor(self, "paced", addrs[0], min(2000, max(2*floorTargets, int(20*time.Second/gap))), gap)
		if err != nil {
			return err
		}
		pacedSeen, err := c.disarm()
		if err != nil {
			return err
		}
		b2b, err := floor(self, "b2b", addrs[0], 2000, 0)
		if err != nil {
			return err
		}
		for _, x := range []*steadyResult{r, cp, bb} {
			if x == nil {
				continue
			}
			fmt.Printf("| %d | %s | %d | %.0f µs | %.0f µs (one per %s) | %.2f | %.0f µs | %.2f | %.0f MiB (%.0f; %.0f MiB) | %.2f ms (%.1f ms) | %.0f KB (%.0f KB) | %.1f ms | %.1f ms |\n",
				n, x.name, x.probes, x.perProbe*1e6, paced*1e6, gap, x.perProbe/paced, b2b*1e6, x.perProbe/b2b, x.rss, x.rssWindow, x.anon,
				float64(x.p99)/1e6, float64(x.worst)/1e6, float64(x.scrapeBytes)/1e3, float64(x.scrapeGzip)/1e3,
				float64(x.scrapeWall)/1e6, float64(x.scrapeCPU)/1e6)
		}
		fmt.Printf("\n%d hops: jitter as the peer sees it, p99 (max): hopprobe %.2f ms (%.1f), a bare GET loop paced at its rate %.2f ms (%.1f).", n,
			float64(r.p99)/1e6, float64(r.worst)/1e6, float64(pacedSeen.P99)/1e6, float64(pacedSeen.Worst)/1e6)
		if r.lagWalks > 0 {
			fmt.Printf(" hopprobe's own start lag (hopprobe_walk_lag_seconds, %.0f walks): %.2f %% within 1 ms of plan, %.2f %% within 5 ms.", r.lagWalks, 100*r.lag1ms, 100*r.lag5ms)
		}
		fmt.Println()
		if cp != nil && r.perProbe > 0 {
			fmt.Printf("\n%d hops: cloudprober spends %.2f× hopprobe's CPU per probe; its scrape is %.2f× the size.\n\n", n, cp.perProbe/r.perProbe, float64(cp.scrapeBytes)/float64(r.scrapeBytes))
		}
		if bb != nil && r.perProbe > 0 {
			fmt.Printf("\n%d hops: blackbox_exporter, driven evenly, spends %.2f× hopprobe's CPU per probe.\n\n", n, bb.perProbe/r.perProbe)
		}
	}
	if cloudprober == "" {
		fmt.Println("\ncloudprober: not compared (set CLOUDPROBER=/path/to/cloudprober)")
	}
	if blackbox == "" {
		fmt.Println("blackbox_exporter: not compared (set BLACKBOX_EXPORTER=/path/to/blackbox_exporter)")
	}
	return nil
}

// buildProbe builds this tree's probe into dir and returns its path.
func buildProbe(dir string) (string, error) {
	built := filepath.Join(dir, "probe.built")
	if out, err := exec.Command("go", "build", "-o", built, "github.com/allinx/hopprobe/cmd/probe").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building probe: %v: %s", err, out)
	}
	return built, nil
}

// copyFile copies with cp(1): how a file lands in the page cache decides
// its file-backed RSS, and a cp'd binary matched an image's.
func copyFile(from, to string) error {
	if out, err := exec.Command("cp", from, to).CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	return nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// floor runs n bare GETs in a child process and returns its CPU per GET.
func floor(self, mode, peer string, n int, gap time.Duration) (float64, error) {
	out, err := exec.Command(self, "-floor", mode, "-floor-peer", peer, "-floor-n", strconv.Itoa(n), "-floor-gap", gap.String()).Output()
	if err != nil {
		return 0, fmt.Errorf("%s floor: %w", mode, err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

// floorTargets is how many paths the floors cycle over: paced, each
// path comes round every floorTargets gaps, and the peer measures the
// floor's jitter against that period as it does the prober's.
const floorTargets = 200

// runFloor is the child: n GETs of peer on a fresh connection each, one
// per gap (0: back to back); it prints its own CPU seconds per GET.
func runFloor(peer string, n int, gap time.Duration) error {
	tr := &http.Transport{DisableKeepAlives: true}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(path string) error {
		resp, err := client.Get("http://" + peer + path)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	for i := range 100 { // warm-up, not counted, on paths of its own
		if err := get(fmt.Sprintf("/warm-%d", i)); err != nil {
			return err
		}
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	for i := range n {
		if gap > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i) * gap)))
		}
		if err := get(fmt.Sprintf("/floor-%d", i%floorTargets)); err != nil {
			return err
		}
	}
	fmt.Println((cpuSeconds() - cpu0) / float64(n))
	return nil
}

// runCloudprober runs cloudprober's HTTP probe on the same targets with
// its Prometheus surfacer, measured as the prober is.
func runCloudprober(bin, dir string, n int, addrs []string, c *peerProc, interval, duration time.Duration) (*steadyResult, error) {
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(listen)
	var b strings.Builder
	fmt.Fprintf(&b, "host: %q\nport: %s\nprobe {\n  name: \"bench\"\n  type: HTTP\n  interval_msec: %d\n  timeout_msec: 2000\n  targets {\n",
		host, port, interval.Milliseconds())
	for i := range n {
		fmt.Fprintf(&b, "    endpoint { name: \"svc-%05d\" url: \"http://%s/svc-%05d\" }\n", i, addrs[i%len(addrs)], i)
	}
	b.WriteString("  }\n}\nsurfacer { type: PROMETHEUS }\n")
	cfg := filepath.Join(dir, "cloudprober.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config_file", cfg, "--logtostderr=false")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil { // up when its metrics answer
		if _, _, err := scrape("http://"+listen+"/metrics", false); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return measure("cloudprober", cmd.Process.Pid, "http://"+listen+"/metrics", c, interval, duration)
}

func init() { log.SetFlags(0) }

// runBlackbox drives blackbox_exporter as Prometheus would: one
// /probe?target=… per target per interval, evenly spread, each answered
// with its own metrics; measured as the prober is (its /metrics scrape
// is its process metrics only).
func runBlackbox(bin, dir string, n int, addrs []string, c *peerProc, interval, duration time.Duration) (*steadyResult, error) {
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "blackbox.yml")
	if err := os.WriteFile(cfg, []byte("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n    http:\n      preferred_ip_protocol: ip4\n"), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config.file", cfg, "--web.listen-address", listen)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, _, err := scrape("http://"+listen+"/metrics", false); err == nil {
			break
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	gap := interval / time.Duration(n)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	wg.Go(func() {
		start := time.Now()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Until(start.Add(time.Duration(i) * gap))):
			}
			target := fmt.Sprintf("http://%s/svc-%05d", addrs[(i%n)%len(addrs)], i%n)
			wg.Go(func() {
				resp, err := client.Get("http://" + listen + "/probe?module=http_2xx&target=" + target)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	})
	return measure("blackbox_exporter (driven evenly)", cmd.Process.Pid, "http://"+listen+"/metrics", c, interval, duration)
}

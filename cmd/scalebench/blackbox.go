package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// pairedProbes is how many HTTP probes each side of the comparison makes.
const pairedProbes = 3000

// compareBlackbox runs the same HTTP probe workload (pairedProbes GETs of
// one loopback peer, 8 at a time) through hopprobe (in a child process)
// and through blackbox_exporter's http prober, and prints the CPU each
// spent per probe, from one paired run.
func compareBlackbox(self, bin, peer string) error {
	out, err := exec.Command(self, "-child-http", peer).Output()
	if err != nil {
		return fmt.Errorf("hopprobe side: %w", err)
	}
	hop, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return fmt.Errorf("hopprobe side printed %q", out)
	}
	bb, err := blackboxCPU(bin, peer)
	if err != nil {
		return fmt.Errorf("blackbox_exporter side: %w", err)
	}
	fmt.Printf("\nPaired run, %d HTTP probes of one loopback peer, 8 at a time:\n", pairedProbes)
	fmt.Printf("| prober | CPU per probe | ratio |\n|---|---:|---:|\n")
	fmt.Printf("| hopprobe (probe + exporter bookkeeping) | %.0f µs | 1.00 |\n", hop/pairedProbes*1e6)
	fmt.Printf("| blackbox_exporter http_2xx (probe + its /probe response) | %.0f µs | %.2f |\n", bb/pairedProbes*1e6, bb/hop)
	return nil
}

// hopprobeHTTP is the child side: the probes through the real walker and
// exporter, printing CPU seconds spent.
func hopprobeHTTP(peer string) error {
	p := &targets.Path{ID: "bench", Vantage: "cluster", Interval: time.Hour, Hops: []targets.Hop{{Name: "service", Node: "bench/svc",
		Kind: hop.KindHTTP, Timeout: 5 * time.Second, Target: hop.Target{Address: peer, Host: peer, Scheme: "http", Path: "/"}}}}
	board, exp := status.NewBoard([]*targets.Path{p}), exporter.New([]*targets.Path{p})
	run := func(n int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				// A fresh walker: no shared-hop cache, every walk probes.
				r := scheduler.NewWalker(1, probes.Run).Walk(context.Background(), p)
				if w, ok := board.Observe(r); ok {
					exp.Observe(r, w)
				}
			})
		}
		wg.Wait()
	}
	run(100) // warm-up
	start := cpuSeconds()
	run(pairedProbes)
	fmt.Println(cpuSeconds() - start)
	return nil
}

func blackboxCPU(bin, peer string) (float64, error) {
	dir, err := os.MkdirTemp("", "hopprobe-bbx-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "blackbox.yml")
	if err := os.WriteFile(cfg, []byte("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n"), 0o644); err != nil {
		return 0, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(19000+os.Getpid()%1000)
	cmd := exec.Command(bin, "--config.file="+cfg, "--web.listen-address="+listen)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	probeURL := "http://" + listen + "/probe?module=http_2xx&target=" + url.QueryEscape("http://"+peer+"/")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + listen + "/"); err == nil {
			resp.Body.Close()
			break
		} else if time.Now().After(deadline) {
			return 0, fmt.Errorf("blackbox_exporter did not start on %s: %w", listen, err)
		}
	}
	drive := func(n int) error {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		sem := make(chan struct{}, 8)
		for range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				resp, err := http.Get(probeURL)
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if !strings.Contains(string(body), "probe_success 1") {
						err = fmt.Errorf("probe failed: %.200s", body)
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return firstErr
	}
	if err := drive(100); err != nil {
		return 0, err
	}
	before, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	if err := drive(pairedProbes); err != nil {
		return 0, err
	}
	after, err := processCPU(cmd.Process.Pid)
	return after - before, err
}

// processCPU reads another process's user+system CPU from /proc.
func processCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

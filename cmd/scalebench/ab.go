package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// The side-by-side run (-steady -ab OTHER): this tree's `probe serve` and
// another build of it at the same time, on the same topology and the
// same peer, each scraped every 15 s. One after the other, two runs of
// the steady harness on this VM differ by ±20 % (the paced floor moves
// that much); two builds running at once see the same machine at the
// same moment. Both walk the same paths at the same planned instants,
// so each also bears the other's load; the run is repeated with the
// start order swapped.

// abSide is one build in a side-by-side run.
type abSide struct {
	name, bin, listen string
	cmd               *exec.Cmd
	// cpu0 and walks0 at the window's start; cpu and walks over it.
	cpu0, walks0 float64
	cpu, walks   float64
	latencies    []float64 // ms, each path's last walk at each scrape
}

func steadyAB(self string, sizes []int, interval, duration time.Duration, other string) error {
	c, err := startPeerProc(self)
	if err != nil {
		return err
	}
	defer c.stop()
	dir, err := os.MkdirTemp("", "hopprobe-ab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	built, err := buildProbe(dir)
	if err != nil {
		return err
	}
	// Both run as cp'd copies, for the reason steady gives.
	this, that := filepath.Join(dir, "probe-this"), filepath.Join(dir, "probe-other")
	if err := copyFile(built, this); err != nil {
		return err
	}
	if err := copyFile(other, that); err != nil {
		return err
	}
	fmt.Printf("side by side: this tree's probe serve and %s at the same time, on the same %d loopback peer listeners, interval %s, %s measured after one interval of warm-up, each scraped (text+gzip) every 15 s; twice per size, the start order swapped\n\n",
		other, peers, interval, duration)
	fmt.Println("| hops | run | build | walks | CPU per walk | × this tree | hop latency p50 | p99 | p99.9 | max |")
	fmt.Println("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range sizes {
		topo, err := topology(n, c.addrs, interval)
		if err != nil {
			return err
		}
		for run := 1; run <= 2; run++ {
			sides := []*abSide{{name: "this tree", bin: this}, {name: "other", bin: that}}
			if run == 2 {
				sides[0], sides[1] = sides[1], sides[0]
			}
			if err := abRun(sides, topo, interval, duration); err != nil {
				os.RemoveAll(filepath.Dir(topo))
				return err
			}
			var base float64
			for _, s := range sides {
				if s.name == "this tree" {
					base = s.perWalk()
				}
			}
			for _, s := range sides {
				slices.Sort(s.latencies)
				fmt.Printf("| %d | %d | %s | %.0f | %.0f µs | %.2f | %.3f ms | %.3f ms | %.3f ms | %.3f ms |\n", n, run, s.name, s.walks, s.perWalk()*1e6, s.perWalk()/base,
					quantile(s.latencies, 0.5), quantile(s.latencies, 0.99), quantile(s.latencies, 0.999), quantile(s.latencies, 1))
			}
		}
		os.RemoveAll(filepath.Dir(topo))
	}
	return nil
}

// abRun starts both sides in order, measures them over the window and
// stops them.
func abRun(sides []*abSide, topo string, interval, duration time.Duration) error {
	defer func() {
		for _, s := range sides {
			if s.cmd != nil && s.cmd.Process != nil {
				s.cmd.Process.Signal(syscall.SIGTERM)
				s.cmd.Wait()
			}
		}
	}()
	for _, s := range sides {
		listen, err := freePort()
		if err != nil {
			return err
		}
		s.listen = listen
		s.cmd = exec.Command(s.bin, "serve", "--config", topo, "--listen", listen, "--reload-check", "0")
		s.cmd.Stdout, s.cmd.Stderr = io.Discard, io.Discard
		if err := s.cmd.Start(); err != nil {
			return err
		}
	}
	time.Sleep(interval + 2*time.Second)
	for _, s := range sides {
		lag, err := walkLag("http://" + s.listen + "/metrics")
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		s.walks0, s.cpu0 = lag[math.Inf(1)], procCPU(s.cmd.Process.Pid)
	}
	end := time.Now().Add(duration)
	for time.Until(end) > 0 {
		time.Sleep(min(15*time.Second, time.Until(end)))
		for _, s := range sides {
			if _, _, err := scrape("http://"+s.listen+"/metrics", true); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			lat, err := hopLatencies("http://" + s.listen + "/api/v1/paths")
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			s.latencies = append(s.latencies, lat...)
		}
	}
	for _, s := range sides {
		s.cpu = procCPU(s.cmd.Process.Pid) - s.cpu0
		lag, err := walkLag("http://" + s.listen + "/metrics")
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		// The walks the prober itself counted; the scrapes' CPU is in
		// the window and so in the cost per walk.
		s.walks = lag[math.Inf(1)] - s.walks0
	}
	return nil
}

func (s *abSide) perWalk() float64 {
	if s.walks == 0 {
		return math.NaN()
	}
	return s.cpu / s.walks
}

// hopLatencies reads each path's last walk's hop latencies.
func hopLatencies(url string) ([]float64, error) {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var doc struct {
		Paths []struct {
			Hops []struct {
				LatencyMS *float64 `json:"latency_ms"`
			} `json:"hops"`
		} `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	var out []float64
	for _, p := range doc.Paths {
		for _, h := range p.Hops {
			if h.LatencyMS != nil {
				out = append(out, *h.LatencyMS)
			}
		}
	}
	return out, nil
}

// quantile of sorted xs (q 1: the largest); NaN when empty.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return xs[min(len(xs)-1, int(q*float64(len(xs))))]
}

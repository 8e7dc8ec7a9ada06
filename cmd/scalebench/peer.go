package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The steady-state run's neutral peer runs in a process of its own.
// In the harness's process it shared a runtime with the scrapes the
// harness parses (10 MB of text at 10,000 hops): the peer then stalled
// for up to ~150 ms, stamped the probes that queued meanwhile as one
// burst, and so charged the prober with jitter that was the harness's.

// counter answers every GET and, while armed, counts requests and how
// far each target's arrivals stray from the period it was armed with
// (jitter, as the target sees it).
type counter struct {
	armed  atomic.Bool
	hits   atomic.Int64
	mu     sync.Mutex
	period time.Duration
	last   map[string]time.Time
	jitter []time.Duration
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, `{"status":"ok"}`)
	if !c.armed.Load() {
		return
	}
	c.hits.Add(1)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.last[r.URL.Path]; ok {
		d := now.Sub(prev) - c.period
		c.jitter = append(c.jitter, max(d, -d))
	}
	c.last[r.URL.Path] = now
}

// peerStats is what the peer saw between arm and disarm.
type peerStats struct {
	Hits  int64         `json:"hits"`
	P99   time.Duration `json:"p99"`
	Worst time.Duration `json:"worst"`
}

func (c *counter) arm(period time.Duration) {
	c.mu.Lock()
	c.last, c.jitter, c.period = map[string]time.Time{}, nil, period
	c.mu.Unlock()
	c.hits.Store(0)
	c.armed.Store(true)
}

func (c *counter) disarm() peerStats {
	c.armed.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := peerStats{Hits: c.hits.Load()}
	if len(c.jitter) > 0 {
		j := slices.Clone(c.jitter)
		slices.Sort(j)
		st.P99, st.Worst = j[min(len(j)-1, len(j)*99/100)], j[len(j)-1]
	}
	return st
}

// peerHello is the peer process's first line on stdout.
type peerHello struct {
	Addrs   []string `json:"addrs"`
	Control string   `json:"control"`
}

// runPeer is the peer process (-steady-peer): the counting listeners
// and a control listener; it exits when its stdin closes, so that it
// never outlives the harness.
func runPeer() error {
	c := &counter{}
	var hello peerHello
	for i := range peers {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", 2+i))
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		hello.Addrs = append(hello.Addrs, ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /arm", func(w http.ResponseWriter, r *http.Request) {
		period, err := time.ParseDuration(r.URL.Query().Get("period"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.arm(period)
	})
	mux.HandleFunc("POST /disarm", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(c.disarm())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = (&http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}).Serve(ln) }()
	hello.Control = ln.Addr().String()
	if err := json.NewEncoder(os.Stdout).Encode(hello); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// peerProc is the harness's handle on the peer process.
type peerProc struct {
	cmd     *exec.Cmd
	stdin   io.Closer
	addrs   []string
	control string
}

func startPeerProc(self string) (*peerProc, error) {
	cmd := exec.Command(self, "-steady-peer")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &peerProc{cmd: cmd, stdin: stdin}
	var hello peerHello
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&hello); err != nil {
		p.stop()
		return nil, fmt.Errorf("the peer process did not say where it listens: %w", err)
	}
	p.addrs, p.control = hello.Addrs, hello.Control
	return p, nil
}

func (p *peerProc) post(path string, q url.Values, into any) error {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Post("http://"+p.control+path+"?"+q.Encode(), "", nil)
	if err != nil {
		return fmt.Errorf("peer %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("peer %s: %s: %s", path, resp.Status, b)
	}
	if into == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// arm starts counting, and timing arrivals against period.
func (p *peerProc) arm(period time.Duration) error {
	return p.post("/arm", url.Values{"period": {period.String()}}, nil)
}

// disarm stops counting and returns what the peer saw.
func (p *peerProc) disarm() (peerStats, error) {
	var st peerStats
	return st, p.post("/disarm", nil, &st)
}

func (p *peerProc) stop() {
	p.stdin.Close()
	_ = p.cmd.Wait()
}

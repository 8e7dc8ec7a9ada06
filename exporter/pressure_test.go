package exporter_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// serve runs e's handler on loopback until the test ends.
func serve(t *testing.T, e *exporter.Exporter) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.MetricsHandler(), WriteTimeout: time.Minute}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln
}

// manyPaths makes a scrape of several MiB, far beyond what the kernel
// buffers of one connection hold.
func manyPaths(n int) ([]*targets.Path, []scheduler.PathResult) {
	var paths []*targets.Path
	var walks []scheduler.PathResult
	now := time.Now()
	for i := range n {
		p := &targets.Path{ID: fmt.Sprintf("svc/ns/app-%04d", i), Vantage: "cluster", Namespace: "ns", Service: fmt.Sprintf("app-%04d", i),
			Interval: time.Second, Hops: []targets.Hop{{Name: "port-8080", Node: "ns/app", Kind: hop.KindHTTP}}}
		paths = append(paths, p)
		walks = append(walks, scheduler.PathResult{Path: p, Start: now, FirstFailing: -1, Success: true,
			Hops: []scheduler.HopResult{{Result: hop.Result{Success: true, Start: now, Duration: time.Millisecond}}}})
	}
	return paths, walks
}

// stalledScraper connects with a receive buffer of 4 KiB, set before the
// handshake so that the window stays small: the server's write blocks
// once its own send buffer is full.
func stalledScraper(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A scraper that asks for /metrics and never reads holds its own
// connection, never the walks: Observe returns as fast as it does with
// no scraper at all.
func TestAStalledScraperNeverBlocksAWalk(t *testing.T) {
	paths, walks := manyPaths(12000)
	e := exporter.New(paths)
	for _, w := range walks {
		observe(e, w)
	}
	var scrape bytes.Buffer
	if err := e.WriteMetrics(&scrape); err != nil || scrape.Len() < 8<<20 {
		t.Fatalf("a scrape of %d bytes (%v) would fit in the socket buffers", scrape.Len(), err)
	}
	ln := serve(t, e)

	// Baseline: Observe with nobody scraping, in this run.
	start := time.Now()
	for _, w := range walks[:100] {
		observe(e, w)
	}
	baseline := time.Since(start)

	c := stalledScraper(t, ln.Addr().String())
	defer c.Close()
	if _, err := c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// The answer has begun; from here on the scraper reads nothing, and
	// the server's write fills the buffers and blocks.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 16)); err != nil {
		t.Fatalf("no answer began: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	// Rendering the scrape holds the lock for a moment (long under the
	// race detector); once it is rendered and the server blocks in its
	// write, a batch of walks must be as quick as without the scraper.
	deadline := time.Now().Add(8 * time.Second)
	for {
		done := make(chan time.Duration)
		go func() {
			start := time.Now()
			for _, w := range walks[:100] {
				observe(e, w)
			}
			done <- time.Since(start)
		}()
		var took time.Duration
		select {
		case took = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a scraper that does not read blocked the walks")
		}
		if took <= 20*baseline+100*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("100 walks still took %s beside a stalled scraper, %s without", took, baseline)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// More scrapes at once than MaxScrapes are refused, not queued.
func TestScrapesAreCapped(t *testing.T) {
	paths, walks := manyPaths(12000)
	e := exporter.New(paths)
	for _, w := range walks {
		observe(e, w)
	}
	ln := serve(t, e)
	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for range exporter.MaxScrapes {
		c := stalledScraper(t, ln.Addr().String())
		c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
		stalled = append(stalled, c)
	}
	time.Sleep(500 * time.Millisecond)
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a scrape beyond %d got %d", exporter.MaxScrapes, resp.StatusCode)
	}
}

// Metrics the rules use exist from the first scrape with a meaningful
// value, and drift metrics only where drift is checked; drift_info stays
// bounded however many differences a check finds.
func TestMetricsExistFromTheFirstScrape(t *testing.T) {
	paths, _ := manyPaths(1)
	scrape := func(e *exporter.Exporter) string {
		var b bytes.Buffer
		if err := e.WriteMetrics(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	e := exporter.New(paths)
	e.CountPanics(probes.Kinds(), probes.PanicCount)
	m := scrape(e)
	for _, want := range []string{`hopprobe_config_reloads_total{result="failure"} 0`, `hopprobe_config_reloads_total{result="success"} 0`, `hopprobe_probe_panics_total{kind="redis"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("first scrape lacks %s", want)
		}
	}
	if strings.Contains(m, "hopprobe_drift_last_check_successful") {
		t.Error("drift metrics without a drift source (an alert on == 0 would fire)")
	}
	e.EnableDrift()
	m = scrape(e)
	for _, want := range []string{"hopprobe_drift_last_check_successful 1", `hopprobe_drift_items{kind="missing-live"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("with drift enabled, the first scrape lacks %s", want)
		}
	}
	var items []targets.DriftItem
	for i := range 5000 {
		items = append(items, targets.DriftItem{Kind: targets.DriftUndocumented, Subject: fmt.Sprintf("ns/%s-%d", strings.Repeat("x", 300), i)})
	}
	e.SetDrift(items, 1, 5000, nil)
	m = scrape(e)
	if n := strings.Count(m, "hopprobe_drift_info{"); n != exporter.MaxDriftInfo {
		t.Errorf("%d drift_info series, want %d", n, exporter.MaxDriftInfo)
	}
	if !strings.Contains(m, `hopprobe_drift_items{kind="undocumented"} 5000`) || !strings.Contains(m, "hopprobe_drift_info_omitted 4800") {
		t.Error("the count of every difference or of the omitted ones is missing")
	}
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "hopprobe_drift_info{") && len(line) > 300 {
			t.Fatalf("a drift subject label of %d bytes", len(line))
		}
	}
}

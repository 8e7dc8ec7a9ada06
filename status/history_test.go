package status_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// walkWith is a walk of p whose hops all answered with the given
// details.
func walkWith(p *targets.Path, at time.Time, details func(i int) map[string]string) scheduler.PathResult {
	r := scheduler.PathResult{Path: p, Success: true, FirstFailing: -1, Start: at, Hops: make([]scheduler.HopResult, len(p.Hops))}
	for i := range r.Hops {
		r.Hops[i] = scheduler.HopResult{Result: hop.Result{Success: true, Start: at, Duration: time.Millisecond}}
		r.Hops[i].Details = details(i)
	}
	return r
}

// What changed between two walks becomes an event with its time and
// both values, counted per hop and kind; a hop that failed without the
// detail changed nothing; the history keeps the last walks only.
func TestEvidenceChangesAreEventsAndCounted(t *testing.T) {
	p := &targets.Path{ID: "api.example.test/*", Vantage: "cluster", Hops: []targets.Hop{
		{Name: "dns", Kind: hop.KindDNS}, {Name: "cloudfront", Kind: hop.KindHTTP}, {Name: "cache", Kind: hop.KindRedis}}}
	b, e := status.NewBoard([]*targets.Path{p}), exporter.New([]*targets.Path{p})
	b.SetHistory(3)
	values := []struct{ addrs, pop, cert, role string }{
		{"10.0.0.1", "SIN2-P1", "aa", "master"},
		{"10.0.0.1", "SIN2-P1", "aa", "master"},
		{"10.0.0.1,10.0.0.2", "SIN52-C1", "bb", "slave"},
		{"", "SIN52-C1", "bb", "slave"}, // the DNS hop failed: no answer to compare
		{"10.0.0.1,10.0.0.2", "SIN52-C1", "bb", "slave"},
	}
	start := time.Unix(1_800_000_000, 0)
	for k, v := range values {
		r := walkWith(p, start.Add(time.Duration(k)*time.Minute), func(i int) map[string]string {
			return []map[string]string{{"addresses": v.addrs}, {"header.x-amz-cf-pop": v.pop, "cert.sha256": v.cert, "status": "200"}, {"role": v.role}}[i]
		})
		// As the runner feeds them: the board says what changed, the
		// exporter counts it.
		w, ok := b.Observe(r)
		if !ok {
			t.Fatal("a walk of the current path was refused")
		}
		e.Observe(r, w)
	}
	h, ok := b.History(p.ID)
	if !ok || len(h.Walks) != 3 || h.Keep != 3 {
		t.Fatalf("history: %v, %d walks, keep %d", ok, len(h.Walks), h.Keep)
	}
	if !h.Walks[0].LastWalk.Equal(start.Add(4 * time.Minute)) {
		t.Errorf("the newest walk is not first: %v", h.Walks[0].LastWalk)
	}
	got := map[string]string{}
	for _, ev := range h.Events {
		got[ev.Hop+" "+ev.Change] = fmt.Sprintf("%s→%s@%d", ev.From, ev.To, ev.Time.Sub(start)/time.Minute)
	}
	want := map[string]string{
		"dns dns_answer":         "10.0.0.1→10.0.0.1,10.0.0.2@2",
		"cloudfront pop":         "SIN2-P1→SIN52-C1@2",
		"cloudfront certificate": "aa→bb@2",
		"cache role":             "master→slave@2",
	}
	if len(got) != len(want) {
		t.Errorf("events %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("event %s: %q, want %q", k, got[k], w)
		}
	}
	// Fewer kept: the newest stay, newest first.
	b.SetHistory(2)
	if h, _ := b.History(p.ID); len(h.Walks) != 2 || !h.Walks[0].LastWalk.Equal(start.Add(4*time.Minute)) || !h.Walks[1].LastWalk.Equal(start.Add(3*time.Minute)) {
		t.Errorf("after SetHistory(2): %d walks, newest %v", len(h.Walks), h.Walks[0].LastWalk)
	}
	body := scrape(t, e)
	for _, line := range []string{
		`hopprobe_hop_evidence_changes_total{change="certificate",hop="cloudfront",path="api.example.test/*",vantage="cluster"} 1`,
		`hopprobe_hop_evidence_changes_total{change="dns_answer",hop="dns",path="api.example.test/*",vantage="cluster"} 1`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("the scrape lacks %s", line)
		}
	}
}

// The history's memory on the shipped topology, with evidence as large
// as a route hop's (headers, certificate, trace id) and, as in a real
// run, the same from walk to walk but for the request ids: measured,
// and held under a bound so that a change that bloats it fails here.
func TestHistoryMemoryIsBounded(t *testing.T) {
	paths, err := targets.Expand(testkit.Allinx(t), config.VantageCluster)
	if err != nil {
		t.Fatal(err)
	}
	details := func(i int) map[string]string {
		return map[string]string{"status": "200", "remote": "10.0.12.34:443", "trace_id": fmt.Sprintf("%032x", rand.Uint64()),
			"header.server": "APISIX/3.9.0", "header.via": "1.1 3f1a2b.cloudfront.net (CloudFront)", "header.x-amz-cf-pop": "SIN2-P1",
			"header.x-amz-cf-id": fmt.Sprintf("%040x", rand.Uint64()), "header.x-cache": "Miss from cloudfront",
			"cert.subject": "CN=*.allinpro.com", "cert.issuer": "CN=Amazon RSA 2048 M02,O=Amazon,C=US", "cert.sans": "*.allinpro.com,allinpro.com",
			"cert.not_after": "2027-06-01T23:59:59Z", "cert.sha256": fmt.Sprintf("%064x", 7), "tls_version": "TLS 1.3"}
	}
	b := status.NewBoard(paths)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for k := range config.DefaultHistory {
		for _, p := range paths {
			b.Observe(walkWith(p, time.Now().Add(time.Duration(k)*time.Second), details))
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perPath := float64(after.HeapAlloc-before.HeapAlloc) / float64(len(paths))
	t.Logf("%d paths × %d walks: %.0f KiB heap in all, %.1f KiB per path", len(paths), config.DefaultHistory, float64(after.HeapAlloc-before.HeapAlloc)/1024, perPath/1024)
	if perPath > 64<<10 {
		t.Errorf("the history holds %.0f KiB per path, want under 64 KiB", perPath/1024)
	}
	runtime.KeepAlive(b)
}

// What each kept walk costs at scale, where it adds up: 2,000 one-hop
// paths as cmd/scalebench builds them, each walked as many times as the
// history keeps, with a status, an address and a fresh trace id per
// walk. Measured 385 bytes per walk and path when the ring grew by
// append's doubling and the records held times and verdicts as
// time.Time and strings (at 10,000 paths, 94 MiB of live heap after 20
// walks); 227 after.
func TestAKeptWalkOfAOneHopPathIsSmall(t *testing.T) {
	const n = 2000
	var paths []*targets.Path
	for i := range n {
		paths = append(paths, &targets.Path{ID: fmt.Sprintf("svc/bench/svc-%05d", i), Vantage: "cluster", Namespace: "bench",
			Service: fmt.Sprintf("svc-%05d", i), Hops: []targets.Hop{{Name: "port-8080", Node: fmt.Sprintf("bench/svc-%05d", i),
				Kind: hop.KindHTTP, Target: hop.Target{Scheme: "http", Host: "svc.bench", Path: fmt.Sprintf("/svc-%05d", i), Address: "127.0.0.2:34567"}}}})
	}
	b := status.NewBoard(paths)
	walk := func(k int) {
		for _, p := range paths {
			b.Observe(walkWith(p, time.Now().Add(time.Duration(k)*time.Second), func(int) map[string]string {
				return map[string]string{"status": "200", "remote": "127.0.0.2:34567", "trace_id": fmt.Sprintf("%032x", rand.Uint64())}
			}))
		}
	}
	walk(0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for k := 1; k < config.DefaultHistory; k++ {
		walk(k)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perWalk := float64(after.HeapAlloc-before.HeapAlloc) / float64(n*(config.DefaultHistory-1))
	t.Logf("%.0f bytes per kept walk of a one-hop path", perWalk)
	if perWalk > 300 {
		t.Errorf("a kept walk of a one-hop path holds %.0f bytes, want at most 300", perWalk)
	}
	runtime.KeepAlive(b)
}

// scrape reads the metrics as text.
func scrape(t *testing.T, e *exporter.Exporter) string {
	t.Helper()
	var b strings.Builder
	if err := e.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/peers"
)

// tool finds a server binary, skipping loudly where it is missing (and
// failing in CI, whose .ci/run installs it).
func tool(t *testing.T, pkg string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must have %s (Debian package %s; .ci/run installs it)", names[0], pkg)
	}
	t.Skipf("SKIPPED LOUDLY: %s not installed (apt-get install %s)", names[0], pkg)
	return ""
}

// notification is what Alertmanager's webhook sends.
type notification struct {
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// pageLog records every alert Alertmanager notifies.
type pageLog struct {
	mu   sync.Mutex
	seen []string // "firing HopprobeFirstFailingHop hop=cache severity=critical"
}

func (p *pageLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n notification
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&n); err == nil {
		p.mu.Lock()
		for _, a := range n.Alerts {
			p.seen = append(p.seen, fmt.Sprintf("%s %s hop=%s severity=%s", a.Status, a.Labels["alertname"], a.Labels["hop"], a.Labels["severity"]))
		}
		p.mu.Unlock()
	}
}

func (p *pageLog) count(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.seen {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func (p *pageLog) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// The shipped rules and inhibition rules, evaluated by a real Prometheus
// and routed by a real Alertmanager against `probe serve` on a loopback
// topology: an outage of a store and then of the gateway each page once,
// naming the first failing hop, and resolve after recovery; the
// gateway's timeouts raise no latency page. The rules' `for` durations
// are shortened (10m to 10s and so on), and the route's waits to 1s;
// everything else is as shipped.
// Bounded: about a minute and a half, loopback only.
func TestAlertsPageOncePerIncident(t *testing.T) {
	prom := tool(t, "prometheus", "prometheus")
	am := tool(t, "prometheus-alertmanager", "prometheus-alertmanager", "alertmanager")
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("CI") == "" {
		t.Skip("SKIPPED LOUDLY: redis-server not installed")
	}
	dir := t.TempDir()
	const pw = "alerts-e2e-redis-pw"
	redisAddr, _ := peers.FreePort()
	redis, err := peers.Redis(redisAddr, pw, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { redis.Stop() }()

	var blackhole atomic.Bool
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if blackhole.Load() {
			select { // accepts, never answers
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		// What APISIX leaves in every answer; without it the chain
		// attestation would page that the gateway was bypassed.
		w.Header().Set("Server", "APISIX/3.9.0")
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer gateway.Close()
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) }))
	defer service.Close()
	resolver, err := peers.DNS(dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(127, 0, 0, 1)})
		}
		w.WriteMsg(m)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer resolver.Stop()

	topo := filepath.Join(dir, "topology.yaml")
	write(t, topo, fmt.Sprintf(`vantage: cluster
defaults: {interval: 1s, timeout: 600ms}
vantages:
  cluster: {resolver: %q}
entries:
  - name: public
    hops:
      - {name: apisix, address: %q}
routes:
  - hosts: [api.example.test]
    path: /*
    service: ns/app:8080
    probe: {path: /health}
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: %q}], depends_on: [cache]}
stores:
  - {name: cache, kind: redis, address: %q, password: {env: HOPPROBE_E2E_REDIS_PW}}
`, resolver.Addr, strings.TrimPrefix(gateway.URL, "http://"), strings.TrimPrefix(service.URL, "http://"), redisAddr))
	t.Setenv("HOPPROBE_E2E_REDIS_PW", pw)
	listen := serveProbe(t, topo)

	pages := &pageLog{}
	hook := httptest.NewServer(pages)
	defer hook.Close()
	amListen, _ := peers.FreePort()
	// The shipped route and inhibition, with the route's waits shortened
	// like the rules' durations.
	write(t, filepath.Join(dir, "am.yaml"), alertmanagerConfig(t, hook.URL, func(r map[string]any) {
		r["group_wait"], r["group_interval"] = "1s", "1s"
	}))
	rules, err := os.ReadFile("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fast := map[string]string{"2m": "3s", "5m": "5s", "10m": "10s", "15m": "15s"}
	shortened := regexp.MustCompile(`(?m)^(\s+for: )(\d+m)$`).ReplaceAllStringFunc(string(rules), func(s string) string {
		i := strings.LastIndex(s, " ")
		return s[:i+1] + fast[s[i+1:]]
	})
	write(t, filepath.Join(dir, "rules.yaml"), shortened)
	promListen, _ := peers.FreePort()
	write(t, filepath.Join(dir, "prometheus.yaml"), fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yaml]
alerting:
  alertmanagers: [{static_configs: [{targets: [%q]}]}]
scrape_configs:
  - job_name: hopprobe
    static_configs: [{targets: [%q]}]
`, amListen, listen))
	run := func(name string, args ...string) { runServer(t, filepath.Base(name), name, args...) }
	run(am, "--config.file", filepath.Join(dir, "am.yaml"), "--storage.path", filepath.Join(dir, "am"),
		"--web.listen-address", amListen, "--cluster.listen-address=")
	run(prom, "--config.file", filepath.Join(dir, "prometheus.yaml"), "--storage.tsdb.path", filepath.Join(dir, "tsdb"),
		"--web.listen-address", promListen)

	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !ok(); time.Sleep(250 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %s; notifications: %v", what, limit, pages.all())
			}
		}
	}
	// Healthy first: Prometheus scrapes the prober and evaluates.
	waitFor("healthy scrape", 45*time.Second, func() bool { return promQuery(promListen, `hopprobe_path_success == 1`) })
	time.Sleep(5 * time.Second)

	// Incident 1: the store.
	redis.Stop()
	waitFor("page for the store", 45*time.Second, func() bool { return pages.count("firing HopprobeFirstFailingHop hop=cache") > 0 })
	time.Sleep(5 * time.Second)
	if redis, err = peers.Redis(redisAddr, pw, ""); err != nil {
		t.Fatal(err)
	}
	waitFor("resolution of the store's page", 45*time.Second, func() bool { return pages.count("resolved HopprobeFirstFailingHop hop=cache") > 0 })

	// Incident 2: the gateway stops answering; its probes time out.
	blackhole.Store(true)
	waitFor("page for the gateway", 45*time.Second, func() bool { return pages.count("firing HopprobeFirstFailingHop hop=apisix") > 0 })
	time.Sleep(15 * time.Second) // long enough for a latency alert to fire, were timeouts "slow"
	blackhole.Store(false)
	waitFor("resolution of the gateway's page", 45*time.Second, func() bool { return pages.count("resolved HopprobeFirstFailingHop hop=apisix") > 0 })
	time.Sleep(3 * time.Second)

	var firingPages []string
	for _, s := range pages.all() {
		if strings.HasPrefix(s, "firing") && strings.HasSuffix(s, "severity=critical") {
			firingPages = append(firingPages, s)
		}
	}
	want := []string{"firing HopprobeFirstFailingHop hop=cache severity=critical", "firing HopprobeFirstFailingHop hop=apisix severity=critical"}
	if strings.Join(firingPages, "\n") != strings.Join(want, "\n") {
		t.Errorf("pages %q, want exactly %q (one per incident, naming its first failing hop)", firingPages, want)
	}
	for _, s := range pages.all() {
		if strings.Contains(s, "Latency") {
			t.Errorf("an outage raised a latency alert: %s", s)
		}
	}
}

// serveProbe runs `probe serve` on topo until the test ends and returns
// its listen address.
func serveProbe(t *testing.T, topo string) string {
	t.Helper()
	listen, _ := peers.FreePort()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int)
	go func() {
		served <- cli.Main(ctx, []string{"serve", "--config", topo, "--listen", listen, "--reload-check", "0"}, io.Discard, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-served })
	return listen
}

// runServer runs a server process until the test ends, and shows what it
// said when the test failed.
func runServer(t *testing.T, label, name string, args ...string) {
	t.Helper()
	runServerOutput(t, label, name, args...)
}

// runServerOutput is runServer that also hands over what the server says.
func runServerOutput(t *testing.T, label, name string, args ...string) *lockedOutput {
	t.Helper()
	_, out := startStoppable(t, label, name, args...)
	return out
}

// startStoppable runs a server until stop is called or the test ends,
// and shows what it said when the test failed.
func startStoppable(t *testing.T, label, name string, args ...string) (stop func(), out *lockedOutput) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out = &lockedOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s said:\n%s", label, out.tail())
		}
	})
	return stop, out
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// promQuery reports whether an instant query returns any sample.
func promQuery(listen, q string) bool {
	resp, err := http.Get("http://" + listen + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	return json.NewDecoder(resp.Body).Decode(&r) == nil && len(r.Data.Result) > 0
}

// lockedOutput keeps a server's output for the failure log.
type lockedOutput struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 1<<20 {
		l.b = l.b[len(l.b)-(1<<19):]
	}
	return len(p), nil
}

func (l *lockedOutput) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b[max(0, len(l.b)-4000):])
}

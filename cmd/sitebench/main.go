// Command sitebench runs probe sites end to end (make bench-sites), as
// external vantages in other regions run:
//
//   - three sites, each a `probe serve` leaving from its own loopback
//     address (--source-address) beside a Prometheus in agent mode with
//     the shipped deploy/external/agent.yml and its own site label,
//     walking the demo topology's stand-ins; a fourth site walks 1,000
//     one-hop paths, for the memory figures;
//   - one receiving Prometheus (--web.enable-remote-write-receiver) with
//     the shipped rules, and Debian's Alertmanager with the shipped route
//     notifying a webhook this program serves.
//
// It then shows, in order:
//
//	(a) a drop rule from one site's address to the edge gives exactly
//	    one ticket naming that site and its CloudFront POP, and no page;
//	(b) a data store every site sees stop pages exactly once;
//	(c) the receiver stopped for --outage (10 minutes) and started again:
//	    no gap in any site's hopprobe_hop_success, and the probers' and
//	    agents' memory while it was away;
//	(d) a receiver that answers 500, then 429, then hangs: every prober
//	    goes on probing, and the agents' memory stays bounded.
//
// Everything runs in network and mount namespaces of its own; it needs
// root and takes about 35 minutes at the defaults.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/benchkit"
	"github.com/allinx/hopprobe/internal/demo"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/probes"
)

const insideEnv = "HOPPROBE_SITEBENCH_INSIDE"

// The sites: a region and provider each, and the loopback address its
// prober leaves from.
var sites = []struct{ name, source string }{
	{"ap-northeast-1-aws", "127.0.0.11"},
	{"ap-southeast-1-aws", "127.0.0.12"},
	{"eu-central-1-aws", "127.0.0.13"},
}

// scaleSite walks the 1,000-hop topology.
const scaleSite = "scale-test"

type options struct {
	probe     string
	store     string
	outage    time.Duration
	hostile   time.Duration
	scaleHops int
}

func main() {
	var o options
	flag.StringVar(&o.probe, "probe", "bin/probe", "the probe binary to run (make build)")
	flag.StringVar(&o.store, "store", "futuresnewredis", "the data store of the demo topology to stop for (b)")
	flag.DurationVar(&o.outage, "outage", 10*time.Minute, "how long the receiver is away for (c)")
	flag.DurationVar(&o.hostile, "hostile", 2*time.Minute, "how long the receiver answers 500, then 429, then hangs, each, for (d)")
	flag.IntVar(&o.scaleHops, "scale-hops", 1000, "hops of the fourth site's topology (memory figures)")
	flag.Parse()
	if !benchkit.Inside(insideEnv) {
		os.Exit(benchkit.InNamespace(insideEnv, "sitebench"))
	}
	probes.RegisterKinds()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "sitebench:", err)
		os.Exit(1)
	}
}

// bench is the running deployment.
type bench struct {
	ctx      context.Context
	dir      string
	prom     string
	recvAddr string
	recvArgs []string
	recv     *benchkit.Proc
	q        *benchkit.PromAPI
	hook     *benchkit.Receiver
	probers  map[string]*benchkit.Proc // by site
	listens  map[string]string         // a site's prober's listen address
	agents   map[string]*benchkit.Proc
	agentAt  map[string]string // a site's agent's listen address
	procs    []*benchkit.Proc
	demo     *demo.Demo
}

func (b *bench) start(name string, env []string, args ...string) (*benchkit.Proc, error) {
	p, err := benchkit.StartProc(b.ctx, b.dir, name, env, args...)
	if err == nil {
		b.procs = append(b.procs, p)
	}
	return p, err
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tools, done, err := benchkit.Prepare("sitebench", o.probe)
	if err != nil {
		return err
	}
	defer done()
	dir, prom, probe := tools.Dir, tools.Prometheus, tools.Probe
	b := &bench{ctx: ctx, dir: dir, prom: prom, hook: &benchkit.Receiver{}, probers: map[string]*benchkit.Proc{}, listens: map[string]string{},
		agents: map[string]*benchkit.Proc{}, agentAt: map[string]string{}}
	defer func() {
		for _, p := range b.procs {
			p.Stop()
		}
	}()

	src, err := os.ReadFile("config/demo.yaml")
	if err != nil {
		return err
	}
	topo, d, err := demo.StartCopy(src, dir, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	b.demo = d
	edge, err := edgePort(topo)
	if err != nil {
		return err
	}
	scaleTopo, closeScale, err := scaleTopology(dir, o.scaleHops)
	if err != nil {
		return err
	}
	defer closeScale()

	amListen, stopHook, err := benchkit.Alerting(tools, b.hook, b.start)
	if err != nil {
		return err
	}
	defer stopHook()
	if err := b.startReceiver(amListen); err != nil {
		return err
	}
	for _, s := range sites {
		if err := b.startSite(probe, s.name, topo, "--source-address", s.source); err != nil {
			return err
		}
	}
	if err := b.startSite(probe, scaleSite, scaleTopo); err != nil {
		return err
	}
	fmt.Printf("sitebench: %d sites on the demo topology, %s on %d hops, edge port %d, outage %s\n", len(sites), scaleSite, o.scaleHops, edge, o.outage)

	all := fmt.Sprintf(`count(count by (site) (hopprobe_hop_success{hop=%q} == 1))`, o.store)
	if err := benchkit.WaitUntil(ctx, 4*time.Minute, func() bool {
		return b.q.Value(all) == float64(len(sites)) && b.q.Value(`count(count by (site) (hopprobe_hop_success{site="`+scaleSite+`"}))`) == 1
	}); err != nil {
		return fmt.Errorf("the sites never arrived healthy at the receiver: %w", err)
	}
	var report []string
	for _, step := range []func(options, int) (string, error){b.oneSite, b.everySite, b.receiverAway, b.hostileReceiver} {
		line, err := step(o, edge)
		if err != nil {
			return err
		}
		fmt.Println(line)
		report = append(report, line)
	}
	fmt.Println("\n== sitebench report ==")
	for _, l := range report {
		fmt.Println(l)
	}
	return nil
}

// startReceiver runs the receiving Prometheus with the shipped rules.
func (b *bench) startReceiver(amListen string) error {
	rules, err := filepath.Abs("deploy/prometheus/rules.yaml")
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`global: {evaluation_interval: 15s}
rule_files: [%q]
alerting:
  alertmanagers: [{static_configs: [{targets: [%q]}]}]
`, rules, amListen)
	if err := os.WriteFile(filepath.Join(b.dir, "receiver.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	b.recvAddr, _ = peers.FreePort()
	b.recvArgs = []string{b.prom, "--config.file", filepath.Join(b.dir, "receiver.yaml"), "--storage.tsdb.path", filepath.Join(b.dir, "receiver-tsdb"),
		"--web.listen-address", b.recvAddr, "--web.enable-remote-write-receiver"}
	b.q = &benchkit.PromAPI{Base: "http://" + b.recvAddr}
	return b.restartReceiver()
}

func (b *bench) restartReceiver() error {
	p, err := b.start("receiver", nil, b.recvArgs...)
	if err != nil {
		return err
	}
	b.recv = p
	return benchkit.WaitUntil(b.ctx, time.Minute, func() bool { return get("http://"+b.recvAddr+"/-/ready") == http.StatusOK })
}

// startSite runs a prober and, beside it, the shipped agent
// configuration with the site's label, pushing to the receiver.
func (b *bench) startSite(probe, site, topo string, extra ...string) error {
	listen, _ := peers.FreePort()
	args := append([]string{probe, "serve", "--config", topo, "--listen", listen, "--reload-check", "0"}, extra...)
	p, err := b.start("probe-"+site, nil, args...)
	if err != nil {
		return err
	}
	shipped, err := os.ReadFile("deploy/external/agent.yml")
	if err != nil {
		return err
	}
	// The receiver here speaks plain HTTP without credentials: the
	// shipped basic_auth and tls_config blocks go, nothing else changes.
	cfg := regexp.MustCompile(`(?m)^    (basic_auth|tls_config):\n(      .*\n)+`).ReplaceAllString(string(shipped), "")
	cfg = strings.NewReplacer(`"127.0.0.1:9115"`, strconv.Quote(listen),
		"https://metrics.example.internal/api/v1/write", "http://"+b.recvAddr+"/api/v1/write").Replace(cfg)
	if strings.Contains(cfg, "example.internal") || strings.Contains(cfg, "/etc/hopprobe") {
		return fmt.Errorf("the shipped agent configuration changed shape; update sitebench:\n%s", cfg)
	}
	file := filepath.Join(b.dir, "agent-"+site+".yml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		return err
	}
	at, _ := peers.FreePort()
	a, err := b.start("agent-"+site, []string{"HOPPROBE_SITE=" + site, "HOPPROBE_REPLICA=a"}, b.prom, "--enable-feature=agent,expand-external-labels",
		"--config.file", file, "--storage.agent.path", filepath.Join(b.dir, "wal-"+site), "--web.listen-address", at)
	if err != nil {
		return err
	}
	b.probers[site], b.listens[site], b.agents[site], b.agentAt[site] = p, listen, a, at
	return nil
}

// oneSite: the first site's packets to the edge are dropped. Exactly
// one ticket names that site and its POP; nothing pages.
func (b *bench) oneSite(o options, edge int) (string, error) {
	site := sites[0]
	from := time.Now()
	rule := fmt.Sprintf("ip saddr %s ip daddr 127.0.0.1 meta l4proto { tcp, udp } th dport %d counter drop", site.source, edge)
	if err := dropRule(rule); err != nil {
		return "", err
	}
	var tickets []benchkit.Note
	err := benchkit.WaitUntil(b.ctx, 8*time.Minute, func() bool {
		tickets = b.notes(from, "tickets", "HopprobeSiteCannotReach", "firing")
		return len(tickets) > 0
	})
	firing := b.alerts("HopprobeSiteCannotReach")
	if err := benchkit.Sh("nft", "delete", "table", "inet", "sitebench"); err != nil {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("(a) no ticket within 8 minutes of the drop from %s: %w", site.name, err)
	}
	took := tickets[0].At.Sub(from)
	// The page would have come first, had it come; wait for the ticket's
	// group to settle before counting.
	if err := benchkit.Sleep(b.ctx, 45*time.Second); err != nil {
		return "", err
	}
	tickets = b.notes(from, "tickets", "HopprobeSiteCannotReach", "firing")
	pages := b.hook.PagesSince(from)
	if err := benchkit.WaitUntil(b.ctx, 5*time.Minute, func() bool { return len(b.alerts("HopprobeSiteCannotReach")) == 0 }); err != nil {
		return "", fmt.Errorf("(a) the ticket did not clear after the drop rule went: %w", err)
	}
	return fmt.Sprintf("(a) one site (%s) cut from the edge: %d ticket notification(s) after %s, firing alerts %v; pages: %d %v (want 1 ticket naming the site and its POP, 0 pages)",
		site.name, len(tickets), took.Round(time.Second), firing, len(pages), pages), nil
}

// everySite: a data store every site sees stop pages exactly once,
// with no ticket.
func (b *bench) everySite(o options, _ int) (string, error) {
	d := b.hook
	from := time.Now()
	if err := b.demo.Stop(o.store); err != nil {
		return "", err
	}
	var paged time.Time
	err := benchkit.WaitUntil(b.ctx, 5*time.Minute, func() bool { paged = d.FirstPage(from, o.store); return !paged.IsZero() })
	restartErr := b.demo.Restart(o.store)
	if err != nil {
		return "", fmt.Errorf("(b) no page for %s: %w", o.store, err)
	}
	if restartErr != nil {
		return "", restartErr
	}
	if err := benchkit.WaitUntil(b.ctx, 5*time.Minute, func() bool { return len(b.alerts("HopprobeFirstFailingHop")) == 0 }); err != nil {
		return "", fmt.Errorf("(b) the page did not clear: %w", err)
	}
	pages := d.PagesSince(from)
	tickets := b.notes(from, "tickets", "HopprobeSiteCannotReach", "firing")
	return fmt.Sprintf("(b) %s stopped for every site: paged after %s; pages %d %v; site tickets %d (want 1 page, 0 tickets)",
		o.store, paged.Sub(from).Round(time.Second), len(pages), pages, len(tickets)), nil
}

// receiverAway stops the receiver for o.outage and starts it again: no
// gap in any site's hopprobe_hop_success, and the memory it cost.
func (b *bench) receiverAway(o options, _ int) (string, error) {
	before := b.memory()
	b.recv.Stop()
	stopped := time.Now()
	peak := map[string]int64{}
	for time.Since(stopped) < o.outage {
		for k, v := range b.memory() {
			peak[k] = max(peak[k], v)
		}
		if err := benchkit.Sleep(b.ctx, 15*time.Second); err != nil {
			return "", err
		}
	}
	wal := dirSize(filepath.Join(b.dir, "wal-"+scaleSite))
	if err := benchkit.WaitUntil(b.ctx, time.Minute, func() bool { return b.recv.RSS() == 0 }); err != nil {
		return "", errors.New("(c) the receiver did not stop")
	}
	restarted := time.Now()
	if err := b.restartReceiver(); err != nil {
		return "", err
	}
	// Caught up: every site's newest sample is recent.
	const caught = `count(time() - max by (site) (timestamp(hopprobe_hop_success)) < 60)`
	if err := benchkit.WaitUntil(b.ctx, 10*time.Minute, func() bool { return b.q.Value(caught) == float64(len(sites)+1) }); err != nil {
		return "", fmt.Errorf("(c) the agents did not catch up within 10 minutes of the receiver's return: %w", err)
	}
	caughtUp := time.Since(restarted)
	if err := benchkit.Sleep(b.ctx, time.Minute); err != nil {
		return "", err
	}
	gaps, series, steps, err := b.gaps(stopped.Add(-time.Minute), restarted.Add(time.Minute))
	if err != nil {
		return "", err
	}
	mib := func(v int64) string { return fmt.Sprintf("%.0f", float64(v)/(1<<20)) }
	return fmt.Sprintf("(c) receiver away %s: caught up %s after its return; %d of %d hopprobe_hop_success series with a gap over %d 30-s steps (want 0); "+
		"memory before → peak while away, MiB: prober %s %s → %s, agent %s → %s; prober at %d hops %s → %s, its agent %s → %s (WAL on disk %s MiB)",
		o.outage, caughtUp.Round(time.Second), gaps, series, steps,
		sites[0].name, mib(before["probe-"+sites[0].name]), mib(peak["probe-"+sites[0].name]), mib(before["agent-"+sites[0].name]), mib(peak["agent-"+sites[0].name]),
		o.scaleHops, mib(before["probe-"+scaleSite]), mib(peak["probe-"+scaleSite]), mib(before["agent-"+scaleSite]), mib(peak["agent-"+scaleSite]), mib(wal)), nil
}

// hostileReceiver puts a server that answers 500, then 429, then hangs
// in the receiver's place: every prober goes on probing, and the agents
// retry and count, within bounded memory.
func (b *bench) hostileReceiver(o options, _ int) (string, error) {
	b.recv.Stop()
	if err := benchkit.WaitUntil(b.ctx, time.Minute, func() bool { return b.recv.RSS() == 0 }); err != nil {
		return "", errors.New("(d) the receiver did not stop")
	}
	mode := make(chan string, 1)
	release := make(chan struct{})
	defer close(release)
	var current string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		select {
		case m := <-mode:
			current = m
		default:
		}
		switch current {
		case "500":
			http.Error(w, "receiver broken", http.StatusInternalServerError)
		case "429":
			w.Header().Set("Retry-After", "5")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			select { // hang until the bench ends this phase
			case <-release:
			case <-r.Context().Done():
			}
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", b.recvAddr)
	if err != nil {
		return "", fmt.Errorf("(d) taking the receiver's address: %w", err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	var parts []string
	peakAgent := int64(0)
	for _, m := range []string{"500", "429", "hang"} {
		mode <- m
		probesBefore := map[string]float64{}
		for site, l := range b.listens {
			probesBefore[site] = benchkit.ProbesTotal(l)
		}
		end := time.Now().Add(o.hostile)
		for time.Now().Before(end) {
			for k, v := range b.memory() {
				if strings.HasPrefix(k, "agent-") {
					peakAgent = max(peakAgent, v)
				}
			}
			if err := benchkit.Sleep(b.ctx, 10*time.Second); err != nil {
				return "", err
			}
		}
		var stalled []string
		for site, l := range b.listens {
			if benchkit.ProbesTotal(l) <= probesBefore[site] {
				stalled = append(stalled, site)
			}
		}
		slices.Sort(stalled)
		parts = append(parts, fmt.Sprintf("%s for %s: probers that stopped probing %v", m, o.hostile, stalled))
	}
	failed, retried := 0.0, 0.0
	for _, at := range b.agentAt {
		failed += benchkit.MetricSum("http://"+at+"/metrics", "prometheus_remote_storage_samples_failed_total")
		retried += benchkit.MetricSum("http://"+at+"/metrics", "prometheus_remote_storage_samples_retried_total")
	}
	return fmt.Sprintf("(d) hostile receiver: %s; agents counted %.0f samples failed and %.0f retried; largest agent %.0f MiB (want every prober probing, memory bounded)",
		strings.Join(parts, "; "), failed, retried, float64(peakAgent)/(1<<20)), nil
}

// gaps counts the hopprobe_hop_success series that miss a 30-s step
// between from and to at the receiver.
func (b *bench) gaps(from, to time.Time) (gaps, series, steps int, err error) {
	q := url.Values{"query": {`count_over_time(hopprobe_hop_success[30s])`}, "start": {strconv.FormatInt(from.Unix(), 10)},
		"end": {strconv.FormatInt(to.Unix(), 10)}, "step": {"30"}}
	resp, err := http.Get("http://" + b.recvAddr + "/api/v1/query_range?" + q.Encode())
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&r); err != nil {
		return 0, 0, 0, fmt.Errorf("(c) the range query: %w", err)
	}
	steps = int(to.Sub(from)/(30*time.Second)) + 1
	for _, s := range r.Data.Result {
		series++
		if len(s.Values) < steps {
			gaps++
			if gaps <= 5 {
				fmt.Printf("  gap: %v has %d of %d steps\n", s.Metric, len(s.Values), steps)
			}
		}
	}
	if series == 0 {
		return 0, 0, 0, errors.New("(c) the range query found no series")
	}
	return gaps, series, steps, nil
}

// notes are the notifications to receiver about alertname with status
// since t, one per group.
func (b *bench) notes(t time.Time, receiver, alertname, status string) []benchkit.Note {
	var out []benchkit.Note
	for _, n := range b.hook.All() {
		if n.Receiver == receiver && n.Alertname == alertname && n.Status == status && !n.At.Before(t) {
			out = append(out, n)
		}
	}
	return out
}

// alerts are the firing alerts of alertname at the receiver, as
// "site hop" pairs.
func (b *bench) alerts(alertname string) []string {
	resp, err := http.Get("http://" + b.recvAddr + "/api/v1/alerts")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
				State       string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&r) != nil {
		return nil
	}
	var out []string
	for _, a := range r.Data.Alerts {
		if a.Labels["alertname"] == alertname && a.State == "firing" {
			out = append(out, a.Labels["site"]+" "+a.Labels["hop"]+": "+a.Annotations["description"])
		}
	}
	return out
}

// memory is every prober's and agent's resident memory now, by name.
func (b *bench) memory() map[string]int64 {
	out := map[string]int64{}
	for site, p := range b.probers {
		out["probe-"+site] = p.RSS()
	}
	for site, a := range b.agents {
		out["agent-"+site] = a.RSS()
	}
	return out
}

// edgePort is the relocated demo topology's CloudFront port.
func edgePort(topo string) (int, error) {
	cfg, err := config.Load(topo)
	if err != nil {
		return 0, err
	}
	for _, e := range cfg.Entries {
		for _, h := range e.Hops {
			if h.Name == "cloudfront" {
				_, p, err := net.SplitHostPort(h.Address)
				if err != nil {
					return 0, err
				}
				return strconv.Atoi(p)
			}
		}
	}
	return 0, errors.New("the demo topology has no cloudfront hop")
}

// scaleTopology writes a topology of n one-hop paths to one loopback
// HTTP server it starts.
func scaleTopology(dir string, n int) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })}
	go srv.Serve(ln)
	var s strings.Builder
	s.WriteString("vantage: cluster\ndefaults: {interval: 30s, timeout: 5s}\nservices:\n")
	for i := range n {
		fmt.Fprintf(&s, "  - {name: app-%04d, namespace: scale, type: ClusterIP, ports: [{name: http, port: 8080, protocol: http, address: %q}]}\n", i, ln.Addr().String())
	}
	file := filepath.Join(dir, "scale.yaml")
	if err := os.WriteFile(file, []byte(s.String()), 0o644); err != nil {
		srv.Close()
		return "", nil, err
	}
	return file, func() { srv.Close() }, nil
}

// dropRule adds rule to an output chain of the bench's own table.
func dropRule(rule string) error {
	text := fmt.Sprintf("table inet sitebench {\n  chain output {\n    type filter hook output priority 0; policy accept;\n    %s\n  }\n}\n", rule)
	f := filepath.Join(os.TempDir(), fmt.Sprintf("sitebench-%d.nft", os.Getpid()))
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		return err
	}
	defer os.Remove(f)
	return benchkit.Sh("nft", "-f", f)
}

func get(u string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

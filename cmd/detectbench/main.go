// Command detectbench measures the time from an outage to the page, end
// to end, at the shipped settings (make bench-detect):
//
//   - two replicas of `probe serve` (bin/probe) walk the demo topology's
//     stand-ins with the shipped topology's interval and timeout, at the
//     phases they find through a headless Service's DNS answer, as in
//     the cluster;
//   - Debian's Prometheus scrapes them at the shipped ServiceMonitor's
//     interval and evaluates the shipped rules every 30 s
//     (kube-prometheus' default);
//   - Debian's Alertmanager runs the shipped route and inhibition rules
//     and notifies a webhook this program serves.
//
// A data store behind a route is stopped at a random phase several times
// and started again; each outage's time to page, time until the alert
// leaves Prometheus and time until the resolution reaches the receiver
// are measured. Then every link to the stand-ins drops a share of its
// packets at random (nftables numgen) for a while, every component up,
// and the pages are counted. Before the outages, a third prober with
// confirmation and faster walks turned off runs beside a replica, and
// their probes and CPU are compared.
//
// Everything runs in a network and mount namespace of its own (unshare),
// so the drop rule and the replicas' DNS touch nothing on the host; it
// needs root. It takes about 40 minutes at the defaults.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/internal/benchkit"
	"github.com/allinx/hopprobe/internal/demo"
	"github.com/allinx/hopprobe/internal/peers"
)

const insideEnv = "HOPPROBE_DETECTBENCH_INSIDE"

// replicasName is the headless Service's name in the bench's own DNS.
const replicasName = "hopprobe-replicas.bench."

type options struct {
	probe       string
	store       string
	outages     int
	loss        time.Duration
	lossPercent int
	cost        time.Duration
	evalEvery   time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.probe, "probe", "bin/probe", "the probe binary to run (make build)")
	flag.StringVar(&o.store, "store", "futuresnewredis", "the data store of the demo topology to stop")
	flag.IntVar(&o.outages, "outages", 5, "how many outages of the store")
	flag.DurationVar(&o.loss, "loss", 15*time.Minute, "how long every link to the stand-ins drops packets (0: skip)")
	flag.IntVar(&o.lossPercent, "loss-percent", 3, "the share of packets dropped, in percent")
	flag.DurationVar(&o.cost, "cost", 3*time.Minute, "how long the healthy cost comparison runs (0: skip)")
	flag.DurationVar(&o.evalEvery, "evaluation-interval", 30*time.Second, "Prometheus' rule evaluation interval (the user's; kube-prometheus' default)")
	flag.Parse()
	if !benchkit.Inside(insideEnv) {
		os.Exit(benchkit.InNamespace(insideEnv, "detectbench"))
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "detectbench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tools, done, err := benchkit.Prepare("detectbench", o.probe)
	if err != nil {
		return err
	}
	defer done()
	dir, prom, probe := tools.Dir, tools.Prometheus, tools.Probe

	// The replicas' DNS: this namespace's resolv.conf names a server
	// that answers the headless Service's name with two pod IPs.
	if err := replicasDNS(dir); err != nil {
		return err
	}

	// The demo's stand-ins, at the shipped topology's walk settings.
	shippedDefaults, scrapeEvery, err := shippedSettings()
	if err != nil {
		return err
	}
	src, err := os.ReadFile("config/demo.yaml")
	if err != nil {
		return err
	}
	topo, d, err := demo.StartCopy(src, dir, func(s string) string { return replaceDefaults(s, shippedDefaults) })
	if err != nil {
		return err
	}
	defer d.Close()
	if !slices.Contains(d.Names(), o.store) {
		return fmt.Errorf("store %s is not running (stand-ins: %v)", o.store, d.Names())
	}
	text, _ := os.ReadFile(topo)
	ports := standInPorts(string(text))

	var procs []*benchkit.Proc
	defer func() {
		for _, p := range procs {
			p.Stop()
		}
	}()
	start := func(name string, env []string, args ...string) (*benchkit.Proc, error) {
		p, err := benchkit.StartProc(ctx, dir, name, env, args...)
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	var replicaListen []string
	var replicas []*benchkit.Proc
	for i, podIP := range []string{"127.0.0.2", "127.0.0.3"} {
		listen, _ := peers.FreePort()
		p, err := start(fmt.Sprintf("replica-%d", i), []string{"POD_IP=" + podIP}, probe, "serve", "--config", topo, "--listen", listen,
			"--reload-check", "0", "--replicas-dns", replicasName)
		if err != nil {
			return err
		}
		replicaListen, replicas = append(replicaListen, listen), append(replicas, p)
	}

	hook := &benchkit.Receiver{}
	amListen, stopHook, err := benchkit.Alerting(tools, hook, start)
	if err != nil {
		return err
	}
	defer stopHook()
	promListen, _ := peers.FreePort()
	rules, err := filepath.Abs("deploy/prometheus/rules.yaml")
	if err != nil {
		return err
	}
	targets, _ := json.Marshal(replicaListen)
	promCfg := fmt.Sprintf(`global: {scrape_interval: %s, evaluation_interval: %s}
rule_files: [%q]
alerting:
  alertmanagers: [{static_configs: [{targets: [%q]}]}]
scrape_configs:
  - job_name: hopprobe
    honor_labels: true
    static_configs: [{targets: %s}]
`, scrapeEvery, o.evalEvery, rules, amListen, targets)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yaml"), []byte(promCfg), 0o644); err != nil {
		return err
	}
	if _, err := start("prometheus", nil, prom, "--config.file", filepath.Join(dir, "prometheus.yaml"), "--storage.tsdb.path", filepath.Join(dir, "tsdb"),
		"--web.listen-address", promListen); err != nil {
		return err
	}
	q := &benchkit.PromAPI{Base: "http://" + promListen}
	fmt.Printf("detectbench: shipped defaults %q, scrape every %s, evaluate every %s, store %s, %d outages, %s at %d%% loss\n",
		strings.TrimSpace(shippedDefaults), scrapeEvery, o.evalEvery, o.store, o.outages, o.loss, o.lossPercent)

	// Healthy first: both replicas scraped, the store's paths passing.
	storeOK := fmt.Sprintf(`count(hopprobe_hop_success{hop=%q} == 1)`, o.store)
	if err := benchkit.WaitUntil(ctx, 3*time.Minute, func() bool { return q.Value(`count(up{job="hopprobe"} == 1)`) == 2 && q.Value(storeOK) > 0 }); err != nil {
		return fmt.Errorf("the replicas never came up healthy: %w", err)
	}
	fmt.Printf("healthy: %v paths through %s pass\n", q.Value(storeOK), o.store)

	var report []string
	if o.cost > 0 {
		line, err := compareCost(ctx, o, dir, topo, probe, replicas[0], replicaListen[0], start)
		if err != nil {
			return err
		}
		report = append(report, line)
	}

	falsePages := hook.PagesSince(time.Time{})
	var toPage, toGone, toResolved []time.Duration
	var outageProblems []string
	for i := range o.outages {
		// A random phase against the walks, scrapes and evaluations.
		if err := benchkit.Sleep(ctx, 60*time.Second+rand.N(60*time.Second)); err != nil {
			return err
		}
		stopped := time.Now()
		if err := d.Stop(o.store); err != nil {
			return err
		}
		var paged time.Time
		if err := benchkit.WaitUntil(ctx, 5*time.Minute, func() bool { paged = hook.FirstPage(stopped, o.store); return !paged.IsZero() }); err != nil {
			return fmt.Errorf("outage %d: no page for %s: %w", i+1, o.store, err)
		}
		// Hold the outage a while (every path through the store breaks,
		// and none may page again), and restart at a random phase too.
		if err := benchkit.Sleep(ctx, 30*time.Second+rand.N(30*time.Second)); err != nil {
			return err
		}
		restarted := time.Now()
		if err := d.Restart(o.store); err != nil {
			return err
		}
		firing := fmt.Sprintf(`count(ALERTS{alertname="HopprobeFirstFailingHop",alertstate="firing",hop=%q})`, o.store)
		var gone, resolved time.Time
		if err := benchkit.WaitUntil(ctx, 5*time.Minute, func() bool {
			if gone.IsZero() && q.Value(firing) == 0 {
				gone = time.Now()
			}
			if resolved.IsZero() {
				resolved = hook.Resolved(restarted, o.store)
			}
			return !gone.IsZero() && !resolved.IsZero()
		}); err != nil {
			return fmt.Errorf("outage %d: the alert did not clear after the restart (gone %v, resolved %v): %w", i+1, !gone.IsZero(), !resolved.IsZero(), err)
		}
		during := hook.PagesSince(stopped)
		pages := len(during)
		if pages != 1 {
			outageProblems = append(outageProblems, fmt.Sprintf("outage %d paged %d times: %v", i+1, pages, during))
		}
		for _, p := range during {
			if p.Hop != o.store {
				outageProblems = append(outageProblems, fmt.Sprintf("outage %d paged for %s, not the first failing hop %s", i+1, p.Hop, o.store))
			}
		}
		toPage = append(toPage, paged.Sub(stopped))
		toGone = append(toGone, gone.Sub(restarted))
		toResolved = append(toResolved, resolved.Sub(restarted))
		fmt.Printf("outage %d: paged after %s; alert gone %s and resolution received %s after the restart; %d page(s)\n",
			i+1, paged.Sub(stopped).Round(time.Second), gone.Sub(restarted).Round(time.Second), resolved.Sub(restarted).Round(time.Second), pages)
	}
	if o.outages > 0 {
		report = append(report,
			fmt.Sprintf("time to page over %d outages of %s: median %s, worst %s (target: median ≤ 60 s, worst ≤ 90 s)", o.outages, o.store, benchkit.Median(toPage), benchkit.Worst(toPage)),
			fmt.Sprintf("alert gone from Prometheus after recovery: median %s, worst %s (target ≤ 90 s)", benchkit.Median(toGone), benchkit.Worst(toGone)),
			fmt.Sprintf("resolution at the receiver after recovery: median %s, worst %s (target ≤ 2 min)", benchkit.Median(toResolved), benchkit.Worst(toResolved)),
			fmt.Sprintf("pages per outage: %s; pages before the first outage: %d", cmpOK(outageProblems), len(falsePages)))
	}

	if o.loss > 0 {
		line, err := lossWindow(ctx, o, ports, hook, q)
		if err != nil {
			return err
		}
		report = append(report, line)
	}
	fmt.Println("\n== detectbench report ==")
	for _, l := range report {
		fmt.Println(l)
	}
	return nil
}

func cmpOK(problems []string) string {
	if len(problems) == 0 {
		return "exactly one, for the first failing hop, every time"
	}
	return strings.Join(problems, "; ")
}

// compareCost runs a prober with confirmation and faster walks off
// ("before") beside a replica at the shipped settings ("after") on the
// same healthy stand-ins, and compares their probes and CPU.
func compareCost(ctx context.Context, o options, dir, topo, probe string, after *benchkit.Proc, afterListen string, start func(string, []string, ...string) (*benchkit.Proc, error)) (string, error) {
	text, err := os.ReadFile(topo)
	if err != nil {
		return "", err
	}
	off := strings.Replace(string(text), "defaults:\n", "defaults:\n  confirm: {retries: 0, spacing: 1s}\n  broken_interval: 0s\n", 1)
	beforeTopo := filepath.Join(dir, "before.yaml")
	if err := os.WriteFile(beforeTopo, []byte(off), 0o644); err != nil {
		return "", err
	}
	listen, _ := peers.FreePort()
	before, err := start("before", nil, probe, "serve", "--config", beforeTopo, "--listen", listen, "--reload-check", "0")
	if err != nil {
		return "", err
	}
	defer before.Stop()
	if err := benchkit.Sleep(ctx, 45*time.Second); err != nil { // both settled
		return "", err
	}
	p0b, p0a := benchkit.ProbesTotal(listen), benchkit.ProbesTotal(afterListen)
	c0b, c0a := before.CPU(), after.CPU()
	if err := benchkit.Sleep(ctx, o.cost); err != nil {
		return "", err
	}
	pb, pa := benchkit.ProbesTotal(listen)-p0b, benchkit.ProbesTotal(afterListen)-p0a
	cb, ca := before.CPU()-c0b, after.CPU()-c0a
	mins := o.cost.Minutes()
	return fmt.Sprintf("healthy cost over %s, one prober each, same stand-ins: before (confirmation and faster walks off) %.0f probe results/min, %.2f%% of a core; after (shipped) %.0f/min, %.2f%% of a core; ratio after/before: probes %.2f, CPU %.2f",
		o.cost, pb/mins, 100*cb.Seconds()/o.cost.Seconds(), pa/mins, 100*ca.Seconds()/o.cost.Seconds(), pa/pb, ca.Seconds()/cb.Seconds()), nil
}

// lossWindow drops lossPercent of the packets to and from every
// stand-in's port for o.loss and counts the pages.
func lossWindow(ctx context.Context, o options, ports []int, hook *benchkit.Receiver, q *benchkit.PromAPI) (string, error) {
	var set []string
	for _, p := range ports {
		set = append(set, strconv.Itoa(p))
	}
	// One random draw per packet, whichever of its ports is a stand-in's.
	rules := fmt.Sprintf(`table inet detectbench {
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto { tcp, udp } th dport { %[1]s } meta mark set 0x1
    meta l4proto { tcp, udp } th sport { %[1]s } meta mark set 0x1
    meta mark 0x1 numgen random mod 100 < %[2]d counter drop
  }
}
`, strings.Join(set, ", "), o.lossPercent)
	f := filepath.Join(os.TempDir(), fmt.Sprintf("detectbench-%d.nft", os.Getpid()))
	if err := os.WriteFile(f, []byte(rules), 0o600); err != nil {
		return "", err
	}
	defer os.Remove(f)
	if err := benchkit.Sh("nft", "-f", f); err != nil {
		return "", err
	}
	defer benchkit.Sh("nft", "delete", "table", "inet", "detectbench")
	from := time.Now()
	pagesBefore := len(hook.PagesSince(time.Time{}))
	fmt.Printf("loss: %d%% of the packets on %d stand-in ports dropped for %s\n", o.lossPercent, len(ports), o.loss)
	if err := benchkit.Sleep(ctx, o.loss); err != nil {
		return "", err
	}
	out, _ := exec.Command("nft", "list", "table", "inet", "detectbench").CombinedOutput()
	dropped := regexp.MustCompile(`counter packets (\d+)`).FindSubmatch(out)
	window := fmt.Sprintf("%ds", int(o.loss.Seconds()))
	recovered := q.Value(`sum(increase(hopprobe_hop_recovered_total[` + window + `]))`)
	failedSamples := q.Value(`sum(count_over_time((hopprobe_path_success == 0)[` + window + `:]))`)
	samples := q.Value(`sum(count_over_time(hopprobe_path_success[` + window + `:]))`)
	pages := hook.PagesSince(from)
	n := len(hook.PagesSince(time.Time{})) - pagesBefore
	droppedN := "?"
	if dropped != nil {
		droppedN = string(dropped[1])
	}
	return fmt.Sprintf("%s at %d%% loss on every link to the stand-ins (%s packets dropped): %d page(s) %v (target 0); hops recovered by a retry: %.0f; path samples failed: %.0f of %.0f",
		o.loss, o.lossPercent, droppedN, n, pages, recovered, failedSamples, samples), nil
}

// replicasDNS serves replicasName from 127.0.0.53:53 and points this
// mount namespace's /etc/resolv.conf at it.
func replicasDNS(dir string) error {
	if err := benchkit.Sh("mount", "--make-rprivate", "/"); err != nil {
		return err
	}
	srv := &dns.Server{Addr: "127.0.0.53:53", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if qq := q.Question[0]; strings.EqualFold(qq.Name, replicasName) && qq.Qtype == dns.TypeA {
			for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
			}
		} else if !strings.EqualFold(qq.Name, replicasName) {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	ready := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(ready) }
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case <-ready:
	case err := <-errc:
		return fmt.Errorf("the replicas' DNS: %w", err)
	}
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		return err
	}
	return benchkit.Sh("mount", "--bind", conf, "/etc/resolv.conf")
}

// shippedSettings reads the shipped topology's defaults block and the
// shipped ServiceMonitor's scrape interval.
func shippedSettings() (defaults string, scrape string, err error) {
	b, err := os.ReadFile("config/allinx.yaml")
	if err != nil {
		return "", "", err
	}
	m := regexp.MustCompile(`(?m)^defaults:\n(?:  .*\n)+`).Find(b)
	if m == nil {
		return "", "", errors.New("config/allinx.yaml has no defaults block")
	}
	sm, err := os.ReadFile("deploy/kubernetes/base/servicemonitor.yaml")
	if err != nil {
		return "", "", err
	}
	iv := regexp.MustCompile(`(?m)^\s+interval: (\S+)$`).FindSubmatch(sm)
	if iv == nil {
		return "", "", errors.New("the shipped ServiceMonitor has no interval")
	}
	return string(m), string(iv[1]), nil
}

func replaceDefaults(topo, defaults string) string {
	return regexp.MustCompile(`(?m)^defaults:\n(?:  .*\n)+`).ReplaceAllLiteralString(topo, defaults)
}

// standInPorts are the loopback ports the relocated topology names.
func standInPorts(topo string) []int {
	var ports []int
	for _, m := range regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(topo, -1) {
		if p, err := strconv.Atoi(m[1]); err == nil && !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	sort.Ints(ports)
	return ports
}

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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/deploy/alertmanager"
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
	if os.Getenv(insideEnv) == "" {
		os.Exit(reexec())
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "detectbench:", err)
		os.Exit(1)
	}
}

// reexec runs this program again in new network and mount namespaces.
func reexec() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "detectbench needs root: it runs in network and mount namespaces of its own (unshare) and sets an nftables drop rule there")
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--", self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), insideEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func sh(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sh("ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		return errors.New("prometheus not installed (apt-get install prometheus)")
	}
	am, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		return errors.New("prometheus-alertmanager not installed (apt-get install prometheus-alertmanager)")
	}
	probe, err := filepath.Abs(o.probe)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "detectbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

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

	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	start := func(name string, env []string, args ...string) (*proc, error) {
		p, err := startProc(ctx, dir, name, env, args...)
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	var replicaListen []string
	var replicas []*proc
	for i, podIP := range []string{"127.0.0.2", "127.0.0.3"} {
		listen, _ := peers.FreePort()
		p, err := start(fmt.Sprintf("replica-%d", i), []string{"POD_IP=" + podIP}, probe, "serve", "--config", topo, "--listen", listen,
			"--reload-check", "0", "--replicas-dns", replicasName)
		if err != nil {
			return err
		}
		replicaListen, replicas = append(replicaListen, listen), append(replicas, p)
	}

	hook := &receiver{}
	hookSrv := &http.Server{Handler: hook}
	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go hookSrv.Serve(hookLn)
	defer hookSrv.Close()
	amCfg, err := alertmanager.Config("http://"+hookLn.Addr().String()+"/", nil)
	if err != nil {
		return err
	}
	amListen, _ := peers.FreePort()
	promListen, _ := peers.FreePort()
	if err := os.WriteFile(filepath.Join(dir, "am.yaml"), amCfg, 0o644); err != nil {
		return err
	}
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
	if _, err := start("alertmanager", nil, am, "--config.file", filepath.Join(dir, "am.yaml"), "--storage.path", filepath.Join(dir, "am"),
		"--web.listen-address", amListen, "--cluster.listen-address="); err != nil {
		return err
	}
	if _, err := start("prometheus", nil, prom, "--config.file", filepath.Join(dir, "prometheus.yaml"), "--storage.tsdb.path", filepath.Join(dir, "tsdb"),
		"--web.listen-address", promListen); err != nil {
		return err
	}
	q := &promAPI{base: "http://" + promListen}
	fmt.Printf("detectbench: shipped defaults %q, scrape every %s, evaluate every %s, store %s, %d outages, %s at %d%% loss\n",
		strings.TrimSpace(shippedDefaults), scrapeEvery, o.evalEvery, o.store, o.outages, o.loss, o.lossPercent)

	// Healthy first: both replicas scraped, the store's paths passing.
	storeOK := fmt.Sprintf(`count(hopprobe_hop_success{hop=%q} == 1)`, o.store)
	if err := waitUntil(ctx, 3*time.Minute, func() bool { return q.value(`count(up{job="hopprobe"} == 1)`) == 2 && q.value(storeOK) > 0 }); err != nil {
		return fmt.Errorf("the replicas never came up healthy: %w", err)
	}
	fmt.Printf("healthy: %v paths through %s pass\n", q.value(storeOK), o.store)

	var report []string
	if o.cost > 0 {
		line, err := compareCost(ctx, o, dir, topo, probe, replicas[0], replicaListen[0], start)
		if err != nil {
			return err
		}
		report = append(report, line)
	}

	falsePages := hook.pagesSince(time.Time{})
	var toPage, toGone, toResolved []time.Duration
	var outageProblems []string
	for i := range o.outages {
		// A random phase against the walks, scrapes and evaluations.
		if err := sleep(ctx, 60*time.Second+rand.N(60*time.Second)); err != nil {
			return err
		}
		stopped := time.Now()
		if err := d.Stop(o.store); err != nil {
			return err
		}
		var paged time.Time
		if err := waitUntil(ctx, 5*time.Minute, func() bool { paged = hook.firstPage(stopped, o.store); return !paged.IsZero() }); err != nil {
			return fmt.Errorf("outage %d: no page for %s: %w", i+1, o.store, err)
		}
		// Hold the outage a while (every path through the store breaks,
		// and none may page again), and restart at a random phase too.
		if err := sleep(ctx, 30*time.Second+rand.N(30*time.Second)); err != nil {
			return err
		}
		restarted := time.Now()
		if err := d.Restart(o.store); err != nil {
			return err
		}
		firing := fmt.Sprintf(`count(ALERTS{alertname="HopprobeFirstFailingHop",alertstate="firing",hop=%q})`, o.store)
		var gone, resolved time.Time
		if err := waitUntil(ctx, 5*time.Minute, func() bool {
			if gone.IsZero() && q.value(firing) == 0 {
				gone = time.Now()
			}
			if resolved.IsZero() {
				resolved = hook.resolved(restarted, o.store)
			}
			return !gone.IsZero() && !resolved.IsZero()
		}); err != nil {
			return fmt.Errorf("outage %d: the alert did not clear after the restart (gone %v, resolved %v): %w", i+1, !gone.IsZero(), !resolved.IsZero(), err)
		}
		during := hook.pagesSince(stopped)
		pages := len(during)
		if pages != 1 {
			outageProblems = append(outageProblems, fmt.Sprintf("outage %d paged %d times: %v", i+1, pages, during))
		}
		for _, p := range during {
			if p.hop != o.store {
				outageProblems = append(outageProblems, fmt.Sprintf("outage %d paged for %s, not the first failing hop %s", i+1, p.hop, o.store))
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
			fmt.Sprintf("time to page over %d outages of %s: median %s, worst %s (target: median ≤ 60 s, worst ≤ 90 s)", o.outages, o.store, median(toPage), worst(toPage)),
			fmt.Sprintf("alert gone from Prometheus after recovery: median %s, worst %s (target ≤ 90 s)", median(toGone), worst(toGone)),
			fmt.Sprintf("resolution at the receiver after recovery: median %s, worst %s (target ≤ 2 min)", median(toResolved), worst(toResolved)),
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
func compareCost(ctx context.Context, o options, dir, topo, probe string, after *proc, afterListen string, start func(string, []string, ...string) (*proc, error)) (string, error) {
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
	defer before.stop()
	if err := sleep(ctx, 45*time.Second); err != nil { // both settled
		return "", err
	}
	p0b, p0a := probesTotal(listen), probesTotal(afterListen)
	c0b, c0a := before.cpu(), after.cpu()
	if err := sleep(ctx, o.cost); err != nil {
		return "", err
	}
	pb, pa := probesTotal(listen)-p0b, probesTotal(afterListen)-p0a
	cb, ca := before.cpu()-c0b, after.cpu()-c0a
	mins := o.cost.Minutes()
	return fmt.Sprintf("healthy cost over %s, one prober each, same stand-ins: before (confirmation and faster walks off) %.0f probe results/min, %.2f%% of a core; after (shipped) %.0f/min, %.2f%% of a core; ratio after/before: probes %.2f, CPU %.2f",
		o.cost, pb/mins, 100*cb.Seconds()/o.cost.Seconds(), pa/mins, 100*ca.Seconds()/o.cost.Seconds(), pa/pb, ca.Seconds()/cb.Seconds()), nil
}

// lossWindow drops lossPercent of the packets to and from every
// stand-in's port for o.loss and counts the pages.
func lossWindow(ctx context.Context, o options, ports []int, hook *receiver, q *promAPI) (string, error) {
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
	if err := sh("nft", "-f", f); err != nil {
		return "", err
	}
	defer sh("nft", "delete", "table", "inet", "detectbench")
	from := time.Now()
	pagesBefore := len(hook.pagesSince(time.Time{}))
	fmt.Printf("loss: %d%% of the packets on %d stand-in ports dropped for %s\n", o.lossPercent, len(ports), o.loss)
	if err := sleep(ctx, o.loss); err != nil {
		return "", err
	}
	out, _ := exec.Command("nft", "list", "table", "inet", "detectbench").CombinedOutput()
	dropped := regexp.MustCompile(`counter packets (\d+)`).FindSubmatch(out)
	window := fmt.Sprintf("%ds", int(o.loss.Seconds()))
	recovered := q.value(`sum(increase(hopprobe_hop_recovered_total[` + window + `]))`)
	failedSamples := q.value(`sum(count_over_time((hopprobe_path_success == 0)[` + window + `:]))`)
	samples := q.value(`sum(count_over_time(hopprobe_path_success[` + window + `:]))`)
	pages := hook.pagesSince(from)
	n := len(hook.pagesSince(time.Time{})) - pagesBefore
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
	if err := sh("mount", "--make-rprivate", "/"); err != nil {
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
	return sh("mount", "--bind", conf, "/etc/resolv.conf")
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

// proc is a server process of the bench.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

func startProc(ctx context.Context, dir, name string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { cmd.Wait(); f.Close() }()
	return &proc{name: name, cmd: cmd, log: logPath}, nil
}

func (p *proc) stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
}

// cpu is the process's user and system CPU time so far.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// probesTotal sums hopprobe_hop_probes_total on a prober's /metrics.
func probesTotal(listen string) float64 {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "hopprobe_hop_probes_total{") {
			if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// promAPI asks Prometheus instant queries.
type promAPI struct{ base string }

// value is the first sample's value, 0 when there is none.
func (p *promAPI) value(q string) float64 {
	resp, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r) != nil || len(r.Data.Result) == 0 {
		return 0
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

// receiver is the webhook Alertmanager notifies.
type receiver struct {
	mu    sync.Mutex
	all   []note
	state map[string]string // group key → status of its last notification
}

type note struct {
	at       time.Time
	receiver string
	status   string
	hop      string
	page     bool // a pager notification for a group that was not firing
}

func (n note) String() string { return n.at.Format("15:04:05") + " " + n.status + " " + n.hop }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var n struct {
		Receiver     string            `json:"receiver"`
		Status       string            `json:"status"`
		GroupKey     string            `json:"groupKey"`
		CommonLabels map[string]string `json:"commonLabels"`
	}
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		r.state = map[string]string{}
	}
	// A notification that updates a group already firing (another path
	// through the same hop joined it) is the same page to a pager, which
	// deduplicates on the group key; a group that was not firing pages.
	page := n.Receiver == "pager" && n.Status == "firing" && r.state[n.GroupKey] != "firing"
	r.state[n.GroupKey] = n.Status
	r.all = append(r.all, note{at: time.Now(), receiver: n.Receiver, status: n.Status, hop: n.CommonLabels["hop"], page: page})
}

func (r *receiver) pagesSince(t time.Time) []note {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []note
	for _, n := range r.all {
		if n.page && !n.at.Before(t) {
			out = append(out, n)
		}
	}
	return out
}

// firstPage is when the first page for hop after t came (zero: none).
func (r *receiver) firstPage(t time.Time, hop string) time.Time {
	for _, n := range r.pagesSince(t) {
		if n.hop == hop {
			return n.at
		}
	}
	return time.Time{}
}

// resolved is when the pager was first told that hop's page resolved
// after t (zero: not yet).
func (r *receiver) resolved(t time.Time, hop string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.all {
		if n.receiver == "pager" && n.status == "resolved" && n.hop == hop && !n.at.Before(t) {
			return n.at
		}
	}
	return time.Time{}
}

func waitUntil(ctx context.Context, limit time.Duration, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Second)
}

func worst(ds []time.Duration) time.Duration { return slices.Max(ds).Round(time.Second) }

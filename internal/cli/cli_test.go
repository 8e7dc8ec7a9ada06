package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/demo"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/web"
)

// startDemo runs config/demo.yaml on free loopback ports and returns the
// relocated topology file.
func startDemo(t *testing.T) (string, *demo.Demo) {
	t.Helper()
	src, err := os.ReadFile("../../config/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path, d, err := demo.StartCopy(src, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return path, d
}

func probe(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := cli.Main(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPathWalkOnTheDemoIsHealthy(t *testing.T) {
	cfg, _ := startDemo(t)
	code, out, errs := probe(t, "--config", cfg, "--path", "api.allinpro.com/futures/ws")
	if code != cli.ExitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, hop := range []string{"dns", "cloudfront-tls", "cloudfront", "alb-public", "apisix", "service", "futuresnewredis"} {
		if !strings.Contains(out, "\n"+hop+" ") {
			t.Errorf("no line for hop %s in\n%s", hop, out)
		}
	}
	if strings.Count(strings.ReplaceAll(out, "\n", " \n"), " ok ") != 7 || !strings.Contains(out, "verdict: OK") {
		t.Fatalf("want seven ok hops and an OK verdict:\n%s", out)
	}
}

func TestStoppedStandInIsTheFirstFailingHop(t *testing.T) {
	cfg, d := startDemo(t)
	if err := d.Stop("alb-public"); err != nil {
		t.Fatal(err)
	}
	code, out, _ := probe(t, "--config", cfg, "--path", "api.allinpro.com/futures/ws")
	if code != cli.ExitBroken {
		t.Fatalf("exit %d, want %d\n%s", code, cli.ExitBroken, out)
	}
	if !strings.Contains(out, "first failing hop: alb-public") {
		t.Fatalf("the stopped ALB is not named first:\n%s", out)
	}
	// JSON output says the same.
	code, js, _ := probe(t, "--config", cfg, "--path", "api.allinpro.com/futures/ws", "--output", "json")
	var doc struct{ Paths []status.PathStatus }
	if err := json.Unmarshal([]byte(js), &doc); err != nil || code != cli.ExitBroken {
		t.Fatalf("exit %d, json %v\n%s", code, err, js)
	}
	if got := doc.Paths[0].FirstFailingHop; got != "alb-public" {
		t.Fatalf("json first_failing_hop = %q", got)
	}
}

func TestServeExportsTheFirstFailingHop(t *testing.T) {
	cfgPath, d := startDemo(t)
	if err := d.Stop("apisix"); err != nil {
		t.Fatal(err)
	}
	listen := serveFast(t, cfgPath, io.Discard)
	want := []string{
		`hopprobe_hop_first_failing{hop="apisix",path="api.allinpro.com/futures/ws*",vantage="cluster"} 1`,
		`hopprobe_path_success{namespace="morph",path="api.allinpro.com/futures/ws*",service="morph-futuresws-app",vantage="cluster"} 0`,
		`hopprobe_hop_success{hop="service",path="api.allinpro.com/futures/ws*",vantage="cluster"} 1`,
		`hopprobe_hop_node_info{hop="cloudfront",kind="websocket",namespace="morph",node="cloudfront",path="api.allinpro.com/futures/ws*",position="02",vantage="cluster"} 1`,
		`hopprobe_tls_cert_expiry_timestamp_seconds{hop="cloudfront-tls"`,
		`hopprobe_hop_phase_duration_seconds{hop="cloudfront",path="api.allinpro.com/futures/ws*",vantage="cluster",phase="handshake"`,
		`hopprobe_hop_probes_total{hop="apisix",path="api.allinpro.com/futures/ws*",vantage="cluster",result="failure"`,
		`hopprobe_hop_duration_seconds_bucket{hop="dns"`,
		`hopprobe_hop_node_info{hop="spotdb",kind="postgres"`,
		`hopprobe_hop_probes_total{hop="spotdb",`,
		`hopprobe_hop_probes_total{hop="spotredis",`,
		`hopprobe_hop_probes_total{hop="kafkanew",`,
		`hopprobe_hop_probes_total{hop="etcdnew",`,
	}
	// Only the first failing hop carries hopprobe_hop_first_failing.
	notWant := `hopprobe_hop_first_failing{hop="cloudfront",path="api.allinpro.com/futures/ws*"`
	var missing []string
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		body = get(t, "http://"+listen+"/metrics")
		missing = missing[:0]
		for _, m := range want {
			if !strings.Contains(body, m) {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 {
			break
		}
	}
	for _, m := range missing {
		t.Errorf("metrics never showed %s", m)
	}
	if strings.Contains(body, notWant) {
		t.Errorf("a hop above the first failing one has a first_failing series: %s", notWant)
	}
	promtoolCheckMetrics(t, body)
	var doc struct{ Paths []status.PathStatus }
	if err := json.Unmarshal([]byte(get(t, "http://"+listen+"/api/v1/paths?path=api.allinpro.com/futures/ws*")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) != 1 || doc.Paths[0].FirstFailingHop != "apisix" {
		t.Fatalf("status endpoint: %+v", doc.Paths)
	}
	if get(t, "http://"+listen+"/healthz") != "ok\n" {
		t.Error("healthz")
	}
}

// serveFast runs `probe serve` on the topology at cfgPath with a short
// interval until the test ends, logging to logs, and returns its address.
func serveFast(t *testing.T, cfgPath string, logs io.Writer, flags ...string) string {
	t.Helper()
	src, _ := os.ReadFile(cfgPath)
	// Short enough to see several walks, long enough for a loaded 2-core
	// CI machine under -race to answer every live hop in time.
	fast := strings.Replace(string(src), "interval: 5s", "interval: 1s", 1)
	fast = strings.Replace(fast, "timeout: 2s", "timeout: 1s", 1)
	if err := os.WriteFile(cfgPath, []byte(fast), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- cli.Main(ctx, append([]string{"serve", "--config", cfgPath, "--listen", listen}, flags...), io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return listen
}

func TestBadConfigAndUnknownPathExitTwo(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("routes:\n  - hosts: [a.test]\n    path: /*\n    service: ns/missing:80\n"), 0o644)
	code, _, errs := probe(t, "validate", "--config", bad)
	if code != cli.ExitBadArgs || !strings.Contains(errs, "bad.yaml:4: route a.test/* goes to ns/missing") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, _, errs = probe(t, "--config", "../../config/allinx.yaml", "--path", "api.allinpro.co/futures/ws")
	if code != cli.ExitBadArgs || !strings.Contains(errs, "nearest known paths") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, _, errs = probe(t, "--config", "../../config/allinx.yaml", "--path", "nowhere.example/x")
	if code != cli.ExitBadArgs || !strings.Contains(errs, `no documented path matches "nowhere.example/x"`) {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestListShowsEveryRoute(t *testing.T) {
	code, out, _ := probe(t, "list", "--config", "../../config/allinx.yaml")
	if code != cli.ExitOK {
		t.Fatal(code)
	}
	cfg, err := config.Load("../../config/allinx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.Routes {
		for _, h := range r.Hosts {
			if !strings.Contains(out, h+r.Path+"\t") {
				t.Errorf("list lacks %s%s", h, r.Path)
			}
		}
	}
}

// A dead Redis under a healthy service is the first failing hop, and no
// store password appears in the CLI output, the JSON or /metrics.
func TestDeadStoreIsNamedAndSecretsNeverShow(t *testing.T) {
	cfgPath, d := startDemo(t)
	secrets := map[string]string{}
	for _, s := range []string{"spotdb", "spotredis", "futuresnewredis"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(cfgPath), ".demo", s+"-password"))
		if err != nil {
			t.Fatal(err)
		}
		secrets[s] = string(b)
	}
	if err := d.Stop("spotredis"); err != nil {
		t.Skipf("SKIPPED LOUDLY: spotredis stand-in not running (redis-server missing?): %v", err)
	}
	code, out, errs := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/")
	if code != cli.ExitBroken || !strings.Contains(out, "first failing hop: spotredis") {
		t.Fatalf("exit %d, want spotredis named first:\n%s%s", code, out, errs)
	}
	if !hopLine(out, "service", " ok ") {
		t.Fatalf("the service above the dead Redis must still answer:\n%s", out)
	}
	_, js, _ := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/", "--output", "json")
	// Brought back (make bench-detect's outages do this), it answers again.
	if err := d.Restart("spotredis"); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/"); !hopLine(out, "spotredis", " ok ") {
		t.Fatalf("spotredis restarted: exit %d\n%s", code, out)
	}
	if err := d.Restart("spotredis"); err == nil {
		t.Error("restarting a running store must fail")
	}
	// Break authentication too: the driver's error must not carry the password.
	os.WriteFile(filepath.Join(filepath.Dir(cfgPath), ".demo", "spotdb-password"), []byte("wrong-"+secrets["spotdb"]), 0o600)
	_, authOut, _ := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/")
	if !strings.Contains(authOut, "password authentication failed") && !strings.Contains(authOut, "spotdb") {
		t.Fatalf("wrong password not reported:\n%s", authOut)
	}
	// The same through `probe serve`: its log, /metrics and the status API.
	logs := &testkit.Buffer{}
	listen := serveFast(t, cfgPath, logs)
	var status string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		status = get(t, "http://"+listen+"/api/v1/paths?path=api.allinpro.com/*")
		if strings.Contains(status, "password authentication failed") {
			break
		}
	}
	if !strings.Contains(status, "password authentication failed") {
		t.Fatalf("serve never reported the broken spotdb login:\n%s", status)
	}
	metrics := get(t, "http://"+listen+"/metrics")
	for name, pw := range secrets {
		for where, text := range map[string]string{"table": out, "json": js, "auth failure": authOut, "stderr": errs,
			"serve log": logs.String(), "/metrics": metrics, "/api/v1/paths": status} {
			if strings.Contains(text, pw) {
				t.Errorf("%s password appears in %s output", name, where)
			}
		}
	}
}

// A NodePort path has one hop per node: a node whose port is closed is its
// own failed hop, and from a vantage where the NodePort must stay
// internal, a node that answers is a SECURITY finding.
func TestNodePortPathHasOneHopPerNode(t *testing.T) {
	cfgPath, _ := startDemo(t)
	nodePort := addNodePortService(t, cfgPath)
	// node-b (127.0.0.2) has nothing on the port: one bad node.
	src, _ := os.ReadFile(cfgPath)
	withNodes := string(src) + "\nnodes:\n  - {name: node-a, address: 127.0.0.1}\n  - {name: node-b, address: 127.0.0.2}\n"
	if err := os.WriteFile(cfgPath, []byte(withNodes), 0o644); err != nil {
		t.Fatal(err)
	}
	path := "nodeport/landry/landry-brokerserver-web"
	code, out, errs := probe(t, "--config", cfgPath, "--path", path)
	hopA, hopB := fmt.Sprintf("node-a:%d", nodePort), fmt.Sprintf("node-b:%d", nodePort)
	if code != cli.ExitBroken || !strings.Contains(out, "first failing hop: "+hopB) {
		t.Fatalf("exit %d, want %s named first:\n%s%s", code, hopB, out, errs)
	}
	if !hopLine(out, hopA, " ok ") {
		t.Fatalf("the healthy node must be ok:\n%s", out)
	}
	// From outside, node-a answering is the finding; node-b's refusal is fine.
	code, out, errs = probe(t, "--config", cfgPath, "--vantage", "external", "--path", path)
	if code != cli.ExitBroken || !strings.Contains(out, "first failing hop: "+hopA) || !strings.Contains(out, "SECURITY") {
		t.Fatalf("exit %d, want a SECURITY finding on %s:\n%s%s", code, hopA, out, errs)
	}
	if !hopLine(out, hopB, " ok ") {
		t.Fatalf("a refused NodePort is the healthy state from outside:\n%s", out)
	}
}

// addNodePortService documents landry-brokerserver-web as a NodePort
// Service in the topology at cfgPath, with its node port served on
// 127.0.0.1 only (so that 127.0.0.2 refuses it), and returns the port.
func addNodePortService(t *testing.T, cfgPath string) int {
	t.Helper()
	var ln net.Listener
	var nodePort int
	for p := 30000 + rand.IntN(2000); ln == nil && p < 32768; p++ {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			ln, nodePort = l, p
		}
	}
	if ln == nil {
		t.Fatal("no free port in the NodePort range on 127.0.0.1")
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	src, _ := os.ReadFile(cfgPath)
	svc := fmt.Sprintf(`services:
  - name: landry-brokerserver-web
    namespace: landry
    type: NodePort
    ports: [{port: 8080, node_port: %d, protocol: http, address: %s}]
    nodeport_unreachable_from: [external]
`, nodePort, ln.Addr())
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(src), "services:\n", svc, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return nodePort
}

func hopLine(out, hop, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		// A cell at the end of the line has no padding after it.
		if strings.HasPrefix(line, hop+" ") && strings.Contains(line+" ", want) {
			return true
		}
	}
	return false
}

// promtoolCheckMetrics runs Prometheus's own linter on a real scrape:
// names, units, help texts, counter suffixes.
func promtoolCheckMetrics(t *testing.T, body string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must have promtool (Debian package prometheus; .ci/run installs it)")
		}
		t.Log("SKIPPED LOUDLY: promtool not installed; /metrics was not linted")
		return
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on a live scrape: %v\n%s", err, out)
	}
}

// Fault localisation: for each hop of the futures WebSocket path, stopping
// only the stand-in behind that hop makes it the reported first failing
// hop. The edge's request hop (cloudfront) cannot fail alone: stopping
// the edge fails its TLS hop first, which is the right answer.
func TestEveryHopPositionIsLocalised(t *testing.T) {
	for _, tc := range []struct{ stop, want string }{
		{"dns", "dns"},
		{"cloudfront", "cloudfront-tls"},
		{"alb-public", "alb-public"},
		{"apisix", "apisix"},
		{"morph-futuresws-app", "service"},
		{"futuresnewredis", "futuresnewredis"},
	} {
		t.Run(tc.stop, func(t *testing.T) {
			cfgPath, d := startDemo(t)
			src, _ := os.ReadFile(cfgPath)
			// A stopped UDP resolver is only noticed at the timeout.
			os.WriteFile(cfgPath, []byte(strings.Replace(string(src), "timeout: 2s", "timeout: 1s", 1)), 0o644)
			if err := d.Stop(tc.stop); err != nil {
				t.Fatalf("%v (stand-ins: %v)", err, d.Names())
			}
			start := time.Now()
			code, out, errs := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/futures/ws")
			// Even a silent resolver (a blackhole) ends the walk once its
			// failure is confirmed: the first attempt and the default two
			// retries, each at most the 1 s timeout after its 1 s spacing.
			budget := time.Second + time.Duration(config.DefaultConfirmRetries)*(config.DefaultConfirmSpacing+time.Second)
			if el := time.Since(start); el > budget+time.Second {
				t.Errorf("the CLI took %s with a 1s timeout; want at most the confirmation's %s + 1s", el, budget)
			}
			if code != cli.ExitBroken || !strings.Contains(out, "first failing hop: "+tc.want+"\n") {
				t.Fatalf("stopped %s: exit %d, want first failing hop %s\n%s%s", tc.stop, code, tc.want, out, errs)
			}
		})
	}
}

// Reload while probing: a changed topology file is picked up, the removed
// path's series disappear, unchanged paths keep theirs (counters keep
// counting, never restart), and a broken file is refused with its
// file:line reason while the running topology goes on. SIGHUP reloads too.
func TestReloadKeepsUnchangedPathsAndRefusesBrokenFiles(t *testing.T) {
	cfgPath, _ := startDemo(t)
	logs := &testkit.Buffer{}
	listen := serveFast(t, cfgPath, logs, "--reload-check=200ms")
	kept := `hopprobe_hop_probes_total{hop="service",path="api.allinpro.com/futures/ws*",vantage="cluster",result="success"}`
	removed := `path="mackerel.aie.prod/api/*"`
	before := waitMetric(t, listen, kept, func(v float64) bool { return v >= 2 })
	if !strings.Contains(get(t, "http://"+listen+"/metrics"), removed) {
		t.Fatal("the route to be removed was never exported")
	}
	src, _ := os.ReadFile(cfgPath)
	route := "  - hosts: [mackerel.aie.prod]\n    path: /api/*\n    service: landry/landry-anemone-web:8080\n    entries: [internal]\n    probe:\n      expect: {body_contains: landry-anemone-web}\n"
	if !strings.Contains(string(src), route) {
		t.Fatal("demo.yaml changed; update this test's route")
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(src), route, "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, listen, `hopprobe_config_reloads_total{result="success"}`, func(v float64) bool { return v == 1 })
	// Right after the reload (well within one 1s interval) the counter
	// must not have restarted.
	if v := waitMetric(t, listen, kept, func(float64) bool { return true }); v < before {
		t.Fatalf("the unchanged path's counter went from %v to %v: its series were reset", before, v)
	}
	waitMetric(t, listen, `hopprobe_path_success{namespace="landry",path="svc/landry/landry-anemone-web"`, func(float64) bool { return true })
	body := get(t, "http://"+listen+"/metrics")
	if strings.Contains(body, removed) {
		t.Error("series of the removed route survived the reload")
	}
	after := waitMetric(t, listen, kept, func(v float64) bool { return v > before })
	t.Logf("unchanged path's success counter: %v before the reload, %v after", before, after)

	// A broken file: refused, reported, and the old topology keeps running.
	os.WriteFile(cfgPath, []byte(strings.Replace(string(src), "interval: 1s", "intervall: 1s", 1)), 0o644)
	waitMetric(t, listen, `hopprobe_config_last_reload_successful`, func(v float64) bool { return v == 0 })
	waitMetric(t, listen, kept, func(v float64) bool { return v > after })
	if !strings.Contains(logs.String(), `demo.yaml:`) || !strings.Contains(logs.String(), `unknown key`) {
		t.Errorf("the refused reload does not say file:line and why:\n%s", logs.String())
	}
}

func TestSIGHUPReloads(t *testing.T) {
	cfgPath, _ := startDemo(t)
	listen := serveFast(t, cfgPath, io.Discard, "--reload-check=0")
	waitMetric(t, listen, `hopprobe_config_last_reload_successful`, func(v float64) bool { return v == 1 })
	src, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(src), "path: /ws*", "path: /ws2*", 1)), 0o644)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, listen, `hopprobe_config_reloads_total{result="success"}`, func(v float64) bool { return v == 1 })
	waitMetric(t, listen, `hopprobe_path_success{namespace="landry",path="ws.allinpro.com/ws2*"`, func(float64) bool { return true })
}

// waitMetric polls /metrics until the sample that starts with prefix
// satisfies ok, and returns its value.
func waitMetric(t *testing.T, listen, prefix string, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, line := range strings.Split(get(t, "http://"+listen+"/metrics"), "\n") {
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil && ok(v) {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sample %s with the wanted value in 20s", prefix)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// probe drift: the planted differences, exit 1; the documents' own
// inventory, exit 0. probe import kube emits a topology that loads.
func TestDriftAndImportKubeFromKubectlJSON(t *testing.T) {
	code, out, errs := probe(t, "drift", "--config", "../../config/allinx.yaml", "--kube", "../../live/testdata/kube/drifted.json", "--output", "json")
	var doc struct {
		Drift []struct{ Kind, Subject string }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != cli.ExitBroken || len(doc.Drift) != 6 {
		t.Fatalf("exit %d, %d items (%v)\n%s%s", code, len(doc.Drift), err, out, errs)
	}
	code, out, errs = probe(t, "drift", "--config", "../../config/allinx.yaml", "--kube", "../../live/testdata/kube/inventory.json")
	if code != cli.ExitOK || !strings.Contains(out, "0 difference(s)") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = probe(t, "import", "kube", "--config", "../../config/allinx.yaml", "--from", "../../live/testdata/kube/inventory.json")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	imported := filepath.Join(t.TempDir(), "imported.yaml")
	os.WriteFile(imported, []byte(out), 0o644)
	cfg, err := config.Load(imported)
	if err != nil {
		t.Fatalf("the imported topology does not load: %v\n%s", err, out)
	}
	if len(cfg.Nodes) != 3 || cfg.FindService("morph/morph-futuresws-app") == nil {
		t.Fatalf("imported %d nodes; futuresws-app present: %v", len(cfg.Nodes), cfg.FindService("morph/morph-futuresws-app") != nil)
	}
	if code, _, errs := probe(t, "drift", "--config", "../../config/allinx.yaml"); code != cli.ExitBadArgs || !strings.Contains(errs, "kubectl get svc,endpointslices,nodes") {
		t.Fatalf("drift without --kube: exit %d: %s", code, errs)
	}
	// --cluster with neither a service account nor a kubeconfig says so.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	t.Setenv("HOME", t.TempDir())
	if code, _, errs := probe(t, "drift", "--config", "../../config/allinx.yaml", "--cluster"); code != cli.ExitBadArgs || !strings.Contains(errs, "no in-cluster service account and no usable kubeconfig") {
		t.Fatalf("drift --cluster without credentials: exit %d: %s", code, errs)
	}
}

// Route drift from the APISIX Admin API itself: the key goes in the
// X-API-KEY header and nowhere else.
func TestDriftReadsTheAPISIXAdminAPI(t *testing.T) {
	raw, err := os.ReadFile("../../live/testdata/apisix/routes-drifted.json")
	if err != nil {
		t.Fatal(err)
	}
	var export map[string]json.RawMessage
	if err := json.Unmarshal(raw, &export); err != nil {
		t.Fatal(err)
	}
	const key = "edd1c9f034335f136f87ad84b625c8f1"
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-KEY") != key {
			http.Error(w, `{"message":"failed to check token"}`, http.StatusUnauthorized)
			return
		}
		part, ok := export[strings.TrimPrefix(r.URL.Path, "/apisix/admin/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(part)
	}))
	defer admin.Close()
	code, _, errs := probe(t, "drift", "--config", "../../config/allinx.yaml", "--admin-url", admin.URL)
	if code != cli.ExitBadArgs || !strings.Contains(errs, "HTTP 401") {
		t.Fatalf("without the key: exit %d: %s", code, errs)
	}
	t.Setenv("APISIX_ADMIN_KEY", key)
	code, out, errs := probe(t, "drift", "--config", "../../config/allinx.yaml", "--admin-url", admin.URL)
	if code != cli.ExitBroken || !strings.Contains(out, "3 difference(s)") || !strings.Contains(out, "route-missing") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out+errs, key) {
		t.Fatal("the admin key was printed")
	}
	code, out, _ = probe(t, "import", "apisix", "--config", "../../config/allinx.yaml", "--admin-url", admin.URL)
	if code != cli.ExitOK || !strings.Contains(out, "path: /api/*") || !strings.Contains(out, "service: landry/landry-spotapi-web:8080") {
		t.Fatalf("import apisix: exit %d\n%s", code, out)
	}
}

// probe serve compares with the cluster on a schedule: drift shows in
// /metrics and on the map's component.
func TestServeExportsDrift(t *testing.T) {
	cfgPath, _ := startDemo(t)
	var items []string
	for _, s := range []string{"landry/landry-spotapi-web", "morph/morph-futuresws-app", "landry/landry-spotws-web",
		"landry/landry-anemone-web", "landry/landry-ces-matchengine", "morph/morph-awf-spa"} { // morph-narwhal-accesshttp is gone
		ns, name, _ := strings.Cut(s, "/")
		items = append(items, fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":%q,"namespace":%q},"spec":{"type":"ClusterIP","ports":[{"port":%d}]}}`,
			name, ns, map[bool]int{true: 7316, false: 8080}[name == "landry-ces-matchengine"]))
	}
	kube := filepath.Join(t.TempDir(), "cluster.json")
	os.WriteFile(kube, []byte(`{"apiVersion":"v1","kind":"List","items":[`+strings.Join(items, ",")+`]}`), 0o644)
	listen := serveFast(t, cfgPath, io.Discard, "--kube", kube, "--drift-every", "1h")
	waitMetric(t, listen, `hopprobe_drift_items{kind="missing-live"}`, func(v float64) bool { return v == 1 })
	waitMetric(t, listen, `hopprobe_drift_info{kind="missing-live",subject="morph/morph-narwhal-accesshttp"}`, func(v float64) bool { return v == 1 })
	waitMetric(t, listen, `hopprobe_services{source="documented"}`, func(v float64) bool { return v == 7 })
	waitMetric(t, listen, `hopprobe_services{source="live"}`, func(v float64) bool { return v == 6 })
	if v := waitMetric(t, listen, `hopprobe_drift_items{kind="port-differs"}`, func(float64) bool { return true }); v != 0 {
		t.Errorf("%v port differences where there are none", v)
	}
	var g web.Graph
	if err := json.Unmarshal([]byte(get(t, "http://"+listen+"/api/v1/topology")), &g); err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		if drifted := len(n.Drift) > 0; drifted != (n.ID == "morph/morph-narwhal-accesshttp") {
			t.Errorf("node %s drift %v", n.ID, n.Drift)
		}
	}
}

// The demo's edge speaks h2 and h3 as the topology asks; when it stops
// speaking one (an ALPN change, a UDP/443 block) CloudFront is the first
// failing hop, named with the version, while the hops below it answer.
func TestABrokenHTTPVersionIsTheFirstFailingHop(t *testing.T) {
	cfgPath, d := startDemo(t)
	code, out, errs := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/", "--output", "json")
	if code != cli.ExitOK || !strings.Contains(out, `"protocol.h2": "ok"`) || !strings.Contains(out, `"protocol.h3": "ok"`) {
		t.Fatalf("healthy demo: exit %d, want h2 and h3 ok:\n%s%s", code, out, errs)
	}
	for _, proto := range []string{"h2", "h3"} {
		if err := d.Break(proto); err != nil {
			t.Fatal(err)
		}
		code, out, errs := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/", "-v")
		if code != cli.ExitBroken || !strings.Contains(out, "first failing hop: cloudfront") || !strings.Contains(out, proto+": ") {
			t.Errorf("%s broken: exit %d, want cloudfront first failing, naming %s:\n%s%s", proto, code, proto, out, errs)
		}
		if !hopLine(out, "alb-public", " ok ") {
			t.Errorf("%s broken: the ALB below the edge must still answer:\n%s", proto, out)
		}
	}
	d.Break("none")
	if code, out, _ := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/"); code != cli.ExitOK {
		t.Errorf("repaired: exit %d\n%s", code, out)
	}
}

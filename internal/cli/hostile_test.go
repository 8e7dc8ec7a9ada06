package cli_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/hostile"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/status"
)

// The peers `probe serve` meets in this test: every one that fails a
// plain hop (a Service port without a WebSocket message to send is only
// a handshake, which websocket-garbage-frames completes correctly; the
// probes package tests that one with a message).
var serveHostiles = []string{
	"redis-length-bomb", "redis-array-bomb", "redis-huge-bulk", "redis-escapes",
	"postgres-huge-message", "postgres-cleartext", "kafka-huge-response", "etcd-garbage-frames",
	"websocket-header-flood", "http-giant-header", "http-escapes", "http-endless-body",
	// Replies within the budget that a client would build into far more.
	"redis-element-flood", "redis-deep-nesting", "kafka-metadata-confetti", "etcd-kv-flood",
	"etcd-nested-groups", "postgres-option-confetti", "http-header-confetti", "websocket-deflate-unoffered",
}

// probeBinary builds cmd/probe once per test binary, with the test's own
// race setting so that the build cache the tests filled is reused.
func probeBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "probe")
	args := []string{"build", "-o", bin}
	if inGit() {
		// As make build does: the revision is stamped even where
		// GOFLAGS says -buildvcs=false.
		args = append(args, "-buildvcs=true")
	}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/allinx/hopprobe/cmd/probe")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building probe: %v\n%s", err, out)
	}
	return bin
}

// inGit reports whether the tests run in a git work tree (a clone, not
// an exported copy of the source).
func inGit() bool {
	return exec.Command("git", "rev-parse", "--is-inside-work-tree").Run() == nil
}

// memKiB reads VmRSS or VmHWM (peak) of a process.
func memKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// `probe serve` against every hostile peer at once, beside a healthy
// path: the process stays up, its peak RSS grows by less than 64 MiB
// over its healthy baseline, every hostile hop fails with a short reason
// a terminal can print, no password reaches the cleartext peer, and the
// healthy path keeps its schedule. Loopback only, bounded: about 15 s.
func TestServeSurvivesEveryHostilePeerAtOnce(t *testing.T) {
	bin := probeBinary(t)
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer healthy.Close()
	hAddr := strings.TrimPrefix(healthy.URL, "http://")
	peersByName := map[string]*hostile.Peer{}
	for _, name := range serveHostiles {
		p, err := hostile.Start(name)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		peersByName[name] = p
	}
	resolver := healthyAndHostileDNS(t)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "topology.yaml")
	write := func(withHostile bool) {
		var b strings.Builder
		fmt.Fprintf(&b, `vantage: cluster
defaults: {interval: 1s, timeout: 900ms}
vantages:
  cluster: {resolver: %q}
entries:
  - name: edge
    hops:
      - {name: edge, address: %q}
routes:
  - hosts: [healthy.example.test%s]
    path: /*
    service: ns/healthy:8080
    probe: {path: /health, expect: {json: {status: ok}}}
services:
  - {name: healthy, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: %q}]}
`, resolver, hAddr, map[bool]string{true: ", dns-escapes.example.test, dns-garbage.example.test"}[withHostile], hAddr)
		var stores strings.Builder
		if withHostile {
			for _, name := range serveHostiles {
				kind, _, _ := strings.Cut(name, "-")
				addr := peersByName[name].Addr
				switch kind {
				case "http", "websocket":
					fmt.Fprintf(&b, "  - {name: %s, namespace: hostile, type: ClusterIP, ports: [{port: 8080, protocol: %s, address: %q}]}\n", name, kind, addr)
					continue
				}
				fmt.Fprintf(&b, "  - {name: %s, namespace: hostile, type: ClusterIP, depends_on: [%s]}\n", name, name)
				fmt.Fprintf(&stores, "  - {name: %s, kind: %s, address: %q, username: hopprobe", name, kind, addr)
				switch kind {
				case "postgres":
					stores.WriteString(", password: {env: HOPPROBE_TEST_HOSTILE_PW}")
				case "kafka":
					stores.WriteString(", kafka: {topics: [orders]}")
				}
				stores.WriteString("}\n")
			}
			b.WriteString("stores:\n" + stores.String())
		}
		if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(false)
	listen := freeAddr(t)
	var logs testkit.Buffer
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--listen", listen, "--reload-check", "0")
	cmd.Env = append(os.Environ(), "HOPPROBE_TEST_HOSTILE_PW="+hostilePW, "GOMEMLIMIT=200MiB")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}()
	pid := cmd.Process.Pid
	healthyEdge := `hopprobe_hop_probes_total{hop="edge",path="healthy.example.test/*",vantage="cluster",result="success"}`
	waitMetric(t, listen, healthyEdge, func(v float64) bool { return v >= 3 })
	baseline := memKiB(t, pid, "VmHWM")

	write(true)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Every hostile path has been walked; the window below walks each
	// about six times more.
	deadline := time.Now().Add(30 * time.Second)
	var paths []status.PathStatus
	for {
		paths = apiPaths(t, listen)
		if hostileWalked(paths) >= len(serveHostiles)+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	before := metricValue(t, listen, healthyEdge)
	const window = 6 * time.Second
	time.Sleep(window)
	after := metricValue(t, listen, healthyEdge)

	select {
	case err := <-exited:
		t.Fatalf("probe serve exited: %v\n%s", err, logs.String())
	default:
	}
	if get(t, "http://"+listen+"/healthz") != "ok\n" {
		t.Error("/healthz does not answer ok")
	}
	peak := memKiB(t, pid, "VmHWM")
	t.Logf("peak RSS %d KiB against a healthy baseline of %d KiB (+%d KiB)", peak, baseline, peak-baseline)
	if peak-baseline > 64<<10 {
		t.Errorf("peak RSS grew by %d KiB over the healthy baseline, more than 64 MiB", peak-baseline)
	}
	if want := window.Seconds() - 2; after-before < want {
		t.Errorf("the healthy path was walked %.0f times in %s, want at least %.0f", after-before, window, want)
	}
	paths = apiPaths(t, listen)
	failed := map[string]string{}
	for _, p := range paths {
		for _, h := range p.Hops {
			if p.Service == "healthy" && p.ID == "healthy.example.test/*" {
				if h.Verdict != status.VerdictOK {
					t.Errorf("healthy hop %s: %s %s", h.Name, h.Verdict, h.Error)
				}
				continue
			}
			if h.Verdict == status.VerdictOK || h.Verdict == status.VerdictSkipped {
				continue
			}
			failed[p.ID+" "+h.Name] = h.Error
			if len(h.Error) > hop.MaxReasonBytes {
				t.Errorf("%s %s: reason of %d bytes", p.ID, h.Name, len(h.Error))
			}
			if !utf8.ValidString(h.Error) || strings.IndexFunc(h.Error, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 {
				t.Errorf("%s %s: reason carries control characters: %q", p.ID, h.Name, h.Error)
			}
		}
	}
	for _, name := range serveHostiles {
		found := false
		for k := range failed {
			found = found || strings.Contains(k, name)
		}
		if !found {
			t.Errorf("no failed hop for hostile peer %s (failed: %v)", name, failed)
		}
	}
	for _, name := range []string{"dns-escapes", "dns-garbage"} {
		if _, ok := failed[name+".example.test/* dns"]; !ok {
			t.Errorf("the dns hop of %s did not fail", name)
		}
	}
	if n := peersByName["postgres-cleartext"].Passwords.Load(); n != 0 {
		t.Errorf("the cleartext peer received the password %d times", n)
	}
	if strings.Contains(logs.String(), hostilePW) || strings.Contains(logs.String(), "\x1b") {
		t.Error("the log carries the password or a terminal escape")
	}
	body := get(t, "http://"+listen+"/metrics")
	if strings.Contains(body, "\x1b") {
		t.Error("/metrics carries a terminal escape")
	}
	for k, v := range failed {
		t.Logf("%s: %s", k, v)
	}
}

const hostilePW = "Hostile-Peer-Secret"

// healthyAndHostileDNS answers healthy.example.test with 127.0.0.1 and
// the dns-* names with the hostile behaviours of the same name.
func healthyAndHostileDNS(t *testing.T) string {
	t.Helper()
	mux := dns.NewServeMux()
	mux.HandleFunc("healthy.example.test.", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(127, 0, 0, 1)})
		}
		w.WriteMsg(m)
	})
	for _, name := range []string{"dns-escapes", "dns-garbage"} {
		mux.HandleFunc(name+".example.test.", hostile.DNSHandler(name))
	}
	srv, err := peers.DNS(mux)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv.Addr
}

func apiPaths(t *testing.T, listen string) []status.PathStatus {
	t.Helper()
	var out struct {
		Paths []status.PathStatus `json:"paths"`
	}
	if body := get(t, "http://"+listen+"/api/v1/paths"); body != "" {
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("/api/v1/paths: %v", err)
		}
	}
	return out.Paths
}

// hostileWalked counts the hostile paths that have been walked.
func hostileWalked(paths []status.PathStatus) int {
	n := 0
	for _, p := range paths {
		if p.ID != "healthy.example.test/*" && p.Verdict != status.VerdictPending {
			n++
		}
	}
	return n
}

func metricValue(t *testing.T, listen, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(get(t, "http://"+listen+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

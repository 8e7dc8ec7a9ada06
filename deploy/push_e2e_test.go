package deploy_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/allinx/hopprobe/internal/benchkit"
	"github.com/allinx/hopprobe/internal/peers"
)

// An external vantage pushes: probe serve, the shipped agent
// configuration (deploy/external/agent.yml) run by a real Prometheus in
// agent mode, and a real Prometheus receiving remote write behind TLS
// and basic auth. Every series arrives with the site and replica labels;
// the receiver goes away for 20 s and, once it is back, the samples of
// those 20 s arrive too: no gap. The scrape interval is shortened to 1 s;
// everything else is as shipped. Bounded: about a minute, loopback only.
func TestAnExternalVantagePushesAndLosesNothing(t *testing.T) {
	prom := tool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	pki, err := peers.NewPKI(filepath.Join(dir, "pki"), nil, "agent")
	if err != nil {
		t.Fatal(err)
	}
	const password = "push-e2e-remote-write-pw"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "receiver-web.yml"), fmt.Sprintf(`tls_server_config: {cert_file: %q, key_file: %q}
basic_auth_users: {hopprobe-external: %q}
`, pki.ServerCert, pki.ServerKey, hash))
	write(t, filepath.Join(dir, "receiver.yml"), "global: {scrape_interval: 1h}\n")
	receiverAddr, _ := peers.FreePort()
	receiverArgs := []string{"--config.file", filepath.Join(dir, "receiver.yml"), "--storage.tsdb.path", filepath.Join(dir, "receiver-tsdb"),
		"--web.listen-address", receiverAddr, "--web.config.file", filepath.Join(dir, "receiver-web.yml"), "--web.enable-remote-write-receiver"}
	stopReceiver, _ := startStoppable(t, "receiver", prom, receiverArgs...)

	listen := serveOneService(t, dir, "external")

	runAgent(t, prom, dir, listen, "https://"+receiverAddr+"/api/v1/write", pki.CA, password)

	client := receiverClient(t, pki.CA, password)
	query := func(q string) float64 { return queryValue(client, "https://"+receiverAddr, q) }
	waitUntil := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !ok(); time.Sleep(250 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %s", what, limit)
			}
		}
	}
	labelled := `count(hopprobe_build_info{site="eu-test-1-loopback",replica="a"})`
	waitUntil("pushed series with site and replica", 60*time.Second, func() bool { return query(labelled) == 1 })
	if n := query(`count({vantage="external",site="eu-test-1-loopback"})`); n < 3 {
		t.Errorf("only %v series with vantage and site reached the receiver", n)
	}

	// The receiver goes away for 20 s; the agent keeps the samples.
	stopReceiver()
	down := time.Now()
	time.Sleep(20 * time.Second)
	startStoppable(t, "receiver", prom, receiverArgs...) // back; stopped when the test ends
	up := time.Now()
	// Samples scraped while it was down, counted at the moment it came
	// back: one a second, if nothing was lost.
	window := int(up.Sub(down).Seconds()) - 2
	q := fmt.Sprintf(`count_over_time(hopprobe_build_info{site="eu-test-1-loopback"}[%ds] @ %d)`, window, up.Unix())
	waitUntil("the outage's samples at the receiver", 90*time.Second, func() bool { return query(q) >= float64(window-1) })
	t.Logf("%v samples of %d s of receiver outage arrived afterwards", query(q), window)
}

// serveOneService runs probe serve from vantage on a topology of one
// loopback TCP service walked every second, and returns its listen
// address.
func serveOneService(t *testing.T, dir, vantage string) string {
	t.Helper()
	topo := filepath.Join(dir, "topology.yaml")
	svc, _ := peers.FreePort()
	write(t, topo, fmt.Sprintf(`vantage: %s
defaults: {interval: 1s, timeout: 500ms}
routes: []
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: tcp, address: %q}]}
`, vantage, svc))
	return serveProbe(t, topo)
}

// runAgent runs the shipped agent configuration (deploy/external/agent.yml)
// in a real Prometheus in agent mode, scraping the prober at listen every
// second and pushing to receiver, until the test ends; only the receiver,
// the files and the scrape interval are the test's. It returns the
// agent's own listen address.
func runAgent(t *testing.T, prom, dir, listen, receiver, ca, password string) (*lockedOutput, string) {
	t.Helper()
	shipped, err := os.ReadFile("external/agent.yml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "password"), password)
	cfg := strings.NewReplacer(
		"scrape_interval: 15s", "scrape_interval: 1s",
		`"127.0.0.1:9115"`, strconv.Quote(listen),
		"https://metrics.example.internal/api/v1/write", receiver,
		"/etc/hopprobe/remote-write-password", filepath.Join(dir, "password"),
		"/etc/hopprobe/receiver-ca.pem", ca,
	).Replace(string(shipped))
	if strings.Contains(cfg, "example.internal") || strings.Contains(cfg, "/etc/hopprobe") {
		t.Fatalf("the shipped agent configuration changed shape; update this test:\n%s", cfg)
	}
	write(t, filepath.Join(dir, "agent.yml"), cfg)
	addr, _ := peers.FreePort()
	t.Setenv("HOPPROBE_SITE", "eu-test-1-loopback")
	t.Setenv("HOPPROBE_REPLICA", "a")
	out := runServerOutput(t, "agent", prom, "--enable-feature=agent,expand-external-labels", "--config.file", filepath.Join(dir, "agent.yml"),
		"--storage.agent.path", filepath.Join(dir, "agent-wal"), "--web.listen-address", addr)
	return out, addr
}

// receiverClient speaks TLS (trusting ca) and basic auth to the receiver.
func receiverClient(t *testing.T, ca, password string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 5 * time.Second, Transport: basicAuth{password: password,
		rt: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

type basicAuth struct {
	password string
	rt       http.RoundTripper
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth("hopprobe-external", b.password)
	return b.rt.RoundTrip(r)
}

// A receiver that throttles (429), fails (503) and then hangs: the agent
// retries, logs and counts it, its queue stays within the shipped
// queue_config, and the prober goes on probing. Bounded: about 15 s.
func TestARefusingReceiverIsCountedAndTheProberGoesOn(t *testing.T) {
	prom := tool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	var calls atomic.Int64
	hang := make(chan struct{})
	receiver := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n := calls.Add(1); {
		case n == 1:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case n == 2:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		default:
			select { // never answers
			case <-hang:
			case <-r.Context().Done():
			}
		}
	}))
	defer receiver.Close()
	defer close(hang)
	ca := filepath.Join(dir, "ca.pem")
	write(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: receiver.Certificate().Raw})))
	listen := serveOneService(t, dir, "cluster")
	out, agent := runAgent(t, prom, dir, listen, receiver.URL+"/api/v1/write", ca, "pw")
	probes := func() float64 { return benchkit.MetricSum("http://"+listen+"/metrics", "hopprobe_hop_probes_total") }
	for deadline := time.Now().Add(60 * time.Second); calls.Load() < 3; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent sent %d requests in 60 s, want a 429, a 503 and a hang", calls.Load())
		}
	}
	before := probes()
	time.Sleep(3 * time.Second)
	if after := probes(); after <= before {
		t.Errorf("the prober stopped probing while the receiver refused: %v probes, then %v", before, after)
	}
	agentMetrics := "http://" + agent + "/metrics"
	if retried := benchkit.MetricSum(agentMetrics, "prometheus_remote_storage_samples_retried_total"); retried == 0 {
		t.Error("the agent counted no retried samples after 429s and 503s")
	}
	// The shipped queue holds at most capacity × max_shards in memory.
	if pending := benchkit.MetricSum(agentMetrics, "prometheus_remote_storage_samples_pending"); pending > 2500*10 {
		t.Errorf("%v samples pending in memory, more than the shipped queue allows", pending)
	}
	if log := out.tail(); !strings.Contains(log, "429") && !strings.Contains(log, "503") {
		t.Errorf("the agent logged neither the 429 nor the 503:\n%s", log)
	}
}

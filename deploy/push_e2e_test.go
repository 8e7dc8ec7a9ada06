package deploy_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

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
	stopReceiver := startStoppable(t, "receiver", prom, receiverArgs...)

	// The prober, on a one-hop loopback topology.
	topo := filepath.Join(dir, "topology.yaml")
	svc, _ := peers.FreePort()
	write(t, topo, fmt.Sprintf(`vantage: external
defaults: {interval: 1s, timeout: 500ms}
routes: []
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: tcp, address: %q}]}
`, svc))
	listen := serveProbe(t, topo)

	// The shipped agent configuration: only the receiver, the files and
	// the scrape interval are this test's.
	shipped, err := os.ReadFile("external/agent.yml")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "password"), password)
	agentCfg := strings.NewReplacer(
		"scrape_interval: 15s", "scrape_interval: 1s",
		`"127.0.0.1:9115"`, strconv.Quote(listen),
		"https://metrics.example.internal/api/v1/write", "https://"+receiverAddr+"/api/v1/write",
		"/etc/hopprobe/remote-write-password", filepath.Join(dir, "password"),
		"/etc/hopprobe/receiver-ca.pem", pki.CA,
	).Replace(string(shipped))
	if strings.Contains(agentCfg, "example.internal") || strings.Contains(agentCfg, "/etc/hopprobe") {
		t.Fatalf("the shipped agent configuration changed shape; update this test:\n%s", agentCfg)
	}
	write(t, filepath.Join(dir, "agent.yml"), agentCfg)
	agentAddr, _ := peers.FreePort()
	t.Setenv("HOPPROBE_SITE", "eu-test-1-loopback")
	t.Setenv("HOPPROBE_REPLICA", "a")
	runServer(t, "agent", prom, "--enable-feature=agent,expand-external-labels", "--config.file", filepath.Join(dir, "agent.yml"),
		"--storage.agent.path", filepath.Join(dir, "agent-wal"), "--web.listen-address", agentAddr)

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
	stopReceiver = startStoppable(t, "receiver", prom, receiverArgs...)
	up := time.Now()
	// Samples scraped while it was down, counted at the moment it came
	// back: one a second, if nothing was lost.
	window := int(up.Sub(down).Seconds()) - 2
	q := fmt.Sprintf(`count_over_time(hopprobe_build_info{site="eu-test-1-loopback"}[%ds] @ %d)`, window, up.Unix())
	waitUntil("the outage's samples at the receiver", 90*time.Second, func() bool { return query(q) >= float64(window-1) })
	t.Logf("%v samples of %d s of receiver outage arrived afterwards", query(q), window)
}

// startStoppable runs a server until stop is called or the test ends.
func startStoppable(t *testing.T, label, name string, args ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out lockedOutput
	cmd.Stdout, cmd.Stderr = &out, &out
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
	return stop
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

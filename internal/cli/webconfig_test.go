package cli_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/internal/testkit"
)

// The password below, hashed with bcrypt (cost 4: the test's, not a
// recommendation) as the exporter-toolkit's basic_auth_users wants it.
const (
	scrapeUser     = "prometheus"
	scrapePassword = "scrape-secret-42"
	scrapeHash     = "$2a$04$f13qWGLT1JODt9989irpiODmod7YDyDHfQ0MqgWPIW9udkIZ2EQae"
)

// --web.config.file puts TLS and basic auth in front of every page of
// --listen: the metrics, the JSON API with its certificates and
// addresses, the pages. Without credentials a scrape gets 401; the
// kubelet's health answers stay reachable on --web.probe-listen, which
// serves nothing else. A web configuration that does not load refuses
// to start, rather than serve unprotected.
func TestWebConfigProtectsEveryPage(t *testing.T) {
	dir := t.TempDir()
	pki, err := peers.NewPKI(filepath.Join(dir, "pki"), []string{"127.0.0.1", "localhost"}, "client")
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yaml")
	os.WriteFile(webCfg, []byte(fmt.Sprintf(`tls_server_config:
  cert_file: %s
  key_file: %s
basic_auth_users:
  %s: %s
`, pki.ServerCert, pki.ServerKey, scrapeUser, scrapeHash)), 0o600)
	cfg := filepath.Join(dir, "topology.yaml")
	os.WriteFile(cfg, []byte(`vantage: cluster
defaults: {interval: 5s, timeout: 1s}
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: "127.0.0.1:1"}]}
`), 0o644)
	probeAt := freeAddr(t)
	listen := serveFast(t, cfg, &testkit.Buffer{}, "--web.config.file", webCfg, "--web.probe-listen", probeAt)

	ca, _ := os.ReadFile(pki.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	status := func(url string, auth bool) int {
		req, _ := http.NewRequest("GET", url, nil)
		if auth {
			req.SetBasicAuth(scrapeUser, scrapePassword)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	base := "https://" + listen
	for deadline := time.Now().Add(30 * time.Second); status(base+"/metrics", true) != 200; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the prober did not answer an authenticated scrape over TLS within 30s")
		}
	}
	for _, page := range []string{"/metrics", "/api/v1/paths", "/api/v1/topology", "/", "/map"} {
		if got := status(base+page, false); got != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", page, got)
		}
		if got := status(base+page, true); got != http.StatusOK {
			t.Errorf("%s with credentials: %d, want 200", page, got)
		}
	}
	// Plain HTTP on the TLS port gets no page.
	if resp, err := http.Get("http://" + listen + "/metrics"); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Error("the TLS listener served /metrics over plain HTTP")
		}
		resp.Body.Close()
	}
	// The kubelet's listener: health without credentials, nothing else.
	if got := get(t, "http://"+probeAt+"/readyz"); got == "" {
		t.Error("--web.probe-listen does not answer /readyz")
	}
	resp, err := http.Get("http://" + probeAt + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("--web.probe-listen serves /metrics: %d, want 404", resp.StatusCode)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("basic_auth_users:\n  prometheus: not-a-bcrypt-hash\n"), 0o600)
	code, _, errs := probe(t, "serve", "--config", cfg, "--web.config.file", bad, "--listen", freeAddr(t))
	if code != 2 || !strings.Contains(errs, "--web.config.file "+bad) {
		t.Errorf("a web configuration that does not load: exit %d, %q", code, errs)
	}
}

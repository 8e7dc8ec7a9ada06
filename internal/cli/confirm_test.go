package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allinx/hopprobe/internal/cli"
)

// One failed answer, then good ones: the walk confirms the failure by
// probing again, finds the hop answering, and calls it recovered. The
// path is healthy (exit 0); the table, the JSON and the metrics say it
// recovered and what the first attempt saw.
func TestARecoveredHopIsShownButIsNotAFailure(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "topology.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`vantage: cluster
defaults: {interval: 4s, timeout: 1s, confirm: {retries: 2, spacing: 50ms}}
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: %q}]}
`, strings.TrimPrefix(srv.URL, "http://"))), 0o644)

	code, out, errs := probe(t, "--config", cfg, "--path", "svc/ns/app")
	if code != cli.ExitOK {
		t.Fatalf("exit %d, want 0 (a recovered hop is not a failure):\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "recovered ×2") || !strings.Contains(out, "first: ") || !strings.Contains(out, "503") {
		t.Errorf("the table does not say the hop recovered and why:\n%s", out)
	}
	n.Store(0)
	code, out, _ = probe(t, "--config", cfg, "--path", "svc/ns/app", "-o", "json")
	var doc struct {
		Paths []struct {
			Verdict string
			Hops    []struct {
				Verdict    string
				Attempts   int
				Recovered  bool
				FirstError string `json:"first_error"`
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 || len(doc.Paths) != 1 || len(doc.Paths[0].Hops) != 1 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	st := doc.Paths[0]
	if h := st.Hops[0]; st.Verdict != "ok" || h.Verdict != "ok" || h.Attempts != 2 || !h.Recovered || !strings.Contains(h.FirstError, "503") {
		t.Errorf("JSON: %+v", st)
	}

	// In serve, the recovery is counted.
	n.Store(0)
	listen := serveFast(t, cfg, io.Discard)
	var metrics string
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(metrics, "hopprobe_hop_recovered_total{") && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		metrics = get(t, "http://"+listen+"/metrics")
	}
	if !strings.Contains(metrics, `hopprobe_hop_recovered_total{hop="port-8080",path="svc/ns/app",vantage="cluster"} 1`) {
		t.Errorf("no recovery counted in /metrics")
	}
	if !strings.Contains(metrics, `hopprobe_hop_success{hop="port-8080",path="svc/ns/app",vantage="cluster"} 1`) {
		t.Errorf("the recovered hop is not a success in /metrics")
	}
}

// Out-of-range confirmation settings are refused with file:line.
func TestConfirmSettingsAreChecked(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(cfg, []byte(`vantage: cluster
defaults:
  confirm:
    retries: 9
    spacing: 1m
  broken_interval: 500ms
`), 0o644)
	code, _, errs := probe(t, "validate", "--config", cfg)
	if code != cli.ExitBadArgs || !strings.Contains(errs, "bad.yaml:4: confirm.retries must be between 0 (no confirmation) and 5, got 9") ||
		!strings.Contains(errs, "bad.yaml:5: confirm.spacing must be between 0 and 10s, got 1m0s") ||
		!strings.Contains(errs, "bad.yaml:6: broken_interval must be 0 (walk broken paths at their interval) or between 1s and the interval 30s, got 500ms") {
		t.Errorf("exit %d:\n%s", code, errs)
	}
}

// One store's password too short to scrub fails that store's hops, not
// the topology: `probe validate` reports it (exit 2), the other paths
// are walked, and the store's hop names the reason.
func TestAShortSecretFailsOnlyItsStore(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	cfg := filepath.Join(t.TempDir(), "topology.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`vantage: cluster
defaults: {interval: 5s, timeout: 1s, confirm: {retries: 0}}
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: %[1]q}]}
  - {name: cached, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: %[1]q}], depends_on: [cache]}
stores:
  - name: cache
    kind: redis
    address: 127.0.0.1:1
    password: {env: HOPPROBE_TEST_SHORT_PW}
`, strings.TrimPrefix(srv.URL, "http://"))), 0o644)
	t.Setenv("HOPPROBE_TEST_SHORT_PW", "r3d1s")
	code, out, errs := probe(t, "validate", "--config", cfg)
	if code != cli.ExitBadArgs || !strings.Contains(errs, "topology.yaml:10: the secret from env:HOPPROBE_TEST_SHORT_PW: it is 5 characters long") || strings.Contains(errs+out, "r3d1s") {
		t.Errorf("validate: exit %d:\n%s%s", code, out, errs)
	}
	code, out, errs = probe(t, "--config", cfg, "--path", "svc/ns/app")
	if code != cli.ExitOK || !strings.Contains(errs, "warning:") {
		t.Errorf("a path without the store: exit %d, want 0 with a warning:\n%s%s", code, out, errs)
	}
	code, out, errs = probe(t, "--config", cfg, "--path", "svc/ns/cached", "-v")
	if code != cli.ExitBroken || !strings.Contains(out, "first failing hop: cache\n") || !strings.Contains(out, "refuses passwords shorter than 8") || strings.Contains(out+errs, "r3d1s") {
		t.Errorf("the path through the store: exit %d, want 1 naming the store and the reason:\n%s%s", code, out, errs)
	}
}

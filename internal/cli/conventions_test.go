package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/allinx/hopprobe/internal/buildinfo"
	"github.com/allinx/hopprobe/internal/testkit"
)

// agents records the User-Agent of every request a server gets.
type agents struct {
	mu   sync.Mutex
	seen []string
}

func (a *agents) add(r *http.Request) {
	a.mu.Lock()
	a.seen = append(a.seen, r.UserAgent())
	a.mu.Unlock()
}

func (a *agents) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// The exporter conventions: hopprobe_build_info says what --version
// says, HTTP and WebSocket probes name the build in their User-Agent,
// and serve logs as --log.level and --log.format ask.
func TestBuildInfoUserAgentAndLogFlags(t *testing.T) {
	bi := buildinfo.Get()
	code, out, _ := probe(t, "--version")
	if code != 0 || out != "probe "+bi.String()+"\n" {
		t.Errorf("--version: exit %d, %q; build info says %q", code, out, bi.String())
	}

	var httpUA, wsUA agents
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { httpUA.add(r); w.Write([]byte("ok")) }))
	defer web.Close()
	up := websocket.Upgrader{}
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wsUA.add(r)
		if c, err := up.Upgrade(w, r, nil); err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					break
				}
			}
			c.Close()
		}
	}))
	defer ws.Close()
	cfg := filepath.Join(t.TempDir(), "topology.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`vantage: cluster
defaults: {interval: 5s, timeout: 2s}
services:
  - {name: app, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: http, address: %q}]}
  - {name: live, namespace: ns, type: ClusterIP, ports: [{port: 8080, protocol: websocket, address: %q}]}
`, strings.TrimPrefix(web.URL, "http://"), strings.TrimPrefix(ws.URL, "http://"))), 0o644)

	logs := &testkit.Buffer{}
	listen := serveFast(t, cfg, logs, "--log.format", "json", "--log.level", "debug")
	var metrics string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		metrics = get(t, "http://"+listen+"/metrics")
		if len(httpUA.all()) > 0 && len(wsUA.all()) > 0 && strings.Contains(metrics, `hopprobe_path_success{namespace="ns",path="svc/ns/live"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe of both services within 30s (user agents %v %v)", httpUA.all(), wsUA.all())
		}
	}
	want := fmt.Sprintf(`hopprobe_build_info{goversion=%q,revision=%q,version=%q} 1`, bi.GoVersion, bi.Revision, bi.Version)
	if !strings.Contains(metrics, want+"\n") {
		t.Errorf("/metrics lacks %s", want)
	}
	for _, ua := range append(httpUA.all(), wsUA.all()...) {
		if ua != bi.UserAgent() || !strings.HasPrefix(ua, "hopprobe/") {
			t.Errorf("a probe sent User-Agent %q, want %q", ua, bi.UserAgent())
		}
	}
	// Every line is a JSON object; the start-up line is there.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	serving := false
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("--log.format json wrote a line that is not JSON: %q", l)
		}
		serving = serving || rec["msg"] == "serving" && rec["level"] == "INFO"
	}
	if !serving {
		t.Errorf("no JSON \"serving\" line in the log:\n%s", logs.String())
	}

	// Above info, the start-up line is not logged; a bad level is refused.
	quiet := &testkit.Buffer{}
	quietAt := serveFast(t, cfg, quiet, "--log.level", "error")
	// It logs "serving" before its first walk, so a walk seen means the
	// line would be there by now.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(get(t, "http://"+quietAt+"/metrics"), "hopprobe_path_success{"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the quiet prober walked nothing within 30s")
		}
	}
	if strings.Contains(quiet.String(), "serving") {
		t.Errorf("--log.level error still logs the info line: %q", quiet.String())
	}
	code, _, errs := probe(t, "serve", "--config", cfg, "--log.level", "loud")
	if code != 2 || !strings.Contains(errs, "--log.level") {
		t.Errorf("--log.level loud: exit %d, %q", code, errs)
	}
	code, _, errs = probe(t, "serve", "--config", cfg, "--log.format", "xml")
	if code != 2 || !strings.Contains(errs, "--log.format") {
		t.Errorf("--log.format xml: exit %d, %q", code, errs)
	}
}

package runner_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/live"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/runner"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
)

// The store kinds come from the probes registry, as in the programs.
func TestMain(m *testing.M) {
	probes.RegisterKinds()
	goleak.VerifyTestMain(m)
}

// topology writes a file with one Service per address, each answering
// on a loopback HTTP server.
func topology(t *testing.T, path string, addrs ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("vantage: cluster\ndefaults: {interval: 1s, timeout: 500ms}\nservices:\n")
	for i, a := range addrs {
		fmt.Fprintf(&b, "  - {name: app%d, namespace: ns, type: ClusterIP, ports: [{name: http, port: 8080, protocol: http, address: %q}]}\n", i, a)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, opts runner.Options, addrs ...string) (*runner.Runner, string, context.Context) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.yaml")
	topology(t, path, addrs...)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := runner.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	t.Cleanup(func() {
		cancel()
		r.Stop()
	})
	return r, path, ctx
}

func healthy(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func metrics(t *testing.T, exp *exporter.Exporter) string {
	t.Helper()
	rec := httptest.NewRecorder()
	exp.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// waitFor polls until ok holds (or fails after 10 s).
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
	}
}

func walked(b *status.Board, id string) bool {
	for _, st := range b.Statuses() {
		if st.ID == id && st.Verdict == status.VerdictOK {
			return true
		}
	}
	return false
}

// A reload takes a file that loads and keeps the running topology when
// the file does not.
func TestReloadSwapsPathsAndKeepsTheRunningOneOnABadFile(t *testing.T) {
	a, b := healthy(t), healthy(t)
	r, path, ctx := start(t, runner.Options{}, a)
	waitFor(t, "walk of app0", func() bool { return walked(r.Board(), "svc/ns/app0") })

	topology(t, path, a, b)
	r.Reload(ctx, "test")
	if r.Paths() != 2 {
		t.Fatalf("%d paths after the reload, want 2", r.Paths())
	}
	waitFor(t, "walk of app1", func() bool { return walked(r.Board(), "svc/ns/app1") })

	if err := os.WriteFile(path, []byte("services: [{name: BAD}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Reload(ctx, "test")
	if r.Paths() != 2 {
		t.Fatalf("a bad file changed the paths to %d", r.Paths())
	}
	if m := metrics(t, r.Exporter()); !strings.Contains(m, "hopprobe_config_last_reload_successful 0") {
		t.Fatal("the refused reload is not exported")
	}
}

// Drift checks run beside the loop, one at a time, and land in the
// exporter.
func TestDriftChecksRunOneAtATime(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	drift := func(ctx context.Context, cfg *config.Config, inv *live.KubeInventory) ([]targets.DriftItem, int, int, error) {
		calls.Add(1)
		<-release
		return []targets.DriftItem{{Kind: targets.DriftMissingLive, Subject: "ns/app0"}}, 1, 0, nil
	}
	r, _, ctx := start(t, runner.Options{Drift: drift}, healthy(t))
	r.CheckDrift(ctx)
	r.CheckDrift(ctx) // the first still runs: skipped
	close(release)
	waitFor(t, "drift in the exporter", func() bool {
		return strings.Contains(metrics(t, r.Exporter()), `hopprobe_drift_items{kind="missing-live"} 1`)
	})
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d drift checks ran at once, want 1", n)
	}
}

// A discovery change rebuilds the paths with a hop per pod; the same
// inventory again changes nothing.
func TestDiscoveredAddsPodHops(t *testing.T) {
	addr := healthy(t)
	var drifts atomic.Int32
	drift := func(context.Context, *config.Config, *live.KubeInventory) ([]targets.DriftItem, int, int, error) {
		drifts.Add(1)
		return nil, 1, 1, nil
	}
	r, _, ctx := start(t, runner.Options{Drift: drift}, addr)
	r.Exporter().EnableDiscovery()
	// The pod is the loopback server itself, on its own port.
	_, p, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(p)
	ready, name, port := true, "http", int32(pn)
	inv := &live.KubeInventory{
		Services: []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "app0", Namespace: "ns"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}},
		EndpointSlices: []discoveryv1.EndpointSlice{{
			ObjectMeta:  metav1.ObjectMeta{Name: "app0-x", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "app0"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "app0-pod"}}},
		}},
	}
	r.Discovered(ctx, inv)
	waitFor(t, "walk of the pod", func() bool { return walked(r.Board(), "svc/ns/app0") })
	var hops []string
	for _, st := range r.Board().Statuses() {
		for _, h := range st.Hops {
			hops = append(hops, h.Name)
		}
	}
	if !strings.Contains(strings.Join(hops, " "), "pod/app0-pod") {
		t.Fatalf("no pod hop after discovery: %v", hops)
	}
	r.Discovered(ctx, inv)
	waitFor(t, "drift check on the first inventory", func() bool { return drifts.Load() == 1 })
	if m := metrics(t, r.Exporter()); !strings.Contains(m, "hopprobe_discovery_path_changes_total 1") {
		t.Fatal("the same inventory twice changed the paths twice")
	}

	// A change shows when it is applied, not at the path's next walk: a
	// pod that joins is listed as pending, and once its EndpointSlice is
	// deleted the pods' hops leave the status and /metrics.
	joined := inv.EndpointSlices[0].DeepCopy()
	joined.Endpoints = append(joined.Endpoints, discoveryv1.Endpoint{Addresses: []string{"127.0.0.2"},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "app0-pod2"}})
	r.Discovered(ctx, &live.KubeInventory{Services: inv.Services, EndpointSlices: []discoveryv1.EndpointSlice{*joined}})
	if v := hopVerdicts(r.Board(), "svc/ns/app0"); v["pod/app0-pod2/port-8080"] != status.VerdictPending || v["pod/app0-pod/port-8080"] != status.VerdictOK {
		t.Errorf("right after a pod joined: %v; want it pending and the other pod still ok", v)
	}
	r.Discovered(ctx, &live.KubeInventory{Services: inv.Services})
	if v := hopVerdicts(r.Board(), "svc/ns/app0"); v["pod/app0-pod/port-8080"] != "" || v["pod/app0-pod2/port-8080"] != "" || v["port-8080"] != status.VerdictOK {
		t.Errorf("right after the EndpointSlice was deleted the pods' hops are still listed: %v", v)
	}
	if m := metrics(t, r.Exporter()); strings.Contains(m, `hop="pod/app0-pod`) {
		t.Errorf("right after the EndpointSlice was deleted the pods' series are still exported:\n%s", grep(m, `hop="pod/`))
	}
}

// hopVerdicts is each hop's verdict on path id.
func hopVerdicts(b *status.Board, id string) map[string]string {
	out := map[string]string{}
	for _, st := range b.Statuses() {
		if st.ID == id {
			for _, h := range st.Hops {
				out[h.Name] = h.Verdict
			}
		}
	}
	return out
}

// A broken path is logged when it breaks and when it recovers, not on
// every walk.
func TestLogsSayWhenAPathChangesState(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var walks atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		walks.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "topology.yaml")
	topology(t, path, strings.TrimPrefix(srv.URL, "http://"))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	r, err := runner.New(cfg, runner.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); r.Stop() }()
	r.Start(ctx)
	waitFor(t, "three failed walks", func() bool { return walks.Load() >= 3 })
	failing.Store(false)
	waitFor(t, "recovery", func() bool { return walked(r.Board(), "svc/ns/app0") })
	time.Sleep(1500 * time.Millisecond) // more healthy walks
	out := logs.String()
	if n := strings.Count(out, "path broken"); n != 1 {
		t.Errorf("%d 'path broken' lines for one breakage:\n%s", n, out)
	}
	if n := strings.Count(out, "path recovered"); n != 1 {
		t.Errorf("%d 'path recovered' lines for one recovery:\n%s", n, out)
	}
}

// Paths are updated in place by key. A reload that changes one path and
// removes another leaves an unchanged path alone: its walk in flight is
// not cancelled and lands, and its series go on counting. The change
// shows when it is applied: the removed path has left the status and
// /metrics when Reload returns, before any walk.
func TestReloadUpdatesPathsInPlace(t *testing.T) {
	entered, release := make(chan struct{}, 16), make(chan struct{})
	var cancelled atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-req.Context().Done():
			cancelled.Add(1)
			return
		case <-time.After(400 * time.Millisecond): // within the 500ms hop timeout
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	held := strings.TrimPrefix(slow.URL, "http://")
	r, path, ctx := start(t, runner.Options{}, held, healthy(t), healthy(t))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow path was not walked within 10s")
	}
	reloaded := time.Now()
	topology(t, path, held, healthy(t)) // app1 moves, app2 leaves, app0 stays
	r.Reload(ctx, "test")
	for _, st := range r.Board().Statuses() {
		if st.ID == "svc/ns/app2" {
			t.Error("the removed path is still on the board after the reload")
		}
	}
	if m := metrics(t, r.Exporter()); strings.Contains(m, `path="svc/ns/app2"`) {
		t.Error("the removed path's series are still exported after the reload")
	}
	close(release)
	waitFor(t, "result of the walk in flight at the reload", func() bool {
		for _, st := range r.Board().Statuses() {
			if st.ID == "svc/ns/app0" && st.Verdict == status.VerdictOK && st.LastWalk != nil && st.LastWalk.Before(reloaded) {
				return true
			}
		}
		return false
	})
	if n := cancelled.Load(); n != 0 {
		t.Errorf("the reload cancelled %d walks of the unchanged path", n)
	}
	if m := metrics(t, r.Exporter()); !strings.Contains(m, `hopprobe_hop_probes_total{hop="port-8080",path="svc/ns/app0",vantage="cluster",result="success"} 1`) {
		t.Errorf("the unchanged path's walk across the reload was not counted once:\n%s", grep(m, `path="svc/ns/app0"`))
	}
}

// grep keeps the lines of s that contain sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

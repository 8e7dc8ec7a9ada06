package targets_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The static model and what runs the walks never pull in the
// Kubernetes client: only the live package talks to a cluster.
func TestNoKubernetesBelowTheLivePackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../targets", "../scheduler", "../status", "../exporter", "../web", "../probes", "../config").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/") || strings.HasSuffix(pkg, "/hopprobe/live") {
			t.Errorf("%s is a dependency of the static model", pkg)
		}
	}
}

// The parts that plan, schedule, judge, export and show walks speak the hop
// vocabulary (package hop), not the drivers: none of them links a
// protocol client, the probes package or the OpenTelemetry SDK. The
// programs hand them probes.Run and probes.PanicCount.
func TestNoDriversAboveTheProbes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../hop", "../targets", "../live", "../scheduler", "../status", "../exporter", "../web", "../chain", "../config").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	drivers := []string{"google.golang.org/grpc", "go.etcd.io/", "github.com/segmentio/kafka-go", "github.com/twmb/franz-go",
		"github.com/redis/", "github.com/jackc/", "github.com/gorilla/websocket", "go.opentelemetry.io/otel/sdk", "/hopprobe/probes"}
	seen := 0
	for _, pkg := range strings.Fields(string(out)) {
		seen++
		for _, d := range drivers {
			if strings.Contains(pkg, d) {
				t.Errorf("%s (a driver) is a dependency of the vocabulary, the model, the scheduler, the board, the exporter or the pages", pkg)
			}
		}
	}
	if seen < 50 {
		t.Fatalf("go list -deps named only %d packages: %s", seen, out)
	}
}

// The one-shot CLI learns what a walk meant from the status package;
// the exporter is for probe serve's /metrics alone. The status package
// links neither the exporter nor the pages.
func TestWalkMeaningLivesInStatus(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}", "../internal/cli", "../status").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		for _, imp := range strings.Fields(imports) {
			if strings.HasSuffix(imp, "/hopprobe/exporter") && strings.HasSuffix(pkg, "/internal/cli") {
				t.Errorf("%s imports the exporter; what a walk meant is in package status", pkg)
			}
			if strings.HasSuffix(pkg, "/status") && (strings.HasSuffix(imp, "/hopprobe/exporter") || strings.HasSuffix(imp, "/hopprobe/web")) {
				t.Errorf("package status imports %s", imp)
			}
		}
	}
}

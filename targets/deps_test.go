package targets_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The static model and what runs the walks never pull in the
// Kubernetes client: only the live package talks to a cluster.
func TestNoKubernetesBelowTheLivePackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../targets", "../scheduler", "../exporter", "../probes", "../config").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/") || strings.HasSuffix(pkg, "/hopprobe/live") {
			t.Errorf("%s is a dependency of the static model", pkg)
		}
	}
}

// The parts that plan, schedule and export walks speak the hop
// vocabulary (package hop), not the drivers: none of them links a
// protocol client, the probes package or the OpenTelemetry SDK. The
// programs hand them probes.Run and probes.PanicCount.
func TestNoDriversAboveTheProbes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../hop", "../targets", "../live", "../scheduler", "../exporter", "../chain", "../config").CombinedOutput()
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
				t.Errorf("%s (a driver) is a dependency of the vocabulary, the model, the scheduler or the exporter", pkg)
			}
		}
	}
	if seen < 50 {
		t.Fatalf("go list -deps named only %d packages: %s", seen, out)
	}
}

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

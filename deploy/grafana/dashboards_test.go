package grafana_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/allinx/hopprobe/deploy/grafana"
)

// The shipped dashboards are exactly what the Go code builds: editing a
// JSON file by hand, or the code without `make dashboards`, fails here.
// (deploy's own test checks their PromQL against the exporter.)
func TestShippedDashboardsAreGenerated(t *testing.T) {
	ds, err := grafana.Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("dashboards/*.json")
	if len(files) != len(ds) {
		t.Errorf("deploy/grafana/dashboards holds %d dashboards, the code builds %d: %v", len(files), len(ds), files)
	}
	for _, d := range ds {
		shipped, err := os.ReadFile(filepath.Join("dashboards", d.File))
		if err != nil {
			t.Errorf("%s is built but not shipped: %v (run make dashboards)", d.File, err)
			continue
		}
		if !bytes.Equal(shipped, d.JSON) {
			t.Errorf("deploy/grafana/dashboards/%s differs from what deploy/grafana builds; run make dashboards (and edit the Go, not the JSON)", d.File)
		}
	}
}

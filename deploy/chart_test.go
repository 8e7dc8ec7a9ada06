package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Helm reads nothing outside the chart's folder, so the chart holds
// copies of the production topology, the alerting rules and the
// dashboards; none may drift from its source (`make deploy-sync`).
func TestChartCopiesMatch(t *testing.T) {
	copies := map[string]string{
		"../config/allinx.yaml": "helm/hopprobe/files/allinx.yaml",
		"prometheus/rules.yaml": "helm/hopprobe/files/rules.yaml",
	}
	dashboards, err := filepath.Glob("grafana/dashboards/*.json")
	if err != nil || len(dashboards) == 0 {
		t.Fatalf("no dashboards to copy: %v", err)
	}
	for _, d := range dashboards {
		copies[d] = filepath.Join("helm/hopprobe/files/dashboards", filepath.Base(d))
	}
	for src, dst := range copies {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(dst, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run `make deploy-sync`", dst, src)
		}
	}
	// No stale dashboard stays in the chart.
	shipped, _ := filepath.Glob("helm/hopprobe/files/dashboards/*.json")
	for _, s := range shipped {
		if !slices.ContainsFunc(dashboards, func(d string) bool { return filepath.Base(d) == filepath.Base(s) }) {
			t.Errorf("%s has no source in grafana/dashboards: remove it", s)
		}
	}
}

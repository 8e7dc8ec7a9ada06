package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// runbookBase is where every alert's runbook_url points: the pages under
// docs/runbooks as the repository serves them.
const runbookBase = "https://github.com/allinx/hopprobe/blob/main/docs/runbooks/"

// Every shipped alert says what happened (summary), what it means
// (description) and where on-call reads on (runbook_url, a page under
// docs/runbooks that exists and has its three parts), with a severity
// kube-prometheus' routes know.
func TestEveryAlertHasARunbook(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	b, err := os.ReadFile("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("alert %s has severity %q; kube-prometheus' are critical, warning and info", r.Alert, r.Labels["severity"])
			}
			if want := runbookBase + r.Alert + ".md"; r.Annotations["runbook_url"] != want {
				t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			page, err := os.ReadFile(filepath.Join("..", "docs", "runbooks", r.Alert+".md"))
			if err != nil {
				t.Errorf("alert %s has no runbook: %v", r.Alert, err)
				continue
			}
			for _, part := range []string{"# " + r.Alert + "\n", "\n## Meaning\n", "\n## Confirm\n", "\n## Next\n"} {
				if !strings.Contains(string(page), part) {
					t.Errorf("docs/runbooks/%s.md lacks %q", r.Alert, strings.TrimSpace(part))
				}
			}
			index, _ := os.ReadFile(filepath.Join("..", "docs", "runbooks", "README.md"))
			if !strings.Contains(string(index), "("+r.Alert+".md)") {
				t.Errorf("docs/runbooks/README.md does not list %s", r.Alert)
			}
		}
	}
	if alerts < 10 {
		t.Fatalf("read %d alerts from prometheus/rules.yaml; the file's shape changed under the test", alerts)
	}
}

package deploy_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allinx/hopprobe/deploy/alertmanager"
)

// alertmanagerConfig is the shipped route and inhibition merged as a
// user would (deploy/alertmanager).
func alertmanagerConfig(t *testing.T, webhook string, edit func(route map[string]any)) string {
	t.Helper()
	b, err := alertmanager.Config(webhook, edit)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The shipped route loads in a real Alertmanager's checker, takes
// hopprobe's pages to the pager and leaves its tickets to the rest of
// the tree.
func TestShippedRouteTakesThePages(t *testing.T) {
	amtool := tool(t, "prometheus-alertmanager", "amtool")
	path := filepath.Join(t.TempDir(), "am.yaml")
	write(t, path, alertmanagerConfig(t, "http://127.0.0.1:9/hook", nil))
	if out, err := exec.Command(amtool, "check-config", path).CombinedOutput(); err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	for labels, want := range map[string]string{
		"alertname=HopprobeFirstFailingHop severity=critical hop=futuresnewredis namespace=morph": "pager",
		"alertname=HopprobePathDown severity=warning":                                             "tickets",
	} {
		args := append([]string{"config", "routes", "test", "--config.file", path}, strings.Fields(labels)...)
		out, err := exec.Command(amtool, args...).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("amtool config routes test %s: %q (%v), want %q", labels, got, err, want)
		}
	}
}

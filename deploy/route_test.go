package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// alertmanagerConfig is an Alertmanager configuration as a user builds
// it from the shipped pieces: a root route to a catch-all receiver, the
// shipped route (alertmanager/route.yaml) under it with its receiver set
// to receiver, and the shipped inhibition rules. edit may change the
// shipped route's fields (the end-to-end tests shorten its waits).
func alertmanagerConfig(t *testing.T, webhook string, edit func(route map[string]any)) string {
	t.Helper()
	var shipped struct {
		Routes []map[string]any `yaml:"routes"`
	}
	b, err := os.ReadFile("alertmanager/route.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &shipped); err != nil || len(shipped.Routes) != 1 {
		t.Fatalf("alertmanager/route.yaml: want one route under routes: (%v)", err)
	}
	r := shipped.Routes[0]
	r["receiver"] = "pager"
	if edit != nil {
		edit(r)
	}
	var inhibit map[string]any
	b, err = os.ReadFile("alertmanager/inhibit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &inhibit); err != nil {
		t.Fatal(err)
	}
	hook := []map[string]any{{"url": webhook, "send_resolved": true}}
	cfg := map[string]any{
		"route": map[string]any{"receiver": "tickets", "group_by": []string{"alertname"}, "routes": []any{r}},
		"receivers": []any{
			map[string]any{"name": "pager", "webhook_configs": hook},
			map[string]any{"name": "tickets", "webhook_configs": hook},
		},
		"inhibit_rules": inhibit["inhibit_rules"],
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
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

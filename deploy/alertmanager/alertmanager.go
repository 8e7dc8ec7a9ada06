// Package alertmanager holds the shipped Alertmanager pieces (route.yaml,
// inhibit.yaml) and builds a configuration from them the way a user
// merges them, for the tests and make bench-detect.
package alertmanager

import (
	_ "embed"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

var (
	//go:embed route.yaml
	routeYAML []byte
	//go:embed inhibit.yaml
	inhibitYAML []byte
)

// Config is an Alertmanager configuration as a user builds it from the
// shipped pieces: a root route to a "tickets" receiver, the shipped
// route under it with its receiver named "pager", and the shipped
// inhibition rules. Both receivers are webhooks to webhook (with
// resolutions). edit, when set, may change the shipped route's fields
// (the end-to-end tests shorten its waits).
func Config(webhook string, edit func(route map[string]any)) ([]byte, error) {
	var shipped struct {
		Routes []map[string]any `yaml:"routes"`
	}
	if err := yaml.Unmarshal(routeYAML, &shipped); err != nil {
		return nil, fmt.Errorf("route.yaml: %w", err)
	}
	if len(shipped.Routes) != 1 {
		return nil, errors.New("route.yaml: want exactly one route under routes")
	}
	r := shipped.Routes[0]
	r["receiver"] = "pager"
	if edit != nil {
		edit(r)
	}
	var inhibit map[string]any
	if err := yaml.Unmarshal(inhibitYAML, &inhibit); err != nil {
		return nil, fmt.Errorf("inhibit.yaml: %w", err)
	}
	hook := []map[string]any{{"url": webhook, "send_resolved": true}}
	return yaml.Marshal(map[string]any{
		"route": map[string]any{"receiver": "tickets", "group_by": []string{"alertname"}, "routes": []any{r}},
		"receivers": []any{
			map[string]any{"name": "pager", "webhook_configs": hook},
			map[string]any{"name": "tickets", "webhook_configs": hook},
		},
		"inhibit_rules": inhibit["inhibit_rules"],
	})
}

// Package deploy holds what runs hopprobe where its users run it: the
// container image (Dockerfile at the repository root), Kubernetes
// manifests (kubernetes/), Prometheus alerting rules (prometheus/) and
// Grafana dashboards (grafana/). It has no code; its tests render and
// check those files with the same libraries and tools production uses.
package deploy

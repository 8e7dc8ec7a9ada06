package cli

import (
	"k8s.io/client-go/kubernetes"

	"github.com/allinx/hopprobe/internal/kubetest"
	"github.com/allinx/hopprobe/live"
)

// UseKubeClient makes --cluster and --discover talk to cs until the
// returned function restores the real client.
func UseKubeClient(cs kubernetes.Interface) (restore func()) {
	old := kubeClient
	kubeClient = func() (*live.KubeAPI, error) { return kubetest.API(cs), nil }
	return func() { kubeClient = old }
}

// ParseShard is parseShard for the tests.
var ParseShard = parseShard

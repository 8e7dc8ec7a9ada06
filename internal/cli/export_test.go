package cli

import "k8s.io/client-go/kubernetes"

// UseKubeClient makes --cluster and --discover talk to cs until the
// returned function restores the real client.
func UseKubeClient(cs kubernetes.Interface) (restore func()) {
	old := kubeClient
	kubeClient = func() (kubernetes.Interface, error) { return cs, nil }
	return func() { kubeClient = old }
}

package live

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeClient connects to the cluster the way kubectl would: the pod's
// service account inside a cluster, else $KUBECONFIG or ~/.kube/config.
func KubeClient() (kubernetes.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("no in-cluster service account and no usable kubeconfig: %w", err)
		}
	}
	cfg.Timeout = 30 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// KubeInventoryFrom lists Services, EndpointSlices and Nodes of every
// namespace: the live equivalent of `kubectl get svc,endpointslices,nodes
// -A -o json`. It needs list on those three, nothing more.
func KubeInventoryFrom(ctx context.Context, cs kubernetes.Interface) (*KubeInventory, error) {
	inv := &KubeInventory{}
	svcs, err := cs.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Services: %w", Explain(err))
	}
	inv.Services = svcs.Items
	eps, err := cs.DiscoveryV1().EndpointSlices(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing EndpointSlices: %w", Explain(err))
	}
	inv.EndpointSlices = eps.Items
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Nodes: %w", Explain(err))
	}
	inv.Nodes = nodes.Items
	return inv, nil
}

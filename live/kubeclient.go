package live

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeAPI is the part of the Kubernetes API the prober reads: list and
// watch of Services, EndpointSlices and Nodes across namespaces, and the
// API server's readiness. It is built on a REST client for those two
// API groups alone: client-go's full clientset registers every API
// group at start, which cost the prober 10 MiB of resident memory for
// types it never reads.
type KubeAPI struct {
	Services, EndpointSlices, Nodes ListerWatcher
	// Ready asks the API server's /readyz (open to every authenticated
	// identity); nil where there is no API server to ask (fakes).
	Ready func(context.Context) error
}

// ListerWatcher lists and watches one resource, for the informers and
// for one-off lists.
type ListerWatcher interface {
	cache.ListerWatcher
	cache.ListerWatcherWithContext
}

// KubeClient connects to the cluster the way kubectl would: the pod's
// service account inside a cluster, else $KUBECONFIG or ~/.kube/config.
func KubeClient() (*KubeAPI, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("no in-cluster service account and no usable kubeconfig: %w", err)
		}
	}
	cfg.Timeout = 30 * time.Second
	return NewKubeAPI(cfg)
}

var (
	kubeScheme = runtime.NewScheme()
	kubeCodecs = serializer.NewCodecFactory(kubeScheme)
	kubeParams = runtime.NewParameterCodec(kubeScheme)
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme} {
		if err := add(kubeScheme); err != nil {
			panic(err)
		}
	}
	metav1.AddToGroupVersion(kubeScheme, schema.GroupVersion{Version: "v1"})
}

// NewKubeAPI reads the cluster that cfg points at.
func NewKubeAPI(cfg *rest.Config) (*KubeAPI, error) {
	client := func(gv schema.GroupVersion, apiPath string) (*rest.RESTClient, error) {
		c := rest.CopyConfig(cfg)
		c.GroupVersion, c.APIPath = &gv, apiPath
		c.NegotiatedSerializer = kubeCodecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = "hopprobe"
		}
		return rest.RESTClientFor(c)
	}
	core, err := client(corev1.SchemeGroupVersion, "/api")
	if err != nil {
		return nil, fmt.Errorf("a client for the Kubernetes API: %w", err)
	}
	disc, err := client(discoveryv1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, fmt.Errorf("a client for the Kubernetes API: %w", err)
	}
	return &KubeAPI{
		Services:       listWatch(core, "services", func() runtime.Object { return &corev1.ServiceList{} }),
		EndpointSlices: listWatch(disc, "endpointslices", func() runtime.Object { return &discoveryv1.EndpointSliceList{} }),
		Nodes:          listWatch(core, "nodes", func() runtime.Object { return &corev1.NodeList{} }),
		Ready: func(ctx context.Context) error {
			return core.Get().AbsPath("/readyz").Timeout(5 * time.Second).Do(ctx).Error()
		},
	}, nil
}

// listWatch lists and watches resource across namespaces.
func listWatch(c *rest.RESTClient, resource string, list func() runtime.Object) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			out := list()
			err := c.Get().Resource(resource).VersionedParams(&opts, kubeParams).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return c.Get().Resource(resource).VersionedParams(&opts, kubeParams).Watch(ctx)
		},
	}
}

// KubeInventoryFrom lists Services, EndpointSlices and Nodes of every
// namespace: the live equivalent of `kubectl get svc,endpointslices,nodes
// -A -o json`. It needs list on those three, nothing more.
func KubeInventoryFrom(ctx context.Context, api *KubeAPI) (*KubeInventory, error) {
	inv := &KubeInventory{}
	list := func(what string, lw ListerWatcher) (runtime.Object, error) {
		obj, err := lw.ListWithContext(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", what, Explain(err))
		}
		return obj, nil
	}
	obj, err := list("Services", api.Services)
	if err != nil {
		return nil, err
	}
	inv.Services = obj.(*corev1.ServiceList).Items
	if obj, err = list("EndpointSlices", api.EndpointSlices); err != nil {
		return nil, err
	}
	inv.EndpointSlices = obj.(*discoveryv1.EndpointSliceList).Items
	if obj, err = list("Nodes", api.Nodes); err != nil {
		return nil, err
	}
	inv.Nodes = obj.(*corev1.NodeList).Items
	return inv, nil
}

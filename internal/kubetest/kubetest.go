// Package kubetest is a fake Kubernetes API server for tests of code that
// watches the cluster with informers.
package kubetest

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/allinx/hopprobe/live"
)

// API reads cs (a fake clientset, in tests) the way the prober reads the
// real API server; it has no /readyz to ask. The fake does not stream
// a watch's initial list (client-go's watch-list), and says so.
func API(cs kubernetes.Interface) *live.KubeAPI {
	semantics := func(lw *cache.ListWatch) live.ListerWatcher {
		return cache.ToListWatcherWithWatchListSemantics(lw, cs).(live.ListerWatcher)
	}
	return &live.KubeAPI{
		Services: semantics(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Services("").List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.CoreV1().Services("").Watch(ctx, o)
			},
		}),
		EndpointSlices: semantics(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.DiscoveryV1().EndpointSlices("").List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.DiscoveryV1().EndpointSlices("").Watch(ctx, o)
			},
		}),
		Nodes: semantics(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Nodes().List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.CoreV1().Nodes().Watch(ctx, o)
			},
		}),
	}
}

// Clientset is client-go's fake clientset holding objs. The channel it
// returns closes once watches informers open reach watches: the fake does
// not replay a deletion that lands between an informer's list and its
// watch (kubernetes/kubernetes#141528), so a test changes the cluster
// only after that.
func Clientset(watches int, objs ...runtime.Object) (*fake.Clientset, <-chan struct{}) {
	cs := fake.NewClientset(objs...)
	watching := make(chan struct{})
	var mu sync.Mutex
	opened := 0
	cs.PrependWatchReactor("*", func(a clienttesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := a.(clienttesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := cs.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		if err != nil {
			return false, nil, err
		}
		mu.Lock()
		if opened++; opened == watches {
			close(watching)
		}
		mu.Unlock()
		return true, w, nil
	})
	return cs, watching
}

// Package kubetest is a fake Kubernetes API server for tests of code that
// watches the cluster with informers.
package kubetest

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
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
// real API server; it has no /readyz to ask.
func API(cs kubernetes.Interface) *live.KubeAPI {
	return &live.KubeAPI{
		Services:       listWatch[*corev1.ServiceList](cs, cs.CoreV1().Services("")),
		EndpointSlices: listWatch[*discoveryv1.EndpointSliceList](cs, cs.DiscoveryV1().EndpointSlices("")),
		Nodes:          listWatch[*corev1.NodeList](cs, cs.CoreV1().Nodes()),
	}
}

// typedClient is the list and watch of one typed client of a clientset.
type typedClient[L runtime.Object] interface {
	List(context.Context, metav1.ListOptions) (L, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}

// listWatch lists and watches through c. The fake does not stream a
// watch's initial list (client-go's watch-list), and says so through cs.
func listWatch[L runtime.Object](cs kubernetes.Interface, c typedClient[L]) live.ListerWatcher {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.List(ctx, o)
		},
		WatchFuncWithContext: c.Watch,
	}
	return cache.ToListWatcherWithWatchListSemantics(lw, cs).(live.ListerWatcher)
}

// ReadyNode is a Ready node with one internal address.
func ReadyNode(name, ip string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}}}
}

// PodEndpoint is pod ns/pod at ip in an EndpointSlice, ready or not.
func PodEndpoint(ns, pod, ip string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: new(ready)},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod}}
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

// Package kubetest is a fake Kubernetes API server for tests of code that
// watches the cluster with informers.
package kubetest

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

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

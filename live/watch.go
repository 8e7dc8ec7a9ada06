package live

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// KubeWatch keeps an inventory of Services, EndpointSlices and Nodes
// current with informers (list once, then watch), so that `probe serve`
// follows the cluster without listing it on every check. It needs get,
// list and watch on those three.
type KubeWatch struct {
	// Settle is how long changes are gathered before one snapshot is
	// handed on: a rollout moves many endpoints in a few seconds, and the
	// paths should change once for it, not once per pod.
	Settle time.Duration
	// SyncWarn is how long the first list may take before it is logged as
	// stuck (the informers keep retrying; RBAC that forbids watch looks
	// like this).
	SyncWarn time.Duration
	Log      *slog.Logger
}

// Run watches until ctx ends. It calls changed with the first full
// snapshot, and after that with a fresh one at most once per Settle while
// anything changes.
func (w *KubeWatch) Run(ctx context.Context, cs kubernetes.Interface, changed func(*KubeInventory)) {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTransform(dropBulk))
	svcs, eps, nodes := f.Core().V1().Services(), f.Discovery().V1().EndpointSlices(), f.Core().V1().Nodes()
	dirty := make(chan struct{}, 1)
	mark := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { mark() }, UpdateFunc: func(_, _ any) { mark() }, DeleteFunc: func(any) { mark() }}
	for _, inf := range []cache.SharedIndexInformer{svcs.Informer(), eps.Informer(), nodes.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			w.Log.Error("discovery cannot watch", "error", err)
			return
		}
	}
	f.Start(ctx.Done())
	// Shutdown waits for the informers' goroutines, which end with ctx.
	defer f.Shutdown()

	warn := time.AfterFunc(cmp.Or(w.SyncWarn, time.Minute), func() {
		w.Log.Error("discovery has not listed the cluster yet; check the ServiceAccount may get, list and watch services, endpointslices and nodes",
			"waiting", cmp.Or(w.SyncWarn, time.Minute))
	})
	synced := f.WaitForCacheSync(ctx.Done())
	warn.Stop()
	for _, ok := range synced {
		if !ok {
			return // ctx ended first
		}
	}
	// The objects are the informers' own: the snapshot shares them and
	// nobody may change them.
	snapshot := func() *KubeInventory {
		inv := &KubeInventory{}
		s, _ := svcs.Lister().List(labels.Everything())
		for _, o := range s {
			inv.Services = append(inv.Services, *o)
		}
		e, _ := eps.Lister().List(labels.Everything())
		for _, o := range e {
			inv.EndpointSlices = append(inv.EndpointSlices, *o)
		}
		n, _ := nodes.Lister().List(labels.Everything())
		for _, o := range n {
			inv.Nodes = append(inv.Nodes, *o)
		}
		sortInventory(inv)
		return inv
	}
	select { // the initial list's adds are in the first snapshot
	case <-dirty:
	default:
	}
	changed(snapshot())
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-dirty:
		}
		settle.Reset(w.Settle)
		select {
		case <-ctx.Done():
			return
		case <-settle.C:
		}
		select { // what came in while settling is in this snapshot
		case <-dirty:
		default:
		}
		changed(snapshot())
	}
}

// dropBulk keeps the informers' cache to what discovery reads: managed
// fields and annotations (last-applied-configuration holds a copy of
// every object) are most of an object's size.
func dropBulk(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
		m.SetAnnotations(nil)
	}
	return obj, nil
}

func sortInventory(inv *KubeInventory) {
	key := func(m metav1.ObjectMeta) string { return m.Namespace + "/" + m.Name }
	slices.SortFunc(inv.Services, func(a, b corev1.Service) int { return cmp.Compare(key(a.ObjectMeta), key(b.ObjectMeta)) })
	slices.SortFunc(inv.EndpointSlices, func(a, b discoveryv1.EndpointSlice) int {
		return cmp.Compare(key(a.ObjectMeta), key(b.ObjectMeta))
	})
	slices.SortFunc(inv.Nodes, func(a, b corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
}

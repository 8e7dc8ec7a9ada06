package live

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// KubeWatch keeps an inventory of Services, EndpointSlices and Nodes
// current with informers (list once, then watch), so that `probe serve`
// follows the cluster without listing it on every check. It needs list
// and watch on those three.
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
	// Synced, when set, hears whether the inventory is current: true
	// after the first list, false from the moment a list or watch fails
	// (API server down, RBAC), true again once every informer that
	// failed has made progress (a relist, or an event on its resumed
	// watch). Meanwhile the last inventory stays in use.
	Synced func(bool)
	// Ping is how often the API server's /readyz is asked while in sync
	// (default 5 s); out of sync, every second.
	Ping time.Duration
}

// Run watches until ctx ends. It calls changed with the first full
// snapshot, and after that with a fresh one at most once per Settle while
// anything changes.
func (w *KubeWatch) Run(ctx context.Context, api *KubeAPI, changed func(*KubeInventory)) {
	svcs := cache.NewSharedIndexInformer(api.Services, &corev1.Service{}, 0, cache.Indexers{})
	eps := cache.NewSharedIndexInformer(api.EndpointSlices, &discoveryv1.EndpointSlice{}, 0, cache.Indexers{})
	nodes := cache.NewSharedIndexInformer(api.Nodes, &corev1.Node{}, 0, cache.Indexers{})
	dirty := make(chan struct{}, 1)
	mark := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { mark() }, UpdateFunc: func(_, _ any) { mark() }, DeleteFunc: func(any) { mark() }}
	infs := []cache.SharedIndexInformer{svcs, eps, nodes}
	health := newWatchHealth(w.Log)
	for _, inf := range infs {
		if err := inf.SetTransform(dropBulk); err != nil {
			w.Log.Error("discovery cannot watch", "error", err)
			return
		}
		if _, err := inf.AddEventHandler(h); err != nil {
			w.Log.Error("discovery cannot watch", "error", err)
			return
		}
		// Replaces client-go's own handler, which logs through klog
		// without saying what to do about it.
		if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) { health.failed(inf, err) }); err != nil {
			w.Log.Error("discovery cannot watch", "error", err)
			return
		}
	}
	// Every return waits for the informers' goroutines, which end with
	// ctx (cancelled first).
	ctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer running.Wait()
	defer cancel()
	for _, inf := range infs {
		running.Go(func() { inf.RunWithContext(ctx) })
	}

	warn := time.AfterFunc(cmp.Or(w.SyncWarn, time.Minute), func() {
		w.Log.Error("discovery has not listed the cluster yet; check the ServiceAccount may list and watch services, endpointslices and nodes",
			"waiting", cmp.Or(w.SyncWarn, time.Minute))
	})
	synced := cache.WaitForCacheSync(ctx.Done(), svcs.HasSynced, eps.HasSynced, nodes.HasSynced)
	warn.Stop()
	if !synced {
		return // ctx ended first
	}
	// The objects are the informers' own: the snapshot shares them and
	// nobody may change them.
	snapshot := func() *KubeInventory {
		inv := &KubeInventory{}
		for _, o := range svcs.GetStore().List() {
			inv.Services = append(inv.Services, *o.(*corev1.Service))
		}
		for _, o := range eps.GetStore().List() {
			inv.EndpointSlices = append(inv.EndpointSlices, *o.(*discoveryv1.EndpointSlice))
		}
		for _, o := range nodes.GetStore().List() {
			inv.Nodes = append(inv.Nodes, *o.(*corev1.Node))
		}
		sortInventory(inv)
		return inv
	}
	select { // the initial list's adds are in the first snapshot
	case <-dirty:
	default:
	}
	changed(snapshot())
	report := func(ok bool) {
		if w.Synced != nil {
			w.Synced(ok)
		}
	}
	report(true)
	// client-go's informers retry a refused connection quietly, without
	// telling their error handler: asking /readyz is how discovery
	// notices that the API server is gone.
	health.arm(api.Ready, cmp.Or(w.Ping, 5*time.Second))
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	var settled <-chan time.Time
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-health.lost:
			report(false)
		case now := <-recheck.C:
			if ok, flipped := health.check(ctx, now); flipped {
				report(ok)
				if ok {
					mark() // what changed meanwhile is in the next snapshot
				}
			}
		case <-dirty:
			if settled == nil {
				settle.Reset(w.Settle)
				settled = settle.C
			}
		case <-settled:
			settled = nil
			select { // what came in while settling is in this snapshot
			case <-dirty:
			default:
			}
			changed(snapshot())
		}
	}
}

// watchHealth follows whether discovery's inventory is current: not
// from the first failed list or watch, or failed ping of the API server,
// until the API server answers again and every informer that failed has
// moved on from the resource version it held then (a relist, or an event
// on its resumed watch) or has been quiet for longer than client-go's
// longest back-off.
type watchHealth struct {
	log  *slog.Logger
	lost chan struct{}

	mu        sync.Mutex
	armed     bool // failures before the first sync are the sync warning's
	inSync    bool
	ping      func(context.Context) error
	pingEvery time.Duration
	lastPing  time.Time
	apiErr    error
	stale     map[cache.SharedIndexInformer]staleWatch
	lastWhy   string
	lastTime  time.Time
}

type staleWatch struct {
	rv   string    // the informer's resource version at its first failure
	last time.Time // its latest failure
}

// quietAfter is longer than client-go's longest back-off between a
// reflector's retries (30 s): an informer without a failure for that
// long has its list and watch working again.
const quietAfter = 45 * time.Second

func newWatchHealth(log *slog.Logger) *watchHealth {
	return &watchHealth{log: log, lost: make(chan struct{}, 1), stale: map[cache.SharedIndexInformer]staleWatch{}}
}

// arm starts following, after the first sync.
func (h *watchHealth) arm(ping func(context.Context) error, every time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed, h.inSync, h.ping, h.pingEvery, h.lastPing = true, true, ping, every, time.Now()
}

// failed is client-go's watch error handler: it runs on the informer's
// goroutine and must return quickly.
func (h *watchHealth) failed(inf cache.SharedIndexInformer, err error) {
	// A watch the server closed, or one whose resource version is
	// compacted away, client-go resumes or lists again by itself (the
	// latter never reaches this handler).
	if errors.Is(err, io.EOF) {
		return
	}
	why := Explain(err).Error()
	h.mu.Lock()
	armed, wasInSync := h.armed, h.inSync
	if armed {
		st, ok := h.stale[inf]
		if !ok {
			st.rv = inf.LastSyncResourceVersion()
		}
		st.last = time.Now()
		h.stale[inf] = st
		h.inSync = false
	}
	// One line per distinct failure a minute: client-go retries every
	// few seconds.
	logIt := why != h.lastWhy || time.Since(h.lastTime) > time.Minute
	if logIt {
		h.lastWhy, h.lastTime = why, time.Now()
	}
	h.mu.Unlock()
	switch {
	case !armed && logIt:
		h.log.Error("discovery cannot read the cluster", "error", why)
	case armed && logIt:
		h.log.Error("discovery lost the cluster; probing the last inventory it saw", "error", why)
	}
	if armed && wasInSync {
		select {
		case h.lost <- struct{}{}:
		default:
		}
	}
}

// check pings the API server when due (every pingEvery in sync, every
// call out of it) and says whether discovery is in sync, and whether
// that changed.
func (h *watchHealth) check(ctx context.Context, now time.Time) (inSync, changed bool) {
	h.mu.Lock()
	ping, due := h.ping, !h.inSync || now.Sub(h.lastPing) >= h.pingEvery
	h.mu.Unlock()
	if ping != nil && due {
		err := ping(ctx)
		h.mu.Lock()
		h.lastPing = now
		if err != nil && h.apiErr == nil {
			h.log.Error("discovery cannot reach the API server; probing the last inventory it saw", "error", Explain(err))
		}
		h.apiErr = err
		h.mu.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.apiErr == nil {
		for inf, st := range h.stale {
			if inf.LastSyncResourceVersion() != st.rv || now.Sub(st.last) > quietAfter {
				delete(h.stale, inf)
			}
		}
	}
	ok := h.apiErr == nil && len(h.stale) == 0
	if ok == h.inSync {
		return ok, false
	}
	h.inSync = ok
	if ok {
		h.lastWhy = ""
		h.log.Info("discovery is in sync with the cluster again")
	}
	return ok, true
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

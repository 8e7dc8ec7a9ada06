package live_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/allinx/hopprobe/internal/kubetest"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/live"
)

// watchedClientset is a fake API server holding inv; the channel closes
// once discovery's three informers watch it.
func watchedClientset(inv *live.KubeInventory) (*fake.Clientset, <-chan struct{}) {
	return kubetest.Clientset(3, apiObjects(inv)...)
}

// apiObjects are inv's objects, to load into a fake API server.
func apiObjects(inv *live.KubeInventory) []runtime.Object {
	var objs []runtime.Object
	for i := range inv.Services {
		objs = append(objs, &inv.Services[i])
	}
	for i := range inv.EndpointSlices {
		objs = append(objs, &inv.EndpointSlices[i])
	}
	for i := range inv.Nodes {
		objs = append(objs, &inv.Nodes[i])
	}
	return objs
}

func receive(t *testing.T, ch <-chan *live.KubeInventory, what string) *live.KubeInventory {
	t.Helper()
	select {
	case inv := <-ch:
		return inv
	case <-time.After(10 * time.Second):
		t.Fatalf("no snapshot within 10s: %s", what)
		return nil
	}
}

// Discovery hands on the cluster as listed, then follows changes, and
// gathers a burst of changes into one snapshot.
func TestKubeWatchFollowsTheCluster(t *testing.T) {
	cfg := allinx(t)
	inv := fixture(t, "inventory.json", func() []byte { return kubeList(t, cfg, nil) })
	want := live.LiveFrom(inv)
	cs, watching := watchedClientset(inv)

	snaps := make(chan *live.KubeInventory, 100)
	w := &live.KubeWatch{Settle: 300 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var done sync.WaitGroup
	ctx, cancel := context.WithCancel(t.Context())
	done.Go(func() { w.Run(ctx, kubetest.API(cs), func(inv *live.KubeInventory) { snaps <- inv }) })
	defer func() { cancel(); done.Wait() }()

	first := receive(t, snaps, "the initial list")
	if got := live.LiveFrom(first); !reflect.DeepEqual(got, want) {
		t.Fatalf("first snapshot differs from the cluster: %s, want %s", got, want)
	}
	<-watching

	// A burst: a pod goes not ready, a node joins, a Service goes, and
	// twenty Service updates that change nothing discovery reads.
	api := cs.DiscoveryV1().EndpointSlices("morph")
	sl, err := api.Get(ctx, "morph-futuresws-app-x1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sl.Endpoints[0].Conditions.Ready = new(false)
	if _, err := api.Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ip-10-0-10-14.ec2.internal"}, Status: corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.10.14"}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Services("landry").Delete(ctx, "landry-userserver-web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		s, err := cs.CoreV1().Services("landry").Get(ctx, "landry-gateway-web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Labels = map[string]string{"touched": fmt.Sprint(i)}
		if _, err := cs.CoreV1().Services("landry").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	seen := 0
	for {
		l := live.LiveFrom(receive(t, snaps, "the burst of changes"))
		seen++
		ws := l.Services["morph/morph-futuresws-app"]
		if len(l.Nodes) == 4 && l.Services["landry/landry-userserver-web"] == nil && !ws.Endpoints[0].Ready && ws.Endpoints[1].Ready {
			break
		}
	}
	// 23 changes in a few milliseconds: one snapshot, or two when the
	// settle window closed in the middle of the burst.
	if seen > 2 {
		t.Errorf("the burst of changes gave %d snapshots; it should settle into one or two", seen)
	}
}

// A ServiceAccount that may not list nodes never syncs: discovery says
// so in the log, keeps trying, and stops cleanly.
func TestKubeWatchSaysWhenItCannotList(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "nodes", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", errors.New("RBAC: access denied"))
	})
	var logged testkit.Buffer
	w := &live.KubeWatch{Settle: time.Millisecond, SyncWarn: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logged, nil))}
	ctx, cancel := context.WithCancel(t.Context())
	var done sync.WaitGroup
	called := false
	done.Go(func() { w.Run(ctx, kubetest.API(cs), func(*live.KubeInventory) { called = true }) })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logged.String(), "may list and watch services, endpointslices and nodes") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning logged; log: %s", logged.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	done.Wait()
	if called {
		t.Error("a snapshot was handed on without the nodes")
	}
}

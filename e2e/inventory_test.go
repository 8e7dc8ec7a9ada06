//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/allinx/hopprobe/live"
)

// readInventory reads a kubectl export of the live package's fixtures.
func readInventory(t *testing.T, name string) *live.KubeInventory {
	t.Helper()
	f, err := os.Open("../live/testdata/kube/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inv, err := live.ReadKubeList(f)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func fresh(m *metav1.ObjectMeta) {
	m.ResourceVersion, m.UID, m.CreationTimestamp, m.ManagedFields = "", "", metav1.Time{}, nil
}

// createInventory creates inv's objects through the API, with their
// namespaces: Nodes keep the status they are created with, a
// LoadBalancer's status is set after it.
func (c *cluster) createInventory(ctx context.Context, inv *live.KubeInventory) error {
	core := c.cs.CoreV1()
	seen := map[string]bool{}
	ensureNS := func(ns string) error {
		if seen[ns] {
			return nil
		}
		seen[ns] = true
		_, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	for _, s := range inv.Services {
		if err := ensureNS(s.Namespace); err != nil {
			return err
		}
		fresh(&s.ObjectMeta)
		status := s.Status
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			// The export's load balancer has no node ports: an NLB with
			// IP targets, which the API spells like this.
			s.Spec.AllocateLoadBalancerNodePorts = new(false)
		}
		got, err := core.Services(s.Namespace).Create(ctx, &s, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("Service %s/%s: %w", s.Namespace, s.Name, err)
		}
		if len(status.LoadBalancer.Ingress) > 0 {
			got.Status = status
			if _, err := core.Services(s.Namespace).UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("Service %s/%s status: %w", s.Namespace, s.Name, err)
			}
		}
	}
	for _, e := range inv.EndpointSlices {
		if err := ensureNS(e.Namespace); err != nil {
			return err
		}
		fresh(&e.ObjectMeta)
		if _, err := c.cs.DiscoveryV1().EndpointSlices(e.Namespace).Create(ctx, &e, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("EndpointSlice %s/%s: %w", e.Namespace, e.Name, err)
		}
	}
	for _, n := range inv.Nodes {
		if err := c.createNode(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) createNode(ctx context.Context, n corev1.Node) error {
	fresh(&n.ObjectMeta)
	status := n.Status
	got, err := c.cs.CoreV1().Nodes().Create(ctx, &n, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("Node %s: %w", n.Name, err)
	}
	got.Status = status
	if _, err := c.cs.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("Node %s status: %w", n.Name, err)
	}
	return nil
}

// deleteInventory deletes every Service, EndpointSlice and Node, the
// API server's own kubernetes Service aside.
func (c *cluster) deleteInventory(ctx context.Context) error {
	svcs, err := c.cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, s := range svcs.Items {
		if s.Namespace == "default" && s.Name == "kubernetes" {
			continue
		}
		if err := c.cs.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	eps, err := c.cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, e := range eps.Items {
		if err := c.cs.DiscoveryV1().EndpointSlices(e.Namespace).Delete(ctx, e.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return c.cs.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
}

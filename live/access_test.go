package live_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/allinx/hopprobe/live"
)

// The authorizer's refusal, as the API server words it, becomes the verb,
// the resource and the overlay that grants it; the original stays
// wrapped.
func TestExplainNamesTheMissingVerbAndWhereItIsGranted(t *testing.T) {
	refusal := func(verb, resource, group string) error {
		return apierrors.NewForbidden(schema.GroupResource{Group: group, Resource: resource}, "",
			fmt.Errorf(`User "system:serviceaccount:hopprobe:hopprobe" cannot %s resource %q in API group %q at the cluster scope`, verb, resource, group))
	}
	for _, c := range []struct {
		err  error
		want []string
	}{
		{refusal("list", "endpointslices", "discovery.k8s.io"), []string{"may not list endpointslices.discovery.k8s.io:", "components/drift", "cluster-drift"}},
		{refusal("watch", "nodes", ""), []string{"may not watch nodes:", "components/discovery", "cluster-discovery"}},
		{apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", errors.New("some webhook said no")), []string{"refused the prober (RBAC)"}},
		{apierrors.NewUnauthorized("token expired"), []string{"does not accept the prober's credentials"}},
	} {
		got := live.Explain(c.err)
		for _, w := range c.want {
			if !strings.Contains(got.Error(), w) {
				t.Errorf("Explain(%v) = %q, want it to say %q", c.err, got, w)
			}
		}
		if !errors.Is(got, c.err) {
			t.Errorf("Explain(%v) does not wrap the API server's error", c.err)
		}
	}
	other := errors.New("connection refused")
	if got := live.Explain(other); got != other {
		t.Errorf("a non-API error is rewritten: %v", got)
	}
	if live.Explain(nil) != nil {
		t.Error("Explain(nil) is not nil")
	}
}

//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The shipped ServiceAccount's ClusterRole is exactly enough: every verb
// it grants is needed by drift, import or discovery, and taking any one
// away makes what needs it fail with a message that names the verb, the
// resource and the overlay that grants it. (That all three work with the
// full role is shown by the drift and discovery parts.)
func testRBAC(t *testing.T, c *cluster, l *lab) {
	ctx := t.Context()
	roles := c.cs.RbacV1().ClusterRoles()
	shipped, err := roles.Get(ctx, "hopprobe-drift", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc := c.serviceAccountKubeconfig(t)
	defer func() {
		// Back to the shipped role, for whatever runs after.
		cur, err := roles.Get(context.WithoutCancel(ctx), shipped.Name, metav1.GetOptions{})
		if err == nil {
			cur.Rules = shipped.Rules
			_, err = roles.Update(context.WithoutCancel(ctx), cur, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Errorf("restoring the ClusterRole: %v", err)
		}
	}()

	for _, rule := range shipped.Rules {
		for _, res := range rule.Resources {
			for _, verb := range rule.Verbs {
				group := ""
				if len(rule.APIGroups) > 0 {
					group = rule.APIGroups[0]
				}
				name := res
				if group != "" {
					name += "." + group
				}
				t.Run(verb+" "+name, func(t *testing.T) {
					cut, err := roles.Get(ctx, shipped.Name, metav1.GetOptions{})
					if err != nil {
						t.Fatal(err)
					}
					cut.Rules = without(shipped.Rules, group, res, verb)
					cut, err = roles.Update(ctx, cut, metav1.UpdateOptions{})
					if err != nil {
						t.Fatal(err)
					}
					c.waitAccess(t, group, res, verb, false)
					failed := whatFails(t, kc, l, name, verb)
					cut.Rules = shipped.Rules
					if _, err := roles.Update(ctx, cut, metav1.UpdateOptions{}); err != nil {
						t.Fatal(err)
					}
					c.waitAccess(t, group, res, verb, true)
					var want []string
					switch verb {
					case "list":
						want = []string{"drift", "import", "serve"}
					case "watch":
						want = []string{"serve"}
					}
					if len(want) == 0 && len(failed) == 0 {
						t.Errorf("the ClusterRole grants %s on %s, which nothing needs: drop it", verb, name)
					} else if !slices.Equal(failed, want) {
						t.Errorf("without %s on %s: %v failed with a message naming it, want %v", verb, name, failed, want)
					}
				})
			}
		}
	}
}

// without is rules less one verb on one resource.
func without(rules []rbacv1.PolicyRule, group, res, verb string) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, r := range rules {
		if !slices.Contains(r.APIGroups, group) || !slices.Contains(r.Resources, res) {
			out = append(out, r)
			continue
		}
		if others := slices.DeleteFunc(slices.Clone(r.Resources), func(s string) bool { return s == res }); len(others) > 0 {
			out = append(out, rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: others, Verbs: r.Verbs})
		}
		if verbs := slices.DeleteFunc(slices.Clone(r.Verbs), func(s string) bool { return s == verb }); len(verbs) > 0 {
			out = append(out, rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: []string{res}, Verbs: verbs})
		}
	}
	return out
}

// waitAccess waits until the API server's authorizer agrees with the
// ClusterRole just written (it reads RBAC through its own informers).
func (c *cluster) waitAccess(t *testing.T, group, res, verb string, allowed bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err := c.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:hopprobe:hopprobe",
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:hopprobe", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: res},
		}}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed == allowed, nil
	})
	if err != nil {
		t.Fatalf("the authorizer did not come to allowed=%v for %s %s: %v", allowed, verb, res, err)
	}
}

// whatFails runs drift, import and serve --discover with the
// ServiceAccount's token and names those that failed saying that verb
// on resource is missing and where it is granted.
func whatFails(t *testing.T, kc string, l *lab, resource, verb string) []string {
	t.Helper()
	says := func(out string) bool {
		grant := "components/drift"
		if verb == "watch" {
			grant = "components/discovery"
		}
		return strings.Contains(out, fmt.Sprintf("may not %s %s:", verb, resource)) && strings.Contains(out, grant)
	}
	var failed []string
	if code, _, errs := runProbe(t, kc, "drift", "--cluster", "--config", l.cfg); code > 1 {
		if !says(errs) {
			t.Errorf("drift fails without saying what is missing: %s", errs)
		}
		failed = append(failed, "drift")
	}
	if code, _, errs := runProbe(t, kc, "import", "kube", "--cluster", "--config", l.cfg); code != 0 {
		if !says(errs) {
			t.Errorf("import fails without saying what is missing: %s", errs)
		}
		failed = append(failed, "import")
	}
	s := startServe(t, kc, "--config", l.cfg, "--cluster", "--discover", "--discover-settle", settle.String(), "--drift-every", "1h")
	// A missing watch shows right after the first list: discovery syncs,
	// then loses the cluster. Settled is a few walks after the sync.
	var syncedAt time.Time
	s.waitFor(t, "discovery to settle or say what it lacks", within, func() bool {
		if says(s.log.String()) {
			return true
		}
		if v, _ := s.metric("hopprobe_discovery_synced"); v == 1 && syncedAt.IsZero() {
			syncedAt = time.Now()
		}
		return !syncedAt.IsZero() && time.Since(syncedAt) > 3*time.Second
	})
	if says(s.log.String()) {
		failed = append(failed, "serve")
	} else if v, _ := s.metric("hopprobe_discovery_synced"); v != 1 {
		t.Errorf("serve is out of sync without saying what it lacks:\n%s", s.log.String())
	}
	return failed
}

package live

import (
	"errors"
	"fmt"
	"regexp"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// forbiddenMessage is how the API server's authorizer words a refusal:
// `… cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope`.
var forbiddenMessage = regexp.MustCompile(`cannot (\w+) resource "([a-z0-9.-]+)" in API group "([a-z0-9.-]*)"`)

// Explain turns the API server's refusals into what an operator does
// about them: which verb on which resource the prober's identity lacks,
// and which shipped overlay grants it. Other errors pass through.
func Explain(err error) error {
	var status apierrors.APIStatus
	switch {
	case err == nil || !errors.As(err, &status):
		return err
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server does not accept the prober's credentials (an expired or revoked token, or a kubeconfig for another cluster): %w", err)
	case !apierrors.IsForbidden(err):
		return err
	}
	m := forbiddenMessage.FindStringSubmatch(status.Status().Message)
	if m == nil {
		return fmt.Errorf("the API server refused the prober (RBAC): %w", err)
	}
	verb, resource := m[1], m[2]
	if m[3] != "" {
		resource += "." + m[3]
	}
	grant := "the ClusterRole hopprobe-drift of deploy/kubernetes/components/drift grants it (overlays cluster-drift and cluster-discovery)"
	if verb == "watch" {
		grant = "the discovery component (deploy/kubernetes/components/discovery) adds it to the ClusterRole hopprobe-drift (overlay cluster-discovery)"
	}
	return fmt.Errorf("the prober may not %s %s: %s; %w", verb, resource, grant, err)
}

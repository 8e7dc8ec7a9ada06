package targets

// What the documents and the live side can disagree on. The live package
// finds the differences; these are the plain data the exporter and the
// CLI show.

// Drift kinds: how the documented topology and the live cluster differ.
const (
	DriftMissingLive   = "missing-live"      // documented, not in the cluster
	DriftUndocumented  = "undocumented"      // in the cluster, not documented
	DriftPort          = "port-differs"      // a port documented or live only
	DriftNodePort      = "nodeport-differs"  // same port, other node port
	DriftNoEndpoints   = "no-ready-endpoint" // the Service has nobody behind it
	DriftExposedType   = "exposed"           // documented internal, live NodePort/LoadBalancer
	DriftTypeDifferent = "type-differs"      // any other Service type change
)

// DriftItem is one difference between the documents and the cluster.
type DriftItem struct {
	Kind    string `json:"kind"`
	Subject string `json:"subject"` // namespace/name
	Detail  string `json:"detail"`
}

// Route drift kinds.
const (
	DriftRouteMissing      = "route-missing"
	DriftRouteUpstream     = "route-upstream-differs"
	DriftRouteUndocumented = "route-undocumented"
)

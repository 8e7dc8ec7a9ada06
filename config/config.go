// Package config holds the topology file: what exists (entries, routes,
// services, data stores, nodes) and what each hop is expected to answer.
// Load validates it and reports every problem as file:line: reason.
package config

import (
	"time"

	"github.com/allinx/hopprobe/chain"
)

// Vantage names known to hopprobe. A topology may add its own.
const (
	VantageExternal = "external"
	VantageInternal = "internal"
	VantageCluster  = "cluster"
)

// Config is one parsed topology file.
type Config struct {
	// Vantage is the vantage point used when the CLI or serve is given none.
	Vantage  string             `yaml:"vantage"`
	Defaults Defaults           `yaml:"defaults"`
	Vantages map[string]Vantage `yaml:"vantages"`
	Entries  []Entry            `yaml:"entries"`
	Routes   []Route            `yaml:"routes"`
	Services []Service          `yaml:"services"`
	Stores   []Store            `yaml:"stores"`
	Nodes    []Node             `yaml:"nodes"`
	Metrics  Metrics            `yaml:"metrics"`

	// File is the path the config was read from; used in error messages.
	File string `yaml:"-"`
	// Problems are what is wrong with one store only (a password too
	// short to scrub): the topology loads and runs, that store's hops
	// fail with the reason when probed, and `probe validate` reports
	// each and exits 2.
	Problems Errors `yaml:"-"`
}

// Defaults apply to every path that does not set its own value.
type Defaults struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	// Concurrency caps how many probes run at the same moment.
	Concurrency int `yaml:"concurrency"`
	// MaxBodyBytes caps how much of an HTTP body or WebSocket message is read.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxResponseBytes caps everything one probe reads from its peers
	// (headers, handshakes, replies, all connections together).
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// History is how many walks of each path `probe serve` keeps with
	// their evidence (/api/v1/paths/{id}, the hop health page).
	History int `yaml:"history"`
	// Confirm is how a failed hop is probed again before its failure
	// counts.
	Confirm Confirm `yaml:"confirm"`
	// BrokenInterval is how often a broken path is walked until it
	// recovers, so that its blame and its recovery stay current; nil
	// means DefaultBrokenInterval, 0 walks broken paths at their
	// interval. A healthy path is walked at its interval either way.
	BrokenInterval *time.Duration `yaml:"broken_interval"`
}

// BrokenEvery is the interval of a broken path, with the default applied.
func (d Defaults) BrokenEvery() time.Duration {
	if d.BrokenInterval == nil {
		return min(DefaultBrokenInterval, d.Interval)
	}
	return *d.BrokenInterval
}

// Confirm says how often, and how far apart, a hop that failed is
// probed again (each time on a fresh connection) before its failure
// counts. A hop that passes on a retry is recovered, not failed: one
// dropped packet never pages. Retries stop early where another would
// not finish within the path's interval.
type Confirm struct {
	// Retries after the first failure; nil means DefaultConfirmRetries,
	// 0 turns confirmation off.
	Retries *int `yaml:"retries"`
	// Spacing is the pause before each retry.
	Spacing time.Duration `yaml:"spacing"`
}

// RetryCount is the number of retries, with the default applied.
func (c Confirm) RetryCount() int {
	if c.Retries == nil {
		return DefaultConfirmRetries
	}
	return *c.Retries
}

// Vantage is a place the prober runs from.
type Vantage struct {
	Description string `yaml:"description"`
	// Resolver is the DNS server (host:port) the dns hop asks; empty means
	// the system resolver from /etc/resolv.conf.
	Resolver string `yaml:"resolver"`
}

// Entry is one way into the platform: an ordered chain of load balancers
// and gateways (CloudFront → ALB → APISIX).
type Entry struct {
	Name        string     `yaml:"name"`
	Description string     `yaml:"description"`
	Hops        []EntryHop `yaml:"hops"`
	// Family limits every hop of the entry to one address family, ipv4
	// or ipv6, where the hop sets none of its own.
	Family string `yaml:"family"`
}

// EntryHop is one layer of an entry chain.
type EntryHop struct {
	Name string `yaml:"name"`
	// Address is host:port; "{host}" is replaced by the route's probe host.
	Address string `yaml:"address"`
	// Addresses overrides Address for a vantage.
	Addresses map[string]string `yaml:"addresses"`
	// From lists the vantages that can reach this hop; empty means all.
	From   []string `yaml:"from"`
	Scheme string   `yaml:"scheme"` // http or https
	TLS    *TLS     `yaml:"tls"`
	// Component is what answers at this hop, for the chain attestation:
	// cloudfront, alb, nlb, apisix or nginx. Default: guessed from the
	// name (chain.KindOf).
	Component string `yaml:"component"`
	// Fingerprints replace the component's built-in marks: the response
	// headers (and texts in them) that show an answer passed this hop.
	Fingerprints []chain.Fingerprint `yaml:"fingerprints"`
	// Family limits the hop to one address family, ipv4 or ipv6. Empty:
	// either, and on a route with probe.dual_stack the hop, when its
	// address is a name, is probed over each family as two hops.
	Family string `yaml:"family"`
	// AltSvc, when set, is a protocol the hop's answers must announce
	// in their Alt-Svc header (h3: the edge tells browsers HTTP/3 is
	// there); recorded as evidence either way.
	AltSvc string `yaml:"alt_svc"`
	// Protocols are the HTTP versions this hop must answer on, each
	// probed on its own connection: http/1.1, h2 (ALPN over TLS), h3
	// (QUIC). Empty: one request offering h2 and http/1.1, as a browser
	// does, and whichever the hop chose is recorded.
	Protocols []string `yaml:"protocols"`
}

// HTTPProtocols are the values EntryHop.Protocols and
// RouteProbe.Protocols accept.
var HTTPProtocols = []string{"http/1.1", "h2", "h3"}

// ChainComponent is the hop as the chain attestation sees it.
func (h *EntryHop) ChainComponent() chain.Component {
	kind := h.Component
	if kind == "" {
		kind = chain.KindOf(h.Name)
	}
	return chain.Component{Name: h.Name, Kind: kind, Fingerprints: h.Fingerprints}
}

// Route is one APISIX route: hosts + path pattern → namespace/service:port.
type Route struct {
	Hosts    []string   `yaml:"hosts"`
	Path     string     `yaml:"path"`
	Service  string     `yaml:"service"`
	Protocol string     `yaml:"protocol"` // http or websocket
	Entries  []string   `yaml:"entries"`
	Probe    RouteProbe `yaml:"probe"`
	Note     string     `yaml:"note"`
	// Target is Service parsed, set when the file loads.
	Target ServiceRef `yaml:"-"`
}

// RouteProbe says how to exercise a route.
type RouteProbe struct {
	// Host is the concrete host to use when the route host is a wildcard.
	Host string `yaml:"host"`
	// Path is the request path; default is the route pattern without '*'.
	Path     string        `yaml:"path"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	Expect   Expect        `yaml:"expect"`
	// DualStack says the route's host is published over IPv4 and IPv6:
	// its DNS hop fails when either A or AAAA records are missing.
	DualStack bool `yaml:"dual_stack"`
	// Protocols are the HTTP versions the route's first entry hop (the
	// edge its users reach) must answer on, besides those the entry hop
	// itself lists: see EntryHop.Protocols.
	Protocols []string `yaml:"protocols"`
	// Chain names the entry hops whose marks an answer must show, when
	// the one derived from the entry's components is not right (e.g. an
	// APISIX that hides its Server header and has no fingerprint).
	Chain []string `yaml:"chain"`
}

// Expect is what a healthy HTTP or WebSocket hop answers.
type Expect struct {
	// Status lists acceptable HTTP status codes; empty means any 2xx or 3xx.
	Status       []int  `yaml:"status"`
	BodyContains string `yaml:"body_contains"`
	// JSON maps a dotted field path in the JSON body to its expected value.
	JSON map[string]string `yaml:"json"`
	// Send is a WebSocket text message sent after the handshake.
	Send string `yaml:"send"`
	// Reply must be contained in the first message received after Send.
	Reply string `yaml:"reply"`
}

// Service is one Kubernetes Service (or a workload without one: type None).
type Service struct {
	Name      string `yaml:"name,omitempty"`
	Namespace string `yaml:"namespace,omitempty"`
	Type      string `yaml:"type,omitempty"` // ClusterIP, NodePort, LoadBalancer, None
	Role      string `yaml:"role,omitempty"`
	ClusterIP string `yaml:"cluster_ip,omitempty"`
	// External is the LoadBalancer hostname.
	External string `yaml:"external,omitempty"`
	// Host overrides the in-cluster DNS name NAME.NAMESPACE.svc.cluster.local.
	Host  string `yaml:"host,omitempty"`
	Ports []Port `yaml:"ports,omitempty"`
	// PodPorts are container ports not exposed by the Service (sidecars).
	PodPorts []int `yaml:"pod_ports,omitempty"`
	// DependsOn names the data stores the service uses.
	DependsOn []string `yaml:"depends_on,omitempty"`
	// Calls names other services (namespace/name) this one calls.
	Calls []string `yaml:"calls,omitempty"`
	// Selects names the service (namespace/name) a LoadBalancer fronts.
	Selects    string `yaml:"selects,omitempty"`
	HealthPath string `yaml:"health_path,omitempty"`
	// NodePortUnreachableFrom lists vantages from which the node ports
	// must NOT answer; a connection from there is a security finding.
	NodePortUnreachableFrom []string `yaml:"nodeport_unreachable_from,omitempty"`
	Note                    string   `yaml:"note,omitempty"`
}

// Port is one Service port.
type Port struct {
	Name     string `yaml:"name,omitempty"`
	Port     int    `yaml:"port,omitempty"`
	NodePort int    `yaml:"node_port,omitempty"`
	Protocol string `yaml:"protocol,omitempty"` // http, websocket or tcp
	// Address overrides host:port for this port (used by the demo).
	Address string `yaml:"address,omitempty"`
}

// Store is one data store: postgres, redis, kafka or etcd.
type Store struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"`
	// Address is host:port; Addresses lists several (cluster, sentinel, brokers).
	Address   string        `yaml:"address"`
	Addresses []string      `yaml:"addresses"`
	From      []string      `yaml:"from"`
	Username  string        `yaml:"username"`
	Password  *SecretRef    `yaml:"password"`
	Database  string        `yaml:"database"`
	TLS       *TLS          `yaml:"tls"`
	Interval  time.Duration `yaml:"interval"`
	Timeout   time.Duration `yaml:"timeout"`
	// Allow lists the addresses beyond Address and Addresses that the
	// store's own peers may send the probe to with its credentials: the
	// master a sentinel names, the nodes of a Redis Cluster, the brokers
	// Kafka's metadata advertises, etcd's members. Each is host:port, or
	// an IP prefix (10.20.0.0/16) for any port. With TLS verification on,
	// an address none of these covers passes when its certificate proves
	// it is one of the host names in address, addresses or allow. A store
	// with credentials sends them nowhere else: the hop fails and names
	// the address.
	Allow []string `yaml:"allow"`
	// MaxResponseBytes overrides defaults.max_response_bytes for this store.
	MaxResponseBytes int64         `yaml:"max_response_bytes"`
	Postgres         *PostgresOpts `yaml:"postgres"`
	Redis            *RedisOpts    `yaml:"redis"`
	Kafka            *KafkaOpts    `yaml:"kafka"`
	Etcd             *EtcdOpts     `yaml:"etcd"`
	Note             string        `yaml:"note"`
}

// PostgresOpts tunes the PostgreSQL probe.
type PostgresOpts struct {
	// SSLMode is disable, require, verify-ca or verify-full.
	SSLMode string `yaml:"sslmode"`
	// Query is a read-only query; Expect is the text of its first column.
	Query  string `yaml:"query"`
	Expect string `yaml:"expect"`
	// Role is primary or replica, checked with pg_is_in_recovery().
	Role string `yaml:"role"`
	// RequireAuth lists the authentication methods the probe accepts
	// from the server (libpq's require_auth: scram-sha-256, md5,
	// password, none). Default: scram-sha-256 when a password is set, so
	// the password never leaves in clear text or as MD5.
	RequireAuth []string `yaml:"require_auth"`
}

// RedisOpts tunes the Redis probe.
type RedisOpts struct {
	Mode       string `yaml:"mode"` // single, cluster, sentinel
	MasterName string `yaml:"master_name"`
	Role       string `yaml:"role"` // master or replica
	DB         int    `yaml:"db"`
}

// KafkaOpts tunes the Kafka probe.
type KafkaOpts struct {
	Topics []string `yaml:"topics"`
	// CanaryTopic enables a produce/consume round trip on this topic only.
	CanaryTopic string `yaml:"canary_topic"`
	SASL        *SASL  `yaml:"sasl"`
}

// SASL holds Kafka SASL settings.
type SASL struct {
	Mechanism string     `yaml:"mechanism"` // plain, scram-sha-256, scram-sha-512
	Username  string     `yaml:"username"`
	Password  *SecretRef `yaml:"password"`
}

// EtcdOpts tunes the Etcd probe.
type EtcdOpts struct {
	// Key is read linearizably; default "health".
	Key string `yaml:"key"`
}

// TLS holds client TLS settings. Files are paths on the prober's disk.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Node is a Kubernetes node whose NodePorts are probed.
type Node struct {
	Name    string `yaml:"name,omitempty"`
	Address string `yaml:"address,omitempty"`
}

// ServiceKey identifies a service as namespace/name.
func (s *Service) Key() string { return s.Namespace + "/" + s.Name }

// FindService returns the service namespace/name, or nil.
func (c *Config) FindService(key string) *Service {
	for i := range c.Services {
		if c.Services[i].Key() == key {
			return &c.Services[i]
		}
	}
	return nil
}

// FindStore returns the store with this name, or nil.
func (c *Config) FindStore(name string) *Store {
	for i := range c.Stores {
		if c.Stores[i].Name == name {
			return &c.Stores[i]
		}
	}
	return nil
}

// FindEntry returns the entry with this name, or nil.
func (c *Config) FindEntry(name string) *Entry {
	for i := range c.Entries {
		if c.Entries[i].Name == name {
			return &c.Entries[i]
		}
	}
	return nil
}

// VantageNames returns the vantages in a stable order.
func (c *Config) VantageNames() []string {
	names := make([]string, 0, len(c.Vantages))
	for _, n := range []string{VantageExternal, VantageInternal, VantageCluster} {
		if _, ok := c.Vantages[n]; ok {
			names = append(names, n)
		}
	}
	for n := range c.Vantages {
		if n != VantageExternal && n != VantageInternal && n != VantageCluster {
			names = append(names, n)
		}
	}
	return names
}

// Reaches says whether a hop with this from-list is reachable from vantage.
func Reaches(from []string, vantage string) bool {
	if len(from) == 0 {
		return true
	}
	for _, f := range from {
		if f == vantage {
			return true
		}
	}
	return false
}

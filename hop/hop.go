// Package hop is the vocabulary of a hop that every part of hopprobe
// shares: its protocol kind, its target, and what a probe of it reports.
// It holds no prober and links no client library, so that the parts
// that plan, schedule, export and show walks (targets, live, scheduler,
// exporter) carry none of the drivers with them; the drivers are in
// package probes.
package hop

import (
	"encoding/json"
	"time"

	"github.com/allinx/hopprobe/config"
)

// Kind names a protocol; it is the "kind" label of every hop metric.
type Kind string

// The protocol kinds hopprobe speaks.
const (
	KindDNS       Kind = "dns"
	KindTCP       Kind = "tcp"
	KindTLS       Kind = "tls"
	KindHTTP      Kind = "http"
	KindWebSocket Kind = "websocket"
	KindNodePort  Kind = "nodeport"
	KindPostgres  Kind = "postgres"
	KindRedis     Kind = "redis"
	KindKafka     Kind = "kafka"
	KindEtcd      Kind = "etcd"
)

// Target is everything a prober needs to know about one hop.
type Target struct {
	// Address is host:port to connect to. It may differ from Host when a
	// request is sent to a load balancer on behalf of a virtual host.
	Address string
	// Host is the name to resolve (dns), the TLS server name and the HTTP
	// Host header.
	Host string
	// Scheme is http or https for HTTP and WebSocket hops.
	Scheme string
	// Path is the request path for HTTP and WebSocket hops.
	Path string
	// Resolver is the DNS server host:port for dns hops; empty = system.
	Resolver string
	TLS      *config.TLS
	Expect   config.Expect
	// MaxBodyBytes caps an HTTP body or a WebSocket message.
	MaxBodyBytes int64
	// MaxResponseBytes caps everything the probe reads from its peers,
	// all connections together; 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Store is set for data-store hops.
	Store *config.Store
	// EvidenceHeaders are response headers to keep beyond the built-in
	// ones (EvidenceHeaders), for a topology's own fingerprints.
	EvidenceHeaders []string
	// ExpectUnreachable inverts the verdict: the hop is healthy only when
	// nothing answers (a NodePort that must stay internal).
	ExpectUnreachable bool
	// DualStack (dns hops): the name must have both A and AAAA records.
	DualStack bool
	// Family limits the hop to one address family, "ipv4" or "ipv6"
	// (empty: whichever the name resolves to first). A name is then
	// resolved for that family's records only, through Resolver when set.
	Family string
	// AltSvc (HTTP hops): a protocol the answer's Alt-Svc header must
	// announce ("h3").
	AltSvc string
	// Protocols (https HTTP hops) are the HTTP versions the hop must
	// answer on, each on its own connection: http/1.1, h2, h3. Empty:
	// one request offering h2 and http/1.1, as a browser does.
	Protocols []string
}

// Key identifies what a probe really does, so that paths sharing a hop
// share one probe per interval. It is every field of the target (a data
// store by its name), so a field added to Target is part of it without
// anyone remembering to add it: two hops that differ in any way never
// share a result (TestKeyHasEveryField).
func (t *Target) Key(kind Kind) string {
	type keyed Target // without Key's method set, for encoding/json
	k := struct {
		Kind  Kind
		Store string
		keyed
	}{Kind: kind, keyed: keyed(*t)}
	if t.Store != nil {
		k.Store, k.keyed.Store = t.Store.Name, nil
	}
	b, err := json.Marshal(k)
	if err != nil {
		// Every field is plain data; a type encoding/json refuses is a
		// programming error that TestKeyHasEveryField catches.
		panic("hop: target key: " + err.Error())
	}
	return string(b)
}

// Phase is one timed step of a probe (connect, tls, first_byte, …).
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// Report is what a prober observed besides success.
type Report struct {
	Phases []Phase
	// CertExpiry is when the chain the client verified expires (the
	// earliest NotAfter in it), or the earliest of what the peer sent
	// when nothing was verified.
	CertExpiry time.Time
	// Details are small facts for humans (status code, role, address).
	// They go to the JSON status and CLI, never into metric labels.
	Details map[string]string
}

// AddPhase records a timed step.
func (r *Report) AddPhase(name string, d time.Duration) {
	r.Phases = append(r.Phases, Phase{Name: name, Duration: d})
}

// Detail records a fact for humans.
func (r *Report) Detail(k, v string) {
	if r.Details == nil {
		r.Details = map[string]string{}
	}
	r.Details[k] = v
}

// Result is the outcome of one probe.
type Result struct {
	Success  bool
	Start    time.Time
	Duration time.Duration
	// Error is operator-readable and already scrubbed of secrets.
	Error string
	Report
}

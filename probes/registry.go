package probes

import (
	"slices"
	"sync"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// entry is everything hopprobe knows of one kind: its prober; where the
// topology may name it (a Service port's or a route's protocol); for a
// data store, what the topology needs (option block, checks, secrets);
// how its hops are described; which of its evidence details mark a
// change.
type entry struct {
	prober Prober
	// port: a Service port may name the kind as its protocol; route: a
	// route may too.
	port, route bool
	store       *config.StoreKind
	describe    func(*hop.Target) string
	changes     []hop.Change
}

// registry is the one table of kinds: add a protocol here.
var registry = map[hop.Kind]entry{
	hop.KindDNS: {prober: dnsProber{}, describe: describeDNS,
		changes: []hop.Change{{Name: "dns_answer", Detail: "addresses"}}},
	hop.KindTCP: {prober: tcpProber{}, port: true},
	hop.KindTLS: {prober: tlsProber{}, describe: func(t *hop.Target) string { return "TLS " + t.Address + " (SNI " + t.Host + ")" }},
	hop.KindHTTP: {prober: httpProber{}, port: true, route: true, describe: describeURL,
		changes: []hop.Change{{Name: "pop", Detail: hop.HeaderDetail("X-Amz-Cf-Pop")}}},
	hop.KindWebSocket: {prober: wsProber{}, port: true, route: true, describe: describeURL,
		changes: []hop.Change{{Name: "pop", Detail: hop.HeaderDetail("X-Amz-Cf-Pop")}}},
	hop.KindNodePort: {prober: nodeportProber{}},
	hop.KindPostgres: {prober: postgresProber{}, store: &postgresKind, changes: []hop.Change{{Name: "role", Detail: "role"}}},
	hop.KindRedis:    {prober: redisProber{}, store: &redisKind, changes: []hop.Change{{Name: "role", Detail: "role"}}},
	hop.KindKafka:    {prober: kafkaProber{}, store: &kafkaKind, changes: []hop.Change{{Name: "leader", Detail: "controller"}}},
	hop.KindEtcd:     {prober: etcdProber{}, store: &etcdKind, changes: []hop.Change{{Name: "leader", Detail: "leader"}}},
}

// certificateChange is every kind's: any hop may have spoken TLS
// (tlsEvidence).
var certificateChange = hop.Change{Name: "certificate", Detail: "cert.sha256"}

// Concatenation, not Sprintf: every hop of every path is described again
// at each reload (and was on every walk, where Sprintf was 2 % of the
// prober's CPU at 10,000 hops).
func describeDNS(t *hop.Target) string {
	r := t.Resolver
	if r == "" {
		r = "system resolver"
	}
	return "resolve " + t.Host + " (" + r + ")"
}

func describeURL(t *hop.Target) string {
	if t.Address == "" {
		return t.Scheme + "://" + t.Host + t.Path
	}
	return t.Scheme + "://" + t.Host + t.Path + " via " + t.Address
}

var registerOnce sync.Once

// RegisterKinds hands the registry to the parts that link no driver:
// the topology loader (package config) learns the protocols a port or a
// route may name and the data store kinds, with how each one's options
// and secrets are checked; package hop learns how each kind's hops are
// described and which evidence changes they show. A program calls it
// once before it loads a topology; later calls do nothing. It is a call,
// not an init, so that a package linking probes for another reason never
// changes what config accepts behind its back.
func RegisterKinds() {
	registerOnce.Do(func() {
		for _, k := range Kinds() {
			e := registry[k]
			if e.port {
				config.RegisterProtocol(string(k), e.route)
			}
			if e.store != nil {
				config.RegisterStoreKind(string(k), *e.store)
			}
			hop.Register(k, hop.Spec{Describe: e.describe, Changes: append(slices.Clone(e.changes), certificateChange)})
		}
	})
}

// Known reports whether kind has a prober.
func Known(kind hop.Kind) bool {
	_, ok := registry[kind]
	return ok
}

// Kinds lists every kind that has a prober, in name order.
func Kinds() []hop.Kind {
	out := make([]hop.Kind, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

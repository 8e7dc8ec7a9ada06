package probes

import (
	"slices"
	"sync"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// entry is everything hopprobe knows of one kind: its prober and, for a
// data store, what the topology needs (option block, checks, secrets).
type entry struct {
	prober Prober
	store  *config.StoreKind
}

// registry is the one table of kinds: add a protocol here.
var registry = map[hop.Kind]entry{
	hop.KindDNS:       {prober: dnsProber{}},
	hop.KindTCP:       {prober: tcpProber{}},
	hop.KindTLS:       {prober: tlsProber{}},
	hop.KindHTTP:      {prober: httpProber{}},
	hop.KindWebSocket: {prober: wsProber{}},
	hop.KindNodePort:  {prober: nodeportProber{}},
	hop.KindPostgres:  {prober: postgresProber{}, store: &postgresKind},
	hop.KindRedis:     {prober: redisProber{}, store: &redisKind},
	hop.KindKafka:     {prober: kafkaProber{}, store: &kafkaKind},
	hop.KindEtcd:      {prober: etcdProber{}, store: &etcdKind},
}

var registerOnce sync.Once

// RegisterStoreKinds tells the topology loader (package config) which data
// store kinds exist and how each one's options and secrets are checked,
// in the order its errors list them. A program that loads topologies
// calls it once before the first load; later calls do nothing. It is a
// call, not an init, so that a package linking probes for another reason
// never changes what config accepts behind its back.
func RegisterStoreKinds() {
	registerOnce.Do(func() {
		for _, k := range []hop.Kind{hop.KindPostgres, hop.KindRedis, hop.KindKafka, hop.KindEtcd} {
			config.RegisterStoreKind(string(k), *registry[k].store)
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

package probes

import (
	"slices"

	"github.com/allinx/hopprobe/config"
)

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

// entry is everything hopprobe knows of one kind: its prober and, for a
// data store, what the topology needs (option block, checks, secrets).
type entry struct {
	prober Prober
	store  *config.StoreKind
}

// registry is the one table of kinds: add a protocol here.
var registry = map[Kind]entry{
	KindDNS:       {prober: dnsProber{}},
	KindTCP:       {prober: tcpProber{}},
	KindTLS:       {prober: tlsProber{}},
	KindHTTP:      {prober: httpProber{}},
	KindWebSocket: {prober: wsProber{}},
	KindNodePort:  {prober: nodeportProber{}},
	KindPostgres:  {prober: postgresProber{}, store: &postgresKind},
	KindRedis:     {prober: redisProber{}, store: &redisKind},
	KindKafka:     {prober: kafkaProber{}, store: &kafkaKind},
	KindEtcd:      {prober: etcdProber{}, store: &etcdKind},
}

// The data store kinds are registered with the topology in this order,
// the order its errors list them in.
func init() {
	for _, k := range []Kind{KindPostgres, KindRedis, KindKafka, KindEtcd} {
		config.RegisterStoreKind(string(k), *registry[k].store)
	}
}

// Known reports whether kind has a prober.
func Known(kind Kind) bool {
	_, ok := registry[kind]
	return ok
}

// Kinds lists every kind that has a prober, in name order.
func Kinds() []Kind {
	out := make([]Kind, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

package probes

import (
	"slices"
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

// registry is the one table of probers: add a protocol here.
var registry = map[Kind]Prober{
	KindDNS:       dnsProber{},
	KindTCP:       tcpProber{},
	KindTLS:       tlsProber{},
	KindHTTP:      httpProber{},
	KindWebSocket: wsProber{},
	KindNodePort:  nodeportProber{},
	KindPostgres:  postgresProber{},
	KindRedis:     redisProber{},
	KindKafka:     kafkaProber{},
	KindEtcd:      etcdProber{},
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

package probes_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
)

// A broker that auto-creates topics (Kafka's default) must not be led
// into creating a documented-but-missing one by the probe: the topic is
// reported missing, and is still missing afterwards.
func TestKafkaProbeNeverCreatesATopic(t *testing.T) {
	c := kafkaCluster(t, kfake.SeedTopics(1, "orders"), kfake.AllowAutoTopicCreation())
	addr := c.ListenAddrs()[0]
	st := config.Store{Name: "kafkanew", Kind: "kafka", Address: addr, Kafka: &config.KafkaOpts{Topics: []string{"orders", "documented-not-there"}}}
	for range 2 {
		wantFail(t, run(t, hop.KindKafka, hop.Target{Address: addr, Store: &st}, 3*time.Second), "topic documented-not-there does not exist")
	}
	if topicExists(t, addr, "documented-not-there") {
		t.Fatal("the probe created the topic it was checking")
	}
	if !topicExists(t, addr, "orders") {
		t.Fatal("the check itself cannot see a topic that exists")
	}
}

// topicExists asks with auto-creation off.
func topicExists(t *testing.T, addr, topic string) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0
}

// Every etcd endpoint must see a leader, whichever place the leaderless
// one has in the list, and the error names it.
func TestEtcdEveryEndpointNeedsALeader(t *testing.T) {
	ok := need(t, func() (*peers.Server, error) { return peers.Etcd("") })
	lonely := need(t, peers.EtcdLeaderless)
	for _, eps := range [][]string{{ok.Addr, lonely.Addr}, {lonely.Addr, ok.Addr}} {
		st := config.Store{Name: "etcdnew", Kind: "etcd", Addresses: eps}
		wantFail(t, run(t, hop.KindEtcd, hop.Target{Address: eps[0], Store: &st}, 3*time.Second), "endpoint "+lonely.Addr)
	}
	st := config.Store{Name: "etcdnew", Kind: "etcd", Address: ok.Addr}
	wantOK(t, run(t, hop.KindEtcd, hop.Target{Address: ok.Addr, Store: &st}, 3*time.Second))
}

// An answer with a hundred A records comes truncated over UDP (and,
// without EDNS0, did not come at all); the probe asks again over TCP.
func TestDNSLargeAnswerRetriesOverTCP(t *testing.T) {
	var udpAsked, tcpAsked, edns atomic.Bool
	resolver := dnsServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		_, udp := w.RemoteAddr().(*net.UDPAddr)
		if udp {
			udpAsked.Store(true)
			edns.Store(q.IsEdns0() != nil)
		} else {
			tcpAsked.Store(true)
		}
		if q.Question[0].Qtype == dns.TypeA {
			for i := range 100 {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
					A: net.IPv4(10, 0, byte(i/250), byte(i%250+1))})
			}
		}
		if udp && q.Question[0].Qtype == dns.TypeA {
			m.Truncate(1232)
		}
		w.WriteMsg(m)
	})
	r := run(t, hop.KindDNS, hop.Target{Host: "api.example.test", Resolver: resolver}, 2*time.Second)
	wantOK(t, r)
	if !udpAsked.Load() || !tcpAsked.Load() || !edns.Load() {
		t.Fatalf("udp %v (EDNS0 %v), tcp %v", udpAsked.Load(), edns.Load(), tcpAsked.Load())
	}
	if n := strings.Count(r.Details["addresses"], "10.0."); n < 10 {
		t.Fatalf("addresses %q", r.Details["addresses"])
	}
}

// Addresses that resolve to several IPs are tried in turn; the error
// names each one that failed.
func TestDialTriesEveryAddress(t *testing.T) {
	closed := acceptAndClose(t).Addr().String()
	_, port, _ := net.SplitHostPort(closed)
	refused, _ := peers.FreePort()
	_, rport, _ := net.SplitHostPort(refused)
	// localhost resolves to 127.0.0.1 (and ::1 where configured); the
	// port on ::1 is not listened on, so one address fails, one answers.
	r := run(t, hop.KindTCP, hop.Target{Address: net.JoinHostPort("localhost", port)}, 2*time.Second)
	wantOK(t, r)
	r = run(t, hop.KindTCP, hop.Target{Address: net.JoinHostPort("localhost", rport)}, 2*time.Second)
	wantFail(t, r, "127.0.0.1")
}

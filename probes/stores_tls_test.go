package probes_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
)

// Data stores that demand TLS with client certificates, Redis in cluster
// and sentinel mode, and Kafka with SASL over TLS: each against the real
// peer, once with the right settings and once without the client
// certificate, which the server must refuse.

func testPKI(t *testing.T) *peers.PKI {
	t.Helper()
	pki, err := peers.NewPKI(t.TempDir(), nil, "hopprobe")
	if err != nil {
		t.Fatal(err)
	}
	return pki
}

func clientTLS(pki *peers.PKI) *config.TLS {
	return &config.TLS{CAFile: pki.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
}

func TestRedisOverTLSWithClientCertificate(t *testing.T) {
	pki := testPKI(t)
	srv := need(t, func() (*peers.Server, error) { return peers.RedisTLS(storePW, pki) })
	st := config.Store{Name: "spotredis", Kind: "redis", Address: srv.Addr, TLS: clientTLS(pki)}
	tg := storeTarget(t, st)
	tg.Host = "127.0.0.1"
	wantOK(t, run(t, hop.KindRedis, tg, 3*time.Second))
	st.TLS = &config.TLS{CAFile: pki.CA}
	tg = storeTarget(t, st)
	tg.Host = "127.0.0.1"
	r := run(t, hop.KindRedis, tg, 3*time.Second)
	if r.Success {
		t.Fatal("a TLS Redis that demands a client certificate answered without one")
	}
	noSecret(t, r)
}

func TestRedisClusterAndSentinel(t *testing.T) {
	cl := need(t, func() (*peers.Server, error) { return peers.RedisCluster(storePW) })
	st := config.Store{Name: "futuresnewredis", Kind: "redis", Addresses: []string{cl.Addr}, Redis: &config.RedisOpts{Mode: "cluster"}}
	r := run(t, hop.KindRedis, storeTarget(t, st), 3*time.Second)
	wantOK(t, r)

	master := need(t, func() (*peers.Server, error) { return peers.Redis("", storePW, "") })
	sen := need(t, func() (*peers.Server, error) { return peers.RedisSentinel(master.Addr, "futures", storePW) })
	// The master a sentinel names gets the password only where the
	// topology allows it (TestASentinelCannotRedirectTheCredentials).
	st = config.Store{Name: "futuresnewredis", Kind: "redis", Addresses: []string{sen.Addr}, Allow: []string{"127.0.0.0/8"},
		Redis: &config.RedisOpts{Mode: "sentinel", MasterName: "futures", Role: "master"}}
	r = run(t, hop.KindRedis, storeTarget(t, st), 3*time.Second)
	wantOK(t, r)
	if r.Details["role"] != "master" {
		t.Fatalf("details %v", r.Details)
	}
	st.Redis = &config.RedisOpts{Mode: "sentinel", MasterName: "no-such-master"}
	wantFail(t, run(t, hop.KindRedis, storeTarget(t, st), 3*time.Second), "futuresnewredis")
	master.Stop()
	st.Redis = &config.RedisOpts{Mode: "sentinel", MasterName: "futures"}
	wantFail(t, run(t, hop.KindRedis, storeTarget(t, st), 2*time.Second), "futuresnewredis")
}

// A sentinel that names a master outside the topology does not get the
// password sent there: the hop fails, naming the address, and the
// "master" (a listener that looks for the password in what it is sent)
// never sees it. Listed under allow, the same master is probed.
func TestASentinelCannotRedirectTheCredentials(t *testing.T) {
	const sentinelPW = "sentinel-auth-pass-0123"
	var sawPassword atomic.Bool
	master := serveLoopback(t, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			if strings.Contains(string(b[:n]), storePW) {
				sawPassword.Store(true)
			}
			if err != nil {
				return
			}
			c.Write([]byte("-ERR not a master\r\n"))
		}
	}).Addr().String()
	sen := need(t, func() (*peers.Server, error) { return peers.RedisSentinel(master, "futures", sentinelPW) })
	st := config.Store{Name: "futuresnewredis", Kind: "redis", Addresses: []string{sen.Addr},
		Redis: &config.RedisOpts{Mode: "sentinel", MasterName: "futures"}}
	r := run(t, hop.KindRedis, storeTarget(t, st), 3*time.Second)
	wantFail(t, r, "futuresnewredis: credentials withheld: its peers sent the probe to "+master)
	if sawPassword.Load() {
		t.Fatal("the master the sentinel named received the store's password")
	}
	// Allowed, the probe goes there (and this fake master refuses it).
	st.Allow = []string{master}
	r = run(t, hop.KindRedis, storeTarget(t, st), 3*time.Second)
	if r.Success || strings.Contains(r.Error, "withheld") || !sawPassword.Load() {
		t.Errorf("with the master allowed: %+v (password seen: %v)", r.Error, sawPassword.Load())
	}
}

// With TLS verified, a sentinel may send the probe to a master the
// topology lists by name only: the real redis-server the sentinel names
// listens on 127.0.0.2, which no entry covers and its certificate does
// not name, and it is probed because its certificate proves it is
// redis-master.example.test, listed under allow. Listed under another
// name, the hop fails before the password is sent.
func TestAVerifiedMasterNameLetsASentinelRedirect(t *testing.T) {
	pki, err := peers.NewPKI(t.TempDir(), []string{"redis-master.example.test"}, "hopprobe")
	if err != nil {
		t.Fatal(err)
	}
	free, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(free)
	master := need(t, func() (*peers.Server, error) {
		return peers.RedisTLSOn(net.JoinHostPort("127.0.0.2", port), storePW, pki)
	})
	// The sentinel is a stand-in over TLS (a real one would have to
	// replicate over TLS with a client certificate of its own): it
	// answers the one question the probe asks it.
	srv, err := pki.ServerTLS(false)
	if err != nil {
		t.Fatal(err)
	}
	sentinel := serveLoopback(t, func(raw net.Conn) {
		c := tls.Server(raw, srv)
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 4096)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
			fmt.Fprintf(c, "*2\r\n$9\r\n127.0.0.2\r\n$%d\r\n%s\r\n", len(port), port)
		}
	})
	st := config.Store{Name: "futuresnewredis", Kind: "redis", Addresses: []string{sentinel.Addr().String()},
		Allow: []string{"redis-master.example.test:6379"}, TLS: clientTLS(pki),
		Redis: &config.RedisOpts{Mode: "sentinel", MasterName: "futures", Role: "master"}}
	wantOK(t, run(t, hop.KindRedis, storeTarget(t, st), 5*time.Second))
	st.Allow = []string{"other.example.test:6379"}
	wantFail(t, run(t, hop.KindRedis, storeTarget(t, st), 5*time.Second), "credentials withheld: its peers sent the probe to "+master.Addr)
}

func TestPostgresOverTLSWithClientCertificate(t *testing.T) {
	pki := testPKI(t)
	pg := need(t, func() (*peers.Server, error) { return peers.PostgresTLS("hopprobe", storePW, pki) })
	st := config.Store{Name: "spotdb", Kind: "postgres", Address: pg.Addr, Username: "hopprobe", Database: "postgres",
		TLS: clientTLS(pki), Postgres: &config.PostgresOpts{SSLMode: "verify-full"}}
	wantOK(t, run(t, hop.KindPostgres, storeTarget(t, st), 5*time.Second))
	// No client certificate: pg_hba's clientcert=verify-full refuses.
	noCert := st
	noCert.TLS = &config.TLS{CAFile: pki.CA}
	r := run(t, hop.KindPostgres, storeTarget(t, noCert), 5*time.Second)
	wantFail(t, r, "cannot open a session on spotdb")
	noSecret(t, r)
	// Clear text is not accepted at all.
	clear := st
	clear.TLS, clear.Postgres = nil, &config.PostgresOpts{SSLMode: "disable"}
	wantFail(t, run(t, hop.KindPostgres, storeTarget(t, clear), 5*time.Second), "no pg_hba.conf entry")
	// verify-full checks the name: a CA that did not sign the server fails.
	other := testPKI(t)
	wrongCA := st
	wrongCA.TLS = &config.TLS{CAFile: other.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	wantFail(t, run(t, hop.KindPostgres, storeTarget(t, wrongCA), 5*time.Second), "certificate")
}

func TestEtcdOverTLSWithClientCertificate(t *testing.T) {
	pki := testPKI(t)
	e := need(t, func() (*peers.Server, error) { return peers.EtcdTLS(pki) })
	t.Setenv("HOPPROBE_TEST_EMPTY", "")
	st := config.Store{Name: "etcdnew", Kind: "etcd", Address: e.Addr, TLS: clientTLS(pki),
		Password: &config.SecretRef{Env: "HOPPROBE_TEST_EMPTY"}}
	r := run(t, hop.KindEtcd, hop.Target{Address: e.Addr, Host: "127.0.0.1", Store: &st}, 5*time.Second)
	wantOK(t, r)
	noCert := st
	noCert.TLS = &config.TLS{CAFile: pki.CA}
	wantFail(t, run(t, hop.KindEtcd, hop.Target{Address: e.Addr, Host: "127.0.0.1", Store: &noCert}, 2*time.Second), "etcdnew")
}

func kafkaCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestKafkaSASLOverTLS(t *testing.T) {
	pki := testPKI(t)
	stc, err := pki.ServerTLS(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{"plain", "scram-sha-256", "scram-sha-512"} {
		t.Run(mech, func(t *testing.T) {
			kmech := map[string]string{"plain": "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"}[mech]
			c := kafkaCluster(t, kfake.EnableSASL(), kfake.Superuser(kmech, "prober", storePW), kfake.TLS(stc),
				kfake.SeedTopics(1, "orders", "hopprobe-canary"))
			addr := c.ListenAddrs()[0]
			t.Setenv("HOPPROBE_TEST_STORE_PW", storePW)
			st := config.Store{Name: "kafkanew", Kind: "kafka", Address: addr, TLS: &config.TLS{CAFile: pki.CA},
				Kafka: &config.KafkaOpts{Topics: []string{"orders"}, CanaryTopic: "hopprobe-canary",
					SASL: &config.SASL{Mechanism: mech, Username: "prober", Password: &config.SecretRef{Env: "HOPPROBE_TEST_STORE_PW"}}}}
			tg := hop.Target{Address: addr, Host: "127.0.0.1", Store: &st}
			wantOK(t, run(t, hop.KindKafka, tg, 5*time.Second))
			t.Setenv("HOPPROBE_TEST_WRONG_PW", "wrong-"+storePW)
			bad := st
			bo := *st.Kafka
			bs := *bo.SASL
			bs.Password = &config.SecretRef{Env: "HOPPROBE_TEST_WRONG_PW"}
			bo.SASL, bad.Kafka = &bs, &bo
			r := run(t, hop.KindKafka, hop.Target{Address: addr, Host: "127.0.0.1", Store: &bad}, 3*time.Second)
			if r.Success {
				t.Fatal("kafka accepted a wrong SASL password")
			}
			noSecret(t, r)
		})
	}
}

// A partition whose leader is gone (-1, LEADER_NOT_AVAILABLE) is a failed
// hop that names the topic and partition.
func TestKafkaLeaderlessPartition(t *testing.T) {
	c := kafkaCluster(t, kfake.SeedTopics(2, "orders"))
	addr := c.ListenAddrs()[0]
	host, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	c.ControlKey(int16(kmsg.Metadata), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := r.(*kmsg.MetadataRequest)
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		resp.SetVersion(req.GetVersion())
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = c.CurrentNode(), host, int32(port)
		resp.Brokers = []kmsg.MetadataResponseBroker{b}
		resp.ControllerID = b.NodeID
		for _, rt := range req.Topics {
			if rt.Topic == nil {
				continue
			}
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = rt.Topic
			for i := range int32(2) {
				mp := kmsg.NewMetadataResponseTopicPartition()
				mp.Partition, mp.Leader, mp.Replicas, mp.ISR = i, b.NodeID, []int32{b.NodeID}, []int32{b.NodeID}
				if i == 1 {
					mp.Leader, mp.ErrorCode, mp.ISR = -1, 5, nil // LEADER_NOT_AVAILABLE
				}
				mt.Partitions = append(mt.Partitions, mp)
			}
			resp.Topics = append(resp.Topics, mt)
		}
		return resp, nil, true
	})
	st := config.Store{Name: "kafkanew", Kind: "kafka", Address: addr, Kafka: &config.KafkaOpts{Topics: []string{"orders"}}}
	wantFail(t, run(t, hop.KindKafka, hop.Target{Address: addr, Store: &st}, 3*time.Second), "orders partition 1 has no leader")
}

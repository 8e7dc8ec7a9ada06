package probes_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/probes"
)

// soakProbes is the number of probes the soak runs.
const soakProbes = 10_000

// TestSoakLeavesNoGoroutinesOrSockets runs 10,000 probes of every protocol
// against healthy and broken peers, eight at a time, and checks that the
// goroutines and open file descriptors of the process come back to where
// they were.
func TestSoakLeavesNoGoroutinesOrSockets(t *testing.T) {
	httpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"ok":true}`) }))
	defer httpSrv.Close()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	ws := wsServer(t, "pong", false)
	defer ws.Close()
	resolver := dnsServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(127, 0, 0, 1)})
		w.WriteMsg(m)
	})
	redis := need(t, func() (*peers.Server, error) { return peers.Redis("", storePW, "") })
	kafka := need(t, func() (*peers.Server, error) { return peers.Kafka("", "orders") })
	etcd := need(t, func() (*peers.Server, error) { return peers.Etcd("") })
	pg := need(t, func() (*peers.Server, error) { return peers.Postgres("", "hopprobe", storePW) })
	hang := need(t, peers.Hang)
	closed := acceptAndClose(t)
	refused := closed.Addr().String()
	closed.Close()
	t.Setenv("HOPPROBE_TEST_EMPTY", "")
	t.Setenv("HOPPROBE_TEST_WRONG_PW", "wrong-"+storePW)

	redisStore := config.Store{Name: "spotredis", Kind: "redis", Address: redis.Addr}
	badRedis := redisStore
	badRedis.Password = &config.SecretRef{Env: "HOPPROBE_TEST_WRONG_PW"}
	kafkaStore := config.Store{Name: "kafkanew", Kind: "kafka", Address: kafka.Addr, Kafka: &config.KafkaOpts{Topics: []string{"orders"}}}
	etcdStore := config.Store{Name: "etcdnew", Kind: "etcd", Address: etcd.Addr, Password: &config.SecretRef{Env: "HOPPROBE_TEST_EMPTY"}}
	pgStore := config.Store{Name: "spotdb", Kind: "postgres", Address: pg.Addr, Username: "hopprobe", Postgres: &config.PostgresOpts{SSLMode: "disable"}}
	hangRedis := redisStore
	hangRedis.Address = hang.Addr

	type job struct {
		kind     hop.Kind
		tg       hop.Target
		ok       bool
		timeout  time.Duration
		perRound int
	}
	jobs := []job{
		{hop.KindHTTP, hop.Target{Address: addr(httpSrv), Host: "a.test", Scheme: "http"}, true, time.Second, 26},
		{hop.KindHTTP, hop.Target{Address: refused, Host: "a.test", Scheme: "http"}, false, time.Second, 4},
		{hop.KindWebSocket, hop.Target{Address: addr(ws), Host: "a.test", Expect: config.Expect{Send: "ping", Reply: "pong"}}, true, 2 * time.Second, 15},
		{hop.KindTCP, hop.Target{Address: addr(httpSrv)}, true, time.Second, 10},
		{hop.KindTCP, hop.Target{Address: refused}, false, time.Second, 5},
		{hop.KindTLS, hop.Target{Address: addr(tlsSrv), Host: "example.com", TLS: caFile(t, tlsSrv)}, true, time.Second, 9},
		{hop.KindTLS, hop.Target{Address: addr(tlsSrv), Host: "wrong.example"}, false, time.Second, 1},
		{hop.KindDNS, hop.Target{Host: "api.example.test", Resolver: resolver}, true, time.Second, 10},
		{hop.KindRedis, storeTarget(t, redisStore), true, 2 * time.Second, 8},
		{hop.KindRedis, hop.Target{Address: redis.Addr, Store: &badRedis}, false, 2 * time.Second, 2},
		{hop.KindRedis, storeTarget(t, hangRedis), false, 50 * time.Millisecond, 1},
		{hop.KindKafka, hop.Target{Address: kafka.Addr, Store: &kafkaStore}, true, 2 * time.Second, 6},
		{hop.KindEtcd, hop.Target{Address: etcd.Addr, Store: &etcdStore}, true, 3 * time.Second, 2},
		{hop.KindPostgres, storeTarget(t, pgStore), true, 5 * time.Second, 1},
	}
	perRound := 0
	for _, j := range jobs {
		perRound += j.perRound
	}
	if perRound*100 != soakProbes {
		t.Fatalf("the mix adds up to %d probes, not %d", perRound*100, soakProbes)
	}
	// One round first: lazily started library goroutines belong to the
	// baseline, not to the soak.
	for _, j := range jobs {
		run(t, j.kind, j.tg, j.timeout)
	}
	baseG, baseFD := settle(0, 0)
	// No garbage collection during the soak: a socket the prober forgot
	// to close would otherwise be closed by its finalizer and hide.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	work := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wrong := map[string]int{}
	for range 8 {
		wg.Go(func() {
			for j := range work {
				r := probes.Run(t.Context(), j.kind, &j.tg, j.timeout)
				if r.Success != j.ok {
					mu.Lock()
					wrong[fmt.Sprintf("%s %s ok=%v: %s", j.kind, j.tg.Address, r.Success, r.Error)]++
					mu.Unlock()
				}
			}
		})
	}
	start := time.Now()
	// A hundred rounds of the mix, the protocols interleaved.
	for range 100 {
		for _, j := range jobs {
			for range j.perRound {
				work <- j
			}
		}
	}
	close(work)
	wg.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d probes in %s, %d MiB allocated", soakProbes, time.Since(start).Round(time.Millisecond), ms.TotalAlloc>>20)
	for k, n := range wrong {
		t.Errorf("%d× unexpected verdict: %s", n, k)
	}
	// Peers close their side a moment later; the collector stays off.
	g, fd := settle(baseG, baseFD)
	if g > baseG {
		t.Errorf("goroutines: %d before the soak, %d after", baseG, g)
	}
	if fd > baseFD {
		t.Errorf("open file descriptors: %d before the soak, %d after", baseFD, fd)
	}
}

// settle waits up to 5 s for goroutines and descriptors to drop to the
// given levels (0: just let things settle) and returns them.
func settle(wantG, wantFD int) (int, int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(100 * time.Millisecond)
		g, fd := runtime.NumGoroutine(), openFDs()
		if (g <= wantG && fd <= wantFD) || time.Now().After(deadline) || wantG == 0 {
			return g, fd
		}
	}
}

func openFDs() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(es)
}

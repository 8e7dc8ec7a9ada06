package probes_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Faults are injected by an embedded Toxiproxy between the prober and a
// real peer on loopback.

func faultProxy(t *testing.T, upstream string) *toxiproxy.Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := toxiproxy.NewProxy(srv, strings.ReplaceAll(t.Name(), "/", "_"), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop closes every link. Lifting the toxics first (ResetToxics) is
	// no cleaner: removing a toxic hands its buffered data on, and on a
	// link the prober has just hung up on that waits out toxiproxy's 5 s
	// output timeout (link.go). The toxic goroutines that Stop leaves to
	// end on their own are the ones TestMain tells goleak about.
	t.Cleanup(p.Stop)
	return p
}

// addToxic applies a toxic to what the peer sends back; the blackhole
// also swallows what the prober sends.
func addToxic(t *testing.T, p *toxiproxy.Proxy, typ string, attrs string) {
	t.Helper()
	streams := []string{"downstream"}
	if typ == "timeout" {
		streams = append(streams, "upstream")
	}
	for _, stream := range streams {
		js := fmt.Sprintf(`{"name":"%s-%s","type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, typ, stream, typ, stream, attrs)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			t.Fatalf("toxic %s: %v", typ, err)
		}
	}
}

func phaseOf(r hop.Result, name string) time.Duration {
	for _, p := range r.Phases {
		if p.Name == name {
			return p.Duration
		}
	}
	return -1
}

// delayedPair puts two fault proxies in front of upstream, one clean and
// one that delays every answer by d, and returns their addresses. Tests
// probe through both in turn: the injector's own overhead is on both
// sides, and load on a shared CI machine hits both alike.
func delayedPair(t *testing.T, upstream string, d time.Duration) (clean, delayed string) {
	t.Helper()
	c, slow := faultProxy(t, upstream), faultProxy(t, upstream)
	addToxic(t, slow, "latency", fmt.Sprintf(`{"latency":%d,"jitter":0}`, d.Milliseconds()))
	return c.Listen, slow.Listen
}

// injected measures what the latency toxic really adds to one answer: a
// one-byte TCP echo through a clean and a delayed proxy. Toxiproxy's
// timers overshoot D by a millisecond or more on a loaded machine; the
// tests hold the prober to what the network added, not to the nominal D.
func injected(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	echo := serveLoopback(t, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
	clean, delayed := delayedPair(t, echo.Addr().String(), d)
	cs, ds := samplePair(7, func(a string) time.Duration {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		b := []byte{1}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}, clean, delayed)
	base, slow := cs[0], ds[0]
	noise.Store(max(noise.Load(), int64(cs[len(cs)/2]-cs[0]), int64(ds[len(ds)/2]-ds[0])))
	t.Logf("toxiproxy adds %s for a latency of %s (scheduling noise %s)", (slow - base).Round(10*time.Microsecond), d, time.Duration(noise.Load()).Round(10*time.Microsecond))
	return slow - base
}

// fastestPair measures n times through the clean and the delayed address
// in turn and keeps the fastest reading of each: scheduling noise only
// ever adds time, and the fastest measurement is the one it spared.
func fastestPair(n int, measure func(addr string) time.Duration, clean, delayed string) (base, slow time.Duration) {
	cs, ds := samplePair(n, measure, clean, delayed)
	return cs[0], ds[0]
}

// samplePair is fastestPair's readings, each side sorted.
func samplePair(n int, measure func(addr string) time.Duration, clean, delayed string) (cs, ds []time.Duration) {
	for range n {
		cs = append(cs, measure(clean))
		ds = append(ds, measure(delayed))
	}
	slices.Sort(cs)
	slices.Sort(ds)
	return cs, ds
}

// noise is the largest scheduling noise the one-byte echo calibration
// (injected) saw in this run: the median reading's distance from the
// fastest, which is what the machine's load adds to one measurement:
// about 0.1 ms on a quiet machine, milliseconds with the cores
// oversubscribed. The echo has no variance of its own to mistake for it.
var noise atomic.Int64

// tolerance is what a latency check allows: the bound the tests hold to
// on a quiet machine, plus twice the noise measured in this same run, so
// that a loaded machine (CI with its two cores oversubscribed) widens it
// by what it really adds, and a quiet one does not.
func tolerance(quiet time.Duration) time.Duration {
	return quiet + 2*time.Duration(noise.Load())
}

func within(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	quiet := 2 * time.Millisecond
	if want > 100*time.Millisecond {
		quiet = want / 20
	}
	tol := tolerance(quiet)
	if got < want-tol || got > want+tol {
		t.Errorf("%s: injected %s, measured %s (tolerance ±%s)", what, want, got, tol)
	}
}

// An injected delay shows up in the phase that waits for the delayed
// peer, to within ±2 ms (±5% above 100 ms).
func TestInjectedLatencyIsReportedOnThePhase(t *testing.T) {
	httpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer httpSrv.Close()
	ws := wsServer(t, "pong", false)
	defer ws.Close()
	for _, d := range []time.Duration{40 * time.Millisecond, 150 * time.Millisecond} {
		added := injected(t, d)
		for _, c := range []struct {
			kind     hop.Kind
			upstream string
			phase    string
			tg       hop.Target
		}{
			{hop.KindHTTP, addr(httpSrv), "first_byte", hop.Target{Host: "a.test", Scheme: "http", Path: "/"}},
			{hop.KindWebSocket, addr(ws), "handshake", hop.Target{Host: "a.test", Path: "/"}},
		} {
			clean, delayed := delayedPair(t, c.upstream, d)
			base, slow := fastestPair(7, func(a string) time.Duration {
				tg := c.tg
				tg.Address = a
				r := run(t, c.kind, tg, 5*time.Second)
				wantOK(t, r)
				return phaseOf(r, c.phase)
			}, clean, delayed)
			within(t, fmt.Sprintf("%s %s phase", c.kind, c.phase), slow-base, added)
		}
	}
}

// In a path, the delay lands on the delayed hop and not on the others.
func TestInjectedLatencyStaysOnItsHop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	const d = 60 * time.Millisecond
	clean, delayed := delayedPair(t, addr(srv), d)
	hop := func(name, address string) targets.Hop {
		return targets.Hop{Name: name, Kind: hop.KindHTTP, Timeout: 5 * time.Second,
			Target: hop.Target{Address: address, Host: name + ".test", Scheme: "http", Path: "/"}}
	}
	var base, slow [3]time.Duration
	for i := range base {
		// Each hop's fastest reading on the walks with a clean APISIX and
		// on those with a delayed one.
		base[i], slow[i] = fastestPair(7, func(apisix string) time.Duration {
			path := &targets.Path{ID: "p", Interval: time.Minute, Hops: []targets.Hop{
				hop("edge", addr(srv)), hop("apisix", apisix), hop("service", addr(srv)),
			}}
			// A fresh walker each time (no shared-hop cache), one probe at a
			// time so that hops do not slow each other.
			r := scheduler.NewWalker(1, probes.Run).Walk(t.Context(), path)
			for j, h := range r.Hops {
				if !h.Success {
					t.Fatalf("hop %s failed: %s", path.Hops[j].Name, h.Error)
				}
			}
			return r.Hops[i].Duration
		}, clean, delayed)
	}
	within(t, "apisix hop", slow[1]-base[1], injected(t, d))
	for _, i := range []int{0, 2} {
		if extra := slow[i] - base[i]; extra > 2*time.Millisecond {
			t.Errorf("hop %d gained %s though only apisix was delayed", i, extra)
		}
	}
}

// peerCase is a real peer and how to probe it through a given address
// (the fault proxy in front of it).
type peerCase struct {
	name     string
	kind     hop.Kind
	upstream string
	tg       func(addr string) hop.Target
}

// tlsAndStorePeers starts a TLS server, redis-server, postgres, etcd and
// kfake, and says how to probe each.
func tlsAndStorePeers(t *testing.T) []peerCase {
	t.Helper()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)
	redis := need(t, func() (*peers.Server, error) { return peers.Redis("", storePW, "") })
	kafka := need(t, func() (*peers.Server, error) { return peers.Kafka("", "orders") })
	etcd := need(t, func() (*peers.Server, error) { return peers.Etcd("") })
	pg := need(t, func() (*peers.Server, error) { return peers.Postgres("", "hopprobe", storePW) })
	t.Setenv("HOPPROBE_TEST_EMPTY", "")
	return []peerCase{
		{"tls", hop.KindTLS, addr(tlsSrv), func(a string) hop.Target {
			return hop.Target{Address: a, Host: "example.com", TLS: caFile(t, tlsSrv)}
		}},
		{"redis", hop.KindRedis, redis.Addr, func(a string) hop.Target {
			return storeTarget(t, config.Store{Name: "spotredis", Kind: "redis", Address: a})
		}},
		{"postgres", hop.KindPostgres, pg.Addr, func(a string) hop.Target {
			return storeTarget(t, config.Store{Name: "spotdb", Kind: "postgres", Address: a, Username: "hopprobe",
				Postgres: &config.PostgresOpts{SSLMode: "disable"}})
		}},
		{"kafka", hop.KindKafka, kafka.Addr, func(a string) hop.Target {
			st := config.Store{Name: "kafkanew", Kind: "kafka", Address: a, Kafka: &config.KafkaOpts{Topics: []string{"orders"}}}
			return hop.Target{Address: a, Store: &st}
		}},
		{"etcd", hop.KindEtcd, etcd.Addr, func(a string) hop.Target {
			st := config.Store{Name: "etcdnew", Kind: "etcd", Address: a, Password: &config.SecretRef{Env: "HOPPROBE_TEST_EMPTY"}}
			return hop.Target{Address: a, Store: &st}
		}},
	}
}

// A peer that accepts and then swallows everything fails every protocol
// at its timeout, never later.
func TestBlackholeFailsAtTheTimeoutForEveryProtocol(t *testing.T) {
	httpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer httpSrv.Close()
	ws := wsServer(t, "pong", false)
	defer ws.Close()
	cases := append([]peerCase{
		{"http", hop.KindHTTP, addr(httpSrv), func(a string) hop.Target {
			return hop.Target{Address: a, Host: "a.test", Scheme: "http"}
		}},
		{"websocket", hop.KindWebSocket, addr(ws), func(a string) hop.Target {
			return hop.Target{Address: a, Host: "a.test", Expect: config.Expect{Send: "ping", Reply: "pong"}}
		}},
	}, tlsAndStorePeers(t)...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := faultProxy(t, c.upstream)
			// Healthy through the proxy first, so the failure is the fault's.
			wantOK(t, run(t, c.kind, c.tg(p.Listen), 5*time.Second))
			addToxic(t, p, "timeout", `{"timeout":0}`)
			wantHangBounded(t, c.kind, c.tg(p.Listen), 400*time.Millisecond)
		})
	}
}

// Connections cut mid-response, trickled responses and garbage instead of
// the protocol each fail with a reason, within the timeout.
func TestBrokenConversationsFailWithReasons(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, big) }))
	defer srv.Close()
	tg := func(a string) hop.Target {
		return hop.Target{Address: a, Host: "a.test", Scheme: "http", Path: "/"}
	}

	cut := faultProxy(t, addr(srv))
	addToxic(t, cut, "limit_data", `{"bytes":1000}`)
	wantFail(t, run(t, hop.KindHTTP, tg(cut.Listen), 2*time.Second), "unexpected EOF")

	reset := faultProxy(t, addr(srv))
	addToxic(t, reset, "reset_peer", `{"timeout":0}`)
	wantFail(t, run(t, hop.KindHTTP, tg(reset.Listen), 2*time.Second), "connection reset by peer")

	// Slowloris: one byte every 20 ms never finishes in 500 ms.
	trickle := faultProxy(t, addr(srv))
	addToxic(t, trickle, "slicer", `{"average_size":1,"size_variation":0,"delay":20000}`)
	wantHangBounded(t, hop.KindHTTP, tg(trickle.Listen), 500*time.Millisecond)

	// Garbage: a peer that answers every protocol with random bytes.
	garbage := garbagePeer(t)
	for _, c := range []struct {
		kind hop.Kind
		tg   hop.Target
		want string
	}{
		{hop.KindHTTP, tg(garbage), "malformed HTTP"},
		{hop.KindWebSocket, hop.Target{Address: garbage, Host: "a.test"}, "malformed HTTP"},
		{hop.KindTLS, hop.Target{Address: garbage, Host: "a.test"}, "TLS handshake"},
		{hop.KindRedis, storeTarget(t, config.Store{Name: "spotredis", Kind: "redis", Address: garbage}), "spotredis"},
		{hop.KindPostgres, storeTarget(t, config.Store{Name: "spotdb", Kind: "postgres", Address: garbage, Username: "u",
			Postgres: &config.PostgresOpts{SSLMode: "disable"}}), "spotdb"},
		{hop.KindKafka, hop.Target{Address: garbage, Store: &config.Store{Name: "kafkanew", Kind: "kafka", Address: garbage}}, "kafkanew"},
	} {
		// A generous timeout: the point is that garbage is named as such
		// long before it.
		r := run(t, c.kind, c.tg, 3*time.Second)
		wantFail(t, r, c.want)
		if strings.Contains(r.Error, "no answer within") {
			t.Errorf("%s: garbage must be reported as garbage, not as a timeout: %s", c.kind, r.Error)
		}
	}
	// gRPC alone would retry a peer that speaks garbage until the
	// deadline; the etcd probe names it from its first answer, with and
	// without TLS.
	for _, c := range []struct {
		tls  *config.TLS
		want string
	}{{nil, "not with HTTP/2"}, {&config.TLS{}, "not with TLS"}} {
		st := &config.Store{Name: "etcdnew", Kind: "etcd", Address: garbage, TLS: c.tls}
		r := run(t, hop.KindEtcd, hop.Target{Address: garbage, Store: st}, 3*time.Second)
		wantFail(t, r, c.want)
		if strings.Contains(r.Error, "no answer within") {
			t.Errorf("etcd: garbage must be reported as garbage, not as a timeout: %s", r.Error)
		}
	}
}

// garbagePeer answers every connection with bytes of no protocol, then
// hangs up.
func garbagePeer(t *testing.T) string {
	t.Helper()
	return serveLoopback(t, func(c net.Conn) {
		defer c.Close()
		junk := make([]byte, 4096)
		rand.Read(junk)
		junk[0] = 0x7f // never a valid TLS record type or HTTP/RESP start
		c.SetDeadline(time.Now().Add(time.Second))
		// Answer the client's first words, as a wrong server would.
		if _, err := c.Read(make([]byte, 512)); err != nil {
			return
		}
		c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(junk)
		io.Copy(io.Discard, c)
	}).Addr().String()
}

// A WebSocket frame above the configured limit is refused, not buffered.
func TestOversizedWebSocketFrameIsRefused(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.ReadMessage()
		c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("p", 64<<10)+"pong"))
		c.ReadMessage()
	}))
	defer srv.Close()
	tg := hop.Target{Address: addr(srv), Host: "a.test", MaxBodyBytes: 1024, Expect: config.Expect{Send: "ping", Reply: "pong"}}
	wantFail(t, run(t, hop.KindWebSocket, tg, 2*time.Second), "read limit exceeded")
	tg.MaxBodyBytes = 1 << 20
	wantOK(t, run(t, hop.KindWebSocket, tg, 2*time.Second))
}

// An expired certificate is a failed TLS hop that says so.
func TestExpiredCertificateIsNamed(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "expired"},
		DNSNames: []string{"example.com"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	wantFail(t, run(t, hop.KindTLS, hop.Target{Address: addr(srv), Host: "example.com", TLS: &config.TLS{CAFile: ca}}, time.Second), "expired")
}

// For protocols that talk back and forth, an injected delay D on the
// peer's answers adds D per round trip: the hop's duration must grow by a
// whole number of D (at least one), within D/8 per round trip (5 ms at
// 40 ms; a whole number is still told apart, which needs under D/2). The
// calibration echoes one byte; a TLS server's answer is a certificate
// chain in several segments, each held by its own toxiproxy timer, and
// on a loaded machine (CI once saw +2.8 ms over the calibrated D) their
// overshoot adds up beyond the 2 ms that the phase tests hold to.
func TestInjectedLatencyOnStoresAndTLS(t *testing.T) {
	d := injected(t, 40*time.Millisecond)
	for _, c := range tlsAndStorePeers(t) {
		t.Run(c.name, func(t *testing.T) {
			clean, delayed := delayedPair(t, c.upstream, 40*time.Millisecond)
			base, slow := fastestPair(7, func(a string) time.Duration {
				r := run(t, c.kind, c.tg(a), 5*time.Second)
				wantOK(t, r)
				return r.Duration
			}, clean, delayed)
			extra := slow - base
			trips := (extra + d/2) / d
			tol := min(tolerance(max(2*time.Millisecond, d/8)), d/3) // below d/2: a whole number is still told apart
			if trips < 1 || extra < trips*(d-tol) || extra > trips*(d+tol) {
				t.Errorf("%s: %s injected per answer, the hop grew by %s: not a whole number of round trips", c.name, d, extra)
			}
			t.Logf("%s: +%s = %d round trip(s) × %s (tolerance ±%s per trip)", c.name, extra.Round(100*time.Microsecond), trips, d.Round(10*time.Microsecond), tol)
		})
	}
}
